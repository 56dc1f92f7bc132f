//! The rate-limiting plugin (Kong's priority 910): one admission per configured period
//! against the cluster budget (policy `cluster`) or this node's counter (`local`), and
//! Kong's headers and 429 on the way back.

use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use uuid::Uuid;

use crate::http::Body;
use crate::model::plugins::rate_limiting::RateLimitingConfig;
use crate::proxy::context::RequestContext;
use crate::proxy::errors::error_response;
use crate::ratelimit::limiter::{ClusterLimiter, Decision};
use crate::ratelimit::local::LocalLimiter;
use crate::ratelimit::window::{counter_key, Period, Window};

pub struct Limiters {
    pub cluster: Arc<ClusterLimiter>,
    pub local: Arc<LocalLimiter>,
}

/// Who the limit counts: Kong's `limit_by`, falling back to the client's address.
fn identifier(cfg: &RateLimitingConfig, parts: &Parts, ctx: &RequestContext) -> String {
    match cfg.limit_by.as_str() {
        "consumer" => ctx.consumer.as_ref().map(|c| c.id.to_string()).or(ctx.credential_id.map(|c| c.to_string())),
        "credential" => ctx.credential_id.map(|c| c.to_string()),
        "service" => ctx.service_id.map(|s| s.to_string()),
        "header" => cfg
            .header_name
            .as_deref()
            .and_then(|h| parts.headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        "path" => cfg.path.as_deref().filter(|p| *p == parts.uri.path()).map(str::to_owned),
        _ => None,
    }
    .unwrap_or_else(|| ctx.client.ip().to_string())
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

fn header(headers: &mut Vec<(HeaderName, HeaderValue)>, name: &HeaderName, value: u64) {
    headers.push((name.clone(), HeaderValue::from(value)));
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
    let who = identifier(cfg, parts, ctx);
    let mut outcomes = Vec::new();
    let mut blocked = false;
    for (period, limit) in cfg.limits() {
        let limit = limit.max(0.0) as u64;
        let window = Window::containing(period, now_ms);
        let key = counter_key(plugin_id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()), &who, &window);
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
    // Collected in a vector, not a header map: they are set on the response once, and a
    // map of their own cost a table and a hash per header on every admitted request.
    let mut added = Vec::new();
    if !cfg.hide_client_headers {
        for o in &outcomes {
            let (limit, remaining) = period_headers(o.period);
            header(&mut added, limit, o.limit);
            header(&mut added, remaining, o.remaining);
        }
        // The period closest to running out speaks for RateLimit-*; on a tie, the longer.
        if let Some(o) = outcomes.iter().rev().min_by_key(|o| o.remaining) {
            header(&mut added, &RATELIMIT_LIMIT, o.limit);
            header(&mut added, &RATELIMIT_REMAINING, o.remaining);
            header(&mut added, &RATELIMIT_RESET, o.reset);
        }
    }
    if !blocked {
        ctx.response_headers.extend(added);
        return Ok(());
    }
    let status = StatusCode::from_u16(cfg.status()).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let mut resp = error_response(status, &cfg.error_message, ctx.request_id());
    if let Some(o) = outcomes.last() {
        header(&mut added, &RETRY_AFTER, o.reset);
    }
    for (name, value) in added {
        resp.headers_mut().insert(name, value);
    }
    Err(resp)
}
