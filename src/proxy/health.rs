//! Target health, as Kong's health checker: passive checks count failures of real
//! traffic and take a target out once a threshold is reached; active checks probe each
//! target's `http_path` on an interval and bring it back after enough successes. A
//! threshold of 0 disables that counter. Health is per node, never replicated: each node
//! judges the targets it can reach.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::balancer::{Balancer, TargetState};
use super::errors::ProxyError;
use super::tls::TlsTarget;
use super::forward::{self, Timeouts};
use crate::http::empty;
use crate::model::upstream::Healthchecks;

/// What one observation of a target said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    TcpFailure,
    Timeout,
    HttpFailure,
    /// A status that counts neither way.
    Neutral,
}

/// Thresholds that flip a target, from either the passive or the active settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub successes: u8,
    pub tcp_failures: u8,
    pub timeouts: u8,
    pub http_failures: u8,
}

impl Thresholds {
    pub fn passive(h: &Healthchecks) -> Thresholds {
        let u = &h.passive.unhealthy;
        // Passive checks only take targets out, as Kong's circuit breaker.
        Thresholds { successes: 0, tcp_failures: u.tcp_failures, timeouts: u.timeouts, http_failures: u.http_failures }
    }

    pub fn active(h: &Healthchecks) -> Thresholds {
        let (ok, bad) = (&h.active.healthy, &h.active.unhealthy);
        Thresholds { successes: ok.successes, tcp_failures: bad.tcp_failures, timeouts: bad.timeouts, http_failures: bad.http_failures }
    }

    pub fn enabled(&self) -> bool {
        self.tcp_failures > 0 || self.timeouts > 0 || self.http_failures > 0 || self.successes > 0
    }
}

/// Classifies a proxied response or error for passive checks.
pub fn passive_outcome(h: &Healthchecks, result: Result<u16, &ProxyError>) -> Outcome {
    match result {
        Err(ProxyError::UpstreamTimeout | ProxyError::ConnectTimeout) => Outcome::Timeout,
        Err(ProxyError::UpstreamBroken { .. }) => Outcome::TcpFailure,
        Err(_) => Outcome::Neutral,
        Ok(code) if h.passive.unhealthy.http_statuses.contains(&code) => Outcome::HttpFailure,
        Ok(code) if h.passive.healthy.http_statuses.contains(&code) => Outcome::Success,
        Ok(_) => Outcome::Neutral,
    }
}

/// Records `outcome` for `target`, flipping its health when a threshold is reached.
pub fn record(balancer: &Balancer, target: &TargetState, outcome: Outcome, limits: &Thresholds) {
    let mut counters = target.counters();
    let reached = |count: &mut u8, limit: u8| {
        *count = count.saturating_add(1);
        limit > 0 && *count >= limit
    };
    let flip = match outcome {
        Outcome::Success => {
            counters.tcp_failures = 0;
            counters.timeouts = 0;
            counters.http_failures = 0;
            reached(&mut counters.successes, limits.successes).then_some(true)
        }
        Outcome::TcpFailure => reached(&mut counters.tcp_failures, limits.tcp_failures).then_some(false),
        Outcome::Timeout => reached(&mut counters.timeouts, limits.timeouts).then_some(false),
        Outcome::HttpFailure => reached(&mut counters.http_failures, limits.http_failures).then_some(false),
        Outcome::Neutral => None,
    };
    if !matches!(outcome, Outcome::Success | Outcome::Neutral) {
        counters.successes = 0;
    }
    if let Some(healthy) = flip {
        *counters = Default::default();
        drop(counters);
        if target.is_healthy() != healthy {
            tracing::warn!(target = %target.addr, healthy, ?outcome, "target health changed");
            balancer.set_health(&target.addr, healthy);
        }
    }
}

/// An operator's verdict on target `addr` (the Admin API's healthy/unhealthy): applied
/// at once, with the counters started over, as Kong does. The checks, if on, go on
/// judging from there. False when `balancer` has no such target.
pub fn set_by_operator(balancer: &Balancer, addr: &str, healthy: bool) -> bool {
    let mut found = false;
    for target in balancer.targets().iter().filter(|t| t.addr == addr) {
        *target.counters() = Default::default();
        found = true;
    }
    if found {
        tracing::info!(target = %addr, healthy, "target health set by an operator");
        balancer.set_health(addr, healthy);
    }
    found
}

/// Whether either round of active probes runs (an interval of 0 turns one off).
fn active_on(h: &Healthchecks) -> bool {
    h.active.healthy.interval.0 > 0.0 || h.active.unhealthy.interval.0 > 0.0
}

/// Whether any check judges the targets, active or passive: Kong's HEALTHCHECKS_OFF
/// when not.
pub fn checks_on(h: &Healthchecks) -> bool {
    active_on(h) || Thresholds::passive(h).enabled()
}

/// Probes every target of `balancer` while it is in use (the task ends once the last
/// route table holding it is gone).
pub fn spawn_active(balancer: &Arc<Balancer>, checks: Healthchecks) {
    if !active_on(&checks) {
        return;
    }
    let healthy_every = checks.active.healthy.interval.0;
    let unhealthy_every = checks.active.unhealthy.interval.0;
    let weak: Weak<Balancer> = Arc::downgrade(balancer);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        let limits = Thresholds::active(&checks);
        let timeout = Duration::from_secs_f64(checks.active.timeout.0.max(0.001));
        let tick = Duration::from_secs_f64([healthy_every, unhealthy_every].into_iter().filter(|s| *s > 0.0).fold(f64::MAX, f64::min));
        let mut since_healthy_round = Duration::ZERO;
        let mut since_unhealthy_round = Duration::ZERO;
        loop {
            tokio::time::sleep(tick).await;
            let Some(balancer) = weak.upgrade() else { return };
            since_healthy_round += tick;
            since_unhealthy_round += tick;
            let probe_healthy = healthy_every > 0.0 && since_healthy_round.as_secs_f64() >= healthy_every;
            let probe_unhealthy = unhealthy_every > 0.0 && since_unhealthy_round.as_secs_f64() >= unhealthy_every;
            if probe_healthy {
                since_healthy_round = Duration::ZERO;
            }
            if probe_unhealthy {
                since_unhealthy_round = Duration::ZERO;
            }
            for target in balancer.targets().to_vec() {
                let due = if target.is_healthy() { probe_healthy } else { probe_unhealthy };
                if due {
                    let outcome = probe(&target.addr, &checks, timeout).await;
                    record(&balancer, &target, outcome, &limits);
                }
            }
        }
    });
}

async fn probe(addr: &str, checks: &Healthchecks, timeout: Duration) -> Outcome {
    let Ok(host) = hyper::header::HeaderValue::from_str(addr) else { return Outcome::Neutral };
    let mut headers = hyper::HeaderMap::new();
    headers.insert(hyper::header::HOST, host);
    let timeouts = Timeouts { connect: timeout, read: timeout, write: timeout };
    // Kong's `https` checks: TLS, named by https_sni or else the target's host.
    let tls = (checks.active.kind == "https").then(|| TlsTarget::for_host(checks.active.https_sni.as_deref().unwrap_or(addr), checks.active.https_verify_certificate));
    let to = forward::Destination { addr, tls: tls.as_ref() };
    match forward::send(to, &hyper::Method::GET, &checks.active.http_path, &headers, empty(), timeouts, std::time::Instant::now()).await {
        Ok(resp) => {
            let code = resp.status().as_u16();
            if checks.active.healthy.http_statuses.contains(&code) {
                Outcome::Success
            } else if checks.active.unhealthy.http_statuses.contains(&code) {
                Outcome::HttpFailure
            } else {
                Outcome::Neutral
            }
        }
        Err(ProxyError::UpstreamTimeout | ProxyError::ConnectTimeout) => Outcome::Timeout,
        // A path that cannot go on a request line says nothing about the target.
        Err(ProxyError::Internal(_)) => Outcome::Neutral,
        Err(_) => Outcome::TcpFailure,
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
