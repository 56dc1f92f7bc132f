//! First slices (see `gatehouse_raft::kv::slices`): this node enrolls in each window its
//! keys come in, and in the next, so that a key new here admits its first request on
//! the token its counter holds for the node, with no Raft round. Recalls of those
//! tokens are answered here, and a reservation cut short by them waits for the answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_raft::kv::slices::{decode_recall, enrolled_key, enrolled_nodes, RECALL_PREFIX};
use gatehouse_raft::{EventKind, SlotUse, WatchError, WatchEvent, WindowRef};

use super::{ClusterLimiter, Enrolling, Entry, COUNTER_GRACE_MS};
use crate::cluster::protocol::MembersRead;
use crate::ratelimit::reserver::{Enrolment, ReserveError};
use crate::ratelimit::bucket::LimitSpec;
use crate::ratelimit::window::Window;
use crate::shutdown::Shutdown;

/// How long a recall's answer that failed waits before it is proposed again, at first and
/// at most (doubling in between).
const SETTLE_RETRY_FIRST: Duration = Duration::from_millis(100);
const SETTLE_RETRY_MAX: Duration = Duration::from_secs(2);

impl ClusterLimiter {
    /// Whether new keys take first slices: every member reads their commands.
    pub fn first_slices(&self) -> bool {
        self.reserver.first_slices()
    }

    pub fn members_read(&self) -> MembersRead {
        self.reserver.members_read()
    }

    /// What the members read, as gossip tells (`cluster::protocol`): first slices are
    /// taken only while all of them read their commands.
    pub fn set_members_read(&self, read: MembersRead) {
        self.reserver.set_members_read(read);
    }

    /// For a key new here: enrolls in its window and the next if not yet, and takes the
    /// first slice of its counter when this node may (`may_use_slot`). The entry keeps
    /// its slot either way, so that its reservations settle it.
    pub(super) fn take_first_slice(self: &Arc<Self>, enrolled: &mut HashMap<WindowRef, Enrolling>, entry: &mut Entry, key: &str, limit: LimitSpec) {
        // A member that cannot read first slices' commands would stop replicating.
        if !self.reserver.first_slices() {
            return;
        }
        for window in [entry.window, entry.window.next()] {
            self.enroll(enrolled, window);
        }
        let Some(Enrolling::Enrolled(enrolment)) = enrolled.get(&entry.window.to_ref()).copied() else { return };
        // A slot enrolled before (a retry, a restart) that may have been used counts as used.
        let used = !enrolment.fresh || self.may_use_slot(key, entry.window.start_ms, enrolment, limit.count);
        entry.slot = Some(SlotUse { slot: enrolment.slot, used });
        if used && enrolment.fresh {
            entry.bucket.granted = 1;
            // Part of the cluster's total: a fallback share is figured from what is left.
            entry.bucket.observe_cluster_total(1);
        }
    }

    /// This node's slot in the window of an entry that took no first slice (made before
    /// the node was enrolled, or while it could not tell): given up with the entry's next
    /// reservation, so that the node need not be asked for it. An entry reserved ahead
    /// and not used yet keeps it, as it may be forgotten and made again (see
    /// `finish_reservation`).
    pub(super) fn give_up_slot(&self, enrolled: &HashMap<WindowRef, Enrolling>, entry: &mut Entry) {
        // With first slices off, a slot is not told of: the plain `Reserve` cannot. (Off
        // with the cluster's record there, reservations are `ReserveIn`, and can.)
        if entry.slot.is_some() || (entry.ahead && entry.bucket.used == 0) || !(self.reserver.first_slices() || self.reserver.agreed()) {
            return;
        }
        if let Some(Enrolling::Enrolled(enrolment)) = enrolled.get(&entry.window.to_ref()) {
            entry.slot = Some(enrolment.untaken());
        }
    }

    /// Whether this node holds an unsettled first slice of `key`'s counter in the window
    /// that began at `window_start`: its lease covers the window (so that a restart can
    /// tell), it has applied its enrolment, and the counter either does not exist yet (it
    /// will hold the slot) or holds the slot, within `limit` (a limit lowered since the
    /// counter was made may leave no room for the slices it holds, as for tokens granted
    /// under the old one).
    fn may_use_slot(&self, key: &str, window_start: u64, enrolment: Enrolment, limit: u64) -> bool {
        let slot = enrolment.slot;
        if u64::from(slot) >= limit || !self.lease.covers(window_start) || self.reserver.applied_revision() < enrolment.revision {
            return false;
        }
        self.reserver.applied_counter(key).is_none_or(|(counter, _)| counter.holds(slot) && counter.charge(limit) <= limit)
    }

    /// Whether no earlier process of this node (before a restart) can have taken a first
    /// slice in `window`: it began after that process's lease ran out. An enrolment made
    /// before is then as good as fresh.
    fn beyond_last_process(&self, window: WindowRef) -> bool {
        !self.lease.previous_reached(window.start_ms)
    }

    /// This node's slot in `window` as the applied enrolment record has it.
    fn enrolled_slot(&self, window: WindowRef) -> Option<u8> {
        let record = self.reserver.store().get(&enrolled_key(window))?;
        let id = self.reserver.store().id();
        enrolled_nodes(&record.value).iter().position(|n| *n == id).map(|slot| slot as u8)
    }

    /// Enrolls in `window` in the background, once.
    fn enroll(self: &Arc<Self>, enrolled: &mut HashMap<WindowRef, Enrolling>, window: Window) {
        let window_ref = window.to_ref();
        if enrolled.contains_key(&window_ref) {
            return;
        }
        enrolled.insert(window_ref, Enrolling::Asked);
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.reserver.enroll(window_ref, window.end_ms() + COUNTER_GRACE_MS).await;
            let mut counters = this.lock();
            match result {
                Ok(Some(enrolment)) => {
                    let fresh = enrolment.fresh || this.beyond_last_process(window_ref);
                    counters.enrolled.insert(window_ref, Enrolling::Enrolled(Enrolment { fresh, ..enrolment }))
                }
                Ok(None) => counters.enrolled.insert(window_ref, Enrolling::Refused),
                // Asked again by the window's next new key.
                Err(_) => counters.enrolled.remove(&window_ref),
            };
        });
    }

    /// A reservation of `key` came back short while first slices were held, as of
    /// `revision`: unless the counter changed since (the recall answered before this
    /// node heard, so no change is left to wake it), its requests wait for the answers.
    pub(super) fn await_recall(self: &Arc<Self>, entry: &mut Entry, key: &str, revision: u64) {
        if self.reserver.applied_counter(key).is_some_and(|(_, changed_at)| changed_at > revision) {
            self.ask_again(entry, key);
        }
    }

    /// Ends a wait for recalled slices with a fresh reservation.
    fn ask_again(self: &Arc<Self>, entry: &mut Entry, key: &str) {
        entry.bucket.end_await();
        // Refused since its wait ran out (`wait_over`), not for want of budget.
        entry.bucket.exhausted = false;
        let limit = LimitSpec { count: entry.bucket.limit, generation: entry.bucket.generation };
        match entry.bucket.refill((self.live_nodes)()) {
            Some(want) => self.ask(entry, key, want, limit, entry.window),
            // Tokens came meanwhile: the waiters take them.
            None => entry.changed.send_modify(|v| *v += 1),
        }
    }

    /// Answers recalls and wakes waits for them, for as long as the node runs.
    pub async fn watch_recalls(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            // Markers there now are recalls this node may not have heard yet.
            let (markers, _, mut watcher) = self.reserver.store().snapshot_and_watch(RECALL_PREFIX);
            for (marker, kv) in markers {
                self.on_marker(&marker, decode_recall(&kv.value));
            }
            loop {
                let event = tokio::select! {
                    _ = shutdown.wait() => return,
                    event = watcher.next() => event,
                };
                match event {
                    Ok(WatchEvent::Change(change)) => match change.kind {
                        EventKind::Put(kv) => self.on_marker(&change.key, decode_recall(&kv.value)),
                        EventKind::Delete { .. } => self.on_marker(&change.key, None),
                    },
                    // Rescanned from a fresh snapshot.
                    Ok(WatchEvent::Reset { .. }) | Err(WatchError::Lagged { .. } | WatchError::Compacted { .. }) => break,
                    Err(WatchError::Closed) => return,
                }
            }
        }
    }

    /// A recall marker written (`recall`: held, limit, window) or removed (`None`).
    fn on_marker(self: &Arc<Self>, marker: &str, recall: Option<(u64, u64, WindowRef)>) {
        let Some(key) = marker.strip_prefix(RECALL_PREFIX) else { return };
        if let Some((_, limit, window_ref)) = recall {
            self.answer_recall(key, limit, window_ref);
        }
        // A request here waiting for the answers: when fewer slices are held than at its
        // last grant (or none), some were settled, and it asks again. A marker its own
        // short grant wrote is not news.
        let mut counters = self.lock();
        let Some(entry) = counters.entries.get_mut(key) else { return };
        let settled_since = match (entry.recall, recall) {
            (Some(_), None) => true,
            (Some(before), Some((held, _, _))) => held < before,
            (None, _) => false,
        };
        if settled_since && !entry.bucket.pending {
            self.ask_again(entry, key);
        }
    }

    /// Settles this node's first slice of `key`, if the counter holds one for it.
    fn answer_recall(self: &Arc<Self>, key: &str, limit: u64, window_ref: WindowRef) {
        let mut counters = self.lock();
        let counters = &mut *counters;
        let enrolment = match counters.enrolled.get(&window_ref).copied() {
            Some(Enrolling::Enrolled(enrolment)) => enrolment,
            // Enrolled in the store, but not by this process's knowledge (a restart, or a
            // call not answered yet): unless the window began after the last process's
            // lease ran out, it cannot tell whether the slot was used, so it was.
            _ => match self.enrolled_slot(window_ref) {
                // Not to be used by this process either way (no revision it can reach).
                Some(slot) => Enrolment { slot, revision: u64::MAX, fresh: self.beyond_last_process(window_ref) },
                None => return,
            },
        };
        if self.reserver.applied_counter(key).is_some_and(|(counter, _)| !counter.holds(enrolment.slot)) {
            return;
        }
        let Some(window) = Window::from_ref(window_ref) else { return };
        // A node that never saw the key keeps an entry for it from now on, so that it
        // cannot take the slice it says it did not use.
        let entry = counters.entries.entry(key.to_owned()).or_insert_with(|| Entry::new(LimitSpec { count: limit, generation: 0 }, window));
        let slot = entry.slot.unwrap_or(enrolment.untaken());
        entry.slot = Some(slot);
        if entry.settling {
            return;
        }
        entry.settling = true;
        let this = self.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            this.settle_until_done(&key, limit, window, slot).await;
            if let Some(entry) = this.lock().entries.get_mut(&key) {
                entry.settling = false;
            }
        });
    }

    /// Proposes `Settle` until it commits: the node that asked may wait on nothing else (a
    /// short grant does not ask again while slices it waits for are held). Ends early
    /// once the counter no longer holds the slot, the window is over, or the node stops.
    async fn settle_until_done(&self, key: &str, limit: u64, window: Window, slot: SlotUse) {
        let mut backoff = SETTLE_RETRY_FIRST;
        loop {
            match self.reserver.settle(key.to_owned(), limit, window.end_ms() + COUNTER_GRACE_MS, window.to_ref(), slot).await {
                Ok(()) | Err(ReserveError::Stopped) => return,
                Err(e) => tracing::debug!(%key, error = %e, "answering a rate-limit recall failed; trying again"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(SETTLE_RETRY_MAX);
            let settled = self.reserver.applied_counter(key).is_some_and(|(counter, _)| !counter.holds(slot.slot));
            if settled || crate::ratelimit::wall_clock::now_ms() >= window.end_ms() {
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "slices_tests.rs"]
mod tests;
