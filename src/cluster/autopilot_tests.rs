use std::collections::BTreeMap;

use gatehouse_raft::RaftNode;

use super::*;

fn member(id: u64, voter: bool, lag: u64) -> MemberStatus {
    MemberStatus { id, node: RaftNode::new(format!("127.0.0.{id}:8005")), voter, matched_index: Some(1000 - lag), lag: Some(lag) }
}

fn status(members: Vec<MemberStatus>) -> Status {
    Status {
        id: 1,
        role: Role::Leader,
        term: 2,
        leader: Some(1),
        last_log_index: Some(1000),
        applied_index: Some(1000),
        snapshot_index: None,
        millis_since_quorum_ack: Some(0),
        members,
        revision: 1,
    }
}

fn peer(id: u64, alive: bool, left: bool) -> PeerInfo {
    PeerInfo { node_id: id, alive, left, meta: BTreeMap::new(), last_contact_ms: None }
}

#[test]
fn promotes_caught_up_live_learners_up_to_the_target() {
    let s = status(vec![member(1, true, 0), member(2, false, 3), member(3, false, 500)]);
    let peers = vec![peer(1, true, false), peer(2, true, false), peer(3, true, false)];
    assert_eq!(decide(&s, &peers, &BTreeSet::new(), &BTreeSet::new(), 3), Some(Action::SetVoters(BTreeSet::from([1, 2]), "promote a caught-up learner")));
    // Node 3 is far behind: not yet.
    let s = status(vec![member(1, true, 0), member(2, true, 0), member(3, false, 500)]);
    assert_eq!(decide(&s, &peers, &BTreeSet::new(), &BTreeSet::new(), 3), None);
}

#[test]
fn further_nodes_stay_learners() {
    let s = status(vec![member(1, true, 0), member(2, true, 0), member(3, true, 0), member(4, false, 0)]);
    let peers: Vec<_> = (1..=4).map(|i| peer(i, true, false)).collect();
    assert_eq!(decide(&s, &peers, &BTreeSet::new(), &BTreeSet::new(), 3), None);
}

#[test]
fn a_dead_voter_is_swapped_for_a_healthy_learner_in_one_change() {
    let s = status(vec![member(1, true, 0), member(2, true, 0), member(3, true, 0), member(4, false, 0)]);
    let peers = vec![peer(1, true, false), peer(2, true, false), peer(3, false, false), peer(4, true, false)];
    let action = decide(&s, &peers, &BTreeSet::new(), &BTreeSet::from([3]), 3);
    assert_eq!(action, Some(Action::SetVoters(BTreeSet::from([1, 2, 4]), "replace a dead voter")));
}

#[test]
fn a_dead_voter_without_replacement_stays() {
    let s = status(vec![member(1, true, 0), member(2, true, 0), member(3, true, 0)]);
    let peers = vec![peer(1, true, false), peer(2, true, false), peer(3, false, false)];
    assert_eq!(decide(&s, &peers, &BTreeSet::new(), &BTreeSet::from([3]), 3), None);
}

#[test]
fn members_that_left_are_removed_and_dead_learners_tidied() {
    let s = status(vec![member(1, true, 0), member(2, true, 0), member(3, true, 0), member(5, false, 0)]);
    let peers = vec![peer(1, true, false), peer(2, true, true), peer(3, true, false), peer(5, false, false)];
    assert_eq!(decide(&s, &peers, &BTreeSet::new(), &BTreeSet::new(), 3), Some(Action::Remove(2, "left the cluster")));
    let peers = vec![peer(1, true, false), peer(2, true, false), peer(3, true, false), peer(5, false, false)];
    assert_eq!(decide(&s, &peers, &BTreeSet::new(), &BTreeSet::from([5]), 3), Some(Action::Remove(5, "dead learner")));
}

/// A member gossip has lost (or that a process without the secret spoke for) but that
/// answers the leader's Raft calls is up: promoted when caught up, and not removed for a
/// "left" that gossip carries.
#[test]
fn a_member_answering_raft_is_up_whatever_gossip_says() {
    let s = status(vec![member(1, true, 0), member(2, true, 0), member(3, false, 0)]);
    let peers = vec![peer(1, true, false), peer(2, true, false), peer(3, false, true)];
    assert_eq!(decide(&s, &peers, &BTreeSet::new(), &BTreeSet::new(), 3), Some(Action::Remove(3, "left the cluster")));
    let answering = BTreeSet::from([2, 3]);
    assert_eq!(decide(&s, &peers, &answering, &BTreeSet::new(), 3), Some(Action::SetVoters(BTreeSet::from([1, 2, 3]), "promote a caught-up learner")));
}
