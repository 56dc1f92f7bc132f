//! The rate-limiting plugin (Kong's priority 910): one admission per configured period
//! against the cluster budget (policy `cluster`) or this node's counter (`local`), and
//! Kong's headers and 429 on the way back.

use std::sync::Arc;

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

use super::rate_limit_fields::{PeriodOutcome, RateLimitFields};

pub struct Limiters {
    pub cluster: Arc<ClusterLimiter>,
    pub local: Arc<LocalLimiter>,
}

/// One configured limit.
#[derive(Clone)]
struct Limit {
    period: Period,
    count: u64,
}

/// A rate-limiting plugin instance, prepared when the proxy table is built: what every
/// request would otherwise work out again (the id as the counter keys spell it, the
/// limits as integers).
#[derive(Clone)]
pub struct RateLimitPlugin {
    pub id: Uuid,
    pub config: RateLimitingConfig,
    id_text: String,
    limits: SmallVec<[Limit; 2]>,
    local: bool,
}

impl std::fmt::Debug for RateLimitPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitPlugin").field("id", &self.id).field("config", &self.config).finish_non_exhaustive()
    }
}

impl RateLimitPlugin {
    pub fn new(id: Uuid, config: RateLimitingConfig) -> RateLimitPlugin {
        let limits = config
            .limits()
            .map(|(period, limit)| {
                let count = limit.max(0.0) as u64;
                Limit { period, count }
            })
            .collect();
        let local = config.policy == "local";
        RateLimitPlugin { id, id_text: id.hyphenated().to_string(), limits, local, config }
    }
}

/// Who the limit counts (Kong's `limit_by`, falling back to the client's address), written
/// into the counter key as its identifier segment.
fn key_prefix(out: &mut String, plugin: &RateLimitPlugin, parts: &Parts, ctx: &RequestContext) {
    let cfg = &plugin.config;
    let by_id = match cfg.limit_by.as_str() {
        "consumer" => ctx.consumer.as_ref().map(|c| c.id).or(ctx.credential_id),
        "credential" => ctx.credential_id,
        "service" => ctx.service_id,
        _ => None,
    };
    if let Some(id) = by_id {
        let mut text = Uuid::encode_buffer();
        return window::key_prefix(out, &plugin.id_text, id.hyphenated().encode_lower(&mut text).as_bytes());
    }
    let by_request = match cfg.limit_by.as_str() {
        "header" => cfg.header_name.as_deref().and_then(|h| ctx.request_field(&parts.headers, h)).filter(|v| v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))),
        "path" => cfg.path.as_deref().filter(|p| *p == parts.uri.path()).map(str::as_bytes),
        _ => None,
    };
    match by_request {
        Some(identifier) => window::key_prefix(out, &plugin.id_text, identifier),
        // The address as text, from the per-thread cache the upstream headers use.
        None => window::key_prefix(out, &plugin.id_text, ip_value(ctx.client.ip()).as_bytes()),
    }
}


/// The most time before a window's end at which a key busy from its first window here
/// reserves its next windows (otherwise the window's last tenth): long enough for a Raft
/// round under load, short enough that only keys in use now hold tokens for the windows
/// to come.
const RESERVE_AHEAD_MAX_MS: u64 = 250;

static RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");

/// Admits or refuses the request; fields for the client's response go to
/// `ctx.rate_limit_fields`.
pub async fn access(plugin: &RateLimitPlugin, limiters: &Limiters, parts: &Parts, ctx: &mut RequestContext, now_ms: u64) -> Result<(), Response<Body>> {
    let cfg = &plugin.config;
    // One key buffer for every period: the plugin and identifier are written into it once.
    let mut key = String::with_capacity(128);
    key_prefix(&mut key, plugin, parts, ctx);
    let prefix_len = key.len();
    let mut outcomes: SmallVec<[PeriodOutcome; 2]> = SmallVec::new();
    let mut blocked = false;
    for limit in &plugin.limits {
        let window = Window::containing(limit.period, now_ms);
        key.truncate(prefix_len);
        window::push_window(&mut key, &window);
        let reset = window.reset_secs(now_ms);
        if blocked {
            // Kong reports every period on a refusal: the longer ones as they stand, not
            // charged for a request that is refused anyway.
            let remaining = if plugin.local { limiters.local.remaining(&key, limit.count) } else { limiters.cluster.remaining(&key, limit.count) };
            outcomes.push(PeriodOutcome { period: limit.period, limit: limit.count, remaining, reset });
            continue;
        }
        let decision = if plugin.local {
            limiters.local.admit(&key, limit.count, window.end_ms())
        } else {
            limiters.cluster.admit(&key, limit.count, window, cfg.fault_tolerant).await
        };
        match decision {
            Decision::Admitted { remaining } => {
                if !plugin.local && window.ending(now_ms, RESERVE_AHEAD_MAX_MS) {
                    limiters.cluster.reserve_ahead_if_busy(&key, window, limit.count);
                }
                outcomes.push(PeriodOutcome { period: limit.period, limit: limit.count, remaining, reset })
            }
            Decision::Rejected => {
                outcomes.push(PeriodOutcome { period: limit.period, limit: limit.count, remaining: 0, reset });
                blocked = true;
            }
            Decision::Unavailable => {
                // Kong answers 500 here; 503 says what it is: temporary, retry elsewhere.
                let message = "Rate limiting is unavailable: the cluster has no quorum";
                return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, message, ctx.request_id(), &parts.headers));
            }
        }
    }
    let fields = RateLimitFields::new(outcomes);
    if !blocked {
        if !cfg.hide_client_headers {
            ctx.rate_limit_fields = Some(fields);
        }
        return Ok(());
    }
    let status = StatusCode::from_u16(cfg.status()).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let mut resp = error_response(status, &cfg.error_message, ctx.request_id(), &parts.headers);
    // Retry-After is one of the fields hide_client_headers hides, as in Kong.
    if !cfg.hide_client_headers {
        fields.add_to(resp.headers_mut());
        if let Some(seconds) = fields.retry_after() {
            resp.headers_mut().insert(RETRY_AFTER.clone(), HeaderValue::from(seconds));
        }
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
        ctx.consumer = consumer.map(|id| Arc::new(ConsumerInfo { id, username: None, custom_id: None }));
        let mut key = String::new();
        key_prefix(&mut key, &RateLimitPlugin::new(PLUGIN, cfg.clone()), &parts, &ctx);
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
    fn a_header_limit_on_a_consumer_field_counts_the_consumer_found_not_the_field_sent() {
        use crate::model::{create, Consumer};
        use crate::proxy::consumer_fields::{ConsumerFields, ConsumerValues};
        let mut cfg = config("header");
        cfg.header_name = Some("X-Consumer-Username".into());
        let parts = hyper::Request::get("/").header("x-consumer-username", "eve").body(()).unwrap().into_parts().0;
        let mut ctx = RequestContext::new("10.0.0.7:5555".parse().unwrap());
        let bob: Consumer = create(&serde_json::json!({"username": "bob"}), 1.0).unwrap();
        ctx.consumer_fields = Some(ConsumerFields { values: Arc::new(ConsumerValues::new(&bob, None)), anonymous: false });
        let mut key = String::new();
        key_prefix(&mut key, &RateLimitPlugin::new(PLUGIN, cfg), &parts, &ctx);
        window::push_window(&mut key, &WINDOW);
        assert_eq!(key, expected("bob"));
    }
}
