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

/// A one-node store that leads, and a limiter on it that counts 3 live nodes.
async fn leading_limiter(dir: &tempfile::TempDir) -> (Store, ShutdownTrigger, Arc<ClusterLimiter>) {
    let store = store(dir, true).await;
    let trigger = ShutdownTrigger::new();
    let reserver = Reserver::start(store.clone(), Duration::from_secs(2), trigger.signal());
    let limiter = ClusterLimiter::new(reserver, Arc::new(|| 3), Duration::from_secs(2));
    (store, trigger, limiter)
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
    let (store, trigger, limiter) = leading_limiter(&dir).await;
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

/// The granted tokens of `key`'s entry once no reservation for it is in flight.
async fn granted_once_settled(limiter: &Arc<ClusterLimiter>, key: &str) -> Option<u64> {
    loop {
        let mut changed = {
            let entries = limiter.entries.lock().unwrap();
            let entry = entries.get(key)?;
            if !entry.bucket.pending {
                return Some(entry.bucket.granted);
            }
            entry.changed.subscribe()
        };
        tokio::time::timeout(Duration::from_secs(5), changed.changed()).await.expect("the reservation ends").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_reserved_ahead_holds_tokens_before_its_first_request_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, trigger, limiter) = leading_limiter(&dir).await;
    let end = u64::MAX - 10_000;

    limiter.reserve_ahead("next", 120, end);
    // A slice of 120 / (4 x 3 live nodes), and the first request takes a token from it.
    assert_eq!(granted_once_settled(&limiter, "next").await, Some(10));
    assert_eq!(limiter.try_decide("next", 120, end, true).ok(), Some(Decision::Admitted { remaining: 120 - 10 + 9 }));
    // Known already: no second slice.
    limiter.reserve_ahead("next", 120, end);
    assert_eq!(granted_once_settled(&limiter, "next").await, Some(10));
    // Slices under 4 tokens are not reserved ahead: they would idle here.
    limiter.reserve_ahead("small", 40, end);
    assert_eq!(granted_once_settled(&limiter, "small").await, None);
    trigger.trigger();
    store.shutdown().await;
}
