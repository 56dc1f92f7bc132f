//! First slices of a rate-limit window's counters, so that a key's first request on a
//! node does not wait for a Raft round.
//!
//! A node enrolls in a window (`Enroll`) before the window's keys reach it, and gets a
//! slot. Every counter of that window created afterwards counts one token for each
//! enrolled slot below the limit, as if granted: its slot's holder may admit one
//! request of the key with no I/O. Whether it did is settled later, by its next
//! `ReserveIn` of the key (used) or when another node needs the token (a recall: the
//! state machine writes a marker under [`RECALL_PREFIX`], which every node watches, and
//! the holder answers with `Settle`, used or not). Until then the token is held: no
//! grant can take it, so the window never admits more than its limit.
//!
//! A node may use its slot for a key only if it knows the key's counter was created
//! after its enrolment, or holds its slot unsettled: it has applied its enrolment, and
//! its applied map has no counter for the key or one whose holders include its slot.
//! "Created afterwards" holds for every counter only because nodes enroll once the map
//! holds [`AGREED_KEY`], after which the plain `Reserve` (which knows no window, so makes
//! counters that hold no slot) creates none. An enrolment that may have been made before
//! (a retry, a restart) gets its slot back, not fresh: unless the node can tell that it
//! did not use it (see the limiter's slice lease), it may not use it, and answers
//! recalls as if it had.

use super::*;
use crate::types::{NodeId, SlotUse, WindowRef};

/// Enrolment records: `{prefix}{len_ms}/{start_ms}` holds the enrolled nodes' ids, in
/// slot order.
pub const ENROLLED_PREFIX: &str = "ratelimit-enrolled/";
/// Recall markers: `{prefix}{counter key}` exists while a node waits for first slices
/// of that counter that are not settled; each short grant writes it again.
pub const RECALL_PREFIX: &str = "ratelimit-recall/";
/// Slots a window has: settled slots are bits of one word.
pub const MAX_SLOTS: usize = 64;
/// The cluster's record that every member reads first slices' commands (put once, with a
/// transaction that creates it, by the first node that heard them all; its value is the
/// protocol, as text). From then on a plain `Reserve` creates no counter: one applied
/// after a node enrolled would hold no slot while that node took its slice. Nodes enroll
/// only once their map holds it, so every counter a plain `Reserve` made comes before
/// every enrolment in the log. A later protocol that needs its own agreement gets its
/// own key.
pub const AGREED_KEY: &str = "ratelimit-slices-agreed";

/// A counter's state: tokens granted (settled first slices used included), how many
/// slots it holds a first slice for (slots `0..holders`), and which of those settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub granted: u64,
    pub holders: u8,
    pub settled: u64,
}

impl Counter {
    /// Eight bytes (a counter from before first slices, or with none held or settled) or
    /// seventeen.
    pub fn decode(value: &[u8]) -> Option<Counter> {
        match value.len() {
            8 => Some(Counter { granted: u64::from_be_bytes(value.try_into().ok()?), ..Counter::default() }),
            17 => Some(Counter {
                granted: u64::from_be_bytes(value[..8].try_into().ok()?),
                holders: value[8],
                settled: u64::from_be_bytes(value[9..].try_into().ok()?),
            }),
            _ => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // A counter that holds no slot keeps the slots settled on it all the same, or a
        // node that says (with each reservation) it used its slot would count again.
        if self.holders == 0 && self.settled == 0 {
            return self.granted.to_be_bytes().to_vec();
        }
        let mut out = Vec::with_capacity(17);
        out.extend_from_slice(&self.granted.to_be_bytes());
        out.push(self.holders);
        out.extend_from_slice(&self.settled.to_be_bytes());
        out
    }

    /// First slices held under `limit`: those of slots below it that have not settled. A
    /// node takes its slice only if its slot is below the limit it knows, so a slot at or
    /// above `limit` can be taken only by a node with a larger one (a change on its way
    /// through the cluster), and the window may then admit up to that larger limit.
    pub fn held(&self, limit: u64) -> u64 {
        let slots = u64::from(self.holders).min(limit);
        let mask = if slots as usize >= MAX_SLOTS { u64::MAX } else { (1u64 << slots) - 1 };
        slots - u64::from((self.settled & mask).count_ones())
    }

    /// What no grant under `limit` may take: granted, and held.
    pub fn charge(&self, limit: u64) -> u64 {
        self.granted + self.held(limit)
    }

    /// Whether `slot` holds a first slice of this counter not settled yet.
    pub fn holds(&self, slot: u8) -> bool {
        slot < self.holders && self.settled & (1 << slot) == 0
    }

    /// Settles `slot`'s first slice, once: used, it counts as granted; unused, it is free.
    /// A slot the counter does not hold that says it was used counts too: a node takes a
    /// slot only if its applied map shows the counter holds it or was not made yet, but an
    /// admission is counted rather than lost whatever let a node take it.
    pub fn settle(&mut self, slot: SlotUse) {
        let bit = 1u64.checked_shl(u32::from(slot.slot)).unwrap_or(0);
        if bit == 0 || self.settled & bit != 0 {
            return;
        }
        if slot.used || self.holds(slot.slot) {
            self.settled |= bit;
            self.granted += u64::from(slot.used);
        }
    }
}

/// The enrolment record's key for `window`.
pub fn enrolled_key(window: WindowRef) -> String {
    format!("{ENROLLED_PREFIX}{}/{}", window.len_ms, window.start_ms)
}

/// The ids enrolled in a window, in slot order, from its record's value.
pub fn enrolled_nodes(value: &[u8]) -> Vec<NodeId> {
    value.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("eight bytes"))).collect()
}

/// The recall marker's value: how many first slices are held, and the counter's limit
/// and window (a holder that never saw the key needs them to settle it).
pub fn encode_recall(held: u64, limit: u64, window: WindowRef) -> Vec<u8> {
    [held, limit, window.len_ms, window.start_ms].iter().flat_map(|n| n.to_be_bytes()).collect()
}

pub fn decode_recall(value: &[u8]) -> Option<(u64, u64, WindowRef)> {
    let n: Vec<u64> = value.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("eight bytes"))).collect();
    match n[..] {
        [held, limit, len_ms, start_ms] if value.len() == 32 => Some((held, limit, WindowRef { len_ms, start_ms })),
        _ => None,
    }
}

impl KvState {
    /// The counter at `key`, or the one a grant would create there now: a slot for each
    /// node enrolled in `window` so far. It holds a slot whatever the limit: which slots
    /// are held is judged under each grant's own limit (see `Counter::held`), since
    /// a node under another limit than this grant's may take one. `Err` when `key` holds
    /// something else.
    fn counter_or_new(&self, key: &str, window: WindowRef) -> Result<Counter, Response> {
        Ok(self.stored_counter(key)?.unwrap_or_else(|| {
            let enrolled = self.entries.get(&enrolled_key(window)).map_or(0, |kv| kv.value.len() / 8);
            Counter { holders: enrolled.min(MAX_SLOTS) as u8, ..Counter::default() }
        }))
    }

    /// The counter at `key`, if there is one; `Err` (the refusal) when `key` holds
    /// something else.
    pub(super) fn stored_counter(&self, key: &str) -> Result<Option<Counter>, Response> {
        let Some(kv) = self.entries.get(key) else { return Ok(None) };
        let counter = Counter::decode(&kv.value).ok_or_else(|| Response::Invalid {
            revision: self.revision,
            reason: format!("key {key:?} does not hold a reservation counter"),
        })?;
        Ok(Some(counter))
    }

    /// Writes `counter` at `key` if it changed (a new one once it holds or grants
    /// anything), keeping the later of the two expiry times; bumps the revision then.
    pub(super) fn store_counter(&mut self, key: &str, counter: Counter, expires_at: u64, events: &mut Vec<Event>) {
        let before = self.entries.get(key);
        let value = counter.encode();
        match before {
            Some(kv) if kv.value[..] == value[..] => return,
            None if counter == Counter::default() => return,
            _ => {}
        }
        let keep_until = before.and_then(|kv| kv.expires_at).map_or(expires_at, |t| t.max(expires_at));
        self.revision += 1;
        self.put_at(key, value, Some(keep_until), events);
    }

    /// Writes, moves or removes `key`'s recall marker: there while `held` slices of it
    /// are asked back (`asked`), and renewed by every short grant so holders hear again.
    #[allow(clippy::too_many_arguments)]
    fn mark_recall(&mut self, key: &str, held: u64, limit: u64, window: WindowRef, expires_at: u64, asked: bool, events: &mut Vec<Event>) {
        let marker = format!("{RECALL_PREFIX}{key}");
        let exists = self.entries.contains_key(&marker);
        if held == 0 && exists {
            self.revision += 1;
            self.delete_at(&marker, events);
        } else if held > 0 && (asked || exists) {
            self.revision += 1;
            self.put_at(&marker, encode_recall(held, limit, window), Some(expires_at), events);
        }
    }

    pub(super) fn apply_enroll(&mut self, node: NodeId, window: WindowRef, expires_at: u64, events: &mut Vec<Event>) -> Response {
        let key = enrolled_key(window);
        let mut nodes = self.entries.get(&key).map(|kv| enrolled_nodes(&kv.value)).unwrap_or_default();
        if let Some(slot) = nodes.iter().position(|n| *n == node) {
            return Response::Enrolled { revision: self.revision, slot: Some(slot as u8), fresh: false };
        }
        if nodes.len() >= MAX_SLOTS {
            return Response::Enrolled { revision: self.revision, slot: None, fresh: false };
        }
        nodes.push(node);
        let slot = (nodes.len() - 1) as u8;
        let keep_until = self.entries.get(&key).and_then(|kv| kv.expires_at).map_or(expires_at, |t| t.max(expires_at));
        self.revision += 1;
        self.put_at(&key, nodes.iter().flat_map(|n| n.to_be_bytes()).collect(), Some(keep_until), events);
        Response::Enrolled { revision: self.revision, slot: Some(slot), fresh: true }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_reserve_in(&mut self, key: &str, want: u64, limit: u64, expires_at: u64, window: WindowRef, slot: Option<SlotUse>, events: &mut Vec<Event>) -> Response {
        let mut counter = match self.counter_or_new(key, window) {
            Ok(c) => c,
            Err(invalid) => return invalid,
        };
        if let Some(slot) = slot {
            counter.settle(slot);
        }
        let granted = want.min(limit.saturating_sub(counter.charge(limit)));
        counter.granted += granted;
        self.store_counter(key, counter, expires_at, events);
        let held = counter.held(limit);
        self.mark_recall(key, held, limit, window, expires_at, granted < want, events);
        Response::ReserveIn { revision: self.revision, granted, total: counter.charge(limit), held }
    }

    pub(super) fn apply_settle(&mut self, key: &str, limit: u64, expires_at: u64, window: WindowRef, slot: SlotUse, events: &mut Vec<Event>) -> Response {
        let mut counter = match self.counter_or_new(key, window) {
            Ok(c) => c,
            Err(invalid) => return invalid,
        };
        counter.settle(slot);
        self.store_counter(key, counter, expires_at, events);
        let held = counter.held(limit);
        self.mark_recall(key, held, limit, window, expires_at, false, events);
        Response::Settled { revision: self.revision, held }
    }
}

#[cfg(test)]
#[path = "slices_tests.rs"]
mod tests;
