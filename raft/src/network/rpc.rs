//! The messages of the cluster port: Raft's three RPCs, requests that only the leader can
//! serve (forwarded writes, membership changes, read index), and opaque calls for the
//! layer above (such as a join request).

use std::collections::BTreeSet;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use serde::{Deserialize, Serialize};

use crate::types::{Command, NodeId, RaftNode, Response, TypeConfig};

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Leader(LeaderRequest),
    /// A call for the layer above, dispatched to its `AppHandler` by `method`.
    App {
        method: String,
        #[serde(with = "crate::bytes_serde::vec")]
        body: Vec<u8>,
    },
}

/// What only the leader can do; a follower forwards these.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaderRequest {
    Write(Command),
    AddLearner { id: NodeId, node: RaftNode },
    /// Makes exactly `voters` the voters; other members stay learners when `retain`.
    SetVoters { voters: BTreeSet<NodeId>, retain: bool },
    RemoveNodes { ids: BTreeSet<NodeId> },
    /// The index a linearizable read must wait for, confirmed by a quorum.
    ReadIndex,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Leader(Result<LeaderReply, LeaderError>),
    App(Result<Vec<u8>, String>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaderReply {
    /// Committed and applied on the leader at `log_index`.
    Written { log_index: u64, response: Response },
    /// The read index (0 when the log is empty).
    ReadIndex { log_index: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum LeaderError {
    /// The node asked is not the leader, and the request was not appended: it is safe to
    /// send it again to `leader`.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, RaftNode)> },
    /// The leader refused the request (for example a membership change already running).
    #[error("{0}")]
    Refused(String),
    /// The leader is shutting down or failed; the outcome of a write is unknown.
    #[error("leader failed: {0}")]
    Fatal(String),
}
