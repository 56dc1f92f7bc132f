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
    let ip = ctx.client.ip().to_string();
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
    .unwrap_or(ip)
}

struct Outcome {
    period: Period,
    limit: u64,
    remaining: u64,
    reset: u64,
}

fn header(resp_headers: &mut hyper::HeaderMap, name: String, value: u64) {
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value.to_string())) {
        resp_headers.insert(n, v);
    }
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
        let key = counter_key(&plugin_id.to_string(), &who, &window);
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
                return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, message, &ctx.request_id));
            }
        }
    }
    let mut headers = hyper::HeaderMap::new();
    if !cfg.hide_client_headers {
        for o in &outcomes {
            header(&mut headers, format!("x-ratelimit-limit-{}", o.period.name()), o.limit);
            header(&mut headers, format!("x-ratelimit-remaining-{}", o.period.name()), o.remaining);
        }
        // The period closest to running out speaks for RateLimit-*; on a tie, the longer.
        if let Some(o) = outcomes.iter().rev().min_by_key(|o| o.remaining) {
            header(&mut headers, "ratelimit-limit".into(), o.limit);
            header(&mut headers, "ratelimit-remaining".into(), o.remaining);
            header(&mut headers, "ratelimit-reset".into(), o.reset);
        }
    }
    if blocked {
        let status = StatusCode::from_u16(cfg.status()).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let mut resp = error_response(status, &cfg.error_message, &ctx.request_id);
        if let Some(o) = outcomes.last() {
            header(&mut headers, "retry-after".into(), o.reset);
        }
        resp.headers_mut().extend(headers);
        return Err(resp);
    }
    ctx.response_headers.extend(headers);
    Ok(())
}
