//! Breaks split votes. openraft 0.9 draws a node's election timeout once, at start, and
//! checks it on a tick whose phase is set by when the node started. Two voters started
//! together then share a tick phase, and when their timeouts fall in the same tick they call
//! elections in the same millisecond, split the vote, and do it again a timeout later, term
//! after term (seen on loopback after the leader of three was killed: no leader for
//! seconds). Raft breaks ties only by randomness, so a candidate whose campaign is still
//! open after a pause drawn afresh each time calls the next election itself. The pause is
//! under the shortest election timeout, so it comes before openraft's own timer would, and a
//! campaign on a LAN is decided long before it ends.

use std::future::Future;
use std::time::Duration;

use openraft::ServerState;
use rand::RngExt;
use tokio::sync::watch;

use crate::types::{Raft, RaftMetrics};

pub(crate) async fn break_split_votes(raft: Raft, election_timeout_min: Duration, shutdown: watch::Receiver<bool>) {
    let elect = || {
        let raft = raft.clone();
        async move { raft.trigger().elect().await.is_ok() }
    };
    campaign_until_decided(raft.metrics(), election_timeout_min, elect, shutdown).await
}

/// Calls an election whenever this node has been a candidate, with no leader, for a random
/// pause in [min/2, min) of the election timeout. `elect` returns false once Raft has stopped.
async fn campaign_until_decided<F, Fut>(
    mut metrics: watch::Receiver<RaftMetrics>,
    election_timeout_min: Duration,
    mut elect: F,
    mut shutdown: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let undecided = |m: &RaftMetrics| m.state == ServerState::Candidate && m.current_leader.is_none();
    loop {
        let term = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            m = metrics.wait_for(undecided) => match m {
                Ok(m) => m.current_term,
                Err(_) => return,
            },
        };
        let half = election_timeout_min / 2;
        let pause = half + half.mul_f64(rand::rng().random_range(0.0..1.0));
        let decided = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(pause) => false,
            m = metrics.wait_for(|m| !undecided(m) || m.current_term != term) => {
                if m.is_err() {
                    return;
                }
                true
            }
        };
        if !decided {
            tracing::info!(term, ?pause, "the election is still undecided; calling another");
            if !elect().await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;

    const MIN: Duration = Duration::from_millis(300);

    fn metrics(state: ServerState, term: u64, leader: Option<u64>) -> RaftMetrics {
        let mut m = RaftMetrics::new_initial(1);
        (m.state, m.current_term, m.current_leader) = (state, term, leader);
        m
    }

    /// Runs the breaker over a metrics channel the test drives; the returned counter counts
    /// elections called, and each one starts a new term that is again split, as a stuck
    /// campaign would.
    fn start(initial: RaftMetrics) -> (watch::Sender<RaftMetrics>, Arc<AtomicU32>, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(initial);
        let (stop_tx, stop_rx) = watch::channel(false);
        let calls = Arc::new(AtomicU32::new(0));
        let (tx2, calls2) = (tx.clone(), calls.clone());
        let elect = move || {
            calls2.fetch_add(1, Ordering::SeqCst);
            tx2.send_modify(|m| m.current_term += 1);
            async { true }
        };
        let task = tokio::spawn(campaign_until_decided(rx, MIN, elect, stop_rx));
        (tx, calls, stop_tx, task)
    }

    #[tokio::test(start_paused = true)]
    async fn a_split_campaign_is_called_again_after_a_pause_under_the_timeout_each_term() {
        let (tx, calls, stop, task) = start(metrics(ServerState::Candidate, 5, None));
        let started = Instant::now();
        let mut rx = tx.subscribe();
        rx.wait_for(|m| m.current_term == 6).await.unwrap();
        let first = started.elapsed();
        assert!(first >= MIN / 2 && first < MIN, "first re-election after {first:?}");
        rx.wait_for(|m| m.current_term == 7).await.unwrap();
        let second = started.elapsed() - first;
        assert!(second >= MIN / 2 && second < MIN, "second re-election after {second:?}");
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_campaign_that_finds_a_leader_is_left_alone() {
        let (tx, calls, stop, task) = start(metrics(ServerState::Candidate, 5, None));
        tokio::time::sleep(MIN / 4).await;
        tx.send_modify(|m| (m.state, m.current_leader) = (ServerState::Follower, Some(2)));
        tokio::time::sleep(MIN * 10).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no election called once a leader is known");
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn followers_and_leaders_never_call_elections() {
        for (state, leader) in [(ServerState::Follower, None), (ServerState::Follower, Some(2)), (ServerState::Leader, Some(1)), (ServerState::Learner, None)] {
            let (_tx, calls, stop, task) = start(metrics(state, 5, leader));
            tokio::time::sleep(MIN * 10).await;
            assert_eq!(calls.load(Ordering::SeqCst), 0, "{state:?} with leader {leader:?}");
            stop.send(true).unwrap();
            task.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_raft_ends_the_breaker() {
        let (tx, rx) = watch::channel(metrics(ServerState::Candidate, 5, None));
        let (_stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(campaign_until_decided(rx, MIN, || async { false }, stop_rx));
        tokio::time::sleep(MIN).await;
        assert!(task.is_finished(), "elect failing (Raft stopped) ends the task");
        drop(tx);
    }
}
