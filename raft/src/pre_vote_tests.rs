//! Unit tests of the pre-vote's answers, its majority and when a node asks.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use openraft::{CommittedLeaderId, Membership};
use proptest::prelude::*;

use super::*;
use crate::restart_hold::test_support::with_voters;
use crate::types::{RaftNode, StoredMembership};

const LEASE: Duration = Duration::from_millis(600);

fn log_id(term: u64, index: u64) -> Option<LogId> {
    Some(LogId::new(CommittedLeaderId::new(term, 1), index))
}

fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
    ids.iter().copied().collect()
}

#[test]
fn a_voter_says_yes_only_when_it_hears_no_leader_and_the_asker_has_the_log() {
    let (ms, stale) = (Duration::from_millis, Some(LEASE));
    let cases = [
        (false, None, log_id(2, 10), log_id(2, 10), Answer::Yes),
        (false, stale, log_id(2, 10), log_id(3, 4), Answer::Yes),
        (false, Some(ms(900)), log_id(2, 10), log_id(2, 11), Answer::Yes),
        (false, None, None, None, Answer::Yes),
        (true, None, log_id(2, 10), log_id(9, 99), Answer::Leading),
        (false, Some(ms(120)), log_id(2, 10), log_id(9, 99), Answer::HearsLeader),
        (false, Some(LEASE - ms(1)), None, log_id(1, 1), Answer::HearsLeader),
        (false, stale, log_id(2, 10), log_id(2, 9), Answer::LongerLog),
        (false, None, log_id(3, 1), log_id(2, 50), Answer::LongerLog),
        (false, None, log_id(1, 1), None, Answer::LongerLog),
    ];
    for (leading, age, mine, theirs, want) in cases {
        assert_eq!(answer(leading, age, LEASE, mine, theirs), want, "leading {leading}, leader heard {age:?} ago, log {mine:?} asked by {theirs:?}");
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
fn a_voter_asks_once_it_has_heard_no_leader_for_the_lease() {
    let m = metrics(ServerState::Follower);
    assert_eq!(when_to_ask(&m, Some(Duration::from_millis(100)), LEASE), Err(Duration::from_millis(500)));
    assert_eq!(when_to_ask(&m, Some(LEASE), LEASE), Ok(()));
    assert_eq!(when_to_ask(&m, None, LEASE), Ok(()), "a node that heard no leader since it started asks at once");
    assert_eq!(when_to_ask(&metrics(ServerState::Candidate), Some(Duration::from_secs(5)), LEASE), Ok(()));
}

#[test]
fn leaders_and_learners_never_ask() {
    assert!(when_to_ask(&metrics(ServerState::Leader), None, LEASE).is_err());
    let mut learner = RaftMetrics::new_initial(4);
    let nodes: BTreeMap<NodeId, RaftNode> = (1..=4).map(|id| (id, RaftNode::default())).collect();
    learner.membership_config = Arc::new(StoredMembership::new(None, Membership::new(vec![set(&[1, 2, 3])], nodes)));
    learner.state = ServerState::Learner;
    assert!(when_to_ask(&learner, None, LEASE).is_err());
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

/// Voters 2 and 3 (of 1..=3) as a test scripts them: each answers with its entry in
/// `answers`, or never when it has none; `asked` counts the calls.
#[derive(Clone, Default)]
struct Peers {
    answers: Arc<Mutex<BTreeMap<NodeId, Result<Reply, String>>>>,
    asked: Arc<AtomicU32>,
}

fn yes() -> Result<Reply, String> {
    Ok(Reply::App(Ok(codec::encode(&Answer::Yes).unwrap())))
}

fn no(why: Answer) -> Result<Reply, String> {
    Ok(Reply::App(Ok(codec::encode(&why).unwrap())))
}

impl Peers {
    fn set(&self, id: NodeId, answer: Option<Result<Reply, String>>) {
        let mut answers = self.answers.lock().unwrap();
        match answer {
            Some(a) => answers.insert(id, a),
            None => answers.remove(&id),
        };
    }

    fn ask(&self) -> AskFn {
        let peers = self.clone();
        Arc::new(move |id, _addr, _body, _timeout| {
            peers.asked.fetch_add(1, Ordering::SeqCst);
            let answer = peers.answers.lock().unwrap().get(&id).map(|a| a.as_ref().map(clone_reply).map_err(Clone::clone));
            Box::pin(async move {
                match answer {
                    Some(a) => a,
                    None => std::future::pending().await,
                }
            })
        })
    }
}

fn clone_reply(r: &Reply) -> Reply {
    match r {
        Reply::App(a) => Reply::App(a.clone()),
        _ => Reply::App(Err("not scripted".into())),
    }
}

#[tokio::test(start_paused = true)]
async fn one_yes_of_two_other_voters_is_enough_and_silence_is_no() {
    let peers = Peers::default();
    let m = metrics(ServerState::Follower);
    peers.set(2, Some(yes()));
    let started = tokio::time::Instant::now();
    let tally = canvass(&peers.ask(), &m, log_id(1, 1), LEASE / 2).await;
    assert!(tally.granted, "{tally:?}");
    assert!(started.elapsed() < Duration::from_millis(1), "a majority ends the asking at once, not at the deadline");

    peers.set(2, Some(no(Answer::HearsLeader)));
    let tally = canvass(&peers.ask(), &m, log_id(1, 1), LEASE / 2).await;
    assert!(!tally.granted);
    assert_eq!(tally.no.get(&2).map(String::as_str), Some("HearsLeader"));
    assert_eq!(tally.no.get(&3).map(String::as_str), Some("no answer within 300ms"), "{tally:?}");

    peers.set(2, None);
    peers.set(3, Some(Ok(Reply::App(Err("unknown cluster call \"raft:pre-vote\"".into())))));
    assert!(canvass(&peers.ask(), &m, log_id(1, 1), LEASE / 2).await.granted, "an older build counts as a yes");
}

#[tokio::test(start_paused = true)]
async fn the_grant_holds_while_no_leader_is_heard_and_falls_as_soon_as_one_is() {
    let peers = Peers::default();
    let heard_ago: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(Some(Duration::ZERO)));
    let (granted, mut granted_rx) = watch::channel(false);
    let (stop, stop_rx) = watch::channel(false);
    let task = {
        let (ask, heard_ago, peers) = (peers.ask(), heard_ago.clone(), peers.clone());
        tokio::spawn(async move {
            let m = metrics(ServerState::Follower);
            let state = || (m.clone(), log_id(1, 1));
            ask_while_leaderless(state, || *heard_ago.lock().unwrap(), &ask, LEASE, &granted, stop_rx).await;
            drop(peers);
        })
    };
    tokio::time::sleep(LEASE * 5).await;
    assert_eq!(peers.asked.load(Ordering::SeqCst), 0, "no asking while a leader is heard");
    assert!(!*granted_rx.borrow_and_update());

    // The leader falls silent; voter 2 still hears it, then no longer does.
    *heard_ago.lock().unwrap() = Some(LEASE);
    peers.set(2, Some(no(Answer::HearsLeader)));
    tokio::time::sleep(LEASE).await;
    assert!(peers.asked.load(Ordering::SeqCst) >= 2, "asked again while refused");
    assert!(!*granted_rx.borrow_and_update());
    peers.set(2, Some(yes()));
    let since = tokio::time::Instant::now();
    granted_rx.wait_for(|g| *g).await.unwrap();
    // A round with voter 3 silent lasts until its deadline (half the lease), then a pause
    // of at most 0.3 of the lease.
    assert!(since.elapsed() <= LEASE / 2 + LEASE.mul_f64(0.3), "asked again after {:?}", since.elapsed());

    // A leader's append arrives: the grant falls at the next look.
    *heard_ago.lock().unwrap() = Some(Duration::ZERO);
    let since = tokio::time::Instant::now();
    granted_rx.wait_for(|g| !*g).await.unwrap();
    assert!(since.elapsed() <= LEASE.mul_f64(0.3), "the grant fell after {:?}", since.elapsed());

    stop.send(true).unwrap();
    task.await.unwrap();
}
