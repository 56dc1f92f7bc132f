//! What the cluster layer needs to know about other nodes, whatever told it (gossip in a
//! running node, a fixed list in tests).

use std::collections::BTreeMap;

/// Gossip meta keys every node publishes about itself.
pub mod meta {
    pub const CLUSTER_ADDR: &str = "cluster_addr";
    pub const ADMIN_ADDR: &str = "admin_addr";
    pub const PROXY_ADDR: &str = "proxy_addr";
    pub const GOSSIP_ADDR: &str = "gossip_addr";
    pub const VERSION: &str = "version";
    /// `gatehouse_raft::PROTOCOL`: which Raft commands the node reads.
    pub const PROTOCOL: &str = "protocol";
    pub const ROLE: &str = "role";
    pub const APPLIED: &str = "applied";
    pub const TERM: &str = "term";
    /// "true" while this node's rate limits run on the local fallback share (no quorum).
    pub const RATELIMIT_DEGRADED: &str = "ratelimit_degraded";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub node_id: u64,
    pub alive: bool,
    /// Left on purpose (`gatehouse leave`), as opposed to dead.
    pub left: bool,
    pub meta: BTreeMap<String, String>,
    /// Milliseconds since this node last heard from the peer (None: never, or itself).
    pub last_contact_ms: Option<u64>,
}

impl PeerInfo {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(String::as_str)
    }
}

/// The live view of the other nodes (and this one).
pub trait PeerView: Send + Sync + 'static {
    fn peers(&self) -> Vec<PeerInfo>;
    /// Members alive and not left, this node included. The rate limiter asks on every
    /// request, so implementations should count without building `peers()`.
    fn live_count(&self) -> usize {
        self.peers().iter().filter(|p| p.alive && !p.left).count()
    }
    /// Publishes one of this node's meta values.
    fn publish(&self, key: &str, value: String);
}
