//! A target whose name does not resolve, as Kong's balancer treats one (its DNS_ERROR
//! state): out of the rotation at once, so that its share of requests goes to the
//! others rather than failing, and back in once its name resolves again.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::balancer::TargetState;

/// How often an unresolvable target's name is tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Takes `target` out of the rotation after its name failed to resolve, and tries the
/// name again every `every` until it resolves (or the target leaves the configuration).
pub fn failed(target: &Arc<TargetState>, every: Duration) {
    // Without a runtime to try the name again, the target is not taken out for good.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    if !target.set_dns_error(true) {
        return; // Already out, with a task trying its name.
    }
    tracing::warn!(target = %target.addr, "target name does not resolve; skipped until it does");
    let weak: Weak<TargetState> = Arc::downgrade(target);
    let addr = target.addr.clone();
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            // A target gone from the configuration is no one's to bring back.
            let Some(target) = weak.upgrade() else { return };
            let resolves = tokio::net::lookup_host(addr.as_str()).await.is_ok_and(|mut found| found.next().is_some());
            if resolves {
                tracing::info!(target = %addr, "target name resolves again");
                target.set_dns_error(false);
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::balancer::{Algorithm, Balancer};

    #[tokio::test]
    async fn an_unresolvable_target_leaves_the_rotation_until_its_name_resolves() {
        let b = Balancer::new(Algorithm::RoundRobin, &[("localhost:1".into(), 1), ("127.0.0.1:2".into(), 1)]);
        // As if localhost had failed to resolve a moment ago: it resolves on the retry.
        failed(&b.targets()[0], Duration::from_millis(20));
        assert!(b.targets()[0].has_dns_error());
        for _ in 0..4 {
            assert_eq!(b.pick(None, &[]).unwrap().target.addr, "127.0.0.1:2");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while b.targets()[0].has_dns_error() {
            assert!(std::time::Instant::now() < deadline, "localhost never came back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let picked: std::collections::BTreeSet<String> = (0..4).map(|_| b.pick(None, &[]).unwrap().target.addr.clone()).collect();
        assert_eq!(picked.len(), 2, "both in the rotation again");
    }

    #[tokio::test]
    async fn with_its_only_target_unresolvable_an_upstream_has_no_peer() {
        let b = Balancer::new(Algorithm::RoundRobin, &[("name.invalid:80".into(), 1)]);
        failed(&b.targets()[0], RETRY_EVERY);
        assert!(b.targets()[0].has_dns_error());
        assert!(b.pick(None, &[]).is_none(), "Kong's 503 from the balancer");
    }
}
