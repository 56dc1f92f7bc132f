//! A voter that cannot hear the leader, while a majority can, must not raise its term:
//! once its links are back, its term would reach the leader and depose it, and writes
//! would stop for an election nobody needed. Each test cuts links with iptables on real
//! processes (prefixes 127.0.54-55) for a few seconds, several election timeouts, heals,
//! and checks that the leader and the term are the ones from before the cut.

// `serial()` is a std guard held for a whole test on purpose: each test has its own
// runtime, so holding it across awaits cannot deadlock.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use cluster_tests::run::Run;
use cluster_tests::{serial, wait_for};

/// Long enough for a node without PreVote to call five or more elections (one each
/// 0.9-1.2 s after the leader is lost, then one each 0.3-0.6 s).
const CUT_FOR: Duration = Duration::from_secs(4);

/// The leader and its term, once every node follows it.
async fn settled(run: &Run) -> (usize, u64) {
    let leader = run.leader(Duration::from_secs(10)).await;
    let id = run.ids[leader - 1].clone();
    wait_for("every node to follow the leader", Duration::from_secs(10), || async {
        let mut terms = Vec::new();
        for i in 1..=run.n() {
            let s = run.status(i).await?;
            (s["leader_id"].as_u64().map(|l| l.to_string()) == Some(id.clone()) && s["database"]["reachable"] == true).then_some(())?;
            terms.push(s["term"].as_u64()?);
        }
        terms.windows(2).all(|w| w[0] == w[1]).then(|| (leader, terms[0]))
    })
    .await
}

async fn term_of(run: &Run, i: usize) -> u64 {
    run.status(i).await.and_then(|s| s["term"].as_u64()).unwrap_or_else(|| run.fail(&format!("node {i} has no /status")))
}

/// Cuts `cut` off as `shape` does, then checks the cut node kept its term and, once healed
/// and caught up, the cluster still follows the same leader in the same term.
async fn cut_then_heal(run: &mut Run, cut: usize, shape: impl AsyncFnOnce(&mut Run)) {
    let (leader, term) = settled(run).await;
    run.log(&format!("node {leader} leads in term {term}; cutting node {cut}"));
    shape(run).await;
    tokio::time::sleep(CUT_FOR).await;
    let cut_term = term_of(run, cut).await;
    run.heal();
    let (after, after_term) = settled(run).await;
    let a_write = run.admin_ok("/services", "name=after-the-heal&url=http://127.0.0.1:9").await;
    assert_eq!(a_write["name"], "after-the-heal");
    if cut_term != term || after != leader || after_term != term {
        run.fail(&format!(
            "node {cut}, cut off for {CUT_FOR:?} while node {leader} led in term {term}, went to term {cut_term}; \
             after the heal node {after} leads in term {after_term}"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_follower_comes_back_without_deposing_the_leader() {
    let _serial = serial();
    let mut run = Run::new("prevote-isolate", "127.0.54", 3);
    run.start(3).await;
    let (leader, _) = settled(&run).await;
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");
    cut_then_heal(&mut run, follower, async |run: &mut Run| run.isolate(follower).await).await;
}

/// Only the link between a follower and the leader is cut: the other follower still hears
/// the leader, so it refuses the cut follower's pre-vote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_from_the_leader_alone_stays_quiet() {
    let _serial = serial();
    let mut run = Run::new("prevote-link", "127.0.55", 3);
    run.start(3).await;
    let (leader, _) = settled(&run).await;
    let followers: Vec<usize> = (1..=3).filter(|&i| i != leader).collect();
    let (cut, middle) = (followers[0], followers[1]);
    cut_then_heal(&mut run, cut, async |run: &mut Run| run.bridge(&[cut], middle, &[leader]).await).await;
}
