//! Multi-node tests of the store on real sockets on 127.0.0.x: election, forwarding,
//! read-your-writes, leader loss, restart, snapshot catch-up, Reserve under contention.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{wait_for, Cluster};
use gatehouse_raft::{Command, EventKind, Response, Role, StoreConfig, StoreError, WatchEvent};

fn defaults(_: &mut StoreConfig) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_elect_one_leader_and_every_node_takes_writes() {
    let cluster = Cluster::start(3, defaults).await;
    let leader = cluster.wait_leader_agreed().await;
    let status = cluster.node(0).status();
    assert_eq!(status.members.iter().filter(|m| m.voter).count(), 3);

    // A write on any node (followers forward) is readable there at once.
    for (i, store) in cluster.running().enumerate() {
        let key = format!("k/{i}");
        let w = store.put(key.clone(), format!("v{i}")).await.unwrap();
        assert!(matches!(w.response, Response::Put { prev: None, .. }));
        assert_eq!(&*store.get(&key).unwrap().value, format!("v{i}").as_bytes(), "read-your-writes on node {}", i + 1);
    }
    let last = cluster.node(cluster.index_of(leader)).status().last_log_index.unwrap();
    cluster.wait_applied(last).await;
    let digests: BTreeSet<String> = cluster.running().map(|s| s.digest()).collect();
    assert_eq!(digests.len(), 1, "all nodes hold the same map");
    for store in cluster.running() {
        assert_eq!(store.scan("k/").len(), 3);
        // Linearizable reads work on followers too.
        assert!(store.linearizable_get("k/2").await.unwrap().is_some());
    }
    // The leader reports its followers' progress.
    let leader_status = cluster.node(cluster.index_of(leader)).status();
    assert!(leader_status.members.iter().all(|m| m.matched_index.is_some()), "{leader_status:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn txn_preconditions_and_watch_work_across_nodes() {
    let cluster = Cluster::start(3, defaults).await;
    let (_, rev0, mut watcher) = cluster.node(2).snapshot_and_watch("svc/");
    let created = cluster.node(1).put("svc/a", "1").await.unwrap();
    let mod_rev = created.response.revision().unwrap();
    // A stale precondition fails and says which one.
    let stale = Command::Txn {
        compares: vec![gatehouse_raft::Compare { key: "svc/a".into(), mod_revision: mod_rev - 1 }],
        ops: vec![gatehouse_raft::TxnOp::Delete { key: "svc/a".into() }],
    };
    match cluster.node(0).write(stale).await.unwrap().response {
        Response::Txn { failed: Some(f), .. } => assert_eq!((f.index, f.actual), (0, mod_rev)),
        other => panic!("{other:?}"),
    }
    let fresh = Command::Txn {
        compares: vec![gatehouse_raft::Compare { key: "svc/a".into(), mod_revision: mod_rev }],
        ops: vec![gatehouse_raft::TxnOp::Put { key: "svc/b".into(), value: b"2".to_vec(), expires_at: None }],
    };
    assert!(matches!(cluster.node(2).write(fresh).await.unwrap().response, Response::Txn { failed: None, .. }));
    cluster.node(0).delete("svc/a").await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), watcher.next()).await.expect("watch event").unwrap() {
            WatchEvent::Change(e) => {
                assert!(e.revision > rev0);
                seen.push((e.key, matches!(e.kind, EventKind::Put(_))));
            }
            WatchEvent::Reset { .. } => panic!("unexpected reset"),
        }
    }
    assert_eq!(seen, vec![("svc/a".into(), true), ("svc/b".into(), true), ("svc/a".into(), false)]);
    // Resuming from a revision replays what came after it.
    let mut resumed = cluster.node(1).watch("svc/", mod_rev).unwrap();
    match resumed.next().await.unwrap() {
        WatchEvent::Change(e) => assert_eq!(e.key, "svc/b"),
        other => panic!("{other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_leader_mid_stream_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, defaults).await;
    let stores: Vec<_> = cluster.running().cloned().collect();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..6u64 {
        let (stores, acked, stop) = (stores.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let store = &stores[((w + n) % 3) as usize];
                let key = format!("w{w}/{n}");
                if store.put(key.clone(), vec![1]).await.is_ok() {
                    acked.lock().unwrap().push(key);
                }
                n += 1;
            }
        }));
    }
    wait_for("writes to flow", Duration::from_secs(10), || async { (acked.lock().unwrap().len() >= 100).then_some(()) }).await;
    let leader = cluster.wait_leader_agreed().await;
    cluster.stop(cluster.index_of(leader)).await;
    let before = acked.lock().unwrap().len();
    wait_for("writes to resume under a new leader", Duration::from_secs(15), || async {
        (acked.lock().unwrap().len() >= before + 100).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let new_leader = cluster.wait_leader_agreed().await;
    assert_ne!(new_leader, leader);
    let acked = acked.lock().unwrap().clone();
    for store in cluster.running() {
        store.read_barrier().await.unwrap();
        let missing: Vec<_> = acked.iter().filter(|k| store.get(k).is_none()).take(5).collect();
        assert!(missing.is_empty(), "node {} lost acknowledged writes, e.g. {missing:?}", store.id());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_keeps_its_state_and_catches_up() {
    let mut cluster = Cluster::start(3, defaults).await;
    for i in 0..20 {
        cluster.node(0).put(format!("a/{i}"), vec![i as u8]).await.unwrap();
    }
    cluster.stop(2).await;
    for i in 0..50 {
        cluster.node(1).put(format!("b/{i}"), vec![i as u8]).await.unwrap();
    }
    cluster.restart(2).await;
    let last = cluster.node(0).status().last_log_index.unwrap();
    cluster.wait_applied(last).await;
    assert_eq!(cluster.node(2).scan("a/").len(), 20);
    assert_eq!(cluster.node(2).scan("b/").len(), 50);
    assert_eq!(cluster.node(2).digest(), cluster.node(0).digest());

    // The whole cluster down and up again: vote, log and state all come back from disk.
    let digest = cluster.node(0).digest();
    let term = cluster.node(0).status().term;
    for i in 0..3 {
        cluster.stop(i).await;
    }
    for i in 0..3 {
        cluster.restart(i).await;
    }
    cluster.wait_leader_agreed().await;
    // The vote came back from disk: no node starts over at an older term.
    assert!(cluster.running().all(|s| s.status().term >= term), "term went back after restart");
    for store in cluster.running() {
        store.read_barrier().await.unwrap();
        assert_eq!(store.digest(), digest, "node {} after a full restart", store.id());
    }
    cluster.shutdown().await;
}

fn small_snapshots(cfg: &mut StoreConfig) {
    cfg.snapshot_after_logs = 30;
    cfg.logs_kept_after_snapshot = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_behind_the_compacted_log_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(3, small_snapshots).await;
    cluster.stop(2).await;
    let (_, rev, mut watcher) = cluster.node(1).snapshot_and_watch("");
    for i in 0..120 {
        cluster.node(0).put(format!("s/{i}"), vec![0; 64]).await.unwrap();
    }
    let leader = cluster.wait_leader_agreed().await;
    let purged = wait_for("the leader to purge its log", Duration::from_secs(10), || async {
        cluster.node(cluster.index_of(leader)).raft().metrics().borrow().purged.filter(|p| p.index > 60)
    })
    .await;
    cluster.restart(2).await;
    let lagging_last = cluster.node(2).status().last_log_index.unwrap_or(0);
    assert!(lagging_last < purged.index, "the restarted node must need entries that no longer exist");
    let last = cluster.node(cluster.index_of(leader)).status().last_log_index.unwrap();
    cluster.wait_applied(last).await;
    assert_eq!(cluster.node(2).scan("s/").len(), 120);
    assert_eq!(cluster.node(2).digest(), cluster.node(0).digest());
    assert!(cluster.node(2).status().snapshot_index.is_some());
    // The follower that stayed up saw every change through its watcher (no reset needed).
    let mut n = 0;
    while n < 120 {
        if let WatchEvent::Change(e) = watcher.next().await.unwrap() {
            assert!(e.revision > rev);
            n += 1;
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reserves_across_nodes_never_exceed_the_limit() {
    let cluster = Cluster::start(3, defaults).await;
    let stores: Vec<_> = cluster.running().cloned().collect();
    const LIMIT: u64 = 150;
    let mut tasks = Vec::new();
    for t in 0..100u64 {
        let store = stores[(t % 3) as usize].clone();
        tasks.push(tokio::spawn(async move {
            let cmd = Command::Reserve { key: "rl/k".into(), want: 1 + t % 3, limit: LIMIT, expires_at: u64::MAX };
            match store.write(cmd).await.unwrap().response {
                Response::Reserve { granted, total, .. } => {
                    assert!(total <= LIMIT);
                    granted
                }
                other => panic!("{other:?}"),
            }
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += t.await.unwrap();
    }
    // Demand was 199, so the whole budget went out, and not one token more.
    assert_eq!(granted, LIMIT);
    let counter = cluster.node(1).linearizable_get("rl/k").await.unwrap().unwrap();
    assert_eq!(gatehouse_raft::kv::decode_counter(&counter.value), Some(LIMIT));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_changes_and_status_roles() {
    let cluster = Cluster::start(3, defaults).await;
    let leader = cluster.wait_leader_agreed().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.node(0).demote(follower).await.unwrap();
    wait_for("the demoted node to become a learner", Duration::from_secs(5), || async {
        (cluster.node(cluster.index_of(follower)).status().role == Role::Learner).then_some(())
    })
    .await;
    assert_eq!(cluster.node(0).voters().len(), 2);
    cluster.node(2).promote(follower).await.unwrap();
    assert_eq!(cluster.node(1).voters().len(), 3);
    // Removing the leader makes it step down; the others elect a new one.
    cluster.node(cluster.index_of(follower)).remove_nodes(BTreeSet::from([leader])).await.unwrap();
    wait_for("a new leader among the remaining voters", Duration::from_secs(10), || async {
        let s = cluster.node(cluster.index_of(follower)).status();
        s.leader.filter(|l| *l != leader)
    })
    .await;
    assert!(!cluster.node(cluster.index_of(follower)).voters().contains(&leader));
    let w = cluster.node(cluster.index_of(follower)).put("after", "removal").await.unwrap();
    assert!(w.log_index > 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_the_wrong_secret_is_refused() {
    let cluster = Cluster::start(1, defaults).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(9, "127.0.0.9:0".parse().unwrap(), dir.path().to_path_buf(), defaults);
    cfg.secret = b"wrong".to_vec();
    let intruder = gatehouse_raft::Store::open(cfg).await.unwrap();
    let err = intruder.call_app(&cluster.addrs[0].to_string(), "join", vec![]).await.unwrap_err();
    assert!(matches!(&err, StoreError::PeerRefused(m) if m.contains("secret")), "{err}");
    // The right secret gets through to the (absent) app handler.
    let dir2 = tempfile::tempdir().unwrap();
    let cfg = common::config(10, "127.0.0.10:0".parse().unwrap(), dir2.path().to_path_buf(), defaults);
    let friend = gatehouse_raft::Store::open(cfg).await.unwrap();
    let err = friend.call_app(&cluster.addrs[0].to_string(), "join", vec![]).await.unwrap_err();
    assert!(matches!(&err, StoreError::Remote(m) if m.contains("no handler")), "{err}");
    intruder.shutdown().await;
    friend.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_log_entries() {
    let cluster = Cluster::start(3, defaults).await;
    let leader = cluster.wait_leader_agreed().await;
    let leader_store = cluster.node(cluster.index_of(leader));
    let before = leader_store.status().last_log_index.unwrap();
    let store = cluster.node(0).clone();
    let writes: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put(format!("g/{i}"), vec![i as u8]).await })
        })
        .collect();
    for w in writes {
        w.await.unwrap().unwrap();
    }
    let entries = leader_store.status().last_log_index.unwrap() - before;
    assert!(entries < 64, "64 concurrent writes took {entries} log entries: they were not batched");
    assert_eq!(store.scan("g/").len(), 64, "every write is applied, each with its own revision");
    let revisions: BTreeSet<u64> = store.scan("g/").iter().map(|(_, kv)| kv.mod_revision).collect();
    assert_eq!(revisions.len(), 64);
    cluster.shutdown().await;
}

/// A voter removed while it was down comes back with its old membership and hears from
/// no leader. While the layer above reports a live leader elsewhere it must not campaign:
/// its higher term would depose the leader as soon as it is added back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voter_removed_while_down_comes_back_without_deposing_the_leader() {
    let mut cluster = Cluster::start(3, defaults).await;
    let leader = cluster.wait_leader_agreed().await;
    let li = cluster.index_of(leader);
    let stale = (0..3).find(|i| *i != li).unwrap();
    let stale_id = cluster.node(stale).id();
    wait_for("a follower to hear its leader", Duration::from_secs(5), || async {
        cluster.node(stale).leader_contact_age().filter(|age| *age < Duration::from_secs(1))
    })
    .await;
    cluster.stop(stale).await;
    cluster.node(li).remove_nodes(BTreeSet::from([stale_id])).await.unwrap();
    let term = cluster.node(li).status().term;

    cluster.restart(stale).await;
    cluster.node(stale).report_leader_elsewhere(true);
    // Past the grace and many election timeouts, which is what this asserts: nothing
    // happens. Without the hold it campaigns within 0.6 s.
    tokio::time::sleep(StoreConfig::new(0, "127.0.0.1:0".parse().unwrap(), "").restart_grace * 3 / 2).await;
    assert_eq!(cluster.node(stale).status().term, term, "the removed voter campaigned");
    assert_eq!(cluster.node(stale).leader_contact_age(), None, "no leader writes to a removed node");

    let node = cluster.node(stale).node();
    cluster.node(li).add_learner(stale_id, node).await.unwrap();
    wait_for("the returning node to hear from the leader", Duration::from_secs(10), || async {
        cluster.node(stale).leader_contact_age()
    })
    .await;
    cluster.wait_applied(cluster.node(li).status().last_log_index.unwrap()).await;
    let after = cluster.node(li).status();
    assert_eq!((after.role, after.term), (Role::Leader, term), "the leader was deposed");
    cluster.shutdown().await;
}

/// A second store on a data dir in use says so, rather than quoting sled's lock error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_in_use_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let listen: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let first = gatehouse_raft::Store::open(common::config(1, listen, dir.path().to_path_buf(), |_| {})).await.unwrap();
    let second = gatehouse_raft::Store::open(common::config(1, listen, dir.path().to_path_buf(), |_| {})).await;
    match second {
        Err(e) => assert!(e.to_string().contains("is in use by another process"), "{e}"),
        Ok(_) => panic!("two stores opened one data dir"),
    }
    first.shutdown().await;
}

/// A new node started on a lost member's address, with the cluster's secret, answers
/// there as itself: the leader neither counts it as the member it replaced (its contact
/// with that member stays stale) nor sends it the member's appends, so it cannot stand
/// in for the member's vote or acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_node_on_a_lost_members_address_does_not_stand_in_for_it() {
    let mut cluster = Cluster::start(3, defaults).await;
    let leader = cluster.wait_leader_agreed().await;
    let lost = (1..=3u64).find(|id| *id != leader).unwrap();
    let leader_store = cluster.node(cluster.index_of(leader)).clone();
    cluster.stop(cluster.index_of(lost)).await;
    wait_for("the leader to lose contact with the stopped member", Duration::from_secs(10), || async {
        leader_store.peer_contact_age(lost).is_some_and(|age| age > Duration::from_millis(500)).then_some(())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let newcomer = gatehouse_raft::Store::open(common::config(99, cluster.addrs[cluster.index_of(lost)], dir.path().to_path_buf(), defaults)).await.unwrap();
    // The leader keeps writing (its heartbeats and appends go to the address all along).
    let mut index = 0;
    for i in 0..20 {
        index = leader_store.put(format!("w/{i}"), vec![1]).await.unwrap().log_index;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(leader_store.peer_contact_age(lost).is_some_and(|age| age > Duration::from_secs(1)), "the newcomer was taken for node {lost}");
    assert!(newcomer.status().last_log_index.unwrap_or(0) < index, "the newcomer was sent node {lost}'s appends");
    newcomer.shutdown().await;
    cluster.shutdown().await;
}
