use serde_json::json;

use super::*;
use crate::model::{create, Upstream};
use crate::proxy::balancer::Algorithm;

fn checks(extra: serde_json::Value) -> Healthchecks {
    let u: Upstream = create(&json!({"name": "pool", "healthchecks": extra}), 1.0).unwrap();
    u.healthchecks
}

#[test]
fn passive_failures_take_a_target_out_at_the_threshold_and_successes_reset_the_count() {
    let h = checks(json!({"passive": {"unhealthy": {"tcp_failures": 2, "http_failures": 3}}}));
    let limits = Thresholds::passive(&h);
    let b = Balancer::new(Algorithm::RoundRobin, &[("a:1".into(), 1), ("b:1".into(), 1)]);
    let a = b.targets()[0].clone();
    record(&b, &a, Outcome::TcpFailure, &limits);
    record(&b, &a, Outcome::Success, &limits);
    record(&b, &a, Outcome::TcpFailure, &limits);
    assert!(a.is_healthy(), "a success in between resets the count");
    record(&b, &a, Outcome::TcpFailure, &limits);
    assert!(!a.is_healthy());
    // Passive checks never bring a target back.
    for _ in 0..10 {
        record(&b, &a, Outcome::Success, &limits);
    }
    assert!(!a.is_healthy());
}

#[test]
fn zero_thresholds_disable_checks() {
    let h = checks(json!({}));
    let limits = Thresholds::passive(&h);
    assert!(!limits.enabled());
    let b = Balancer::new(Algorithm::RoundRobin, &[("a:1".into(), 1)]);
    let a = b.targets()[0].clone();
    for _ in 0..100 {
        record(&b, &a, Outcome::HttpFailure, &limits);
    }
    assert!(a.is_healthy());
}

#[test]
fn active_successes_bring_a_target_back() {
    let h = checks(json!({"active": {"healthy": {"interval": 1, "successes": 2}, "unhealthy": {"interval": 1, "http_failures": 1}}}));
    let limits = Thresholds::active(&h);
    let b = Balancer::new(Algorithm::RoundRobin, &[("a:1".into(), 1)]);
    let a = b.targets()[0].clone();
    record(&b, &a, Outcome::HttpFailure, &limits);
    assert!(!a.is_healthy());
    record(&b, &a, Outcome::Success, &limits);
    assert!(!a.is_healthy());
    record(&b, &a, Outcome::Success, &limits);
    assert!(a.is_healthy());
}

#[test]
fn passive_outcomes_follow_the_configured_statuses() {
    let h = checks(json!({}));
    assert_eq!(passive_outcome(&h, Ok(500)), Outcome::HttpFailure);
    assert_eq!(passive_outcome(&h, Ok(200)), Outcome::Success);
    assert_eq!(passive_outcome(&h, Ok(404)), Outcome::Neutral);
    assert_eq!(passive_outcome(&h, Err(&ProxyError::UpstreamTimeout)), Outcome::Timeout);
}

#[tokio::test]
async fn the_active_checker_probes_real_targets() {
    // One target answers 200 on /health, the other port is closed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let good = listener.local_addr().unwrap().to_string();
    let trigger = crate::shutdown::ShutdownTrigger::new();
    tokio::spawn(crate::http::serve(listener, crate::echo::Echo::new("t"), trigger.signal(), Duration::from_secs(1), crate::http::ClientTimeouts::default(), "test"));
    let bad = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let h = checks(json!({"active": {"http_path": "/status/200", "timeout": 0.5,
        "healthy": {"interval": 0.05, "successes": 1}, "unhealthy": {"interval": 0.05, "tcp_failures": 1}}}));
    let b = Arc::new(Balancer::new(Algorithm::RoundRobin, &[(good.clone(), 1), (bad.clone(), 1)]));
    spawn_active(&b, h);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.targets()[1].is_healthy() {
        assert!(std::time::Instant::now() < deadline, "the closed target was never marked unhealthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.targets()[0].is_healthy());
    trigger.trigger();
}

#[test]
fn an_operators_verdict_applies_at_once_and_restarts_the_counts() {
    let b = Balancer::new(Algorithm::RoundRobin, &[("a:1".into(), 1), ("b:1".into(), 1)]);
    let limits = Thresholds { successes: 0, tcp_failures: 2, timeouts: 0, http_failures: 0 };
    record(&b, &b.targets()[0], Outcome::TcpFailure, &limits);
    assert!(set_by_operator(&b, "a:1", false));
    assert!(!b.targets()[0].is_healthy() && b.targets()[1].is_healthy());
    assert!(set_by_operator(&b, "a:1", true));
    // The failure counted before the verdict is forgotten: one more does not reach two.
    record(&b, &b.targets()[0], Outcome::TcpFailure, &limits);
    assert!(b.targets()[0].is_healthy());
    assert!(!set_by_operator(&b, "c:1", false), "no such target");
}
