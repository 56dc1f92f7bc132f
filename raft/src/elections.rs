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
#[path = "elections_tests.rs"]
mod tests;
