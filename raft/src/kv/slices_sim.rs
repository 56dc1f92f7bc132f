//! The simulation the first slices' tests run: nodes that decide from stale views of the
//! map, proposals applied in any order or lost, recalls answered or not, processes
//! restarted, nodes behind the agreement; and the proptest strategy of its steps.

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;

use super::super::*;
use crate::types::{Command, Compare, TxnOp};

pub(super) const WINDOW: WindowRef = WindowRef { len_ms: 1000, start_ms: 0 };
pub(super) const KEYS: [&str; 2] = ["ratelimit/p/aa/0", "ratelimit/p/bb/0"];
pub(super) const NODES: usize = 3;

#[derive(Debug, Clone)]
pub(super) enum Step {
    Enroll(usize),
    /// The node applies the log so far.
    Catch(usize),
    Request(usize, usize),
    /// The node's oldest proposal is committed and applied.
    Commit(usize),
    /// The node answers the recall markers its applied map shows.
    AnswerRecalls(usize),
    /// A changed limit reaches the node: it gives up the tokens it holds (as
    /// `Bucket::change_limit` does) and goes on under the new one.
    NewLimit(usize),
    /// A node that had not heard every member (just started) now has.
    Hear(usize),
    /// A node that heard every member and sees no agreement proposes it.
    Agree(usize),
    /// The node's process restarts: it forgets its keys and the answers to what it
    /// proposed (which may still commit), and knows its slot only from the applied map.
    /// With `true`, the new process's slice lease does not reach the window (it may take
    /// no slice in it; a process after it knows so).
    Restart(usize, bool),
    /// The node's oldest proposal is lost (never committed); the node hears of it (an
    /// error, a timeout) if it was its current process's.
    Lose(usize),
}

#[derive(Debug, Default)]
pub(super) struct Local {
    pub(super) tokens: u64,
    pub(super) used_slice: bool,
    pub(super) pending: bool,
}

#[derive(Default)]
pub(super) struct Node {
    /// How much of `history` the node has applied.
    pub(super) view: usize,
    /// Its slot, and the revision its enrolment was applied at.
    pub(super) slot: Option<(u8, u64)>,
    /// Whether this process made the enrolment, or no process before it had a lease that
    /// reached the window: else (one may have used the slot) it counts its slot as used.
    pub(super) fresh: bool,
    /// This process's lease does not reach the window: it takes no slice there.
    pub(super) lease_short: bool,
    /// The lease of some process before this one reached the window (`previous_reached`).
    pub(super) earlier_reached: bool,
    pub(super) enrolling: bool,
    pub(super) entries: HashMap<usize, Local>,
    /// Proposals not committed yet.
    pub(super) queue: VecDeque<Proposal>,
    /// Restarts so far: an answer to an earlier process's proposal reaches nobody.
    pub(super) generation: u32,
}

pub(super) struct Proposal {
    pub(super) key: Option<usize>,
    pub(super) cmd: Command,
    pub(super) generation: u32,
}

pub(super) struct Sim {
    /// Each node's limit: a change on its way through the cluster leaves them unequal.
    pub(super) limits: [u64; NODES],
    pub(super) history: Vec<KvState>,
    pub(super) nodes: Vec<Node>,
    pub(super) admitted: [u64; 2],
    /// Tokens each reservation asks for.
    pub(super) want: u64,
    /// The limit a `NewLimit` step brings.
    pub(super) next_limit: u64,
    /// Nodes that have not heard every member yet: they do not propose the agreement.
    pub(super) unheard: [bool; NODES],
}

impl Sim {
    pub(super) fn new(limit: u64) -> Sim {
        Sim::with_limits([limit; NODES])
    }

    /// A cluster that has not agreed yet: no node enrolls before it does.
    pub(super) fn unagreed(limits: [u64; NODES]) -> Sim {
        Sim { limits, history: vec![KvState::default()], nodes: (0..NODES).map(|_| Node::default()).collect(), admitted: [0; 2], want: 1, next_limit: limits[0], unheard: [false; NODES] }
    }

    /// A cluster that agreed long before: its first state holds the agreement.
    pub(super) fn with_limits(limits: [u64; NODES]) -> Sim {
        let mut sim = Sim::unagreed(limits);
        sim.history[0].apply(&Sim::agreement(), &mut Vec::new());
        sim
    }

    pub(super) fn agreement() -> Command {
        let put = TxnOp::Put { key: AGREED_KEY.into(), value: b"3".to_vec(), expires_at: None };
        Command::Txn { compares: vec![Compare { key: AGREED_KEY.into(), mod_revision: 0 }], ops: vec![put] }
    }

    pub(super) fn propose(&mut self, node: usize, key: Option<usize>, cmd: Command) {
        let generation = self.nodes[node].generation;
        self.nodes[node].queue.push_back(Proposal { key, cmd, generation });
    }

    /// Whether `node` may enroll: its applied map shows the agreement (heard every member
    /// or not; the gateway also asks that it be a member, which every simulated node is).
    pub(super) fn may_enroll(&self, node: usize) -> bool {
        self.history[self.nodes[node].view].get(AGREED_KEY).is_some()
    }

    /// Every node enrolled, and knows it.
    pub(super) fn enroll_all(&mut self) {
        for node in 0..NODES {
            self.step(&Step::Enroll(node));
            self.step(&Step::Commit(node));
            self.step(&Step::Catch(node));
        }
    }

    /// As the gateway's `Reserver::command_for`: the plain `Reserve` unless the node has a
    /// slot to settle, or its applied map shows the agreement.
    pub(super) fn reserve(&self, node: usize, key: usize) -> Command {
        let n = &self.nodes[node];
        if n.slot.is_none() && self.history[n.view].get(AGREED_KEY).is_none() {
            return Command::Reserve { key: KEYS[key].into(), want: self.want, limit: self.limits[node], expires_at: 9 };
        }
        self.reserve_in(node, key, true)
    }

    /// `ReserveIn`, saying how the node's slot went if `with_slot` (a reservation asked
    /// again after a plain `Reserve` keeps what that one said: nothing).
    pub(super) fn reserve_in(&self, node: usize, key: usize, with_slot: bool) -> Command {
        let n = &self.nodes[node];
        let used = !n.fresh || n.entries.get(&key).is_some_and(|l| l.used_slice);
        let slot = n.slot.filter(|_| with_slot).map(|(slot, _)| SlotUse { slot, used });
        Command::ReserveIn { key: KEYS[key].into(), want: self.want, limit: self.limits[node], expires_at: 9, window: WINDOW, slot }
    }

    /// What the node's applied map allows: its first slice of `key`, if it may use it.
    pub(super) fn may_use_slice(&self, node: usize, key: usize) -> bool {
        let n = &self.nodes[node];
        let view = &self.history[n.view];
        let Some((slot, enrolled_at)) = n.slot else { return false };
        n.fresh
            && !n.lease_short
            && view.revision() >= enrolled_at
            && u64::from(slot) < self.limits[node]
            && view.get(KEYS[key]).is_none_or(|kv| Counter::decode(&kv.value).is_some_and(|c| c.holds(slot)))
    }

    pub(super) fn step(&mut self, step: &Step) {
        match *step {
            Step::Enroll(node) => {
                let n = &self.nodes[node];
                if n.slot.is_none() && !n.enrolling && self.may_enroll(node) {
                    self.nodes[node].enrolling = true;
                    self.propose(node, None, Command::Enroll { node: node as u64, window: WINDOW, expires_at: 9 });
                }
            }
            Step::Catch(node) => self.nodes[node].view = self.history.len() - 1,
            Step::Request(node, key) => {
                if let Some(local) = self.nodes[node].entries.get_mut(&key) {
                    if local.tokens > 0 {
                        local.tokens -= 1;
                        self.admitted[key] += 1;
                    } else if !local.pending {
                        local.pending = true;
                        let cmd = self.reserve(node, key);
                        self.propose(node, Some(key), cmd);
                    }
                    return;
                }
                let used_slice = self.may_use_slice(node, key);
                if used_slice {
                    self.admitted[key] += 1;
                }
                self.nodes[node].entries.insert(key, Local { tokens: 0, used_slice, pending: true });
                let cmd = self.reserve(node, key);
                self.propose(node, Some(key), cmd);
            }
            Step::Commit(node) => {
                let Some(Proposal { key, cmd, generation, .. }) = self.nodes[node].queue.pop_front() else { return };
                let mut state = self.history.last().expect("a state").clone();
                let response = state.apply(&cmd, &mut Vec::new());
                self.history.push(state);
                let n = &mut self.nodes[node];
                if generation != n.generation {
                    return;
                }
                match response {
                    Response::Enrolled { revision, slot, fresh } => {
                        n.enrolling = false;
                        n.slot = slot.map(|s| (s, revision));
                        n.fresh = fresh || !n.earlier_reached;
                    }
                    Response::ReserveIn { granted, .. } | Response::Reserve { granted, .. } => {
                        let local = n.entries.get_mut(&key.expect("a key")).expect("an entry");
                        local.tokens += granted;
                        local.pending = false;
                    }
                    Response::Settled { .. } => {}
                    Response::NeedsWindow { .. } => {
                        let key = key.expect("a key");
                        let cmd = self.reserve_in(node, key, false);
                        self.propose(node, Some(key), cmd);
                    }
                    Response::Txn { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            Step::Hear(node) => self.unheard[node] = false,
            Step::Agree(node) => {
                let queued = self.nodes[node].queue.iter().any(|p| matches!(p.cmd, Command::Txn { .. }));
                if !self.unheard[node] && self.history[self.nodes[node].view].get(AGREED_KEY).is_none() && !queued {
                    self.propose(node, None, Sim::agreement());
                }
            }
            Step::NewLimit(node) => {
                self.limits[node] = self.next_limit;
                self.nodes[node].entries.values_mut().for_each(|local| local.tokens = 0);
            }
            Step::Restart(node, lease_short) => {
                let n = &mut self.nodes[node];
                n.earlier_reached |= !n.lease_short;
                n.lease_short = lease_short;
                n.entries.clear();
                (n.slot, n.fresh, n.enrolling) = (None, false, false);
                n.generation += 1;
                // It hears the members again (and needs not to, to enroll, once its map
                // holds the agreement).
                self.unheard[node] = true;
            }
            Step::Lose(node) => {
                let n = &mut self.nodes[node];
                let Some(lost) = n.queue.pop_front() else { return };
                if lost.generation != n.generation {
                    return;
                }
                match (lost.key, lost.cmd) {
                    (_, Command::Enroll { .. }) => n.enrolling = false,
                    (Some(key), _) => n.entries.get_mut(&key).expect("an entry").pending = false,
                    _ => {}
                }
            }
            Step::AnswerRecalls(node) => {
                let view = &self.history[self.nodes[node].view];
                // A slot this process did not enroll for is the one the applied map shows.
                let in_view = || view.get(&enrolled_key(WINDOW)).and_then(|kv| enrolled_nodes(&kv.value).iter().position(|n| *n == node as u64));
                let n = &self.nodes[node];
                let (slot, fresh) = match n.slot {
                    Some((slot, _)) => (slot, n.fresh),
                    None => match in_view() {
                        Some(slot) => (slot as u8, !n.earlier_reached),
                        None => return,
                    },
                };
                let asked: Vec<usize> = (0..KEYS.len()).filter(|k| view.get(&format!("{RECALL_PREFIX}{}", KEYS[*k])).is_some()).collect();
                for key in asked {
                    // A node that never saw the key records that it will not use the
                    // slice before it says so.
                    let local = self.nodes[node].entries.entry(key).or_default();
                    let used = !fresh || local.used_slice;
                    let settle = Command::Settle { key: KEYS[key].into(), limit: self.limits[node], expires_at: 9, window: WINDOW, slot: SlotUse { slot, used } };
                    self.propose(node, None, settle);
                }
            }
        }
    }
}

/// Any step; with `failures`, also restarts and lost proposals.
pub(super) fn step(failures: bool) -> impl Strategy<Value = Step> {
    let node = 0..NODES;
    let failure = if failures { 1 } else { 0 };
    prop_oneof![
        1 => node.clone().prop_map(Step::Enroll),
        2 => node.clone().prop_map(Step::Catch),
        4 => (node.clone(), 0..KEYS.len()).prop_map(|(n, k)| Step::Request(n, k)),
        4 => node.clone().prop_map(Step::Commit),
        1 => node.clone().prop_map(Step::AnswerRecalls),
        1 => node.clone().prop_map(Step::NewLimit),
        1 => node.clone().prop_map(Step::Hear),
        1 => node.clone().prop_map(Step::Agree),
        failure => (node.clone(), any::<bool>()).prop_map(|(n, short)| Step::Restart(n, short)),
        failure => node.prop_map(Step::Lose),
    ]
}
