//! The oldest protocol among the Raft members: which commands every member can read.
//! A command newer than a member's protocol would stop it replicating (it cannot decode
//! the entry), so a node proposes one only once no member is older; during a rolling
//! upgrade the cluster keeps to the old commands until the last member is upgraded.

use std::collections::HashMap;

use gatehouse_raft::NodeId;

use super::peers::{meta, PeerInfo};

/// What gossip last said of each node's protocol. A node gossip has forgotten (dead for
/// long) keeps what it last said: it comes back with the same binary, or says otherwise.
#[derive(Debug, Default)]
pub struct ProtocolFloor {
    said: HashMap<NodeId, u32>,
}

impl ProtocolFloor {
    /// Records each node's protocol; a node that does not say is older than the key (1).
    pub fn observe(&mut self, peers: &[PeerInfo]) {
        for peer in peers {
            let protocol = peer.get(meta::PROTOCOL).and_then(|p| p.parse().ok()).unwrap_or(1);
            self.said.insert(peer.node_id, protocol);
        }
    }

    /// The oldest protocol among `members`; 1 for one never heard of.
    pub fn lowest(&self, members: impl IntoIterator<Item = NodeId>) -> u32 {
        members.into_iter().map(|id| self.said.get(&id).copied().unwrap_or(1)).min().unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn peer(node_id: NodeId, protocol: Option<&str>, alive: bool) -> PeerInfo {
        let meta = protocol.map(|p| BTreeMap::from([(meta::PROTOCOL.to_owned(), p.to_owned())])).unwrap_or_default();
        PeerInfo { node_id, alive, left: false, meta, last_contact_ms: None }
    }

    #[test]
    fn the_floor_is_the_oldest_member_and_one_for_a_member_never_heard_of() {
        let mut floor = ProtocolFloor::default();
        floor.observe(&[peer(1, Some("2"), true), peer(2, Some("2"), true), peer(3, None, true)]);
        assert_eq!(floor.lowest([1, 2]), 2);
        assert_eq!(floor.lowest([1, 2, 3]), 1, "a node that does not say is older");
        assert_eq!(floor.lowest([1, 4]), 1, "a member gossip has not heard of");
        assert_eq!(floor.lowest([]), 1);
    }

    #[test]
    fn a_node_keeps_what_it_last_said_and_an_upgrade_or_a_downgrade_moves_it() {
        let mut floor = ProtocolFloor::default();
        floor.observe(&[peer(1, Some("2"), true), peer(2, None, true)]);
        assert_eq!(floor.lowest([1, 2]), 1);
        // Node 2 restarted on the new binary; then gossip forgets node 1 (dead for long).
        floor.observe(&[peer(1, Some("2"), false), peer(2, Some("2"), true)]);
        floor.observe(&[peer(2, Some("2"), true)]);
        assert_eq!(floor.lowest([1, 2]), 2);
        // Node 1 comes back on an older binary.
        floor.observe(&[peer(1, Some("not a number"), true), peer(2, Some("2"), true)]);
        assert_eq!(floor.lowest([1, 2]), 1);
    }
}
