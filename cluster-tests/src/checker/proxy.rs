//! The data plane never waits on consensus: every proxied request to a node that was
//! running and not paused from the request's start to its end answers 200 from the echo
//! upstream, through leader changes, elections, lost quorum and partitions between nodes.
//! Requests to a node killed, paused or restarting meanwhile are excluded, not counted.

use super::Verdict;
use crate::history::Op;

/// `t0`: the run's start (unix ms); messages give times in ms since it, as the history.
pub fn check(proxied: &[Op], t0: u64) -> Verdict {
    let mut v = Verdict::new("proxied requests to running nodes succeed");
    for op in proxied.iter().filter(|o| o.node_up == Some(true)) {
        v.check((op.status != Some(200)).then(|| {
            let status = op.status.map_or("no answer".to_owned(), |s| s.to_string());
            format!("GET {} on node {} at {}..{} ms: {status} {}", op.target, op.node, op.start.saturating_sub(t0), op.end.saturating_sub(t0), op.details)
        }));
    }
    v
}
