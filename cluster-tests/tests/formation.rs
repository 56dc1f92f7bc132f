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

/// Gossip is not authenticated: a process that takes a member's id without the secret
/// (its join is refused) gossips as that member for a moment, from its own address, and
/// is then gone. The member answers the leader's Raft calls all along, so autopilot
/// neither counts it dead nor replaces or removes it (it once did both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_posing_as_a_member_without_the_secret_cannot_get_it_removed() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.38", 5);
    let grace = Duration::from_secs(1);
    form(&mut c, 4, 3, &["--cluster-secret", "right", "--dead-node-grace", "1s"]).await;
    let s = c.status(1).await.unwrap();
    let leader = view::leader(&s).unwrap();
    let victim = view::voters(&s).iter().filter_map(|v| v["id"].as_u64()).find(|id| *id != leader).unwrap();
    let impostor = c.node(5).clone();
    std::fs::create_dir_all(&impostor.data_dir).unwrap();
    std::fs::write(impostor.data_dir.join("node-id"), victim.to_string()).unwrap();
    c.start(5, &["--cluster-secret", "wrong", "--join", "127.0.38.1"]);
    assert_ne!(c.wait_exit(5, Duration::from_secs(20)).await, Some(0), "the impostor is refused");
    assert!(c.log(5).contains(&victim.to_string()) || c.log(5).contains("secret"), "{}", c.log(5));

    // What the bug needed: the grace after the impostor's gossip went quiet, and a round.
    // Nothing to wait for but time: the membership must stay as it is through it.
    let leader_index = c.index_of(&s, leader);
    let watched = std::time::Instant::now();
    while watched.elapsed() < grace * 6 {
        let s = c.status(leader_index).await.unwrap();
        let victim_entry = s["nodes"].as_array().unwrap().iter().find(|n| n["id"] == victim).cloned();
        assert!(victim_entry.as_ref().is_some_and(|n| n["voter"] == true), "the victim was demoted or removed: {s}\n{}", c.log(leader_index));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!c.log(leader_index).contains(&format!("Remove({victim}")), "{}", c.log(leader_index));
    // And gossip shows the member again as its own running process has it.
    let victim_admin = c.node(c.index_of(&s, victim)).admin();
    wait_for("the member shown alive at its own address", Duration::from_secs(10), || async {
        let s = c.status(leader_index).await?;
        s["nodes"].as_array()?.iter().any(|n| n["id"] == victim && n["alive"] == true && n["admin_addr"] == victim_admin.as_str()).then_some(())
    })
    .await;
}

/// A copy of a member's data dir started elsewhere (a restored backup, a cloned machine)
/// has the member's id: it is refused with the reason and stops, and the member stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_members_data_dir_is_refused_while_the_member_runs() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.39", 3);
    form(&mut c, 2, 1, &[]).await;
    assert_eq!(c.stop(2, Duration::from_secs(15)).await, Some(0));
    let copied = std::process::Command::new("cp").arg("-a").arg(&c.node(2).data_dir).arg(&c.node(3).data_dir).status().unwrap();
    assert!(copied.success());
    c.restart(2);
    wait_agreed(&c, 2, 1, Duration::from_secs(20)).await;
    c.start(3, &["--join", "127.0.39.1"]);
    assert_ne!(c.wait_exit(3, Duration::from_secs(20)).await, Some(0), "the copy stops");
    assert!(c.log(3).contains("is in use by the member at 127.0.39.2:8005"), "{}", c.log(3));
    // Gossip heard the copy as node 2 for a moment; once it is gone, node 2 is shown again.
    wait_for("node 2 shown alive at its own address", Duration::from_secs(20), || async {
        let s = c.status(1).await?;
        let id2 = view::node_id_at(&s, &c.node(2).admin())?;
        s["nodes"].as_array()?.iter().any(|n| n["id"] == id2 && n["alive"] == true && n["voter"] == false).then_some(())
    })
    .await;
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

/// Gossip is not authenticated, so an address it gives that refuses this node's
/// credentials is not the cluster's last word: a node that learns of two "leaders" by
/// gossip, one of another cluster with the same name but another secret, joins the one
/// its --join seed leads instead of stopping at the other's refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_from_an_address_gossip_gave_does_not_stop_a_join() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.53", 3);
    c.start(1, &["--cluster-secret", "right"]);
    wait_for("node 1", Duration::from_secs(15), || async { c.status(1).await }).await;
    // Node 2 leads a one-node cluster of its own, then gossips with node 1.
    c.start(2, &["--cluster-secret", "wrong"]);
    wait_for("node 2 to lead its own cluster", Duration::from_secs(15), || async { view::leader(&c.status(2).await?) }).await;
    assert_eq!(c.stop(2, Duration::from_secs(15)).await, Some(0));
    c.start(2, &["--cluster-secret", "wrong", "--join", "127.0.53.1"]);
    let other = wait_for("node 1's gossip to hear node 2 lead", Duration::from_secs(20), || async {
        let members = c.status(1).await?;
        let s2 = c.status(2).await?;
        let id2 = view::leader(&s2)?;
        members["nodes"].as_array()?.iter().any(|n| n["id"] == id2 && n["alive"] == true).then_some(id2)
    })
    .await;
    c.start(3, &["--cluster-secret", "right", "--join", "127.0.53.1"]);
    wait_for("node 3 to join node 1's cluster", Duration::from_secs(20), || async {
        let s = c.status(1).await?;
        let id3 = view::node_id_at(&s, &c.node(3).admin())?;
        (id3 != other && s["nodes"].as_array()?.iter().any(|n| n["id"] == id3 && (n["role"] == "learner" || n["role"] == "follower"))).then_some(())
    })
    .await;
    assert!(c.is_running(3) && c.status(3).await.is_some(), "node 3 stopped:\n{}", c.log(3));
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
