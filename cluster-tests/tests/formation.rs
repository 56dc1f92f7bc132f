//! Cluster formation on real processes: join by gossip, voters and learners, leader
//! failover, dead-voter replacement, restart without --join, a whole cluster restarted,
//! leave, refused joins.

use std::time::{Duration, Instant};

use cluster_tests::process::view;
use cluster_tests::{form, serial, wait_agreed, wait_for, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_join_by_gossip_and_report_one_leader() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.10", 3);
    c.start(1, &[]);
    wait_for("node 1", Duration::from_secs(15), || async { c.status(1).await }).await;
    c.start(2, &["--join", "127.0.10.1"]);
    c.start(3, &["--join", "127.0.10.1:7946"]);
    let third_started = Instant::now();
    wait_agreed(&c, 3, 3, Duration::from_secs(5)).await;
    eprintln!("three voters agreed {:?} after the third node started", third_started.elapsed());

    let (code, out, err) = c.cli(&["status", "--admin", &c.node(2).admin(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in ["cluster", "node_id", "leader_id", "term", "commit_index", "nodes"] {
        assert!(json.get(key).is_some(), "status --json lacks {key}: {out}");
    }
    for key in ["id", "admin_addr", "proxy_addr", "role", "voter", "alive", "applied_index", "lag"] {
        assert!(json["nodes"][0].get(key).is_some(), "node entry lacks {key}: {out}");
    }
    // Every peer was heard from recently; the node reporting has no contact with itself.
    let me = json["node_id"].clone();
    for n in json["nodes"].as_array().unwrap() {
        match n["last_contact_ms"].as_u64() {
            Some(ms) => assert!(ms < 2000 && n["id"] != me, "{n}"),
            None => assert_eq!(n["id"], me, "{n}"),
        }
    }
    let (code, table, _) = c.cli(&["status", "--admin", &c.node(3).admin()]);
    assert_eq!(code, 0);
    assert!(table.matches("127.0.10.").count() >= 6, "{table}");
    assert!(table.contains("quorum: ok (3 of 3 voters alive)"), "{table}");
    let (code, _, err) = c.cli(&["status", "--admin", "127.0.10.99:8001"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot reach"), "{err}");
    let (code, members, _) = c.cli(&["members", "--admin", &c.node(1).admin()]);
    assert_eq!(code, 0);
    assert_eq!(members.matches("alive").count(), 3, "{members}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_keep_three_voters_and_two_learners() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.11", 5);
    form(&mut c, 5, 3, &[]).await;
    let s = c.status(4).await.unwrap();
    assert_eq!(view::voters(&s).len(), 3, "{s:#}");
    assert_eq!(view::count_role(&s, "learner"), 2, "{s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_another_while_survivors_keep_proxying() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.12", 3);
    c.start_echo("127.0.12.100:9000", "echo-f");
    form(&mut c, 3, 3, &[]).await;
    let a = c.node(1).admin();
    cluster_tests::http::admin_form(&format!("http://{a}/services"), "name=s&url=http://127.0.12.100:9000").await;
    cluster_tests::http::admin_form(&format!("http://{a}/services/s/routes"), "paths[]=/p").await;
    let s = c.status(1).await.unwrap();
    let leader = view::leader(&s).unwrap();
    let victim = c.index_of(&s, leader);
    let survivors: Vec<String> = c.nodes.iter().filter(|n| n.index != victim).map(|n| n.proxy()).collect();
    for p in &survivors {
        wait_for("the route on a survivor", Duration::from_secs(5), || async {
            cluster_tests::http::get(&format!("http://{p}/p")).await.ok().filter(|r| r.status.as_u16() == 200)
        })
        .await;
    }
    // Traffic through the survivors from before the kill until a new leader is known.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (stop, survivors) = (stop.clone(), survivors.clone());
        tokio::spawn(async move {
            let (mut sent, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let url = format!("http://{}/p", survivors[sent % survivors.len()]);
                match cluster_tests::http::get(&url).await {
                    Ok(r) if r.status.as_u16() == 200 => {}
                    other => failed.push(format!("{other:?}")),
                }
                sent += 1;
            }
            (sent, failed)
        })
    };
    c.kill(victim);
    let killed = Instant::now();
    let survivor = if victim == 1 { 2 } else { 1 };
    let new_leader = wait_for("a new leader among the survivors within 2 s", Duration::from_secs(2), || async {
        c.status(survivor).await.and_then(|s| view::leader(&s)).filter(|l| *l != leader)
    })
    .await;
    eprintln!("new leader {new_leader} {:?} after SIGKILL of {leader}", killed.elapsed());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed) = traffic.await.unwrap();
    assert!(sent > 10, "traffic ran during the election ({sent} requests)");
    assert!(failed.is_empty(), "{} of {sent} proxied requests failed during the election: {:?}", failed.len(), failed.first());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_voter_is_replaced_by_a_learner() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.13", 4);
    form(&mut c, 4, 3, &["--dead-node-grace", "2s"]).await;
    let s = c.status(1).await.unwrap();
    let leader = view::leader(&s).unwrap();
    let learner = s["nodes"].as_array().unwrap().iter().find(|n| n["role"] == "learner").unwrap()["id"].as_u64().unwrap();
    let victim_id = view::voters(&s).iter().map(|v| v["id"].as_u64().unwrap()).find(|id| *id != leader).unwrap();
    let victim = c.index_of(&s, victim_id);
    let observer = c.nodes.iter().find(|n| n.index != victim).unwrap().index;
    c.kill(victim);
    // The leader says once that the member went quiet, instead of openraft's error on
    // every failed call.
    let leader_index = c.index_of(&s, leader);
    let quiet = format!("node_id={victim_id}");
    wait_for("the leader to log the silent member", Duration::from_secs(10), || async {
        c.log(leader_index).lines().any(|l| l.contains("has not answered the leader") && l.contains(&quiet)).then_some(())
    })
    .await;
    wait_for("the learner to replace the dead voter", Duration::from_secs(15), || async {
        let s = c.status(observer).await?;
        let voters: Vec<u64> = view::voters(&s).iter().map(|v| v["id"].as_u64().unwrap()).collect();
        (voters.len() == 3 && voters.contains(&learner) && !voters.contains(&victim_id)).then_some(())
    })
    .await;
    // Still dead after the grace: removed from the membership altogether.
    wait_for("the dead node to be removed", Duration::from_secs(15), || async {
        let s = c.status(observer).await?;
        s["nodes"].as_array()?.iter().all(|n| n["id"] != victim_id || n["role"] == "gone").then_some(())
    })
    .await;
    let log = c.log(leader_index);
    assert_eq!(log.lines().filter(|l| l.contains("has not answered the leader") && l.contains(&quiet)).count(), 1, "{log}");
    // openraft's own line for each call that found the peer down is dropped; a call the
    // kill cut off midway may still show once.
    assert!(log.lines().filter(|l| l.contains("openraft::replication")).count() <= 2, "{log}");
    // Restarted with its data dir (and a stale membership that still lists it), it
    // notices no leader talks to it and joins again, as a learner this time.
    let before = c.status(observer).await.unwrap();
    c.restart(victim);
    let after = wait_for("the removed node to rejoin", Duration::from_secs(20), || async {
        let s = c.status(observer).await?;
        let n = s["nodes"].as_array()?.iter().find(|n| n["id"] == victim_id)?.clone();
        (n["role"] == "learner" && n["alive"] == true && n["lag"].as_u64()? < 5).then_some(s)
    })
    .await;
    // Its stale membership must not make it campaign: a higher term, sent back to the
    // leader once it is a learner again, would depose a leader that did nothing wrong.
    assert_eq!(
        (view::leader(&after), &after["term"]),
        (view::leader(&before), &before["term"]),
        "the removed node's return changed the leader or the term"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rejoins_without_join_flag() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.14", 3);
    form(&mut c, 3, 3, &[]).await;
    let id3 = view::node_id_at(&c.status(3).await.unwrap(), &c.node(3).admin()).unwrap();
    // SIGHUP, which reloads nginx, neither stops nor restarts a node: it says so.
    c.hangup(3);
    wait_for("node 3 to log the SIGHUP", Duration::from_secs(5), || async { c.log(3).contains("SIGHUP ignored").then_some(()) }).await;
    assert!(c.status(3).await.is_some(), "node 3 still answers");
    assert_eq!(c.stop(3, Duration::from_secs(15)).await, Some(0));
    wait_for("node 3 to be seen dead", Duration::from_secs(10), || async {
        let s = c.status(1).await?;
        s["nodes"].as_array()?.iter().any(|n| n["id"] == id3 && n["alive"] == false).then_some(())
    })
    .await;
    c.start(3, &[]);
    wait_agreed(&c, 3, 3, Duration::from_secs(15)).await;
    let s = c.status(3).await.unwrap();
    assert_eq!(view::node_id_at(&s, &c.node(3).admin()), Some(id3), "same identity after restart");
}

/// Restarted nodes hold their campaigns until a leader reaches them (a grace, longer
/// while gossip shows a live leader): a whole cluster restarted without its old leader
/// must still elect one, and take the old leader back when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_restarted_without_its_leader_elects_another() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.17", 3);
    form(&mut c, 3, 3, &[]).await;
    let s = c.status(1).await.unwrap();
    let old_leader = view::leader(&s).unwrap();
    let leader_index = c.index_of(&s, old_leader);
    for i in 1..=3 {
        c.kill(i);
    }
    let others: Vec<usize> = (1..=3).filter(|i| *i != leader_index).collect();
    for &i in &others {
        c.restart(i);
    }
    let restarted = Instant::now();
    let new_leader = wait_for("the two restarted followers to elect a leader", Duration::from_secs(15), || async {
        let s = c.status(others[0]).await?;
        let leader = view::leader(&s).filter(|l| *l != old_leader)?;
        (view::count_role(&s, "leader") == 1 && c.status(others[1]).await.and_then(|s| view::leader(&s)) == Some(leader))
            .then_some(leader)
    })
    .await;
    eprintln!("a leader {:?} after the restart", restarted.elapsed());
    c.restart(leader_index);
    let agreed = wait_agreed(&c, 3, 3, Duration::from_secs(15)).await;
    assert_eq!(agreed, new_leader, "the returning old leader took over instead of following");
}

/// A restarted node's gossip seeds are the members it knows from disk: a whole cluster
/// restarted with no --join finds itself again, every time (its nodes once often came up
/// knowing no one, as Raft had not yet reported the membership it loaded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_restarted_without_join_finds_itself_by_gossip() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.37", 3);
    form(&mut c, 3, 3, &[]).await;
    for _ in 0..3 {
        for i in 1..=3 {
            c.kill(i);
        }
        for i in 1..=3 {
            c.start(i, &[]);
        }
        wait_agreed(&c, 3, 3, Duration::from_secs(20)).await;
    }
}

/// A voter lost for good (machine and disk) is removed by hand, as etcd's member remove
/// does it; a member that still answers is not, whatever id an operator types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_removes_a_member_lost_for_good_but_not_a_live_one() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.52", 3);
    form(&mut c, 3, 3, &[]).await;
    let s = c.status(1).await.unwrap();
    let leader = view::leader(&s).unwrap();
    let ids: Vec<u64> = view::voters(&s).iter().filter_map(|v| v["id"].as_u64()).filter(|id| *id != leader).collect();
    let (live, lost) = (ids[0], ids[1]);
    let admin = c.node(c.index_of(&s, leader)).admin();
    let (code, _, err) = c.cli(&["remove", "--admin", &admin, &live.to_string()]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("node {live} answers at")), "{err}");
    let (code, _, err) = c.cli(&["remove", "--admin", &admin, "12345"]);
    assert!(code != 0 && err.contains("node 12345 is not a member"), "{err}");

    let lost_index = c.index_of(&s, lost);
    c.kill(lost_index);
    // Until gossip too has seen it go (it takes a second or two), the removal is refused,
    // saying so; then it goes through.
    let (mut code, mut out, err) = c.cli(&["remove", "--admin", &admin, &lost.to_string()]);
    if code != 0 {
        assert!(err.contains("gossip still sees node"), "{err}");
        wait_for("gossip to see the lost member dead", Duration::from_secs(20), || async {
            let s = c.status(1).await?;
            s["nodes"].as_array()?.iter().any(|n| n["id"] == lost && n["alive"] == false).then_some(())
        })
        .await;
        let err;
        (code, out, err) = c.cli(&["remove", "--admin", &admin, &lost.to_string()]);
        assert_eq!(code, 0, "{out}{err}");
    }
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("node {lost} removed")), "{out}");
    wait_for("two voters left, both alive", Duration::from_secs(10), || async {
        let s = c.status(1).await?;
        let voters = view::voters(&s);
        (voters.len() == 2 && voters.iter().all(|v| v["alive"] == true && v["id"] != lost)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_hands_off_and_the_node_exits() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.15", 3);
    form(&mut c, 3, 3, &[]).await;
    // Leave through the leader, the hardest case: it must hand off leadership.
    let s = c.status(1).await.unwrap();
    let leader = view::leader(&s).unwrap();
    let admin = view::admin_of(&s, leader).unwrap();
    let leaving = c.index_of(&s, leader);
    let (code, out, err) = c.cli(&["leave", "--admin", &admin]);
    assert_eq!(code, 0, "leave failed: {out}{err}");
    assert_eq!(c.wait_exit(leaving, Duration::from_secs(15)).await, Some(0));
    let other = if leaving == 1 { 2 } else { 1 };
    wait_for("the others to elect a leader without the one that left", Duration::from_secs(10), || async {
        let s = c.status(other).await?;
        let voters = view::voters(&s);
        (view::leader(&s).is_some_and(|l| l != leader) && voters.len() == 2 && s["nodes"].as_array()?.iter().all(|n| n["id"] != leader))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_or_cluster_name_is_refused_with_a_clear_error() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.16", 3);
    c.start(1, &["--cluster-secret", "right"]);
    wait_for("node 1", Duration::from_secs(15), || async { c.status(1).await }).await;
    c.start(2, &["--cluster-secret", "wrong", "--join", "127.0.16.1"]);
    assert_ne!(c.wait_exit(2, Duration::from_secs(20)).await, Some(0));
    assert!(c.log(2).contains("secret"), "joiner's log:\n{}", c.log(2));
    assert!(c.log(1).contains("refused cluster connection"), "seed's log:\n{}", c.log(1));

    c.start(3, &["--cluster-secret", "right", "--cluster-name", "other", "--join", "127.0.16.1"]);
    assert_ne!(c.wait_exit(3, Duration::from_secs(20)).await, Some(0));
    assert!(c.log(3).contains("cluster name mismatch"), "joiner's log:\n{}", c.log(3));
}
