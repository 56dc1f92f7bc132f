//! Breaks split votes. openraft 0.9 draws a node's election timeout once, at start, and
//! checks it on a tick whose phase is set by when the node started. Two voters started
//! together then share a tick phase, and when their timeouts fall in the same tick they call
//! elections in the same millisecond, split the vote, and do it again a timeout later, term
//! after term (seen on loopback after the leader of three was killed: no leader for
//! seconds). Raft breaks ties only by randomness, so while this node is a candidate with no
//! leader the timer is ours: openraft's own election timer is switched off, and the next
//! election comes after a timeout drawn afresh for each term, from the same range. Once a
//! leader is known, or the node follows another candidate, openraft's timer is back on.
//! Elections come no more often than openraft's own would. A restarted node's campaigns
//! may also be held (`restart_hold`): then neither timer runs. And neither runs until a
//! majority of voters has said it would vote for this node (`pre_vote`).
//!
//! openraft delays its next election by twice the maximum timeout once a peer has refused
//! its vote for having a longer log, so that the peer, which can win, gets there first.
//! The breaker does the same. Without it, a candidate that could never win kept its term
//! one step ahead of the one that could, every term, and nobody was elected (seen after
//! the leader was cut off mid-write: two candidates at term 22 after 10 s).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use rand::RngExt;
use tokio::sync::watch;

use crate::restart_hold::RestartHold;
use crate::types::{Raft, RaftMetrics};

/// The latest term in which a peer refused this node's vote for having a longer log; the
/// network client records each refusal. Only a refusal in the current term counts, so one
/// that arrives late says nothing about a later election.
#[derive(Debug, Default)]
pub(crate) struct LongerLogSeen(AtomicU64);

impl LongerLogSeen {
    pub(crate) fn record(&self, term: u64) {
        self.0.fetch_max(term, Ordering::Relaxed);
    }

    fn in_term(&self, term: u64) -> bool {
        self.0.load(Ordering::Relaxed) == term
    }
}

/// What keeps this node from campaigning: a restart's hold, and until a majority of
/// voters would vote for it, the pre-vote (`pre_voted` false).
pub(crate) struct Gates {
    pub hold: RestartHold,
    pub pre_voted: watch::Receiver<bool>,
}

pub(crate) async fn break_split_votes(
    raft: Raft,
    election_timeout: (Duration, Duration),
    gates: Gates,
    longer_logs: Arc<LongerLogSeen>,
    shutdown: watch::Receiver<bool>,
) {
    let elect = || {
        let raft = raft.clone();
        async move { raft.trigger().elect().await.is_ok() }
    };
    let openraft_timer = |on: bool| raft.runtime_config().elect(on);
    campaign_until_decided(raft.metrics(), election_timeout, gates, &longer_logs, elect, openraft_timer, shutdown).await
}

/// Calls an election whenever this node has been a candidate, with no leader, in the same
/// term for a timeout drawn from `election_timeout`; openraft's timer is off meanwhile.
/// While the gates are shut, neither calls one. A refusal from a peer with a longer log delays
/// the next by twice the maximum timeout, as openraft does. `elect` returns false once
/// Raft has stopped.
async fn campaign_until_decided<F, Fut>(
    mut metrics: watch::Receiver<RaftMetrics>,
    election_timeout: (Duration, Duration),
    gates: Gates,
    longer_logs: &LongerLogSeen,
    mut elect: F,
    openraft_timer: impl Fn(bool),
    mut shutdown: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let Gates { mut hold, mut pre_voted } = gates;
    let undecided = |m: &RaftMetrics| m.state == ServerState::Candidate && m.current_leader.is_none();
    let (min, max) = election_timeout;
    // openraft starts with its timer on.
    let mut timer_on = true;
    // The term whose next election waits longer, after a refusal from a longer log.
    let mut backing_off: Option<u64> = None;
    let mut was_held = false;
    // Elections called in a row without a leader: logged at 1, 2, 4, 8... so that a node
    // cut off from a quorum says so without a line every half second.
    let mut undecided_in_a_row: u64 = 0;
    // The pre-vote's task ends only with Raft; should it end otherwise, this node campaigns
    // as it would without PreVote rather than never again.
    let mut pre_vote_alive = true;
    // A timeout found the pre-vote refused and the breaker waited for a grant: the next
    // election comes after a short draw, not a whole timeout more.
    let mut granted_late = false;
    loop {
        let (term, now_undecided, held) = {
            let m = metrics.borrow_and_update();
            (m.current_term, undecided(&m), hold.held(&m, tokio::time::Instant::now()))
        };
        let granted = !pre_vote_alive || *pre_voted.borrow_and_update();
        if held != was_held {
            was_held = held;
            if held {
                tracing::info!(term, "restarted: not campaigning until a leader reaches this node or none is known alive");
            } else {
                tracing::info!(term, "campaigns allowed again");
            }
        }
        let want_timer = !now_undecided && !held && granted;
        if want_timer != timer_on {
            timer_on = want_timer;
            openraft_timer(timer_on);
        }
        if !now_undecided || held {
            if !now_undecided {
                undecided_in_a_row = 0;
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                changed = metrics.changed() => if changed.is_err() { return },
                changed = pre_voted.changed(), if pre_vote_alive => pre_vote_alive = changed.is_ok(),
                _ = hold.changed() => {}
            }
            continue;
        }
        let spread = max.saturating_sub(min).mul_f64(rand::rng().random_range(0.0..1.0));
        let timeout = if backing_off == Some(term) {
            max * 2
        } else if std::mem::take(&mut granted_late) {
            spread
        } else {
            min + spread
        };
        let decided = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(timeout) => false,
            m = metrics.wait_for(|m| !undecided(m) || m.current_term != term) => {
                if m.is_err() {
                    return;
                }
                true
            }
            _ = hold.changed() => true,
        };
        if !decided {
            if pre_vote_alive && !*pre_voted.borrow() {
                tracing::debug!(term, "the election is still undecided, but no majority would vote for this node: waiting for one");
                granted_late = tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    granted = pre_voted.wait_for(|g| *g) => {
                        pre_vote_alive = granted.is_ok();
                        true
                    }
                    m = metrics.wait_for(|m| !undecided(m) || m.current_term != term) => {
                        if m.is_err() {
                            return;
                        }
                        false
                    }
                    _ = hold.changed() => false,
                };
                continue;
            }
            if longer_logs.in_term(term) && backing_off != Some(term) {
                backing_off = Some(term);
                tracing::info!(term, "a peer with a longer log refused this node's vote; leaving it the next election");
                continue;
            }
            undecided_in_a_row += 1;
            if undecided_in_a_row.is_power_of_two() {
                tracing::info!(term, ?timeout, elections_in_a_row = undecided_in_a_row, "the election is still undecided; calling another");
            } else {
                tracing::debug!(term, ?timeout, "the election is still undecided; calling another");
            }
            if !elect().await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
