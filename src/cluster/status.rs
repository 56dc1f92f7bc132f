//! The cluster as one node sees it (`GET /cluster`, `gatehouse status`): Raft's view of
//! the members merged with gossip's view of who is alive, and the loop that publishes this
//! node's own Raft state into gossip so that every node can show every other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_raft::{Role, Status, Store};
use serde::{Deserialize, Serialize};

use super::peers::{meta, PeerInfo, PeerView};
use crate::shutdown::Shutdown;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    /// Highest log index this node knows committed and has applied.
    pub commit_index: u64,
    /// Whether a write through this node could commit now, as far as it knows (Kong's
    /// `database.reachable` in `/status`). Nodes before it did not say: taken as true.
    #[serde(default = "assumed_writable")]
    pub writable: bool,
    pub nodes: Vec<NodeStatus>,
}

fn assumed_writable() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    pub admin_addr: Option<String>,
    pub proxy_addr: Option<String>,
    pub cluster_addr: Option<String>,
    /// leader, follower, candidate, learner; joining (seen alive by gossip, not yet a
    /// member) or gone (not a member and dead: removed, or died before it joined; gossip
    /// forgets it after an hour).
    pub role: String,
    pub voter: bool,
    /// Gossip's verdict; "left" nodes departed on purpose.
    pub alive: bool,
    pub left: bool,
    pub applied_index: Option<u64>,
    /// Entries behind the leader's log.
    pub lag: Option<u64>,
    pub version: Option<String>,
    /// True while the node's rate limits use the local fallback share (it has no quorum).
    #[serde(default)]
    pub ratelimit_degraded: bool,
    /// Milliseconds since this node last heard from it by gossip (None for itself).
    #[serde(default)]
    pub last_contact_ms: Option<u64>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Learner => "learner",
        Role::Shutdown => "shutdown",
    }
}

/// The leader as this node can vouch for it: the one it hears from (or itself, leading a
/// quorum) within the lease. Raft keeps naming the last leader it knew, and with PreVote a
/// node cut off from the rest never moves to a new term: it would name a dead leader for
/// as long as it stays cut off.
/// `reachable` is the store's.
pub fn heard_leader(status: &Status, reachable: bool) -> Option<u64> {
    status.leader.filter(|_| reachable)
}

/// `degraded` is this node's own rate-limit state; other nodes' come from gossip.
pub fn cluster_status(store: &Store, peers: &[PeerInfo], cluster: &str, degraded: bool) -> ClusterStatus {
    let mut s = store.status();
    let writable = store.reachable();
    s.leader = heard_leader(&s, writable);
    let gossip: BTreeMap<u64, &PeerInfo> = peers.iter().map(|p| (p.node_id, p)).collect();
    let applied_of = |id: u64| -> Option<u64> {
        if id == s.id {
            s.applied_index
        } else {
            gossip.get(&id).and_then(|p| p.get(meta::APPLIED)).and_then(|a| a.parse().ok())
        }
    };
    let leader_last = s.leader.and_then(|l| if l == s.id { s.last_log_index } else { applied_of(l) });
    let mut nodes: Vec<NodeStatus> = s
        .members
        .iter()
        .map(|m| {
            let peer = gossip.get(&m.id);
            let from = |key: &str| peer.and_then(|p| p.get(key)).map(str::to_owned).or_else(|| m.node.meta.get(key).cloned());
            let role = if m.id == s.id {
                role_name(s.role).to_owned()
            } else if Some(m.id) == s.leader {
                "leader".to_owned()
            } else if m.voter {
                "follower".to_owned()
            } else {
                "learner".to_owned()
            };
            let applied = applied_of(m.id);
            let lag = m.lag.or_else(|| Some(leader_last?.saturating_sub(applied?)));
            NodeStatus {
                id: m.id,
                admin_addr: from(meta::ADMIN_ADDR),
                proxy_addr: from(meta::PROXY_ADDR),
                cluster_addr: Some(m.node.addr.clone()),
                role,
                voter: m.voter,
                alive: m.id == s.id || peer.is_some_and(|p| p.alive),
                left: peer.is_some_and(|p| p.left),
                applied_index: applied,
                lag,
                version: from(meta::VERSION),
                ratelimit_degraded: if m.id == s.id { degraded } else { from(meta::RATELIMIT_DEGRADED).as_deref() == Some("true") },
                last_contact_ms: peer.and_then(|p| p.last_contact_ms),
            }
        })
        .collect();
    // Nodes gossip knows that Raft does not: joining, or gone.
    for p in peers.iter().filter(|p| s.members.iter().all(|m| m.id != p.node_id) && !p.left) {
        nodes.push(NodeStatus {
            id: p.node_id,
            admin_addr: p.get(meta::ADMIN_ADDR).map(str::to_owned),
            proxy_addr: p.get(meta::PROXY_ADDR).map(str::to_owned),
            cluster_addr: p.get(meta::CLUSTER_ADDR).map(str::to_owned),
            role: if p.alive { "joining" } else { "gone" }.to_owned(),
            voter: false,
            alive: p.alive,
            left: p.left,
            applied_index: applied_of(p.node_id),
            lag: None,
            version: p.get(meta::VERSION).map(str::to_owned),
            ratelimit_degraded: p.get(meta::RATELIMIT_DEGRADED) == Some("true"),
            last_contact_ms: p.last_contact_ms,
        });
    }
    nodes.sort_by_key(|n| n.id);
    ClusterStatus {
        cluster: cluster.to_owned(),
        node_id: s.id,
        leader_id: s.leader,
        term: s.term,
        commit_index: s.applied_index.unwrap_or(0),
        writable,
        nodes,
    }
}

/// Publishes this node's role, term and applied index into gossip whenever
/// they change (checked a few times a second), until shutdown.
pub async fn publish_raft_state(store: Store, peers: Arc<dyn PeerView>, mut shutdown: Shutdown) {
    let mut last: Option<(Role, u64, Option<u64>)> = None;
    loop {
        let s = store.status();
        let now = (s.role, s.term, s.applied_index);
        if last.as_ref() != Some(&now) {
            peers.publish(meta::ROLE, role_name(now.0).to_owned());
            peers.publish(meta::TERM, now.1.to_string());
            peers.publish(meta::APPLIED, now.2.unwrap_or(0).to_string());
            last = Some(now);
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
