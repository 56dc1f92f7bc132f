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
use crate::ratelimit::bucket::LimitSpec;
use crate::ratelimit::limiter::{ClusterLimiter, Decision};
use crate::ratelimit::local::LocalLimiter;
use crate::proxy::headers::ip_value;
use crate::ratelimit::window::{self, Period, Window};

use super::rate_limit_fields::{PeriodOutcome, RateLimitFields};

pub struct Limiters {
    pub cluster: Arc<ClusterLimiter>,
    pub local: Arc<LocalLimiter>,
}

impl Limiters {
    /// What `key` has left under its policy (`local` or cluster), counting no request.
    fn remaining(&self, local: bool, key: &str, limit: u64) -> u64 {
        if local {
            self.local.remaining(key, limit)
        } else {
            self.cluster.remaining(key, limit)
        }
    }

    /// Takes back an admission to `key` under its policy.
    fn refund(&self, local: bool, key: &str, limit: LimitSpec) {
        if local {
            self.local.refund(key);
        } else {
            self.cluster.refund(key, limit);
        }
    }
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
    /// The plugin's store revision: its limits' `LimitSpec::generation`.
    pub generation: u64,
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
        RateLimitPlugin { id, id_text: id.hyphenated().to_string(), limits, local, config, generation: 0 }
    }

    /// As configured at store revision `generation` (see `LimitSpec`).
    pub fn at_revision(self, generation: u64) -> RateLimitPlugin {
        RateLimitPlugin { generation, ..self }
    }

    fn spec(&self, limit: &Limit) -> LimitSpec {
        LimitSpec { count: limit.count, generation: self.generation }
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
        "path" => cfg.path.as_deref().filter(|p| *p == ctx.path(&parts.uri)).map(str::as_bytes),
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
    // The periods that took a token before one refused: a prefix of `limits`.
    let mut charged = 0;
    let mut on_fallback_share = false;
    for limit in &plugin.limits {
        let window = Window::containing(limit.period, now_ms);
        key.truncate(prefix_len);
        window::push_window(&mut key, &window);
        let reset = window.reset_secs(now_ms);
        if blocked {
            // Kong reports every period on a refusal: the longer ones as they stand, not
            // charged for a request that is refused anyway.
            let remaining = limiters.remaining(plugin.local, &key, limit.count);
            outcomes.push(PeriodOutcome { period: limit.period, limit: limit.count, remaining, reset });
            continue;
        }
        let decision = if plugin.local {
            limiters.local.admit(&key, limit.count, window.end_ms())
        } else {
            limiters.cluster.admit(&key, plugin.spec(limit), window, cfg.fault_tolerant).await
        };
        match decision {
            Decision::Admitted { remaining, on_share } => {
                on_fallback_share |= on_share;
                if !plugin.local && window.ending(now_ms, RESERVE_AHEAD_MAX_MS) {
                    limiters.cluster.reserve_ahead_if_busy(&key, window, plugin.spec(limit));
                }
                outcomes.push(PeriodOutcome { period: limit.period, limit: limit.count, remaining, reset });
                charged += 1;
            }
            Decision::Rejected => {
                outcomes.push(PeriodOutcome { period: limit.period, limit: limit.count, remaining: 0, reset });
                blocked = true;
            }
            Decision::Unavailable => {
                refund(plugin, limiters, &mut key, prefix_len, charged, now_ms);
                // Kong answers 500 here; 503 says what it is: temporary, retry elsewhere.
                let message = "Rate limiting is unavailable: the cluster has no quorum";
                return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, message, ctx.request_id(), &parts.headers));
            }
        }
    }
    if !blocked {
        if on_fallback_share {
            limiters.cluster.count_admission_on_share();
        }
        let fields = RateLimitFields::new(outcomes);
        if !cfg.hide_client_headers {
            ctx.rate_limit_fields = Some(fields);
        }
        return Ok(());
    }
    refund(plugin, limiters, &mut key, prefix_len, charged, now_ms);
    // As Kong's, the fields of a refusal count the request only in the period that
    // refused it: the others show what they have left, the request given back.
    for outcome in &mut outcomes[..charged] {
        outcome.remaining = (outcome.remaining + 1).min(outcome.limit);
    }
    let fields = RateLimitFields::new(outcomes);
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

/// Gives back the tokens the first `charged` periods took for a request refused after
/// them: Kong checks every period before it counts the request in any, so a refused
/// request costs no period. (Windows nest and limits grow with the period, so this
/// changes no later decision in the longer window; it keeps the counters true, and a
/// node that lost quorum does not lose the shorter periods' tokens to a 503.)
fn refund(plugin: &RateLimitPlugin, limiters: &Limiters, key: &mut String, prefix_len: usize, charged: usize, now_ms: u64) {
    for limit in &plugin.limits[..charged] {
        key.truncate(prefix_len);
        window::push_window(key, &Window::containing(limit.period, now_ms));
        limiters.refund(plugin.local, key, plugin.spec(limit));
    }
}

#[cfg(test)]
#[path = "rate_limiting_tests.rs"]
mod tests;
