//! The short, fixed chaos set that runs with `cargo test`: each test forms a cluster on
//! its own address prefix (127.0.40-48), drives admin writes (create, update, delete),
//! proxied traffic and status polls, injects one kind of fault, undoes it and checks every
//! invariant (see cluster_tests::checker). A failure names the invariant, the seed (replay
//! with CHAOS_SEED) and the folder holding the history and node logs. The long randomized
//! schedule is `scripts/chaos.sh`. Two tests reproduce, deterministically, bugs the
//! randomized runs found: a DELETE acknowledged from a stale view, and a late rate-limit
//! reservation that broke the limiter.

// `serial()` is a std guard held for a whole test on purpose: each test has its own
// runtime, so holding it across awaits cannot deadlock.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use cluster_tests::run::Run;
use cluster_tests::serial;
use cluster_tests::verify::{RateLoad, Spec};
use rand::seq::SliceRandom;

/// Lets a fault (or a healthy spell) last for `ms`.
async fn hold(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Forms `n` nodes with `voters` voters, runs the workloads while `faults` runs, undoes
/// every fault and checks every invariant.
async fn scenario(name: &str, prefix: &str, (n, voters): (usize, usize), faults: impl AsyncFnOnce(&mut Run)) {
    let mut run = Run::new(name, prefix, n);
    run.start(voters).await;
    let w = run.workloads(&Spec { writers: 3, deletes: true, proxy_clients: 2, ratelimit: None }).await;
    hold(1500).await;
    faults(&mut run).await;
    hold(1000).await;
    let outcome = run.finish(w).await;
    run.assert_held(&outcome);
    run.assert_exercised(20, 100);
}

/// SIGKILL the leader, restart it; then the same for a random node.
async fn kills(run: &mut Run) {
    let leader = run.leader(Duration::from_secs(5)).await;
    run.kill(leader);
    run.leader_other_than(Some(leader), Duration::from_secs(10)).await;
    hold(2000).await;
    run.restart(leader).await;
    hold(1000).await;
    let victim = run.pick(&[1, 2, 3]);
    run.kill(victim);
    hold(2000).await;
    run.restart(victim).await;
}

/// Cut the leader off with iptables, heal; then a follower.
async fn isolations(run: &mut Run) {
    let leader = run.leader(Duration::from_secs(5)).await;
    run.isolate(leader).await;
    // The cut is real: the other two elect a leader in a higher term.
    run.leader_other_than(Some(leader), Duration::from_secs(10)).await;
    hold(3000).await;
    run.heal();
    hold(1500).await;
    let leader = run.leader(Duration::from_secs(5)).await;
    let followers: Vec<usize> = (1..=3).filter(|&i| i != leader).collect();
    let follower = run.pick(&followers);
    run.isolate(follower).await;
    hold(3000).await;
    run.heal();
}

/// Five voters split 2/3, heal; then a bridge 2 | 1 | 2, heal.
async fn splits(run: &mut Run) {
    let mut order = [1, 2, 3, 4, 5];
    order.shuffle(&mut run.rng);
    run.split(&order[..2], &order[2..]).await;
    hold(4000).await;
    run.heal();
    hold(1500).await;
    order.shuffle(&mut run.rng);
    run.bridge(&order[..2], order[2], &order[3..]).await;
    hold(4000).await;
    run.heal();
}

/// SIGSTOP the leader, SIGCONT; then a random node.
async fn pauses(run: &mut Run) {
    let leader = run.leader(Duration::from_secs(5)).await;
    run.pause(leader);
    run.leader_other_than(Some(leader), Duration::from_secs(10)).await;
    hold(2000).await;
    run.resume(leader);
    hold(1500).await;
    let victim = run.pick(&[1, 2, 3]);
    run.pause(victim);
    hold(2000).await;
    run.resume(victim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_and_a_random_node_loses_no_acknowledged_write() {
    let _serial = serial();
    scenario("leader-kill", "127.0.40", (3, 3), kills).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolating_the_leader_then_a_follower_with_iptables_and_healing() {
    let _serial = serial();
    scenario("isolate", "127.0.41", (3, 3), isolations).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_voters_split_two_three_then_a_bridge_then_heal() {
    let _serial = serial();
    scenario("split", "127.0.42", (5, 5), splits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_leader_with_sigstop_then_resuming_it() {
    let _serial = serial();
    scenario("pause", "127.0.43", (3, 3), pauses).await;
}

/// The rate-limit run: `faults` injects what the test is about, under 20/s of budget
/// and four clients loading it through all three nodes.
async fn rate_limit_run(name: &str, prefix: &str, faults: impl AsyncFnOnce(&mut Run)) {
    let mut run = Run::new(name, prefix, 3);
    run.start(3).await;
    let limit = 20;
    let load = RateLoad { path: "/limited".into(), limit, clients: 4, pause: Duration::from_millis(10) };
    let w = run.workloads(&Spec { writers: 1, deletes: true, proxy_clients: 1, ratelimit: Some(load) }).await;
    hold(2000).await;
    faults(&mut run).await;
    hold(2000).await;
    let outcome = run.finish(w).await;
    run.assert_held(&outcome);
    run.assert_exercised(5, 30);
    // The load must have pushed against the limit, or the checks above proved nothing.
    let limited = run.history.of_kind(cluster_tests::history::Kind::Ratelimit).iter().filter(|r| r.status == Some(429)).count();
    assert!(limited > 100, "only {limited} requests were refused: the load never reached the limit of {limit}/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_rate_limit_holds_while_a_node_is_isolated() {
    let _serial = serial();
    rate_limit_run("ratelimit-isolate", "127.0.44", async |run: &mut Run| {
        let isolated = run.pick(&[1, 2, 3]);
        run.isolate(isolated).await;
        hold(5000).await;
        run.heal();
        hold(2000).await;
        let leader = run.leader(Duration::from_secs(5)).await;
        run.isolate(leader).await;
        hold(4000).await;
        run.heal();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_rate_limit_holds_while_a_node_is_killed_and_restarted() {
    let _serial = serial();
    rate_limit_run("ratelimit-kill", "127.0.45", async |run: &mut Run| {
        let victim = run.pick(&[1, 2, 3]);
        run.kill(victim);
        hold(3000).await;
        run.restart(victim).await;
        hold(2000).await;
        let leader = run.leader(Duration::from_secs(5)).await;
        run.kill(leader);
        hold(3000).await;
        run.restart(leader).await;
    })
    .await;
}

/// The rate limiter after a reservation slower than its wait (250 ms) but within the
/// reserver's timeout (500 ms): requests to the leader while both followers are paused
/// for ~350 ms fall back to the local share, then the reservation commits. Every later
/// request must still answer 200 or 429 and the node's /status must still answer. (The
/// chaos runs found this: `used > granted` underflowed in `Bucket::local_tokens` under the
/// limiter lock and poisoned it.) Several attempts, each with its own counter key, since
/// an election at resume can make the reservation fail instead of commit late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_that_commits_late_leaves_the_limiter_working() {
    let _serial = serial();
    let mut run = Run::new("late-reservation", "127.0.46", 3);
    run.start(3).await;
    run.admin_ok("/services/chaos-echo/routes", "name=late&paths[]=/late").await;
    let plugin = "name=rate-limiting&config.minute=8&config.policy=cluster&config.limit_by=header&config.header_name=x-who";
    run.admin_ok("/routes/late/plugins", plugin).await;
    for attempt in 0..5 {
        // Each attempt inside one minute window, so the late grant lands on the same bucket.
        cluster_tests::wait_for("a minute window with 15 s left", Duration::from_secs(61), || async {
            (cluster_tests::history::now_ms() / 1000 % 60 < 45).then_some(())
        })
        .await;
        let leader = run.leader(Duration::from_secs(10)).await;
        let followers: Vec<usize> = (1..=3).filter(|&i| i != leader).collect();
        let url = format!("http://{}/late", run.cluster.node(leader).proxy());
        let who = format!("late-{attempt}");
        for &f in &followers {
            run.pause(f);
        }
        let paused = std::time::Instant::now();
        let mut codes = Vec::new();
        for _ in 0..3 {
            let r = run.client.request(hyper::Method::GET, &url, &[("x-who", &who)], Vec::new()).await;
            codes.push(r.map(|r| r.status.as_u16()).map_err(|e| e.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(350).saturating_sub(paused.elapsed())).await;
        for &f in &followers {
            run.resume(f);
        }
        hold(300).await;
        for _ in 0..3 {
            let r = run.client.request(hyper::Method::GET, &url, &[("x-who", &who)], Vec::new()).await;
            codes.push(r.map(|r| r.status.as_u16()).map_err(|e| e.to_string()));
        }
        run.log(&format!("attempt {attempt}: leader {leader}, answers {codes:?}"));
        let broken = codes.iter().any(|c| !matches!(c, Ok(200 | 429)));
        let status = run.status(leader).await;
        if broken || status.is_none() {
            run.fail(&format!("after a late reservation on node {leader}: answers {codes:?}; /status answers: {}", status.is_some()));
        }
    }
}

/// A delete through a node cut off from the others, of a service created (and
/// acknowledged) through the majority: the node cannot commit, so it must not answer
/// success while the service lives. (The chaos runs found this: the node answered 204 from
/// its stale view, where the service did not exist yet, and the service survived.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_through_a_partitioned_node_is_not_acknowledged_while_the_entity_lives() {
    let _serial = serial();
    let mut run = Run::new("stale-delete", "127.0.47", 3);
    run.start(3).await;
    let leader = run.leader(Duration::from_secs(5)).await;
    let cut = (1..=3).find(|&i| i != leader).expect("a follower");
    run.isolate(cut).await;
    let created = run.client.form(hyper::Method::POST, &format!("{}/services", run.admin(leader)), "name=doomed&url=http://127.0.47.100:9000").await;
    assert_eq!(created.as_ref().map(|r| r.status.as_u16()).ok(), Some(201), "{created:?}");
    let deleted = run.client.request(hyper::Method::DELETE, &format!("{}/services/doomed", run.admin(cut)), &[], Vec::new()).await;
    let deleted = deleted.map(|r| r.status.as_u16());
    run.heal();
    let url = format!("{}/services/doomed", run.admin(cut));
    let client = run.client.clone();
    cluster_tests::wait_for("the node to catch up after the heal", Duration::from_secs(10), || async {
        let s = run.status(cut).await?;
        let l = run.status(leader).await?;
        (s["config_digest"] == l["config_digest"]).then_some(())
    })
    .await;
    let after = client.get(&url).await.map(|r| r.status.as_u16());
    if deleted == Ok(204) && after == Ok(200) {
        run.fail(&format!("DELETE /services/doomed through isolated node {cut} answered 204, yet after the heal the service exists on it"));
    }
}

/// The partition guard itself: a cut drops traffic between the two addresses only, heal
/// restores it, dropping the guard leaves no rule, and a chain left by a dead process is
/// swept when the next guard starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_cut_only_the_named_links_and_leave_no_rule_behind() {
    let _serial = serial();
    let iptables = |args: &[&str]| std::process::Command::new("/usr/sbin/iptables").arg("-w").args(args).status().map(|s| s.success()).unwrap_or(false);
    let rules = || String::from_utf8_lossy(&std::process::Command::new("/usr/sbin/iptables").arg("-S").output().expect("iptables -S").stdout).into_owned();
    // A chain as a SIGKILLed run would leave it: no process 999999999 exists.
    let dead = "GHCHAOS-999999999";
    assert!(iptables(&["-N", dead]) && iptables(&["-A", dead, "-s", "127.0.48.7", "-j", "DROP"]) && iptables(&["-A", "OUTPUT", "-j", dead]));
    let mut c = cluster_tests::Cluster::new("127.0.48", 0);
    c.start_echo("127.0.48.2:9000", "echo-partition");
    let mut p = cluster_tests::nemesis::partition::Partitions::new().expect("iptables");
    assert!(!rules().contains(dead), "the dead process's chain was not swept:\n{}", rules());
    let (near, far) = (cluster_tests::client::Client::bound("127.0.48.1", Duration::from_secs(1)), cluster_tests::client::Client::bound("127.0.48.200", Duration::from_secs(1)));
    let url = "http://127.0.48.2:9000/ping";
    cluster_tests::wait_for("the echo upstream", Duration::from_secs(10), || async { near.get(url).await.ok() }).await;
    p.cut(&["127.0.48.1".to_owned()], &["127.0.48.2".to_owned()]).expect("cut");
    assert!(near.get(url).await.is_err(), "a request across the cut got through");
    assert!(far.get(url).await.is_ok(), "the cut reached an address it does not name");
    p.heal().expect("heal");
    assert!(near.get(url).await.is_ok(), "heal did not restore the link");
    p.cut(&["127.0.48.1".to_owned()], &["127.0.48.2".to_owned()]).expect("cut");
    drop(p);
    assert!(!rules().contains(&format!("GHCHAOS-{}", std::process::id())), "rules outlived the guard:\n{}", rules());
    assert!(near.get(url).await.is_ok(), "the link stayed cut after the guard was dropped");
}
