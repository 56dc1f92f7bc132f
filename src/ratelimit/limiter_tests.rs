//! The limiter against a real one-node store: exact admission under concurrency, and the
//! local-share fallback when there is no quorum.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_raft::{Store, StoreConfig};

use super::*;
use crate::shutdown::ShutdownTrigger;

async fn store(dir: &tempfile::TempDir, initialize: bool) -> Store {
    let store = Store::open(StoreConfig::new(1, "127.0.0.1:0".parse().unwrap(), dir.path())).await.unwrap();
    if initialize {
        store.initialize().await.unwrap();
        store.raft().wait(Some(Duration::from_secs(5))).current_leader(1, "leader").await.unwrap();
    }
    store
}

/// A limiter over `store` that counts three live nodes, with the trigger that stops its
/// reserver.
fn limiter_over(store: &Store) -> (Arc<ClusterLimiter>, ShutdownTrigger) {
    let trigger = ShutdownTrigger::new();
    let reserver = Reserver::start(store.clone(), Duration::from_secs(2), trigger.signal());
    (ClusterLimiter::new(reserver, Arc::new(|| 3), Duration::from_secs(2)), trigger)
}

async fn admit_many(limiter: &Arc<ClusterLimiter>, n: usize, limit: u64, fault_tolerant: bool) -> (usize, usize, usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.admit("k", limit, u64::MAX - 10_000, fault_tolerant).await })
        })
        .collect();
    let (mut ok, mut rejected, mut unavailable) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Decision::Admitted { .. } => ok += 1,
            Decision::Rejected => rejected += 1,
            Decision::Unavailable => unavailable += 1,
        }
    }
    (ok, rejected, unavailable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admits_exactly_the_limit_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    let (ok, rejected, _) = admit_many(&limiter, 300, 120, true).await;
    assert_eq!((ok, rejected), (120, 180));
    assert!(!limiter.degraded());
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_a_node_admits_its_local_share_or_refuses() {
    let dir = tempfile::tempdir().unwrap();
    // Never initialised: no leader, so every reservation fails.
    let store = store(&dir, false).await;
    let trigger = ShutdownTrigger::new();
    let reserver = Reserver::start(store.clone(), Duration::from_millis(200), trigger.signal());
    let limiter = ClusterLimiter::new(reserver.clone(), Arc::new(|| 3), Duration::from_millis(300));
    let (ok, rejected, _) = admit_many(&limiter, 30, 20, true).await;
    assert_eq!((ok, rejected), (7, 23), "ceil(20 / 3 live nodes)");
    assert!(limiter.degraded());
    assert_eq!(limiter.degraded_admissions(), 7);

    let strict = ClusterLimiter::new(reserver, Arc::new(|| 3), Duration::from_millis(300));
    let (ok, _, unavailable) = admit_many(&strict, 5, 20, false).await;
    assert_eq!((ok, unavailable), (0, 5));
    trigger.trigger();
    store.shutdown().await;
}

/// Decides one request, waiting for reservations in flight but never starting the clock
/// that falls back: what `admit` does when reservations succeed.
async fn decide_when_known(limiter: &Arc<ClusterLimiter>, key: &str, limit: u64, end: u64) -> Decision {
    loop {
        match limiter.try_decide(key, limit, end, true) {
            Ok(decision) => return decision,
            Err(mut changed) => changed.changed().await.unwrap(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_key_reserves_its_next_windows_in_one_raft_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    // Slices of 12000 / (4 x 3 nodes) = 1000: large enough to reserve ahead, and large
    // enough that 64 requests leave no prefetch of w0 in flight to share the log with.
    let (limit, end) = (12_000, u64::MAX - 10_000);
    for _ in 1..AHEAD_MIN_USE {
        limiter.admit("w0", limit, end, true).await;
    }
    assert!(!limiter.busy("w0"), "a key seen fewer than AHEAD_MIN_USE times is not busy");
    limiter.admit("w0", limit, end, true).await;
    assert!(limiter.busy("w0") && !limiter.knows("w1"));

    let entries_before = store.raft().metrics().borrow().last_log_index.unwrap();
    limiter.reserve_ahead((1..=4).map(|w| (format!("w{w}"), end)).collect(), limit);
    assert!(limiter.knows("w1"), "known as soon as reserved");
    for w in 1..=4 {
        let decision = decide_when_known(&limiter, &format!("w{w}"), limit, end).await;
        assert!(matches!(decision, Decision::Admitted { .. }), "window {w}: {decision:?}");
    }
    let entries_after = store.raft().metrics().borrow().last_log_index.unwrap();
    assert_eq!(entries_after - entries_before, 1, "the four windows' reservations share one Raft entry");
    for w in 1..=4 {
        let total = store.get(&format!("w{w}")).and_then(|kv| gatehouse_raft::kv::decode_counter(&kv.value));
        assert_eq!(total, Some(1_000), "window {w} got its first slice and no second reservation");
    }
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_slices_are_not_reserved_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    // Slices of 40 / 12 = 3 tokens: held ahead on one node they would starve the others.
    limiter.reserve_ahead(vec![("w1".into(), u64::MAX - 10_000)], 40);
    assert!(limiter.entries.lock().unwrap().is_empty(), "nothing reserved ahead");
    trigger.trigger();
    store.shutdown().await;
}
