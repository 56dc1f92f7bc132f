//! What one write may carry: a write over `MAX_WRITE_BYTES` is refused before it reaches
//! the log, and concurrent writes that fit alone but not together go in separate entries.

mod common;

use common::Cluster;
use gatehouse_raft::{StoreConfig, StoreError, MAX_WRITE_BYTES};

fn defaults(_: &mut StoreConfig) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_over_the_limit_is_refused_and_large_writes_share_no_entry_past_it() {
    let cluster = Cluster::start(1, defaults).await;
    cluster.wait_leader_agreed().await;
    let store = cluster.node(0).clone();

    let before = store.status().last_log_index.unwrap();
    match store.put("big", vec![0u8; MAX_WRITE_BYTES]).await {
        Err(StoreError::TooLarge { bytes, limit }) => assert!(bytes > limit && limit == MAX_WRITE_BYTES),
        other => panic!("a write over the limit: {other:?}"),
    }
    assert!(store.get("big").is_none());
    assert_eq!(store.status().last_log_index.unwrap(), before, "nothing reached the log");

    // Five writes of 40% of the limit each, at once: no entry holds more than two.
    let writes: Vec<_> = (0..5)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put(format!("large/{i}"), vec![i as u8; MAX_WRITE_BYTES * 2 / 5]).await })
        })
        .collect();
    let mut per_entry = std::collections::BTreeMap::<u64, usize>::new();
    for w in writes {
        *per_entry.entry(w.await.unwrap().expect("each fits alone").log_index).or_default() += 1;
    }
    assert!(per_entry.values().all(|&n| n <= 2), "writes per log entry: {per_entry:?}");
    assert_eq!(store.scan("large/").len(), 5);
    cluster.shutdown().await;
}
