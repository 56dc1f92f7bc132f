//! PreVote (the Raft thesis, 9.6), which openraft 0.9 lacks. Without it a voter cut off
//! from the leader (isolated, or with only its link to the leader cut) calls an election
//! every timeout, each in a higher term. Nobody votes for it, but once the link is back the
//! first answer it gives the leader carries that term, and the leader steps down: a
//! healthy leader deposed, and writes stopped for an election, because one node was away.
//!
//! So this node campaigns only after a majority of voters (of each config, while the
//! membership is joint) has said it would vote for it, asked without anyone's term
//! changing. A voter says yes when it is not the leader, has not accepted a leader's append
//! within the shortest election timeout, and the asker's log is at least as long as its
//! own. Until then openraft's election timer stays off and the split-vote breaker calls no
//! election (see `elections`). A voter that answers the call with an error, an older build
//! that does not know it, counts as a yes: such a cluster campaigns as before.
//!
//! Asking starts once this node has heard no leader for the shortest election timeout,
//! well before openraft's timer would fire (the leader lease plus a timeout), so a leader's
//! death is not noticed any later than before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::{LogId, ServerState};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::codec;
use crate::network::{Reply, Request, Transport};
use crate::restart_hold::LeaderContact;
use crate::types::{NodeId, Raft, RaftMetrics};

/// The cluster port's call for a pre-vote: an `App` call the store answers itself, so that
/// an older build hands it to its layer above, which refuses a method it does not know.
pub(crate) const METHOD: &str = "raft:pre-vote";

#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    last_log_id: Option<LogId<NodeId>>,
}

/// A voter's answer, with its reason when it is no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Answer {
    Yes,
    Leading,
    HearsLeader,
    LongerLog,
}

/// What a voter in `state`, whose log ends at `mine` and which last accepted a leader's
/// append `contact_age` ago (None: not since it started), answers a node whose log ends
/// at `theirs`.
pub(crate) fn answer(state: ServerState, contact_age: Option<Duration>, quiet: Duration, mine: Option<LogId<NodeId>>, theirs: Option<LogId<NodeId>>) -> Answer {
    if state == ServerState::Leader {
        Answer::Leading
    } else if contact_age.is_some_and(|age| age < quiet) {
        Answer::HearsLeader
    } else if theirs < mine {
        Answer::LongerLog
    } else {
        Answer::Yes
    }
}

/// The answering side, held by the cluster port's server.
pub(crate) struct Judge {
    pub raft: Raft,
    pub contact: Arc<LeaderContact>,
    /// The shortest election timeout.
    pub quiet: Duration,
}

impl Judge {
    pub(crate) fn answer(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let ask: Ask = codec::decode(body).map_err(|e| format!("pre-vote: {e}"))?;
        let state = self.raft.metrics().borrow().state;
        let mine = self.raft.data_metrics().borrow().last_log;
        let verdict = answer(state, self.contact.age(), self.quiet, mine, ask.last_log_id);
        codec::encode(&verdict).map_err(|e| format!("pre-vote: {e}"))
    }
}

/// True when the voters who said yes hold a majority of every config.
pub(crate) fn majority_in_every_config(configs: &[BTreeSet<NodeId>], yes: &BTreeSet<NodeId>) -> bool {
    !configs.is_empty() && configs.iter().all(|c| c.iter().filter(|id| yes.contains(id)).count() * 2 > c.len())
}

/// What came of asking: the voters who said yes (this node among them) and why the others
/// did not.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub granted: bool,
    pub yes: BTreeSet<NodeId>,
    pub no: BTreeMap<NodeId, String>,
}

/// Asks every other voter of the membership in `m`, and stops once a majority of every
/// config said yes or `timeout` has passed.
async fn canvass(transport: &Arc<Transport>, m: &RaftMetrics, last_log_id: Option<LogId<NodeId>>, timeout: Duration) -> Tally {
    let membership = m.membership_config.membership();
    let configs = membership.get_joint_config().clone();
    let mut tally = Tally { yes: BTreeSet::from([m.id]), ..Tally::default() };
    let voters: BTreeSet<NodeId> = configs.iter().flatten().copied().collect();
    let body = match codec::encode(&Ask { last_log_id }) {
        Ok(b) => b,
        Err(e) => {
            tally.no.insert(m.id, e.to_string());
            return tally;
        }
    };
    let mut asks = JoinSet::new();
    for (&id, node) in membership.nodes().filter(|(id, _)| **id != m.id && voters.contains(id)) {
        let (transport, addr, body) = (transport.clone(), node.addr.clone(), body.clone());
        asks.spawn(async move {
            let request = Request::App { method: METHOD.into(), body };
            let reply = transport.call_node(&addr, Some(id), &request, timeout).await;
            (id, reply.map_err(|e| e.to_string()))
        });
    }
    tally.granted = majority_in_every_config(&configs, &tally.yes);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while !tally.granted {
        let (id, reply) = tokio::select! {
            _ = &mut deadline => break,
            joined = asks.join_next() => match joined {
                Some(Ok(answered)) => answered,
                Some(Err(_)) => continue,
                None => break,
            },
        };
        match said_yes(reply) {
            Ok(()) => {
                tally.yes.insert(id);
            }
            Err(why) => {
                tally.no.insert(id, why);
            }
        }
        tally.granted = majority_in_every_config(&configs, &tally.yes);
    }
    if !tally.granted {
        for id in voters.into_iter().filter(|id| !tally.yes.contains(id)) {
            tally.no.entry(id).or_insert_with(|| format!("no answer within {timeout:?}"));
        }
    }
    tally
}

/// Whether a voter's reply is a yes, or else why not. A build without PreVote refuses the
/// call as one it does not know: it would vote as openraft always has, so that is a yes.
pub(crate) fn said_yes(reply: Result<Reply, String>) -> Result<(), String> {
    match reply? {
        Reply::App(Ok(bytes)) => match codec::decode::<Answer>(&bytes) {
            Ok(Answer::Yes) => Ok(()),
            Ok(no) => Err(format!("{no:?}")),
            Err(e) => Err(format!("bad answer: {e}")),
        },
        Reply::App(Err(_)) => Ok(()),
        _ => Err("unexpected reply".into()),
    }
}

/// Whether this node should ask now, or else how long until it next looks: a voter that is
/// not the leader asks once it has heard no leader for `quiet`.
pub(crate) fn when_to_ask(m: &RaftMetrics, contact_age: Option<Duration>, quiet: Duration) -> Result<(), Duration> {
    let voter = m.membership_config.membership().get_joint_config().iter().any(|c| c.contains(&m.id));
    if !voter || m.state == ServerState::Leader {
        return Err(quiet / 2);
    }
    match contact_age {
        Some(age) if age < quiet => Err(quiet - age),
        _ => Ok(()),
    }
}

/// Keeps `granted` true while the last pre-vote this node asked for was granted and it
/// has heard no leader since; false otherwise. Asks again every half timeout or so while
/// it hears no leader. Logs refusals at 1, 2, 4, 8... in a row.
pub(crate) async fn keep_asking(
    raft: Raft,
    transport: Arc<Transport>,
    contact: Arc<LeaderContact>,
    quiet: Duration,
    granted: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut refused_in_a_row: u64 = 0;
    loop {
        let m = raft.metrics().borrow().clone();
        let pause = match when_to_ask(&m, contact.age(), quiet) {
            Err(wait) => {
                refused_in_a_row = 0;
                granted.send_if_modified(|g| std::mem::replace(g, false));
                wait
            }
            Ok(()) => {
                let last_log_id = raft.data_metrics().borrow().last_log;
                let tally = tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    tally = canvass(&transport, &m, last_log_id, quiet) => tally,
                };
                if tally.granted {
                    if refused_in_a_row > 0 {
                        tracing::info!(term = m.current_term, yes = ?tally.yes, "pre-vote granted by a majority; campaigns allowed");
                    }
                    refused_in_a_row = 0;
                } else {
                    refused_in_a_row += 1;
                    if refused_in_a_row.is_power_of_two() {
                        tracing::info!(
                            term = m.current_term,
                            yes = ?tally.yes,
                            no = ?tally.no,
                            refused_in_a_row,
                            "pre-vote: no majority would vote for this node; not campaigning"
                        );
                    }
                }
                granted.send_if_modified(|g| std::mem::replace(g, tally.granted) != tally.granted);
                quiet.mul_f64(rand::rng().random_range(0.3..0.6))
            }
        };
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
#[path = "pre_vote_tests.rs"]
mod tests;
