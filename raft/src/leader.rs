//! What the leader does with requests only it can serve, whether they came from this
//! node or were forwarded by a follower.

use std::collections::BTreeSet;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::ChangeMembers;

use std::time::Duration;

use openraft::ServerState;

use crate::network::{LeaderError, LeaderReply, LeaderRequest};
use crate::types::{NodeId, Raft, RaftMetrics, RaftNode, TypeConfig};

/// Whether the node `m` describes leads with a quorum that answered it within `within`
/// (or is the only voter): openraft 0.9 keeps a leader cut off from its quorum leading.
pub(crate) fn leads_with_quorum(m: &RaftMetrics, within: Duration) -> bool {
    let alone = || m.membership_config.membership().voter_ids().all(|id| id == m.id);
    m.state == ServerState::Leader && (alone() || m.millis_since_quorum_ack.is_some_and(|ms| Duration::from_millis(ms) <= within))
}

pub(crate) async fn execute(raft: &Raft, request: LeaderRequest) -> Result<LeaderReply, LeaderError> {
    match request {
        LeaderRequest::Write(cmd) => written(raft.client_write(cmd).await),
        LeaderRequest::AddLearner { id, node } => written(raft.add_learner(id, node, false).await),
        LeaderRequest::SetVoters { voters, retain } => written(raft.change_membership(voters, retain).await),
        LeaderRequest::RemoveNodes { ids } => remove_nodes(raft, ids).await,
        LeaderRequest::ReadIndex => match raft.get_read_log_id().await {
            Ok((read, _applied)) => Ok(LeaderReply::ReadIndex { log_index: read.map_or(0, |l| l.index) }),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(LeaderError::NotLeader { leader: f.leader_id.zip(f.leader_node) })
            }
            Err(RaftError::APIError(e)) => Err(LeaderError::Refused(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(LeaderError::Fatal(e.to_string())),
        },
    }
}

/// Voters are first demoted out of the voter set (dropped, not kept as learners), then
/// learners are removed; openraft refuses to remove a voter directly.
async fn remove_nodes(raft: &Raft, ids: BTreeSet<NodeId>) -> Result<LeaderReply, LeaderError> {
    let membership = raft.metrics().borrow().membership_config.clone();
    let voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
    let mut reply = None;
    if voters.iter().any(|v| ids.contains(v)) {
        let remaining: BTreeSet<NodeId> = voters.difference(&ids).copied().collect();
        if remaining.is_empty() {
            return Err(LeaderError::Refused("refusing to remove every voter".into()));
        }
        reply = Some(written(raft.change_membership(remaining, false).await)?);
    }
    let membership = raft.metrics().borrow().membership_config.clone();
    let learners: BTreeSet<NodeId> = membership.membership().learner_ids().filter(|l| ids.contains(l)).collect();
    if !learners.is_empty() {
        reply = Some(written(raft.change_membership(ChangeMembers::RemoveNodes(learners), false).await)?);
    }
    reply.ok_or_else(|| LeaderError::Refused(format!("none of {ids:?} is a member")))
}

fn written(
    result: Result<ClientWriteResponse<TypeConfig>, RaftError<NodeId, ClientWriteError<NodeId, RaftNode>>>,
) -> Result<LeaderReply, LeaderError> {
    match result {
        Ok(r) => Ok(LeaderReply::Written { log_index: r.log_id.index, response: r.data }),
        // openraft answers ForwardToLeader only for entries it never appended or has
        // truncated, so the caller may resend it to the new leader.
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(LeaderError::NotLeader { leader: f.leader_id.zip(f.leader_node) })
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => Err(LeaderError::Refused(e.to_string())),
        Err(RaftError::Fatal(e)) => Err(LeaderError::Fatal(e.to_string())),
    }
}
