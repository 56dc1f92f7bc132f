//! Processes that are not what they claim, on real processes: one that takes a member's
//! id without the secret (gossip is not authenticated), a copy of a member's data dir
//! started elsewhere, and a "leader" of another cluster that gossip points a joining
//! node to. None may take a member out or stop a node that does nothing wrong.

use std::time::Duration;

use cluster_tests::process::view;
use cluster_tests::{form, serial, wait_agreed, wait_for, Cluster};

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
