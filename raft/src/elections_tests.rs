//! Unit tests of the split-vote breaker, on a metrics channel the tests drive.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use tokio::time::Instant;

use super::*;
use crate::restart_hold::test_support::{fixture, with_voters, GRACE, LIMIT};

const TIMEOUT: (Duration, Duration) = (Duration::from_millis(300), Duration::from_millis(600));
/// tokio's timer fires on whole milliseconds, so a sleep can end up to 1 ms late: every
/// upper bound below allows that much (without it, about 1 run in 300 failed).
const TIMER_SLACK: Duration = Duration::from_millis(1);

fn metrics(state: ServerState, term: u64, leader: Option<u64>) -> RaftMetrics {
    let mut m = with_voters(3);
    (m.state, m.current_term, m.current_leader) = (state, term, leader);
    m
}

/// A hold already over, as for a node that has heard from a leader.
fn released() -> RestartHold {
    let f = fixture();
    f.contact.record();
    f.hold
}

struct Breaker {
    metrics: watch::Sender<RaftMetrics>,
    /// Whether a majority would vote for this node; true unless a test says otherwise.
    pre_voted: watch::Sender<bool>,
    elections: Arc<AtomicU32>,
    openraft_timer_on: Arc<AtomicBool>,
    longer_logs: Arc<LongerLogSeen>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the breaker over a metrics channel the test drives. Each election it calls
/// starts a new term that splits again, as a stuck campaign would.
fn start(initial: RaftMetrics) -> Breaker {
    start_held(initial, released())
}

fn start_held(initial: RaftMetrics, hold: RestartHold) -> Breaker {
    start_gated(initial, hold, true)
}

fn start_gated(initial: RaftMetrics, hold: RestartHold, granted: bool) -> Breaker {
    let (metrics, rx) = watch::channel(initial);
    let (pre_voted, pre_voted_rx) = watch::channel(granted);
    let (stop, stop_rx) = watch::channel(false);
    let elections = Arc::new(AtomicU32::new(0));
    let openraft_timer_on = Arc::new(AtomicBool::new(true));
    let (tx, counted) = (metrics.clone(), elections.clone());
    let elect = move || {
        counted.fetch_add(1, Ordering::SeqCst);
        tx.send_modify(|m| m.current_term += 1);
        async { true }
    };
    let timer = openraft_timer_on.clone();
    let longer_logs = Arc::new(LongerLogSeen::default());
    let seen = longer_logs.clone();
    let task = tokio::spawn(async move {
        campaign_until_decided(rx, TIMEOUT, Gates { hold, pre_voted: pre_voted_rx }, &seen, elect, move |on| timer.store(on, Ordering::SeqCst), stop_rx).await
    });
    Breaker { metrics, pre_voted, elections, openraft_timer_on, longer_logs, stop, task }
}

impl Breaker {
    async fn stop(self) -> u32 {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
        self.elections.load(Ordering::SeqCst)
    }
}

#[tokio::test(start_paused = true)]
async fn a_split_campaign_is_called_again_after_a_fresh_timeout_each_term() {
    let b = start(metrics(ServerState::Candidate, 5, None));
    let mut rx = b.metrics.subscribe();
    let mut intervals = Vec::new();
    for term in 6..=10 {
        let since = Instant::now();
        rx.wait_for(|m| m.current_term == term).await.unwrap();
        assert!(!b.openraft_timer_on.load(Ordering::SeqCst), "openraft's fixed timer is off while the breaker's runs");
        intervals.push(since.elapsed());
    }
    for t in &intervals {
        assert!(*t >= TIMEOUT.0 && *t < TIMEOUT.1 + TIMER_SLACK, "re-election after {t:?}");
    }
    // Drawn to the millisecond (the paused timer's grain), two terms' timeouts can be
    // equal by chance, once in about 300 runs; five all equal, never in practice.
    intervals.dedup();
    assert!(intervals.len() > 1, "each term's timeout is drawn afresh: {intervals:?}");
    assert_eq!(b.stop().await, 5);
}

#[tokio::test(start_paused = true)]
async fn a_campaign_that_finds_a_leader_is_left_alone_and_openraft_times_again() {
    let b = start(metrics(ServerState::Candidate, 5, None));
    tokio::time::sleep(TIMEOUT.0 / 2).await;
    assert!(!b.openraft_timer_on.load(Ordering::SeqCst));
    b.metrics.send_modify(|m| (m.state, m.current_leader) = (ServerState::Follower, Some(2)));
    tokio::time::sleep(TIMEOUT.1 * 10).await;
    assert!(b.openraft_timer_on.load(Ordering::SeqCst), "openraft's timer is back once a leader is known");
    assert_eq!(b.stop().await, 0, "no election called once a leader is known");
}

#[tokio::test(start_paused = true)]
async fn followers_and_leaders_never_call_elections() {
    for (state, leader) in [(ServerState::Follower, None), (ServerState::Follower, Some(2)), (ServerState::Leader, Some(1)), (ServerState::Learner, None)] {
        let b = start(metrics(state, 5, leader));
        tokio::time::sleep(TIMEOUT.1 * 10).await;
        assert!(b.openraft_timer_on.load(Ordering::SeqCst), "{state:?}: openraft's timer is left on");
        assert_eq!(b.stop().await, 0, "{state:?} with leader {leader:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_from_a_longer_log_leaves_the_next_election_to_that_peer() {
    let b = start(metrics(ServerState::Candidate, 5, None));
    // openraft's own campaign for term 5 was refused by a peer with a longer log.
    b.longer_logs.record(5);
    let started = Instant::now();
    let mut rx = b.metrics.subscribe();
    rx.wait_for(|m| m.current_term == 6).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= TIMEOUT.0 + TIMEOUT.1 * 2 && waited < TIMEOUT.1 * 3 + TIMER_SLACK * 2,
        "the next election after {waited:?}, not after twice the maximum timeout more"
    );
    // That election was not refused: the one after it comes after a plain timeout.
    rx.wait_for(|m| m.current_term == 7).await.unwrap();
    let next = started.elapsed() - waited;
    assert!(next >= TIMEOUT.0 && next < TIMEOUT.1 + TIMER_SLACK, "then a plain timeout again, not {next:?}");
    assert_eq!(b.stop().await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_seen_before_a_leader_was_found_does_not_delay_a_later_election() {
    let b = start(metrics(ServerState::Candidate, 5, None));
    b.longer_logs.record(5);
    b.metrics.send_modify(|m| (m.state, m.current_leader) = (ServerState::Follower, Some(2)));
    tokio::time::sleep(Duration::from_millis(1)).await;
    // The leader is lost; openraft's timer starts term 9, which splits.
    b.metrics.send_modify(|m| (m.state, m.current_leader, m.current_term) = (ServerState::Candidate, None, 9));
    let started = Instant::now();
    b.metrics.subscribe().wait_for(|m| m.current_term == 10).await.unwrap();
    assert!(started.elapsed() < TIMEOUT.1 + TIMER_SLACK, "the old refusal delayed this election: {:?}", started.elapsed());
    assert_eq!(b.stop().await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_held_restart_runs_no_timer_until_the_grace_ends_then_openraft_times() {
    let f = fixture();
    let b = start_held(metrics(ServerState::Follower, 5, None), f.hold);
    tokio::time::sleep(GRACE - Duration::from_millis(1)).await;
    assert!(!b.openraft_timer_on.load(Ordering::SeqCst), "no campaign within the grace");
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(b.openraft_timer_on.load(Ordering::SeqCst), "openraft's timer runs once the grace is over");
    assert_eq!(b.stop().await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_leader_reported_elsewhere_holds_even_a_split_candidate_until_a_leader_is_heard() {
    let h = fixture();
    h.elsewhere.send_replace(true);
    let b = start_held(metrics(ServerState::Candidate, 5, None), h.hold);
    tokio::time::sleep(GRACE * 2).await;
    assert!(!b.openraft_timer_on.load(Ordering::SeqCst));
    assert_eq!(b.elections.load(Ordering::SeqCst), 0, "no election while a live leader is reported elsewhere");
    h.contact.record();
    b.metrics.send_modify(|m| (m.state, m.current_leader) = (ServerState::Follower, Some(2)));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(b.openraft_timer_on.load(Ordering::SeqCst), "a leader heard: openraft times again");
    assert_eq!(b.stop().await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_split_candidate_held_past_the_limit_campaigns_again() {
    let h = fixture();
    h.elsewhere.send_replace(true);
    let b = start_held(metrics(ServerState::Candidate, 5, None), h.hold);
    tokio::time::sleep(LIMIT - Duration::from_millis(1)).await;
    assert_eq!(b.elections.load(Ordering::SeqCst), 0);
    tokio::time::sleep(TIMEOUT.1 + TIMER_SLACK * 3).await;
    assert_eq!(b.elections.load(Ordering::SeqCst), 1, "the hold is bounded: the breaker campaigns after the limit");
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_a_pre_vote_neither_timer_runs_and_with_one_openraft_times() {
    let b = start_gated(metrics(ServerState::Follower, 5, Some(2)), released(), false);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!b.openraft_timer_on.load(Ordering::SeqCst), "no majority would vote for this node: openraft's timer is off");
    b.pre_voted.send_replace(true);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(b.openraft_timer_on.load(Ordering::SeqCst), "a majority would: openraft's timer runs");
    b.pre_voted.send_replace(false);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!b.openraft_timer_on.load(Ordering::SeqCst), "a leader heard again: off until the next pre-vote");
    assert_eq!(b.stop().await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_split_candidate_calls_no_election_until_a_majority_would_vote_for_it() {
    let b = start_gated(metrics(ServerState::Candidate, 5, None), released(), false);
    tokio::time::sleep(TIMEOUT.1 * 10).await;
    assert_eq!(b.elections.load(Ordering::SeqCst), 0, "a candidate cut off from a majority raises no term");
    assert!(!b.openraft_timer_on.load(Ordering::SeqCst));
    b.pre_voted.send_replace(true);
    let granted_at = Instant::now();
    b.metrics.subscribe().wait_for(|m| m.current_term == 6).await.unwrap();
    let waited = granted_at.elapsed();
    assert!(waited < TIMEOUT.1 - TIMEOUT.0 + TIMER_SLACK, "granted: an election after a short draw, not a whole timeout more: {waited:?}");
    assert_eq!(b.stop().await, 1);
}

#[tokio::test(start_paused = true)]
async fn if_the_pre_vote_task_ends_the_node_campaigns_as_without_it() {
    let mut b = start_gated(metrics(ServerState::Candidate, 5, None), released(), false);
    tokio::time::sleep(TIMEOUT.1 * 3).await;
    assert_eq!(b.elections.load(Ordering::SeqCst), 0);
    drop(std::mem::replace(&mut b.pre_voted, watch::channel(false).0));
    let mut rx = b.metrics.subscribe();
    rx.wait_for(|m| m.current_term == 7).await.unwrap();
    b.metrics.send_modify(|m| (m.state, m.current_leader) = (ServerState::Follower, Some(2)));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(b.openraft_timer_on.load(Ordering::SeqCst), "openraft's timer runs again once a leader is known");
    assert_eq!(b.stop().await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_stopped_raft_ends_the_breaker() {
    let (tx, rx) = watch::channel(metrics(ServerState::Candidate, 5, None));
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (_granted, granted_rx) = watch::channel(true);
    let task = tokio::spawn(async move {
        campaign_until_decided(rx, TIMEOUT, Gates { hold: released(), pre_voted: granted_rx }, &LongerLogSeen::default(), || async { false }, |_| {}, stop_rx).await
    });
    tokio::time::sleep(TIMEOUT.1).await;
    assert!(task.is_finished(), "elect failing (Raft stopped) ends the task");
    drop(tx);
}
