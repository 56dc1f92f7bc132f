//! Unit tests of the pre-vote's answers, its majority and when a node asks.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{CommittedLeaderId, Membership};
use proptest::prelude::*;

use super::*;
use crate::restart_hold::test_support::with_voters;
use crate::types::{RaftNode, StoredMembership};

const QUIET: Duration = Duration::from_millis(300);

fn log_id(term: u64, index: u64) -> Option<LogId<NodeId>> {
    Some(LogId::new(CommittedLeaderId::new(term, 1), index))
}

fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
    ids.iter().copied().collect()
}

#[test]
fn a_voter_says_yes_only_when_it_hears_no_leader_and_the_asker_has_the_log() {
    use ServerState::*;
    let (ms, stale) = (Duration::from_millis, Some(QUIET));
    let cases = [
        (Follower, None, log_id(2, 10), log_id(2, 10), Answer::Yes),
        (Follower, stale, log_id(2, 10), log_id(3, 4), Answer::Yes),
        (Candidate, Some(ms(900)), log_id(2, 10), log_id(2, 11), Answer::Yes),
        (Follower, None, None, None, Answer::Yes),
        (Leader, None, log_id(2, 10), log_id(9, 99), Answer::Leading),
        (Follower, Some(ms(120)), log_id(2, 10), log_id(9, 99), Answer::HearsLeader),
        (Follower, Some(QUIET - ms(1)), None, log_id(1, 1), Answer::HearsLeader),
        (Follower, stale, log_id(2, 10), log_id(2, 9), Answer::LongerLog),
        (Candidate, None, log_id(3, 1), log_id(2, 50), Answer::LongerLog),
        (Follower, None, log_id(1, 1), None, Answer::LongerLog),
    ];
    for (state, age, mine, theirs, want) in cases {
        assert_eq!(answer(state, age, QUIET, mine, theirs), want, "{state:?}, leader heard {age:?} ago, log {mine:?} asked by {theirs:?}");
    }
}

#[test]
fn a_majority_is_needed_in_every_config_of_a_joint_membership() {
    let three = vec![set(&[1, 2, 3])];
    assert!(majority_in_every_config(&three, &set(&[1, 2])));
    assert!(!majority_in_every_config(&three, &set(&[1])));
    assert!(!majority_in_every_config(&three, &set(&[1, 4, 5])), "yeses from non-voters do not count");
    assert!(!majority_in_every_config(&[set(&[1, 2, 3, 4])], &set(&[1, 2])), "half of four is not a majority");
    let joint = vec![set(&[1, 2, 3]), set(&[3, 4, 5])];
    assert!(!majority_in_every_config(&joint, &set(&[1, 2, 3])));
    assert!(majority_in_every_config(&joint, &set(&[1, 3, 4])));
    assert!(majority_in_every_config(&[set(&[1])], &set(&[1])), "a single voter needs only itself");
    assert!(!majority_in_every_config(&[], &set(&[1])));
}

proptest! {
    /// Two majorities of one config always share a voter, which is what makes a pre-vote
    /// safe to rely on: two nodes cannot both be granted by voters that each heard no leader
    /// unless those voters really heard none.
    #[test]
    fn two_granted_sets_of_one_config_overlap(n in 1u64..8, a in proptest::collection::btree_set(1u64..8, 0..8), b in proptest::collection::btree_set(1u64..8, 0..8)) {
        let config = vec![(1..=n).collect::<BTreeSet<_>>()];
        if majority_in_every_config(&config, &a) && majority_in_every_config(&config, &b) {
            prop_assert!(a.intersection(&b).any(|id| config[0].contains(id)));
        }
    }
}

fn metrics(state: ServerState) -> RaftMetrics {
    let mut m = with_voters(3);
    m.state = state;
    m
}

#[test]
fn a_voter_asks_once_it_has_heard_no_leader_for_the_shortest_timeout() {
    let m = metrics(ServerState::Follower);
    assert_eq!(when_to_ask(&m, Some(Duration::from_millis(100)), QUIET), Err(Duration::from_millis(200)));
    assert_eq!(when_to_ask(&m, Some(QUIET), QUIET), Ok(()));
    assert_eq!(when_to_ask(&m, None, QUIET), Ok(()), "a node that heard no leader since it started asks at once");
    assert_eq!(when_to_ask(&metrics(ServerState::Candidate), Some(Duration::from_secs(5)), QUIET), Ok(()));
}

#[test]
fn leaders_and_learners_never_ask() {
    assert!(when_to_ask(&metrics(ServerState::Leader), None, QUIET).is_err());
    let mut learner = RaftMetrics::new_initial(4);
    let nodes: BTreeMap<NodeId, RaftNode> = (1..=4).map(|id| (id, RaftNode::default())).collect();
    learner.membership_config = Arc::new(StoredMembership::new(None, Membership::new(vec![set(&[1, 2, 3])], nodes)));
    learner.state = ServerState::Learner;
    assert!(when_to_ask(&learner, None, QUIET).is_err());
}

#[test]
fn an_older_build_that_does_not_know_the_call_counts_as_a_yes() {
    let reply = |answer: Answer| Ok(Reply::App(Ok(codec::encode(&answer).unwrap())));
    assert_eq!(said_yes(reply(Answer::Yes)), Ok(()));
    assert_eq!(said_yes(reply(Answer::HearsLeader)), Err("HearsLeader".into()));
    assert_eq!(said_yes(Ok(Reply::App(Err("unknown cluster call \"raft:pre-vote\"".into())))), Ok(()));
    assert_eq!(said_yes(Err("no reply from 127.0.0.2:7946 within 300ms".into())), Err("no reply from 127.0.0.2:7946 within 300ms".into()));
    assert!(said_yes(Ok(Reply::App(Ok(vec![0xff, 0xff])))).is_err(), "garbage is no yes");
    assert!(said_yes(Ok(Reply::Leader(Err(crate::network::LeaderError::Refused("x".into()))))).is_err());
}
