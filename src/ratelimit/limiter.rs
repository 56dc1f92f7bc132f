//! Admission for the `cluster` policy: a request takes a token from this node's slice of
//! the window's budget with no I/O; a slice running low is refilled through the batching
//! reserver in the background, and the next windows (within a minute) of a key that
//! comes back (used here in the window before, or in a window reserved ahead for it) or
//! is busy are reserved, together, before they begin (`ahead`); only a node with no
//! token at all waits for a reservation, except a key new here whose window this node
//! enrolled in before: it takes the first slice every such counter holds for the node
//! (`slices`). A limit changed in a window's middle applies at
//! once. When reservations fail (no quorum) the node falls back to a local share of the
//! budget (limit / live nodes of what was left when it last heard; see
//! `Bucket::fallback_share`), opens new windows on it without waiting, and says so.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use gatehouse_raft::{SlotUse, WindowRef};

use super::bucket::{Admission, Bucket, LimitSpec};
use super::reserver::{Enrolment, Grant, ReserveError, Reserver, Want};
use super::slice_lease::SliceLease;
use super::window::Window;

/// Counters outlive their window a little, so late reservations still find them.
const COUNTER_GRACE_MS: u64 = 5_000;

/// Requests a key must have had in its window on this node before it reserves the next
/// windows ahead in that window: a key seen a few times (one client address among many)
/// is not worth the counters and Raft entries until it comes back in the next window.
const AHEAD_MIN_USE: u64 = 64;

/// How long a node admits from its fallback share after a reservation failed, before it
/// asks again (in the background; requests do not wait for that one).
const FALLBACK_SPELL: Duration = Duration::from_secs(1);

/// Counts of live nodes, for slice sizes and the fallback share.
pub type LiveNodes = Arc<dyn Fn() -> u64 + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `on_share`: admitted from the fallback share, without quorum.
    Admitted { remaining: u64, on_share: bool },
    Rejected,
    /// No quorum and the plugin is not fault tolerant.
    Unavailable,
}

struct Entry {
    bucket: Bucket,
    window: Window,
    /// Created by a reservation ahead of the window, for a key that had come before.
    ahead: bool,
    /// Set while reservations fail: admit up to the local share until then, retry after.
    degraded_until: Option<Instant>,
    /// Bumped whenever a reservation for this key completes; waiters subscribe under
    /// the lock, so a completion between unlock and wait is never missed.
    changed: watch::Sender<u64>,
    /// This node's first slice of the counter, and whether a request was admitted on it:
    /// told to the store with each reservation (and a recall) so that it is settled.
    slot: Option<SlotUse>,
    /// A recall answer (`Settle`) is in flight.
    settling: bool,
    /// While this node's reservations come back short for other nodes' first slices: how
    /// many were held at the last one. A recall marker showing fewer (or gone) means some
    /// were settled since, and the node asks again.
    recall: Option<u64>,
}

impl Entry {
    fn new(limit: LimitSpec, window: Window) -> Entry {
        Entry { bucket: Bucket::new(limit), window, ahead: false, degraded_until: None, changed: watch::channel(0).0, slot: None, settling: false, recall: None }
    }

    /// Whether the key has had enough requests in this window here that its next windows
    /// will likely come here too.
    fn busy(&self) -> bool {
        self.bucket.used >= AHEAD_MIN_USE
    }
}

/// Counter keys to their window's state. Hashed with foldhash, seeded per process: a key
/// is about 90 bytes and hashed on every request, where SipHash showed in profiles, and
/// its client-chosen part (an address or a header) cannot aim at a seed it never sees.
type Entries = HashMap<String, Entry, foldhash::fast::RandomState>;

struct Counters {
    /// Until when reservations are known to fail here (no quorum): a window opened
    /// meanwhile starts on the fallback share at once, rather than each key's first
    /// request of each window waiting for a reservation that would fail too.
    unreachable_until: Option<Instant>,
    entries: Entries,
    /// Keys used here (hashed with `entries`' hasher, so the record is 16 bytes, not the
    /// key), each until the window after its own ends: a key whose window before was used
    /// here is a key that comes back, worth reserving ahead even if it is not busy. An
    /// entry would do, but would keep every sparse key's counter a window longer.
    recent: HashMap<u64, u64, foldhash::fast::RandomState>,
    /// This node's enrolments in windows (see `slices`).
    enrolled: HashMap<WindowRef, Enrolling>,
}

/// Where this node stands in a window's enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enrolling {
    Asked,
    Enrolled(Enrolment),
    /// The window had no slot left.
    Refused,
}

impl Counters {
    fn new() -> Counters {
        Counters { unreachable_until: None, entries: Entries::default(), recent: HashMap::default(), enrolled: HashMap::new() }
    }
}

pub struct ClusterLimiter {
    /// Held only for counter updates, never across an await. A poisoned lock is used as
    /// it is: a panicking request must not take every later request down with it.
    counters: Mutex<Counters>,
    reserver: Reserver,
    live_nodes: LiveNodes,
    /// How long a request without a local token waits for a reservation before falling back.
    wait: Duration,
    degraded_admissions: AtomicU64,
    /// How far in time this process may take first slices, and how far the one before it
    /// could have.
    lease: Arc<SliceLease>,
}

impl ClusterLimiter {
    pub fn new(reserver: Reserver, live_nodes: LiveNodes, wait: Duration, lease: Arc<SliceLease>) -> Arc<Self> {
        Arc::new(ClusterLimiter { counters: Mutex::new(Counters::new()), reserver, live_nodes, wait, degraded_admissions: AtomicU64::new(0), lease })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides one request against `key`'s budget for `window`.
    pub async fn admit(self: &Arc<Self>, key: &str, limit: impl Into<LimitSpec>, window: Window, fault_tolerant: bool) -> Decision {
        let limit = limit.into();
        match self.try_decide(key, limit, window, fault_tolerant) {
            Ok(decision) => decision,
            // Boxed: the waiting future is large, and only a node out of tokens needs it;
            // inline, every request's future would carry (and copy) it.
            Err(changed) => Box::pin(self.admit_after_wait(key, limit, window, fault_tolerant, changed)).await,
        }
    }

    /// What `key` has left as this node knows it, without admitting a request: the fields
    /// of a refusal that another period decided report every period, as Kong's do.
    pub fn remaining(&self, key: &str, limit: u64) -> u64 {
        if let Some(entry) = self.lock().entries.get(key) {
            // On the fallback share, what is left is the share's rest, as its admissions say.
            if entry.degraded_until.is_some() {
                return entry.bucket.fallback_share((self.live_nodes)()).saturating_sub(entry.bucket.used).min(limit);
            }
            return entry.bucket.remaining_estimate().min(limit);
        }
        limit.saturating_sub(self.reserver.applied_total(key, limit))
    }

    /// Takes back an admission to `key` made under `limit`, for a request that another
    /// period then refused: Kong charges a refused request to no period. A token granted
    /// under a limit changed since is not handed back for use (see `Bucket::change_limit`).
    pub fn refund(&self, key: &str, limit: impl Into<LimitSpec>) {
        let limit = limit.into();
        if let Some(entry) = self.lock().entries.get_mut(key) {
            entry.bucket.refund();
            if !entry.bucket.is_under(limit) {
                entry.bucket.give_up_unused();
            }
        }
    }

    /// Whether `key` has had enough requests in its window on this node that its next
    /// windows will likely come here too.
    pub fn busy(&self, key: &str) -> bool {
        self.lock().entries.get(key).is_some_and(Entry::busy)
    }

    /// Whether this node holds `key`'s window already (in use, or reserved ahead).
    pub fn knows(&self, key: &str) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// Reserves `wants` (key, tokens, limit, window) in one Raft entry, in the background.
    fn spawn_reservations(self: &Arc<Self>, wants: Vec<(String, u64, LimitSpec, Window)>) {
        if wants.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let asks = wants
                .iter()
                .map(|(key, want, limit, window)| Want {
                    key: key.clone(),
                    want: *want,
                    limit: limit.count,
                    expires_at: window.end_ms() + COUNTER_GRACE_MS,
                    window: window.to_ref(),
                    // Windows not begun: no request took a first slice of theirs here.
                    slot: None,
                })
                .collect();
            let results = this.reserver.reserve_many(asks).await;
            for ((key, want, limit, _), result) in wants.into_iter().zip(results) {
                this.finish_reservation(&key, want, limit, result);
            }
        });
    }

    /// Waits for reservations until one decides, or the wait runs out and the node falls
    /// back to its local share.
    async fn admit_after_wait(self: &Arc<Self>, key: &str, limit: LimitSpec, window: Window, fault_tolerant: bool, mut changed: watch::Receiver<u64>) -> Decision {
        // The clock is read only here: most requests are admitted without waiting.
        let deadline = Instant::now() + self.wait;
        loop {
            // Wait for the reservation in flight (ours or another request's).
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() || tokio::time::timeout(wait, changed.changed()).await.is_err() {
                self.wait_over(key);
            }
            match self.try_decide(key, limit, window, fault_tolerant) {
                Ok(decision) => return decision,
                Err(next) => changed = next,
            }
        }
    }

    /// The decision, if it can be made now; else what tells of the next completed
    /// reservation for `key` (subscribed under the lock, so none is missed).
    fn try_decide(self: &Arc<Self>, key: &str, limit: impl Into<LimitSpec>, window: Window, fault_tolerant: bool) -> Result<Decision, watch::Receiver<u64>> {
        let limit = limit.into();
        let mut guard = self.lock();
        let counters = &mut *guard;
        // Looked up before inserting, so that a known key is neither copied nor hashed
        // twice per request.
        let entry = match counters.entries.get_mut(key) {
            Some(entry) => entry,
            None => {
                let mut entry = Entry::new(limit, window);
                if let Some(until) = counters.unreachable_until.filter(|until| *until > Instant::now()) {
                    entry.bucket.observe_cluster_total(self.reserver.applied_total(key, limit.count));
                    entry.degraded_until = Some(until);
                } else {
                    self.take_first_slice(&mut counters.enrolled, &mut entry, key, limit);
                }
                counters.entries.entry(key.to_owned()).or_insert(entry)
            }
        };
        if !entry.bucket.is_under(limit) {
            entry.bucket.change_limit(limit);
        }
        let live = (self.live_nodes)();
        if let Some(until) = entry.degraded_until {
            let spell_over = until <= Instant::now();
            if spell_over && !fault_tolerant {
                // With no share to admit from, it asks again, and this request waits for
                // the answer as a fresh one does.
                entry.degraded_until = None;
            } else if spell_over && !entry.bucket.pending {
                // Time to see whether reservations work again: one is asked for in the
                // background (with the debt), and requests go on with the share meanwhile.
                match entry.bucket.refill(live) {
                    Some(want) => self.ask(entry, key, want, limit, window),
                    None => entry.degraded_until = None,
                }
            }
            if entry.degraded_until.is_some() {
                if !fault_tolerant {
                    return Ok(Decision::Unavailable);
                }
                return Ok(match entry.bucket.try_admit_fallback(live) {
                    Some(remaining) => Decision::Admitted { remaining, on_share: true },
                    None => Decision::Rejected,
                });
            }
        }
        let admission = entry.bucket.try_admit();
        let reserve = match admission {
            Admission::Admitted => entry.bucket.prefetch(live),
            Admission::NeedTokens => entry.bucket.refill(live),
            Admission::Rejected => None,
        };
        if let Some(want) = reserve {
            self.give_up_slot(&counters.enrolled, entry);
            self.ask(entry, key, want, limit, window);
        }
        let decision = match admission {
            Admission::Admitted => Decision::Admitted { remaining: entry.bucket.remaining_estimate(), on_share: false },
            Admission::Rejected => Decision::Rejected,
            Admission::NeedTokens => return Err(entry.changed.subscribe()),
        };
        if admission == Admission::Admitted && entry.bucket.used == 1 {
            let ahead = entry.ahead;
            let wants = self.on_first_use(counters, key, limit, window, ahead);
            drop(guard);
            self.spawn_reservations(wants);
        }
        Ok(decision)
    }

    /// Reserves `want` more tokens of `key`'s window in the background; requests that
    /// need them wait on `changed`.
    fn ask(self: &Arc<Self>, entry: &mut Entry, key: &str, want: u64, limit: LimitSpec, window: Window) {
        entry.bucket.pending = true;
        let this = self.clone();
        let ask = Want {
            key: key.to_owned(),
            want,
            limit: limit.count,
            expires_at: window.end_ms() + COUNTER_GRACE_MS,
            window: window.to_ref(),
            slot: entry.slot,
        };
        tokio::spawn(async move {
            let key = ask.key.clone();
            let result = this.reserver.reserve(ask).await;
            this.finish_reservation(&key, want, limit, result);
        });
    }

    /// Records the outcome of a reservation made under `limit` and wakes the requests
    /// waiting on it.
    fn finish_reservation(self: &Arc<Self>, key: &str, want: u64, limit: LimitSpec, result: Result<Grant, ReserveError>) {
        let mut guard = self.lock();
        let counters = &mut *guard;
        if result.is_ok() {
            counters.unreachable_until = None;
        }
        let Some(entry) = counters.entries.get_mut(key) else { return };
        match result {
            Ok(grant) => {
                entry.bucket.on_grant(want, grant.granted, grant.total, grant.held);
                // The limit changed while the reservation was in flight: what it granted
                // under the old one stays counted, unused.
                if !entry.bucket.is_under(limit) {
                    entry.bucket.give_up_unused();
                }
                entry.degraded_until = None;
                entry.recall = entry.bucket.awaiting.then_some(grant.held);
                if entry.bucket.awaiting {
                    self.await_recall(entry, key, grant.revision);
                }
            }
            // A window reserved ahead, not begun: forgotten, so that its first request
            // reserves as a new key's would, and falls back only if that fails too (the
            // quorum may be back by then).
            // (Not one that answered a recall: its slot stays settled as it said.)
            Err(e) if entry.ahead && entry.bucket.used == 0 && entry.slot.is_none() => {
                tracing::debug!(%key, error = %e, "rate-limit reservation ahead failed; the window will reserve when it begins");
                entry.changed.send_modify(|v| *v += 1);
                counters.entries.remove(key);
                return;
            }
            Err(e) => {
                if entry.degraded_until.is_none() {
                    tracing::warn!(%key, error = %e, "rate-limit reservation failed; using the local share");
                }
                entry.bucket.pending = false;
                self.fall_back(counters, key);
            }
        }
        if let Some(entry) = counters.entries.get(key) {
            entry.changed.send_modify(|v| *v += 1);
        }
    }

    /// Forgets windows that have ended, and uses recorded for windows after them that
    /// have ended too.
    pub fn sweep(&self, now_ms: u64) {
        let mut counters = self.lock();
        // Kept while late reservations of the window are still taken (its grace): a recall
        // of a first slice taken here must find the entry that says it was used.
        counters.entries.retain(|_, e| e.window.end_ms() + COUNTER_GRACE_MS > now_ms);
        counters.recent.retain(|_, forget_at| *forget_at > now_ms);
        counters.enrolled.retain(|window, _| window.start_ms + window.len_ms + COUNTER_GRACE_MS > now_ms);
    }
}

mod ahead;
mod fallback;
mod slices;

#[cfg(test)]
#[path = "limiter_tests.rs"]
pub(crate) mod tests;
