//! The short, fixed chaos set that runs with `cargo test`: each test forms a cluster on
//! its own address prefix (127.0.40-44), drives admin writes, proxied traffic and status
//! polls, injects one kind of fault, undoes it and checks every invariant (see
//! cluster_tests::checker). A failure names the invariant, the seed (replay with
//! CHAOS_SEED) and the folder holding the history and node logs. The long randomized
//! schedule is `scripts/chaos.sh`.

use std::time::Duration;

use cluster_tests::run::Run;
use cluster_tests::serial;
use cluster_tests::verify::{RateLoad, Spec};
use rand::seq::SliceRandom;

fn spec() -> Spec {
    Spec { writers: 3, proxy_clients: 2, ratelimit: None }
}

/// Lets a fault (or a healthy spell) last for `ms`.
async fn hold(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_and_a_random_node_under_writes_loses_no_acknowledged_write() {
    let _serial = serial();
    let mut run = Run::new("leader-kill", "127.0.40", 3);
    run.start(3).await;
    let w = run.workloads(&spec()).await;
    hold(1500).await;
    let leader = run.leader(Duration::from_secs(5)).await;
    run.kill(leader);
    hold(3000).await;
    run.restart(leader).await;
    hold(1000).await;
    let victim = run.pick(&[1, 2, 3]);
    run.kill(victim);
    hold(2000).await;
    run.restart(victim).await;
    hold(1000).await;
    let outcome = run.finish(w).await;
    run.assert_held(&outcome);
    run.assert_exercised(20, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolating_the_leader_then_a_follower_with_iptables_and_healing() {
    let _serial = serial();
    let mut run = Run::new("isolate", "127.0.41", 3);
    run.start(3).await;
    let w = run.workloads(&spec()).await;
    hold(1500).await;
    let leader = run.leader(Duration::from_secs(5)).await;
    run.isolate(leader).await;
    hold(4000).await;
    run.heal();
    hold(1500).await;
    let leader = run.leader(Duration::from_secs(5)).await;
    let followers: Vec<usize> = (1..=3).filter(|&i| i != leader).collect();
    let follower = run.pick(&followers);
    run.isolate(follower).await;
    hold(3000).await;
    run.heal();
    hold(1000).await;
    let outcome = run.finish(w).await;
    run.assert_held(&outcome);
    run.assert_exercised(20, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_voters_split_two_three_then_a_bridge_then_heal() {
    let _serial = serial();
    let mut run = Run::new("split", "127.0.42", 5);
    run.start(5).await;
    let w = run.workloads(&spec()).await;
    hold(1500).await;
    let mut order = vec![1, 2, 3, 4, 5];
    order.shuffle(&mut run.rng);
    run.split(&order[..2], &order[2..]).await;
    hold(4000).await;
    run.heal();
    hold(1500).await;
    order.shuffle(&mut run.rng);
    run.bridge(&order[..2], order[2], &order[3..]).await;
    hold(4000).await;
    run.heal();
    hold(1000).await;
    let outcome = run.finish(w).await;
    run.assert_held(&outcome);
    run.assert_exercised(20, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_leader_with_sigstop_then_resuming_it() {
    let _serial = serial();
    let mut run = Run::new("pause", "127.0.43", 3);
    run.start(3).await;
    let w = run.workloads(&spec()).await;
    hold(1500).await;
    let leader = run.leader(Duration::from_secs(5)).await;
    run.pause(leader);
    hold(3000).await;
    run.resume(leader);
    hold(1500).await;
    let victim = run.pick(&[1, 2, 3]);
    run.pause(victim);
    hold(2000).await;
    run.resume(victim);
    hold(1000).await;
    let outcome = run.finish(w).await;
    run.assert_held(&outcome);
    run.assert_exercised(20, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_rate_limit_holds_while_a_node_is_isolated_and_one_killed() {
    let _serial = serial();
    let mut run = Run::new("ratelimit", "127.0.44", 3);
    run.start(3).await;
    let limit = 20;
    let load = RateLoad { path: "/limited".into(), limit, clients: 4, pause: Duration::from_millis(10) };
    let w = run.workloads(&Spec { writers: 1, proxy_clients: 1, ratelimit: Some(load) }).await;
    hold(2000).await;
    let isolated = run.pick(&[1, 2, 3]);
    run.isolate(isolated).await;
    hold(5000).await;
    run.heal();
    hold(2000).await;
    let victim = run.pick(&[1, 2, 3]);
    run.kill(victim);
    hold(3000).await;
    run.restart(victim).await;
    hold(2000).await;
    let outcome = run.finish(w).await;
    run.assert_held(&outcome);
    run.assert_exercised(5, 30);
    // The load must have pushed against the limit, or the checks above proved nothing.
    let limited = run.history.of_kind(cluster_tests::history::Kind::Ratelimit).iter().filter(|r| r.status == Some(429)).count();
    assert!(limited > 100, "only {limited} requests were refused: the load never reached the limit of {limit}/s");
}
