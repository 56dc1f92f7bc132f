//! Membership operations for the layer above (initialise, add learners, choose voters,
//! remove members) and the status view of this node and, on the leader, its followers.

use std::collections::{BTreeMap, BTreeSet};

use openraft::error::{InitializeError, RaftError};
use openraft::ServerState;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::network::{LeaderReply, LeaderRequest};
use crate::store::Store;
use crate::types::{NodeId, RaftNode};

/// What this node is in the Raft group right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: NodeId,
    pub node: RaftNode,
    pub voter: bool,
    /// Last log index known replicated to it (leader only).
    pub matched_index: Option<u64>,
    /// How far it trails the leader's last log index (leader only).
    pub lag: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Highest log index in the last snapshot.
    pub snapshot_index: Option<u64>,
    /// On the leader: milliseconds since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    pub members: Vec<MemberStatus>,
    /// The applied map's revision.
    pub revision: u64,
}

impl Store {
    /// Makes this node a one-member cluster. Returns false (and changes nothing) if it
    /// already belongs to a cluster, as on every restart.
    pub async fn initialize(&self) -> Result<bool, StoreError> {
        let members = BTreeMap::from([(self.id(), self.node())]);
        match self.raft().initialize(members).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(RaftError::APIError(e)) => Err(StoreError::Refused(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(StoreError::Uncertain(e.to_string())),
        }
    }

    /// True once this node has any membership: initialised here or added by a leader.
    pub fn is_member(&self) -> bool {
        let m = self.raft().metrics().borrow().membership_config.clone();
        let has_nodes = m.membership().nodes().next().is_some();
        has_nodes
    }

    /// Adds (or updates the address of) a non-voting member. Returns once the change is
    /// committed; the learner then catches up in the background.
    pub async fn add_learner(&self, id: NodeId, node: RaftNode) -> Result<u64, StoreError> {
        self.membership_call(LeaderRequest::AddLearner { id, node }).await
    }

    /// Makes exactly `voters` the voting members; other members stay as learners.
    pub async fn set_voters(&self, voters: BTreeSet<NodeId>) -> Result<u64, StoreError> {
        self.membership_call(LeaderRequest::SetVoters { voters, retain: true }).await
    }

    /// Adds `id` to the voters (it must already be a learner).
    pub async fn promote(&self, id: NodeId) -> Result<u64, StoreError> {
        let mut voters = self.voters();
        voters.insert(id);
        self.set_voters(voters).await
    }

    /// Turns voter `id` into a learner.
    pub async fn demote(&self, id: NodeId) -> Result<u64, StoreError> {
        let mut voters = self.voters();
        voters.remove(&id);
        self.set_voters(voters).await
    }

    /// Removes members entirely. Removing the leader makes it step down once the change
    /// commits, and the remaining voters elect a new one: this is how a leader hands off.
    pub async fn remove_nodes(&self, ids: BTreeSet<NodeId>) -> Result<u64, StoreError> {
        self.membership_call(LeaderRequest::RemoveNodes { ids }).await
    }

    pub fn voters(&self) -> BTreeSet<NodeId> {
        let m = self.raft().metrics().borrow().membership_config.clone();
        m.membership().voter_ids().collect()
    }

    async fn membership_call(&self, request: LeaderRequest) -> Result<u64, StoreError> {
        match self.leader_call(request).await? {
            LeaderReply::Written { log_index, .. } => Ok(log_index),
            LeaderReply::ReadIndex { .. } => Err(StoreError::Uncertain("unexpected read index reply".into())),
        }
    }

    pub fn status(&self) -> Status {
        let m = self.raft().metrics().borrow().clone();
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        let last = m.last_log_index.unwrap_or(0);
        let replication = m.replication.as_ref();
        let members = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| {
                let matched = replication.and_then(|r| r.get(id)).map(|l| l.map_or(0, |l| l.index));
                MemberStatus {
                    id: *id,
                    node: node.clone(),
                    voter: voters.contains(id),
                    matched_index: matched,
                    lag: matched.map(|i| last.saturating_sub(i)),
                }
            })
            .collect();
        let role = match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        };
        Status {
            id: m.id,
            role,
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            members,
            revision: self.revision(),
        }
    }

    /// Asks this node to build a snapshot now (and so allow the log to be purged).
    pub async fn trigger_snapshot(&self) -> Result<(), StoreError> {
        self.raft().trigger().snapshot().await.map_err(|e| StoreError::Uncertain(e.to_string()))
    }
}
