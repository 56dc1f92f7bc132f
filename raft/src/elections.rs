//! Breaks split votes. openraft 0.9 draws a node's election timeout once, at start, and
//! checks it on a tick whose phase is set by when the node started. Two voters started
//! together then share a tick phase, and when their timeouts fall in the same tick they call
//! elections in the same millisecond, split the vote, and do it again a timeout later, term
//! after term (seen on loopback after the leader of three was killed: no leader for
//! seconds). Raft breaks ties only by randomness, so while this node is a candidate with no
//! leader the timer is ours: openraft's own election timer is switched off, and the next
//! election comes after a timeout drawn afresh for each term, from the same range. Once a
//! leader is known, or the node follows another candidate, openraft's timer is back on.
//! Elections come no more often than openraft's own would, so a stale node (removed, then
//! restarted with its old membership) campaigns no harder than before.

use std::future::Future;
use std::time::Duration;

use openraft::ServerState;
use rand::RngExt;
use tokio::sync::watch;

use crate::types::{Raft, RaftMetrics};

pub(crate) async fn break_split_votes(raft: Raft, election_timeout: (Duration, Duration), shutdown: watch::Receiver<bool>) {
    let elect = || {
        let raft = raft.clone();
        async move { raft.trigger().elect().await.is_ok() }
    };
    let openraft_timer = |on: bool| raft.runtime_config().elect(on);
    campaign_until_decided(raft.metrics(), election_timeout, elect, openraft_timer, shutdown).await
}

/// Calls an election whenever this node has been a candidate, with no leader, in the same
/// term for a timeout drawn from `election_timeout`; openraft's timer is off meanwhile.
/// `elect` returns false once Raft has stopped.
async fn campaign_until_decided<F, Fut>(
    mut metrics: watch::Receiver<RaftMetrics>,
    election_timeout: (Duration, Duration),
    mut elect: F,
    openraft_timer: impl Fn(bool),
    mut shutdown: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let undecided = |m: &RaftMetrics| m.state == ServerState::Candidate && m.current_leader.is_none();
    let (min, max) = election_timeout;
    let mut ours = false;
    loop {
        let (term, now_undecided) = {
            let m = metrics.borrow_and_update();
            (m.current_term, undecided(&m))
        };
        if now_undecided != ours {
            ours = now_undecided;
            openraft_timer(!ours);
        }
        if !ours {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                changed = metrics.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let timeout = min + max.saturating_sub(min).mul_f64(rand::rng().random_range(0.0..1.0));
        let decided = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(timeout) => false,
            m = metrics.wait_for(|m| !undecided(m) || m.current_term != term) => {
                if m.is_err() {
                    return;
                }
                true
            }
        };
        if !decided {
            tracing::info!(term, ?timeout, "the election is still undecided; calling another");
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

    const TIMEOUT: (Duration, Duration) = (Duration::from_millis(300), Duration::from_millis(600));

    fn metrics(state: ServerState, term: u64, leader: Option<u64>) -> RaftMetrics {
        let mut m = RaftMetrics::new_initial(1);
        (m.state, m.current_term, m.current_leader) = (state, term, leader);
        m
    }

    struct Breaker {
        metrics: watch::Sender<RaftMetrics>,
        elections: Arc<AtomicU32>,
        openraft_timer_on: Arc<AtomicBool>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    /// Runs the breaker over a metrics channel the test drives. Each election it calls
    /// starts a new term that splits again, as a stuck campaign would.
    fn start(initial: RaftMetrics) -> Breaker {
        let (metrics, rx) = watch::channel(initial);
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
        let task = tokio::spawn(campaign_until_decided(rx, TIMEOUT, elect, move |on| timer.store(on, Ordering::SeqCst), stop_rx));
        Breaker { metrics, elections, openraft_timer_on, stop, task }
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
        let started = Instant::now();
        let mut rx = b.metrics.subscribe();
        rx.wait_for(|m| m.current_term == 6).await.unwrap();
        assert!(!b.openraft_timer_on.load(Ordering::SeqCst), "openraft's fixed timer is off while the breaker's runs");
        let first = started.elapsed();
        rx.wait_for(|m| m.current_term == 7).await.unwrap();
        let second = started.elapsed() - first;
        for t in [first, second] {
            assert!(t >= TIMEOUT.0 && t < TIMEOUT.1, "re-election after {t:?}");
        }
        assert_ne!(first, second, "each term's timeout is drawn afresh");
        assert_eq!(b.stop().await, 2);
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
    async fn a_stopped_raft_ends_the_breaker() {
        let (tx, rx) = watch::channel(metrics(ServerState::Candidate, 5, None));
        let (_stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(campaign_until_decided(rx, TIMEOUT, || async { false }, |_| {}, stop_rx));
        tokio::time::sleep(TIMEOUT.1).await;
        assert!(task.is_finished(), "elect failing (Raft stopped) ends the task");
        drop(tx);
    }
}
