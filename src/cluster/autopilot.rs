//! The leader's autopilot, as Consul has one: promotes caught-up learners until there are
//! `--voters` voters, replaces a voter that gossip has seen dead for longer than the grace
//! period with a healthy learner, and removes members that left on purpose. One
//! membership change per round, so each commits before the next is decided.
//!
//! Gossip is not the only witness: a member that answers the leader's Raft calls
//! (authenticated with the cluster secret) is up, whatever gossip says. Gossip can be
//! wrong about a healthy member: cut off from it (seeds lost), or told otherwise by a
//! process that took the member's id without the secret. So a member is dead only when
//! both gossip and Raft have lost it, and "left" is believed only of one Raft has lost.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_raft::{MemberStatus, Role, Status, Store};

use super::peers::{PeerInfo, PeerView};
use crate::shutdown::Shutdown;

/// A learner within this many entries of the leader counts as caught up.
const CAUGHT_UP_LAG: u64 = 100;
const ROUND: Duration = Duration::from_millis(250);
/// A member that answered a Raft call from the leader this recently is up. The leader's
/// heartbeats go to every member several times a second.
const ANSWERED_WITHIN: Duration = Duration::from_secs(2);

pub struct Autopilot {
    pub store: Store,
    pub peers: Arc<dyn PeerView>,
    pub target_voters: usize,
    pub dead_grace: Duration,
}

/// What one round decided to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SetVoters(BTreeSet<u64>, &'static str),
    Remove(u64, &'static str),
}

impl Autopilot {
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut dead_since: HashMap<u64, Instant> = HashMap::new();
        // Members that stopped answering this leader, for the log: one line when one
        // stops and one when it answers again (openraft's own errors are silenced).
        let mut silent: BTreeSet<u64> = BTreeSet::new();
        let mut leading_since: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(ROUND) => {}
            }
            let status = self.store.status();
            if status.role != Role::Leader {
                dead_since.clear();
                silent.clear();
                leading_since = None;
                continue;
            }
            // A new leader has not called anyone yet: nobody is silent before it has.
            let settled = leading_since.get_or_insert_with(Instant::now).elapsed() >= ANSWERED_WITHIN;
            let peers = self.peers.peers();
            let answering: BTreeSet<u64> =
                status.members.iter().map(|m| m.id).filter(|id| self.store.peer_contact_age(*id).is_some_and(|age| age <= ANSWERED_WITHIN)).collect();
            for m in status.members.iter().filter(|m| settled && m.id != status.id) {
                let answers = answering.contains(&m.id);
                if !answers && silent.insert(m.id) {
                    tracing::warn!(node_id = m.id, addr = %m.node.addr, voter = m.voter, "a member has not answered the leader for {ANSWERED_WITHIN:?}");
                } else if answers && silent.remove(&m.id) {
                    tracing::info!(node_id = m.id, addr = %m.node.addr, "a member answers the leader again");
                }
            }
            silent.retain(|id| status.members.iter().any(|m| m.id == *id));
            let up = |id: u64| is_up(&peers, &answering, id);
            let now = Instant::now();
            let dead: BTreeSet<u64> = status
                .members
                .iter()
                .filter(|m| m.id != status.id && !up(m.id))
                .filter(|m| now.duration_since(*dead_since.entry(m.id).or_insert(now)) >= self.dead_grace)
                .map(|m| m.id)
                .collect();
            dead_since.retain(|id, _| !up(*id));
            let Some(action) = decide(&status, &peers, &answering, &dead, self.target_voters) else { continue };
            tracing::info!(?action, "autopilot");
            let result = match &action {
                Action::SetVoters(voters, _) => self.store.set_voters(voters.clone()).await,
                Action::Remove(id, _) => self.store.remove_nodes(BTreeSet::from([*id])).await,
            };
            if let Err(e) = result {
                tracing::warn!(?action, error = %e, "autopilot change failed; will retry");
            }
        }
    }
}

/// Up: alive to gossip, or answering the leader's Raft calls.
fn is_up(peers: &[PeerInfo], answering: &BTreeSet<u64>, id: u64) -> bool {
    is_alive(peers, id) || answering.contains(&id)
}

fn is_alive(peers: &[PeerInfo], id: u64) -> bool {
    peers.iter().any(|p| p.node_id == id && p.alive && !p.left)
}

fn has_left(peers: &[PeerInfo], id: u64) -> bool {
    peers.iter().any(|p| p.node_id == id && p.left)
}

fn caught_up(m: &MemberStatus) -> bool {
    m.lag.is_some_and(|lag| lag <= CAUGHT_UP_LAG)
}

/// The next membership change, if any. `answering` holds members that answer the
/// leader's Raft calls, `dead` members dead (to gossip and Raft) for longer than the grace.
pub fn decide(status: &Status, peers: &[PeerInfo], answering: &BTreeSet<u64>, dead: &BTreeSet<u64>, target: usize) -> Option<Action> {
    let voters: BTreeSet<u64> = status.members.iter().filter(|m| m.voter).map(|m| m.id).collect();
    let healthy_learner = status
        .members
        .iter()
        .filter(|m| !m.voter && is_up(peers, answering, m.id) && caught_up(m))
        .map(|m| m.id)
        .min();

    // Members that said goodbye go first: they will not come back to vote. (A member
    // leaving on purpose removes itself; one that still answers Raft has not gone, and a
    // "left" in gossip could be anyone's word.)
    if let Some(id) = status.members.iter().map(|m| m.id).find(|id| *id != status.id && has_left(peers, *id) && !answering.contains(id)) {
        return Some(Action::Remove(id, "left the cluster"));
    }
    // A dead voter is swapped for a healthy learner in one change, so the voter count
    // (and with it the quorum size) never dips.
    if let (Some(dead_voter), Some(learner)) = (voters.iter().find(|v| dead.contains(v)), healthy_learner) {
        let mut next = voters.clone();
        next.remove(dead_voter);
        next.insert(learner);
        return Some(Action::SetVoters(next, "replace a dead voter"));
    }
    if voters.len() < target {
        if let Some(learner) = healthy_learner {
            let mut next = voters.clone();
            next.insert(learner);
            return Some(Action::SetVoters(next, "promote a caught-up learner"));
        }
    }
    // Dead learners hold no vote; removing them only tidies the member list.
    if let Some(id) = status.members.iter().filter(|m| !m.voter && dead.contains(&m.id)).map(|m| m.id).next() {
        return Some(Action::Remove(id, "dead learner"));
    }
    // Demoted voters that are not needed (after a replacement) stay learners; a dead
    // voter with no replacement stays a voter: removing it would shrink the quorum's
    // tolerance for the next failure, and it may come back with its data.
    None
}

#[cfg(test)]
#[path = "autopilot_tests.rs"]
mod tests;
