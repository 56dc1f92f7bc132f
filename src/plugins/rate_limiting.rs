//! The rate-limiting plugin (Kong's priority 910): one admission per configured period
//! against the cluster budget (policy `cluster`) or this node's counter (`local`), and
//! Kong's headers and 429 on the way back.

use std::sync::Arc;

use bytes::BytesMut;
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use smallvec::SmallVec;
use uuid::Uuid;

use crate::http::Body;
use crate::model::plugins::rate_limiting::RateLimitingConfig;
use crate::proxy::context::RequestContext;
use crate::proxy::errors::error_response;
use crate::ratelimit::limiter::{ClusterLimiter, Decision};
use crate::ratelimit::local::LocalLimiter;
use crate::proxy::headers::ip_value;
use crate::ratelimit::window::{self, Period, Window};

pub struct Limiters {
    pub cluster: Arc<ClusterLimiter>,
    pub local: Arc<LocalLimiter>,
}

/// Who the limit counts (Kong's `limit_by`, falling back to the client's address), written
/// into the counter key as its identifier segment.
fn key_prefix(out: &mut String, plugin_id: &Uuid, cfg: &RateLimitingConfig, parts: &Parts, ctx: &RequestContext) {
    let mut plugin_text = Uuid::encode_buffer();
    let plugin_id = plugin_id.hyphenated().encode_lower(&mut plugin_text);
    let by_id = match cfg.limit_by.as_str() {
        "consumer" => ctx.consumer.as_ref().map(|c| c.id).or(ctx.credential_id),
        "credential" => ctx.credential_id,
        "service" => ctx.service_id,
        _ => None,
    };
    if let Some(id) = by_id {
        let mut text = Uuid::encode_buffer();
        return window::key_prefix(out, plugin_id, id.hyphenated().encode_lower(&mut text).as_bytes());
    }
    let by_request = match cfg.limit_by.as_str() {
        "header" => cfg.header_name.as_deref().and_then(|h| parts.headers.get(h)).filter(|v| v.to_str().is_ok()).map(HeaderValue::as_bytes),
        "path" => cfg.path.as_deref().filter(|p| *p == parts.uri.path()).map(str::as_bytes),
        _ => None,
    };
    match by_request {
        Some(identifier) => window::key_prefix(out, plugin_id, identifier),
        // The address as text, from the per-thread cache the upstream headers use.
        None => window::key_prefix(out, plugin_id, ip_value(ctx.client.ip()).as_bytes()),
    }
}

struct Outcome {
    period: Period,
    limit: u64,
    remaining: u64,
    reset: u64,
}

// Header names made once: building and validating them per request showed up as most
// of the plugin's cost in a profile.
static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
static RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");

/// `X-RateLimit-Limit-<Period>` and `X-RateLimit-Remaining-<Period>`.
fn period_headers(period: Period) -> (&'static HeaderName, &'static HeaderName) {
    static LIMIT: [HeaderName; 6] = [
        HeaderName::from_static("x-ratelimit-limit-second"),
        HeaderName::from_static("x-ratelimit-limit-minute"),
        HeaderName::from_static("x-ratelimit-limit-hour"),
        HeaderName::from_static("x-ratelimit-limit-day"),
        HeaderName::from_static("x-ratelimit-limit-month"),
        HeaderName::from_static("x-ratelimit-limit-year"),
    ];
    static REMAINING: [HeaderName; 6] = [
        HeaderName::from_static("x-ratelimit-remaining-second"),
        HeaderName::from_static("x-ratelimit-remaining-minute"),
        HeaderName::from_static("x-ratelimit-remaining-hour"),
        HeaderName::from_static("x-ratelimit-remaining-day"),
        HeaderName::from_static("x-ratelimit-remaining-month"),
        HeaderName::from_static("x-ratelimit-remaining-year"),
    ];
    let i = match period {
        Period::Second => 0,
        Period::Minute => 1,
        Period::Hour => 2,
        Period::Day => 3,
        Period::Month => 4,
        Period::Year => 5,
    };
    (&LIMIT[i], &REMAINING[i])
}

/// Kong's headers, as (name, number) until `number_values` renders them.
type Numbers = SmallVec<[(&'static HeaderName, u64); 16]>;

/// The header values of `numbers`, rendered into one buffer: a value allocated apiece
/// cost an allocation per header on every admitted request.
fn number_values(numbers: &Numbers) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
    // itoa, not core::fmt: its machinery showed in profiles at five numbers a request.
    let mut digits = itoa::Buffer::new();
    let mut text = BytesMut::with_capacity(numbers.len() * 20);
    let mut spans: SmallVec<[(usize, usize); 16]> = SmallVec::new();
    for &(_, n) in numbers {
        let start = text.len();
        text.extend_from_slice(digits.format(n).as_bytes());
        spans.push((start, text.len()));
    }
    let text = text.freeze();
    numbers.iter().zip(spans).map(move |((name, _), (start, end))| {
        let value = HeaderValue::from_maybe_shared(text.slice(start..end)).expect("decimal digits are a valid header value");
        ((*name).clone(), value)
    })
}

/// Admits or refuses the request; headers for the client go to `ctx.response_headers`.
pub async fn access(
    plugin_id: Uuid,
    cfg: &RateLimitingConfig,
    limiters: &Limiters,
    parts: &Parts,
    ctx: &mut RequestContext,
    now_ms: u64,
) -> Result<(), Response<Body>> {
    // One key buffer for every period: the plugin and identifier are written into it once.
    let mut key = String::with_capacity(128);
    key_prefix(&mut key, &plugin_id, cfg, parts, ctx);
    let prefix_len = key.len();
    let mut outcomes: SmallVec<[Outcome; 6]> = SmallVec::new();
    let mut blocked = false;
    for (period, limit) in cfg.limits() {
        let limit = limit.max(0.0) as u64;
        let window = Window::containing(period, now_ms);
        key.truncate(prefix_len);
        window::push_window(&mut key, &window);
        let decision = match cfg.policy.as_str() {
            "local" => limiters.local.admit(&key, limit, window.end_ms()),
            _ => limiters.cluster.admit(&key, limit, window.end_ms(), cfg.fault_tolerant).await,
        };
        let reset = window.reset_secs(now_ms);
        match decision {
            Decision::Admitted { remaining } => outcomes.push(Outcome { period, limit, remaining, reset }),
            Decision::Rejected => {
                outcomes.push(Outcome { period, limit, remaining: 0, reset });
                // Longer windows are not charged for a request that is refused anyway.
                blocked = true;
                break;
            }
            Decision::Unavailable => {
                // Kong answers 500 here; 503 says what it is: temporary, retry elsewhere.
                let message = "Rate limiting is unavailable: the cluster has no quorum";
                return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, message, ctx.request_id()));
            }
        }
    }
    let mut numbers = Numbers::new();
    if !cfg.hide_client_headers {
        for o in &outcomes {
            let (limit, remaining) = period_headers(o.period);
            numbers.push((limit, o.limit));
            numbers.push((remaining, o.remaining));
        }
        // The period closest to running out speaks for RateLimit-*; on a tie, the longer.
        if let Some(o) = outcomes.iter().rev().min_by_key(|o| o.remaining) {
            numbers.push((&RATELIMIT_LIMIT, o.limit));
            numbers.push((&RATELIMIT_REMAINING, o.remaining));
            numbers.push((&RATELIMIT_RESET, o.reset));
        }
    }
    if !blocked {
        ctx.response_headers.reserve_exact(numbers.len());
        ctx.response_headers.extend(number_values(&numbers));
        return Ok(());
    }
    let status = StatusCode::from_u16(cfg.status()).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let mut resp = error_response(status, &cfg.error_message, ctx.request_id());
    if let Some(o) = outcomes.last() {
        numbers.push((&RETRY_AFTER, o.reset));
    }
    for (name, value) in number_values(&numbers) {
        resp.headers_mut().insert(name, value);
    }
    Err(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::context::ConsumerInfo;
    use crate::ratelimit::window::counter_key;

    fn config(limit_by: &str) -> RateLimitingConfig {
        RateLimitingConfig {
            second: None,
            minute: Some(5.0),
            hour: None,
            day: None,
            month: None,
            year: None,
            limit_by: limit_by.into(),
            header_name: Some("x-who".into()),
            path: Some("/only".into()),
            policy: "cluster".into(),
            fault_tolerant: true,
            hide_client_headers: false,
            error_code: 429.0,
            error_message: "API rate limit exceeded".into(),
        }
    }

    /// The key `access` uses for `cfg` and a request to `uri` with `headers`, from 10.0.0.7.
    fn key(cfg: &RateLimitingConfig, uri: &str, headers: &[(&str, &str)], consumer: Option<Uuid>) -> String {
        let mut req = hyper::Request::get(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let parts = req.body(()).unwrap().into_parts().0;
        let mut ctx = RequestContext::new("10.0.0.7:5555".parse().unwrap());
        ctx.consumer = consumer.map(|id| ConsumerInfo { id, username: None, custom_id: None });
        let mut key = String::new();
        key_prefix(&mut key, &PLUGIN, cfg, &parts, &ctx);
        window::push_window(&mut key, &WINDOW);
        key
    }

    const PLUGIN: Uuid = Uuid::from_u128(0x1234);
    const WINDOW: Window = Window { period: Period::Minute, start_ms: 120_000 };

    fn expected(identifier: &str) -> String {
        counter_key(&PLUGIN.to_string(), identifier, &WINDOW)
    }

    #[test]
    fn the_key_counts_whom_limit_by_names_and_falls_back_to_the_client_address() {
        let consumer = Uuid::from_u128(0xabc);
        assert_eq!(key(&config("ip"), "/", &[], None), expected("10.0.0.7"));
        assert_eq!(key(&config("header"), "/", &[("x-who", "alice")], None), expected("alice"));
        assert_eq!(key(&config("header"), "/", &[], None), expected("10.0.0.7"));
        assert_eq!(key(&config("path"), "/only", &[], None), expected("/only"));
        assert_eq!(key(&config("path"), "/other", &[], None), expected("10.0.0.7"));
        assert_eq!(key(&config("consumer"), "/", &[], Some(consumer)), expected(&consumer.to_string()));
        assert_eq!(key(&config("consumer"), "/", &[], None), expected("10.0.0.7"));
    }

    #[test]
    fn numbers_render_as_one_value_per_header_in_order() {
        let numbers: Numbers = [(&RATELIMIT_LIMIT, 5), (&RATELIMIT_REMAINING, 0), (&RATELIMIT_RESET, u64::MAX)].into_iter().collect();
        let rendered: Vec<_> = number_values(&numbers).map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned())).collect();
        assert_eq!(
            rendered,
            [("ratelimit-limit", "5"), ("ratelimit-remaining", "0"), ("ratelimit-reset", "18446744073709551615")].map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(number_values(&Numbers::new()).count(), 0);
    }
}
