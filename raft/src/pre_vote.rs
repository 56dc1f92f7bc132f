//! PreVote (the Raft thesis, 9.6), which openraft 0.9 lacks. Without it a voter cut off
//! from the leader (isolated, or with only its link to the leader cut) calls an election
//! every timeout, each in a higher term. Nobody votes for it, but once the link is back the
//! first answer it gives the leader carries that term, and the leader steps down: a
//! healthy leader deposed, and writes stopped for an election, because one node was away.
//!
//! So this node campaigns only after a majority of voters (of each config, while the
//! membership is joint) has said it would vote for it, asked without anyone's term
//! changing. A voter says yes when it is not a leader that a quorum answers, has not
//! accepted a leader's append within the leader lease (openraft's: the longest election
//! timeout, for which it would refuse a real vote too), and the asker's log is at least as
//! long as its own. Until then openraft's election timer stays off and the split-vote
//! breaker calls no election (see `elections`). A voter that answers the call with an
//! error, an older build that does not know it, counts as a yes: such a cluster campaigns
//! as before.
//!
//! A node asks once it has heard no leader for the lease, and again every few tenths of
//! a timeout while it hears none. openraft's timer fires no sooner than the lease plus a
//! timeout after the last append, so a leader's death is not noticed any later than before.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::codec;
use crate::network::{Reply, Request, Transport};
use crate::restart_hold::LeaderContact;
use crate::types::{LogId, NodeId, Raft, RaftMetrics};

/// The cluster port's call for a pre-vote: an `App` call the store answers itself, so that
/// an older build hands it to its layer above, which refuses a method it does not know.
pub(crate) const METHOD: &str = "raft:pre-vote";

#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    last_log_id: Option<LogId>,
}

/// A voter's answer, with its reason when it is no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Answer {
    Yes,
    Leading,
    HearsLeader,
    LongerLog,
}

/// What a voter answers a node whose log ends at `theirs`: `leading` when it leads and a
/// quorum answered it within the lease; its own log ends at `mine`, and it last accepted a
/// leader's append `contact_age` ago (None: not since it started).
pub(crate) fn answer(leading: bool, contact_age: Option<Duration>, lease: Duration, mine: Option<LogId>, theirs: Option<LogId>) -> Answer {
    if leading {
        Answer::Leading
    } else if contact_age.is_some_and(|age| age < lease) {
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
    /// openraft's leader lease: the longest election timeout.
    pub lease: Duration,
}

impl Judge {
    pub(crate) fn answer(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let ask: Ask = codec::decode(body).map_err(|e| format!("pre-vote: {e}"))?;
        // A leader cut off from its quorum has no lease to protect (openraft 0.9 keeps it
        // leading); refusing for it would keep the rest from electing.
        let leading = crate::leader::leads_with_quorum(&self.raft.metrics().borrow(), self.lease);
        let mine = self.raft.data_metrics().borrow().last_log;
        let verdict = answer(leading, self.contact.age(), self.lease, mine, ask.last_log_id);
        codec::encode(&verdict).map_err(|e| format!("pre-vote: {e}"))
    }
}

/// True when the voters who said yes hold a majority of every config.
pub(crate) fn majority_in_every_config(configs: &[BTreeSet<NodeId>], yes: &BTreeSet<NodeId>) -> bool {
    !configs.is_empty() && configs.iter().all(|c| c.iter().filter(|id| yes.contains(id)).count() * 2 > c.len())
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

pub(crate) type AskFuture = Pin<Box<dyn Future<Output = Result<Reply, String>> + Send>>;
/// Sends the encoded ask to voter `id` at `addr`; the call ends by itself within about
/// the timeout given (the transport's connect timeout aside).
pub(crate) type AskFn = Arc<dyn Fn(NodeId, String, Vec<u8>, Duration) -> AskFuture + Send + Sync>;

/// Asks over the cluster port, only the node the membership names at each address.
pub(crate) fn over(transport: Arc<Transport>) -> AskFn {
    Arc::new(move |id, addr, body, timeout| {
        let transport = transport.clone();
        Box::pin(async move {
            let request = Request::App { method: METHOD.into(), body };
            transport.call_node(&addr, Some(id), &request, timeout).await.map_err(|e| e.to_string())
        })
    })
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
/// config said yes or `timeout` has passed. Calls still out finish on their own, so that
/// their connections go back to the pool rather than a new one being made each round.
pub(crate) async fn canvass(ask: &AskFn, m: &RaftMetrics, last_log_id: Option<LogId>, timeout: Duration) -> Tally {
    let membership = m.membership_config.membership();
    let configs = membership.get_joint_config().clone();
    let voters: BTreeSet<NodeId> = configs.iter().flatten().copied().collect();
    let mut tally = Tally { yes: BTreeSet::from([m.id]), ..Tally::default() };
    let body = codec::encode(&Ask { last_log_id }).expect("a log id encodes");
    let (answered, mut answers) = mpsc::channel(voters.len().max(1));
    for (&id, node) in membership.nodes().filter(|(id, _)| **id != m.id && voters.contains(id)) {
        let (call, answered) = (ask(id, node.addr.clone(), body.clone(), timeout), answered.clone());
        tokio::spawn(async move {
            let _ = answered.send((id, call.await)).await;
        });
    }
    drop(answered);
    tally.granted = majority_in_every_config(&configs, &tally.yes);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while !tally.granted {
        let (id, reply) = tokio::select! {
            _ = &mut deadline => break,
            answer = answers.recv() => match answer {
                Some(a) => a,
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

/// Whether this node should ask now, or else how long until it next looks: a voter that is
/// not the leader asks once it has heard no leader for `lease`.
pub(crate) fn when_to_ask(m: &RaftMetrics, contact_age: Option<Duration>, lease: Duration) -> Result<(), Duration> {
    let voter = m.membership_config.membership().voter_ids().any(|id| id == m.id);
    if !voter || m.state == ServerState::Leader {
        return Err(lease / 4);
    }
    match contact_age {
        Some(age) if age < lease => Err(lease - age),
        _ => Ok(()),
    }
}

/// Refusals in a row before one is logged at info: a leader's death brings one or two
/// (the voters asked heard it a moment later than this node), a node cut off many.
const QUIET_REFUSALS: u64 = 4;

/// Keeps `granted` true while the last pre-vote this node asked for was granted and it
/// has heard no leader since, false otherwise; ends once Raft has stopped.
pub(crate) async fn keep_asking(raft: Raft, ask: AskFn, contact: Arc<LeaderContact>, lease: Duration, granted: watch::Sender<bool>, shutdown: watch::Receiver<bool>) {
    let (metrics, data) = (raft.metrics(), raft.data_metrics());
    let state = || (metrics.borrow().clone(), data.borrow().last_log);
    ask_while_leaderless(state, || contact.age(), &ask, lease, &granted, shutdown).await
}

/// `keep_asking` over any source of metrics, leader contact and answers.
pub(crate) async fn ask_while_leaderless(
    state: impl Fn() -> (RaftMetrics, Option<LogId>),
    contact_age: impl Fn() -> Option<Duration>,
    ask: &AskFn,
    lease: Duration,
    granted: &watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut refused_in_a_row: u64 = 0;
    loop {
        let (m, last_log_id) = state();
        if m.running_state.is_err() {
            return;
        }
        let pause = match when_to_ask(&m, contact_age(), lease) {
            Err(wait) => {
                refused_in_a_row = 0;
                granted.send_if_modified(|g| std::mem::replace(g, false));
                wait
            }
            Ok(()) => {
                let tally = tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    tally = canvass(ask, &m, last_log_id, lease / 2) => tally,
                };
                if tally.granted {
                    if refused_in_a_row >= QUIET_REFUSALS {
                        tracing::info!(term = m.current_term, yes = ?tally.yes, "pre-vote granted by a majority; campaigns allowed");
                    }
                    refused_in_a_row = 0;
                } else {
                    refused_in_a_row += 1;
                    let (term, yes, no) = (m.current_term, &tally.yes, &tally.no);
                    if refused_in_a_row >= QUIET_REFUSALS && refused_in_a_row.is_power_of_two() {
                        tracing::info!(term, ?yes, ?no, refused_in_a_row, "pre-vote: no majority would vote for this node; not campaigning");
                    } else {
                        tracing::debug!(term, ?yes, ?no, refused_in_a_row, "pre-vote refused");
                    }
                }
                granted.send_if_modified(|g| std::mem::replace(g, tally.granted) != tally.granted);
                lease.mul_f64(rand::rng().random_range(0.15..0.3))
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
