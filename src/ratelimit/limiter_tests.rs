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
    let trigger = ShutdownTrigger::new();
    let reserver = Reserver::start(store.clone(), Duration::from_secs(2), trigger.signal());
    let limiter = ClusterLimiter::new(reserver, Arc::new(|| 3), Duration::from_secs(2));
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
