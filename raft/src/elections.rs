//! Breaks split votes. openraft draws a node's election timeout once, at start, and checks
//! it on a tick; two voters started together can then keep calling elections in the same
//! instant and splitting the vote, term after term (seen on loopback after the leader of
//! three was killed: no leader for seconds). With one leader per term, as in Raft, nothing
//! else breaks the tie, so a voter that has known no leader for a whole election timeout
//! calls an election itself, at a moment drawn afresh each time.

use std::time::Duration;

use rand::RngExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::types::Raft;

pub(crate) async fn break_split_votes(raft: Raft, timeout: (Duration, Duration), mut shutdown: watch::Receiver<bool>) {
    let (min, max) = (timeout.0.as_millis() as u64, timeout.1.as_millis().max(timeout.0.as_millis() + 1) as u64);
    let mut leaderless_since: Option<Instant> = None;
    loop {
        let pause = Duration::from_millis(rand::rng().random_range(min..max));
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(pause) => {}
        }
        let (leaderless, voter) = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            (m.current_leader.is_none(), m.membership_config.membership().voter_ids().any(|v| v == m.id))
        };
        if !leaderless || !voter {
            leaderless_since = None;
            continue;
        }
        let since = *leaderless_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= timeout.1 {
            tracing::info!(leaderless_for = ?since.elapsed(), "no leader for a whole election timeout; calling an election");
            if raft.trigger().elect().await.is_err() {
                return;
            }
            leaderless_since = Some(Instant::now());
        }
    }
}
