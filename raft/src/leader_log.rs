//! One info line on every node whenever the leader it knows changes: which node leads, in
//! which term, or that none is known. What an operator looks for first after a failure,
//! and openraft says it only at debug level.

use openraft::ServerState;
use tokio::sync::watch;

use crate::types::{NodeId, RaftMetrics};

/// What a node knows of the leader, as the line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    ThisNode,
    Other(NodeId),
    None,
}

pub(crate) fn known(m: &RaftMetrics) -> Known {
    match m.current_leader {
        Some(id) if id == m.id && m.state == ServerState::Leader => Known::ThisNode,
        Some(id) if id != m.id => Known::Other(id),
        _ => Known::None,
    }
}

/// Logs each change of `known` until Raft stops or `shutdown` turns true. The first state
/// is logged only once a leader is known: a node starting has none for a moment.
pub(crate) async fn log_leader_changes(mut metrics: watch::Receiver<RaftMetrics>, mut shutdown: watch::Receiver<bool>) {
    let mut last = Known::None;
    loop {
        let (now, term) = {
            let m = metrics.borrow_and_update();
            (known(&m), m.current_term)
        };
        if now != last {
            match now {
                Known::ThisNode => tracing::info!(term, "this node leads"),
                Known::Other(leader) => tracing::info!(term, leader, "following a new leader"),
                Known::None => tracing::info!(term, "no leader known"),
            }
            last = now;
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restart_hold::test_support::with_voters;

    fn metrics(state: ServerState, leader: Option<NodeId>) -> RaftMetrics {
        let mut m = with_voters(3);
        (m.state, m.current_leader) = (state, leader);
        m
    }

    #[test]
    fn a_node_knows_itself_as_leader_only_when_it_leads() {
        assert_eq!(known(&metrics(ServerState::Leader, Some(1))), Known::ThisNode);
        assert_eq!(known(&metrics(ServerState::Follower, Some(2))), Known::Other(2));
        assert_eq!(known(&metrics(ServerState::Candidate, None)), Known::None);
        // A candidate voted for itself names itself before it has won.
        assert_eq!(known(&metrics(ServerState::Candidate, Some(1))), Known::None);
    }
}
