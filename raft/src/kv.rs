//! The replicated map itself: a pure, deterministic `apply` over an ordered map with
//! revisions. No I/O, no clock, no locks: the state machine wraps it, proptest checks it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::types::{Command, Compare, Event, EventKind, FailedCompare, KeyValue, Response, TxnOp};

/// The whole replicated map and its global revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    revision: u64,
    entries: BTreeMap<String, KeyValue>,
}

impl KvState {
    /// The global revision: how many changes have been applied since the store began.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&KeyValue> {
        self.entries.get(key)
    }

    /// Every key starting with `prefix`, in key order.
    pub fn scan<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a KeyValue)> + 'a {
        self.entries
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Applies one command. Changes are pushed to `events` in the order they happened.
    pub fn apply(&mut self, cmd: &Command, events: &mut Vec<Event>) -> Response {
        match cmd {
            Command::Put { key, value, expires_at } => {
                self.revision += 1;
                let prev = self.put_at(key, value.clone(), *expires_at, events);
                Response::Put { revision: self.revision, prev }
            }
            Command::Delete { key } => {
                let prev = self.entries.contains_key(key).then(|| {
                    self.revision += 1;
                    self.delete_at(key, events)
                });
                Response::Delete { revision: self.revision, prev: prev.flatten() }
            }
            Command::Txn { compares, ops } => self.apply_txn(compares, ops, events),
            Command::Reserve { key, want, limit, expires_at } => {
                self.apply_reserve(key, *want, *limit, *expires_at, events)
            }
            Command::Expire { before } => self.apply_expire(*before, events),
            Command::Batch(cmds) => Response::Batch(cmds.iter().map(|c| self.apply(c, events)).collect()),
            Command::Enroll { node, window, expires_at } => self.apply_enroll(*node, *window, *expires_at, events),
            Command::ReserveIn { key, want, limit, expires_at, window, slot } => {
                self.apply_reserve_in(key, *want, *limit, *expires_at, *window, *slot, events)
            }
            Command::Settle { key, limit, expires_at, window, slot } => self.apply_settle(key, *limit, *expires_at, *window, *slot, events),
        }
    }

    fn apply_txn(&mut self, compares: &[Compare], ops: &[TxnOp], events: &mut Vec<Event>) -> Response {
        for (index, cmp) in compares.iter().enumerate() {
            let actual = self.entries.get(&cmp.key).map_or(0, |kv| kv.mod_revision);
            if actual != cmp.mod_revision {
                let failed = FailedCompare { index, key: cmp.key.clone(), expected: cmp.mod_revision, actual };
                return Response::Txn { revision: self.revision, failed: Some(failed) };
            }
        }
        let changes = ops.iter().any(|op| match op {
            TxnOp::Put { .. } => true,
            TxnOp::Delete { key } => self.entries.contains_key(key),
        });
        if changes {
            // One revision for the whole transaction, as etcd does: watchers see its
            // changes as one step.
            self.revision += 1;
            for op in ops {
                match op {
                    TxnOp::Put { key, value, expires_at } => {
                        self.put_at(key, value.clone(), *expires_at, events);
                    }
                    TxnOp::Delete { key } => {
                        self.delete_at(key, events);
                    }
                }
            }
        }
        Response::Txn { revision: self.revision, failed: None }
    }

    fn apply_reserve(&mut self, key: &str, want: u64, limit: u64, expires_at: u64, events: &mut Vec<Event>) -> Response {
        let mut counter = match self.stored_counter(key) {
            Ok(Some(counter)) => counter,
            // Only `ReserveIn` knows the window whose enrolled slots a new counter holds.
            Ok(None) if self.entries.contains_key(slices::AGREED_KEY) => return Response::NeedsWindow { revision: self.revision },
            Ok(None) => slices::Counter::default(),
            Err(invalid) => return invalid,
        };
        // First slices a counter holds are not the plain `Reserve`'s to grant either.
        let granted = want.min(limit.saturating_sub(counter.charge(limit)));
        counter.granted += granted;
        self.store_counter(key, counter, expires_at, events);
        Response::Reserve { revision: self.revision, granted, total: counter.charge(limit) }
    }

    fn apply_expire(&mut self, before: u64, events: &mut Vec<Event>) -> Response {
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, kv)| kv.expires_at.is_some_and(|t| t <= before))
            .map(|(k, _)| k.clone())
            .collect();
        if !expired.is_empty() {
            self.revision += 1;
            for key in &expired {
                self.delete_at(key, events);
            }
        }
        Response::Expire { revision: self.revision, removed: expired.len() as u64 }
    }

    /// Writes `key` at the current revision; the caller has already bumped it.
    fn put_at(&mut self, key: &str, value: Vec<u8>, expires_at: Option<u64>, events: &mut Vec<Event>) -> Option<KeyValue> {
        let revision = self.revision;
        let prev = self.entries.get(key).cloned();
        let kv = KeyValue {
            value: value.into(),
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            expires_at,
        };
        self.entries.insert(key.to_owned(), kv.clone());
        events.push(Event { revision, key: key.to_owned(), kind: EventKind::Put(kv) });
        prev
    }

    /// Removes `key` at the current revision; the caller has already bumped it.
    fn delete_at(&mut self, key: &str, events: &mut Vec<Event>) -> Option<KeyValue> {
        let prev = self.entries.remove(key)?;
        events.push(Event { revision: self.revision, key: key.to_owned(), kind: EventKind::Delete { prev: prev.clone() } });
        Some(prev)
    }

    /// A SHA-256 over the revision and every entry in key order: equal maps, equal digests.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.revision.to_be_bytes());
        for (key, kv) in &self.entries {
            for part in [key.as_bytes(), &kv.value] {
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part);
            }
            hasher.update(kv.create_revision.to_be_bytes());
            hasher.update(kv.mod_revision.to_be_bytes());
            hasher.update(kv.version.to_be_bytes());
            hasher.update(kv.expires_at.map_or([0xff; 8], u64::to_be_bytes));
        }
        hex::encode(hasher.finalize())
    }
}

/// The tokens granted so far from a counter's value, in either of its forms.
pub fn decode_counter(value: &[u8]) -> Option<u64> {
    slices::Counter::decode(value).map(|c| c.granted)
}

pub mod slices;

#[cfg(test)]
#[path = "kv_tests.rs"]
mod tests;
