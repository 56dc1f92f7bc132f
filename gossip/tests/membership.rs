//! Membership on real UDP sockets over loopback (127.0.0.1..3): joins, deaths,
//! departures, restarts, meta changes and cluster isolation. Each test owns its ports.

use std::net::SocketAddr;
use std::time::Duration;

use gatehouse_gossip::{
    diff, Gossip, GossipConfig, GossipError, LeaveOutcome, Member, MemberEvent,
};
use tokio::time::{timeout_at, Instant};

const CLUSTER: &str = "test-cluster";

fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, host], port))
}

/// Node `n` listens on 127.0.0.n:port and publishes its proxy address as meta.
fn config(n: u8, port: u16, seeds: &[SocketAddr]) -> GossipConfig {
    let mut config = GossipConfig::new(u64::from(n), addr(n, port), CLUSTER);
    config.seeds = seeds.iter().map(ToString::to_string).collect();
    config
        .meta
        .insert("proxy_addr".into(), format!("127.0.0.{n}:8000"));
    config
}

async fn start(config: GossipConfig) -> Gossip {
    let listen = config.listen;
    match Gossip::start(config).await {
        Ok(gossip) => gossip,
        Err(err) => panic!("gossip on {listen} failed to start: {err}"),
    }
}

fn find(members: &[Member], node_id: u64) -> Option<&Member> {
    members.iter().find(|m| m.node_id == node_id)
}

/// Waits until `gossip`'s member list satisfies `cond`, checking `invariant` on every
/// list seen on the way. Panics with the last list on timeout.
async fn wait_for(
    gossip: &Gossip,
    within: Duration,
    what: &str,
    invariant: impl Fn(&[Member]),
    cond: impl Fn(&[Member]) -> bool,
) -> Vec<Member> {
    let deadline = Instant::now() + within;
    let mut rx = gossip.watch();
    loop {
        let members = rx.borrow_and_update().clone();
        invariant(&members);
        if cond(&members) {
            return members;
        }
        match timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!(
                "node {}: gossip stopped while waiting for {what}",
                gossip.node_id()
            ),
            Err(_) => panic!(
                "node {}: no {what} within {within:?}; members: {members:#?}",
                gossip.node_id()
            ),
        }
    }
}

fn no_invariant(_: &[Member]) {}

fn all_alive(ids: &[u64]) -> impl Fn(&[Member]) -> bool + '_ {
    move |members| {
        ids.iter()
            .all(|id| find(members, *id).is_some_and(|m| m.alive))
    }
}

/// Starts nodes 1..=count on `port`, all joining through node 1, and waits until each
/// sees every node alive.
async fn cluster(count: u8, port: u16) -> Vec<Gossip> {
    let mut nodes = vec![start(config(1, port, &[])).await];
    for n in 2..=count {
        nodes.push(start(config(n, port, &[addr(1, port)])).await);
    }
    let ids: Vec<u64> = (1..=u64::from(count)).collect();
    for node in &nodes {
        wait_for(
            node,
            Duration::from_secs(5),
            "full membership",
            no_invariant,
            all_alive(&ids),
        )
        .await;
    }
    nodes
}

async fn stop_all(nodes: Vec<Gossip>) {
    for node in nodes {
        node.shutdown().await.expect("clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_join_through_one_seed_and_see_each_others_meta() {
    let nodes = cluster(3, 41010).await;
    for node in &nodes {
        let members = node.live_members();
        assert_eq!(members.len(), 3, "{members:#?}");
        for m in &members {
            assert_eq!(m.gossip_addr, addr(m.node_id as u8, 41010));
            assert_eq!(
                m.meta.get("proxy_addr"),
                Some(&format!("127.0.0.{}:8000", m.node_id))
            );
            assert!(!m.left);
        }
    }
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_reported_dead_within_dead_after() {
    let mut nodes = cluster(3, 41020).await;
    let bound = GossipConfig::new(0, addr(1, 1), CLUSTER).dead_after;
    let before = nodes[0].members();
    let silent = nodes.pop().expect("three nodes");
    let stopped_at = Instant::now();
    silent.shutdown().await.expect("clean shutdown");
    for node in &nodes {
        wait_for(
            node,
            bound + Duration::from_secs(2),
            "node 3 dead",
            |members| {
                assert!(
                    find(members, 3).is_some_and(|m| !m.left),
                    "node 3 never left"
                )
            },
            |members| find(members, 3).is_some_and(|m| !m.alive),
        )
        .await;
        let took = stopped_at.elapsed();
        eprintln!("node {} saw node 3 dead after {took:?}", node.node_id());
        // One gossip round of slack for the shared, loaded test machine.
        assert!(
            took <= bound + Duration::from_millis(200),
            "seen dead after {took:?}"
        );
        assert_eq!(node.live_members().len(), 2);
    }
    assert_eq!(
        diff(&before, &nodes[0].members()),
        vec![MemberEvent::Down(3)]
    );
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_is_reported_left_not_dead() {
    let mut nodes = cluster(3, 41030).await;
    let leaver = nodes.pop().expect("three nodes");
    let outcome = leaver.leave().await.expect("leave");
    assert!(
        matches!(outcome, LeaveOutcome::Acknowledged { by: 1 | 2 }),
        "{outcome:?}"
    );
    for node in &nodes {
        // Once silent, the leaver must still read as left, never as crashed.
        let members = wait_for(
            node,
            Duration::from_secs(5),
            "node 3 left and silent",
            |members| {
                if let Some(m) = find(members, 3) {
                    assert!(m.alive || m.left, "node 3 reported dead, not left: {m:?}");
                }
            },
            |members| find(members, 3).is_some_and(|m| m.left && !m.alive),
        )
        .await;
        assert_eq!(members.iter().filter(|m| m.is_live()).count(), 2);
    }
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_leaves_without_waiting() {
    let node = start(config(1, 41040, &[])).await;
    let started = Instant::now();
    assert_eq!(node.leave().await.expect("leave"), LeaveOutcome::Alone);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_shows_once_alive_with_its_new_meta() {
    let port = 41050;
    let mut nodes = cluster(2, port).await;
    let old = nodes.pop().expect("two nodes");
    let old_generation = old.generation();
    // Restart at once: peers still believe the old run alive when the new one shows up.
    old.shutdown().await.expect("clean shutdown");
    let mut restarted = config(2, port, &[addr(1, port)]);
    restarted.generation = old_generation + 1;
    restarted.meta.insert("version".into(), "2".into());
    let new = start(restarted).await;
    let once = |members: &[Member]| {
        assert!(
            members.iter().filter(|m| m.node_id == 2).count() <= 1,
            "{members:#?}"
        );
    };
    let members = wait_for(
        &nodes[0],
        Duration::from_secs(5),
        "node 2 restarted",
        once,
        |members| {
            find(members, 2).is_some_and(|m| {
                m.alive
                    && m.generation == old_generation + 1
                    && m.meta.get("version").map(String::as_str) == Some("2")
            })
        },
    )
    .await;
    assert_eq!(members.len(), 2);
    // The new run must not see its predecessor either, even though peers gossip it.
    wait_for(
        &new,
        Duration::from_secs(5),
        "node 1",
        once,
        all_alive(&[1, 2]),
    )
    .await;
    let me = new
        .members()
        .into_iter()
        .find(|m| m.node_id == 2)
        .expect("self listed");
    assert_eq!(me.generation, old_generation + 1);
    nodes.push(new);
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_meta_propagates_and_is_validated() {
    let nodes = cluster(2, 41060).await;
    nodes[1]
        .set_meta("role", "voter")
        .await
        .expect("valid meta");
    // The node's own view changes at once, without a gossip round.
    let own = find(&nodes[1].members(), 2).cloned().expect("self listed");
    assert_eq!(own.meta.get("role").map(String::as_str), Some("voter"));
    let role_is = |value: &'static str| {
        move |members: &[Member]| {
            find(members, 2).is_some_and(|m| m.meta.get("role").map(String::as_str) == Some(value))
        }
    };
    wait_for(
        &nodes[0],
        Duration::from_secs(3),
        "role voter",
        no_invariant,
        role_is("voter"),
    )
    .await;
    nodes[1]
        .set_meta("role", "learner")
        .await
        .expect("valid meta");
    wait_for(
        &nodes[0],
        Duration::from_secs(3),
        "role learner",
        no_invariant,
        role_is("learner"),
    )
    .await;
    nodes[1].remove_meta("role").await;
    wait_for(
        &nodes[0],
        Duration::from_secs(3),
        "role removed",
        no_invariant,
        |members| {
            find(members, 2)
                .is_some_and(|m| !m.meta.contains_key("role") && m.meta.contains_key("proxy_addr"))
        },
    )
    .await;
    let err = nodes[1]
        .set_meta("bad key", "v")
        .await
        .expect_err("space in key");
    assert!(matches!(err, GossipError::InvalidMeta { .. }), "{err:?}");
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_is_never_listed() {
    let port = 41070;
    let seed = start(config(1, port, &[])).await;
    // The stranger starts first and keeps knocking at the seed from the first round on.
    let mut stranger_config = config(3, port, &[addr(1, port)]);
    stranger_config.cluster_name = "other-cluster".into();
    let stranger = start(stranger_config).await;
    let member = start(config(2, port, &[addr(1, port)])).await;
    let never_3 = |members: &[Member]| assert!(find(members, 3).is_none(), "{members:#?}");
    for node in [&seed, &member] {
        wait_for(
            node,
            Duration::from_secs(5),
            "nodes 1 and 2",
            never_3,
            all_alive(&[1, 2]),
        )
        .await;
    }
    let theirs = stranger.members();
    assert_eq!(
        theirs.iter().map(|m| m.node_id).collect::<Vec<_>>(),
        vec![3],
        "{theirs:#?}"
    );
    stop_all(vec![seed, member, stranger]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_leaves_from_the_listen_address() {
    // A plain socket stands in for the seed, to see where the node's datagrams come from.
    let seed = tokio::net::UdpSocket::bind(addr(1, 41080))
        .await
        .expect("bind seed");
    let node = start(config(2, 41080, &[addr(1, 41080)])).await;
    let mut buf = vec![0u8; 65_536];
    let (_, from) = tokio::time::timeout(Duration::from_secs(3), seed.recv_from(&mut buf))
        .await
        .expect("a gossip datagram within 3 s")
        .expect("recv");
    assert_eq!(from, addr(2, 41080));
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_and_a_bad_config_are_clear_errors() {
    let _holder = tokio::net::UdpSocket::bind(addr(1, 41090))
        .await
        .expect("bind");
    match Gossip::start(config(1, 41090, &[])).await {
        Err(GossipError::AddrInUse { addr: taken }) => assert_eq!(taken, addr(1, 41090)),
        Err(other) => panic!("expected AddrInUse, got {other:?}"),
        Ok(_) => panic!("started on a taken port"),
    }
    let mut bad = config(1, 41091, &[]);
    bad.cluster_name = String::new();
    match Gossip::start(bad).await {
        Err(GossipError::InvalidConfig { field, .. }) => assert_eq!(field, "cluster_name"),
        Err(other) => panic!("expected InvalidConfig, got {other:?}"),
        Ok(_) => panic!("started with an empty cluster name"),
    }
}
