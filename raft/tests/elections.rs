//! Split votes on real stores: survivors that all call an election in the same instant
//! split the vote, and with openraft's own election timer off only the split-vote breaker
//! can settle it.

mod common;

use std::time::{Duration, Instant};

use common::{wait_for, Cluster};
use gatehouse_raft::{Role, StoreConfig};

fn defaults(_: &mut StoreConfig) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn survivors_that_all_campaign_at_once_split_and_the_breaker_settles_it() {
    let mut cluster = Cluster::start(5, defaults).await;
    let leader = cluster.wait_leader_agreed().await;
    let survivors: Vec<_> = cluster.running().filter(|s| s.id() != leader).cloned().collect();
    for s in &survivors {
        s.raft().runtime_config().elect(false);
    }
    cluster.stop(cluster.index_of(leader)).await;
    let term_before = survivors.iter().map(|s| s.metrics().borrow().current_term).max().unwrap();

    // Four candidates at once, each with its own vote, and every survivor still inside the
    // lease of a leader that stopped a moment ago, which refuses votes: the first term is
    // split for certain.
    let started = Instant::now();
    for s in &survivors {
        s.raft().trigger().elect().await.unwrap();
    }
    let (new_leader, term) = wait_for("a leader among the survivors", Duration::from_secs(5), || async {
        let statuses: Vec<_> = survivors.iter().map(|s| s.status()).collect();
        let leads: Vec<_> = statuses.iter().filter(|s| s.role == Role::Leader).collect();
        let leader = leads.first()?;
        let agreed = statuses.iter().all(|s| s.leader == Some(leader.id));
        agreed.then(|| (leader.id, survivors.iter().find(|s| s.id() == leader.id).unwrap().metrics().borrow().current_term))
    })
    .await;
    let took = started.elapsed();
    assert_ne!(new_leader, leader);
    assert!(
        term >= term_before + 2,
        "the first term after the forced elections was won (term {term_before} -> {term}), so no split was made and the breaker was not needed"
    );
    // One term per election timeout at most (300-600 ms), plus the split one.
    assert!(took < Duration::from_millis(600) * (term - term_before) as u32 + Duration::from_millis(500), "{took:?} for {} terms", term - term_before);
    cluster.shutdown().await;
}
