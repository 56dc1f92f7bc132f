//! Whether every Raft member reads a protocol's commands. A command newer than a
//! member's protocol would stop it replicating (it cannot decode the entry), so a node
//! proposes one only while no member is older: during a rolling upgrade the cluster keeps
//! to the old commands until the last member is upgraded. Once the cluster has recorded
//! that every member reads them (`cluster::agreement`), an older node may not join.

use std::collections::HashMap;

use gatehouse_raft::NodeId;

use super::peers::{meta, PeerInfo};

/// What the Raft members read, as far as gossip has told this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembersRead {
    /// A member reads only commands older than the protocol's.
    Older,
    /// No member is known to be older, but not every one has been heard of yet (this
    /// node has just started, or has not joined), and the cluster's record that they all
    /// read the newer commands is not in this node's map (`cluster::agreement`), or every
    /// one has been heard of and the record is on its way: the older commands.
    Unheard,
    /// Every member reads the protocol's commands, and the cluster has recorded so.
    All,
}

/// What gossip last said of each node's protocol, and the verdict so far. Gossip shows a
/// node only with all the meta it started with, so one that does not say its protocol
/// is older than the key (1). Once every member has been heard to read the protocol, one
/// gossip has not heard of yet (a node that has just joined, which other nodes hear of a
/// gossip round after Raft adds it) leaves the verdict as it was; one heard of keeps
/// what it last said after gossip forgets it.
#[derive(Debug)]
pub struct ProtocolGate {
    needed: u32,
    said: HashMap<NodeId, u32>,
    all_heard_once: bool,
}

impl ProtocolGate {
    pub fn new(needed: u32) -> ProtocolGate {
        ProtocolGate { needed, said: HashMap::new(), all_heard_once: false }
    }

    /// Records each node's protocol.
    pub fn observe(&mut self, peers: &[PeerInfo]) {
        for peer in peers {
            let protocol = peer.get(meta::PROTOCOL).and_then(|p| p.parse().ok()).unwrap_or(1);
            self.said.insert(peer.node_id, protocol);
        }
    }

    /// The verdict for `members`, as `me` sees them. Before `me` is a member (it has not
    /// joined yet), the members it knows are not the cluster's: nothing is heard.
    pub fn verdict(&mut self, me: NodeId, members: impl IntoIterator<Item = NodeId>) -> MembersRead {
        let members: Vec<NodeId> = members.into_iter().collect();
        let mut all_heard = members.contains(&me);
        for id in members {
            match self.said.get(&id) {
                Some(protocol) if *protocol < self.needed => {
                    self.all_heard_once = false;
                    return MembersRead::Older;
                }
                Some(_) => {}
                None => all_heard = false,
            }
        }
        self.all_heard_once |= all_heard;
        if self.all_heard_once {
            MembersRead::All
        } else {
            MembersRead::Unheard
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn peer(node_id: NodeId, protocol: Option<&str>) -> PeerInfo {
        let meta = protocol.map(|p| BTreeMap::from([(meta::PROTOCOL.to_owned(), p.to_owned())])).unwrap_or_default();
        PeerInfo { node_id, alive: true, left: false, meta, last_contact_ms: None }
    }

    #[test]
    fn all_once_every_member_is_heard_to_read_it() {
        let mut gate = ProtocolGate::new(2);
        gate.observe(&[peer(1, Some("2"))]);
        assert_eq!(gate.verdict(1, [1, 2]), MembersRead::Unheard, "node 2 not heard of yet, at start");
        gate.observe(&[peer(1, Some("2")), peer(2, Some("3"))]);
        assert_eq!(gate.verdict(1, [1, 2]), MembersRead::All);
        assert_eq!(gate.verdict(1, [1, 2, 3]), MembersRead::All, "a member that has just joined, not heard of yet");
    }

    #[test]
    fn unheard_until_this_node_is_a_member() {
        let mut gate = ProtocolGate::new(2);
        gate.observe(&[peer(1, Some("2"))]);
        assert_eq!(gate.verdict(1, []), MembersRead::Unheard, "not joined yet: no members");
        assert_eq!(gate.verdict(1, [2]), MembersRead::Unheard, "a membership without this node");
        gate.observe(&[peer(2, Some("2"))]);
        assert_eq!(gate.verdict(1, [1, 2]), MembersRead::All);
        gate.observe(&[peer(3, None)]);
        assert_eq!(gate.verdict(1, [2, 3]), MembersRead::Older, "an older member, this node not one (removed, or catching up)");
    }

    #[test]
    fn older_for_a_member_that_does_not_say_or_says_less() {
        let mut gate = ProtocolGate::new(2);
        gate.observe(&[peer(1, Some("2")), peer(2, None)]);
        assert_eq!(gate.verdict(1, [1, 2]), MembersRead::Older, "a node that does not say is older");
        assert_eq!(gate.verdict(1, [1]), MembersRead::All, "not a member: its commands are not its to read");
        gate.observe(&[peer(3, Some("not a number"))]);
        assert_eq!(gate.verdict(1, [1, 3]), MembersRead::Older);
        assert_eq!(gate.verdict(1, [1, 4]), MembersRead::Unheard, "after an older member, every member is heard again first");
    }

    #[test]
    fn a_node_keeps_what_it_last_said() {
        let mut gate = ProtocolGate::new(2);
        gate.observe(&[peer(1, Some("2")), peer(2, None)]);
        assert_eq!(gate.verdict(1, [1, 2]), MembersRead::Older);
        // Node 2 restarted on the new binary; then gossip forgets node 1 (dead for long).
        gate.observe(&[peer(2, Some("2"))]);
        assert_eq!(gate.verdict(1, [1, 2]), MembersRead::All);
        // Node 1 comes back on an older binary.
        gate.observe(&[peer(1, Some("1"))]);
        assert_eq!(gate.verdict(1, [1, 2]), MembersRead::Older);
    }
}
