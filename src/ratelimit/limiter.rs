//! Admission for the `cluster` policy: a request takes a token from this node's slice of
//! the window's budget with no I/O; a slice running low is refilled through the batching
//! reserver in the background; only a node with no token at all waits for a reservation.
//! When reservations fail (no quorum) the node falls back to a local share of the budget
//! (limit / live nodes of what was left when it last heard; see `Bucket::fallback_share`),
//! and says so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::bucket::{Admission, Bucket};
use super::reserver::Reserver;

/// Counts of live nodes, for slice sizes and the fallback share.
pub type LiveNodes = Arc<dyn Fn() -> u64 + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Admitted { remaining: u64 },
    Rejected,
    /// No quorum and the plugin is not fault tolerant.
    Unavailable,
}

struct Entry {
    bucket: Bucket,
    window_end_ms: u64,
    /// Set while reservations fail: admit up to the local share until then, retry after.
    degraded_until: Option<Instant>,
    /// Bumped whenever a reservation for this key completes; waiters subscribe under
    /// the lock, so a completion between unlock and wait is never missed.
    changed: watch::Sender<u64>,
}

pub struct ClusterLimiter {
    /// Held only for counter updates, never across an await. A poisoned lock is used as
    /// it is: a panicking request must not take every later request down with it.
    entries: Mutex<HashMap<String, Entry>>,
    reserver: Reserver,
    live_nodes: LiveNodes,
    /// How long a request without a local token waits for a reservation before falling back.
    wait: Duration,
    degraded_admissions: AtomicU64,
}

impl ClusterLimiter {
    pub fn new(reserver: Reserver, live_nodes: LiveNodes, wait: Duration) -> Arc<Self> {
        Arc::new(ClusterLimiter { entries: Mutex::default(), reserver, live_nodes, wait, degraded_admissions: AtomicU64::new(0) })
    }

    /// True while any window of this node is in fallback mode.
    pub fn degraded(&self) -> bool {
        let now = Instant::now();
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).values().any(|e| e.degraded_until.is_some_and(|t| t > now))
    }

    /// Requests admitted from the local fallback share since start.
    pub fn degraded_admissions(&self) -> u64 {
        self.degraded_admissions.load(Ordering::Relaxed)
    }

    /// Decides one request against `key`'s window budget.
    pub async fn admit(self: &Arc<Self>, key: &str, limit: u64, window_end_ms: u64, fault_tolerant: bool) -> Decision {
        // Read the clock only once a request has to wait: most are admitted at once.
        let mut deadline = None;
        loop {
            let mut changed;
            {
                let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
                // Looked up before inserting, so that a known key is neither copied nor
                // hashed twice per request.
                let entry = match entries.get_mut(key) {
                    Some(entry) => entry,
                    None => entries.entry(key.to_owned()).or_insert_with(|| Entry {
                        bucket: Bucket::new(limit),
                        window_end_ms,
                        degraded_until: None,
                        changed: watch::channel(0).0,
                    }),
                };
                let live = (self.live_nodes)();
                if let Some(until) = entry.degraded_until {
                    if until > Instant::now() {
                        if !fault_tolerant {
                            return Decision::Unavailable;
                        }
                        return match entry.bucket.try_admit_fallback(live) {
                            Some(remaining) => {
                                self.degraded_admissions.fetch_add(1, Ordering::Relaxed);
                                Decision::Admitted { remaining }
                            }
                            None => Decision::Rejected,
                        };
                    }
                    entry.degraded_until = None;
                }
                let admission = entry.bucket.try_admit();
                let reserve = match admission {
                    Admission::Admitted => entry.bucket.prefetch(live),
                    Admission::NeedTokens => entry.bucket.refill(live),
                    Admission::Rejected => None,
                };
                if let Some(want) = reserve {
                    entry.bucket.pending = true;
                    self.spawn_reservation(key.to_owned(), want, limit, window_end_ms);
                }
                match admission {
                    Admission::Admitted => return Decision::Admitted { remaining: entry.bucket.remaining_estimate() },
                    Admission::Rejected => return Decision::Rejected,
                    Admission::NeedTokens => {}
                }
                changed = entry.changed.subscribe();
            }
            // Wait for the reservation in flight (ours or another request's).
            let now = Instant::now();
            let wait = deadline.get_or_insert(now + self.wait).saturating_duration_since(now);
            if wait.is_zero() || tokio::time::timeout(wait, changed.changed()).await.is_err() {
                self.mark_degraded(key);
            }
        }
    }

    fn spawn_reservation(self: &Arc<Self>, key: String, want: u64, limit: u64, window_end_ms: u64) {
        let this = self.clone();
        tokio::spawn(async move {
            // Counters outlive their window a little, so late reservations still find them.
            let expires_at = window_end_ms + 5_000;
            let result = this.reserver.reserve(key.clone(), want, limit, expires_at).await;
            let mut entries = this.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(entry) = entries.get_mut(&key) else { return };
            match result {
                Ok((granted, total)) => {
                    entry.bucket.on_grant(want, granted, total);
                    entry.degraded_until = None;
                }
                Err(e) => {
                    tracing::warn!(%key, error = %e, "rate-limit reservation failed; using the local share");
                    entry.bucket.pending = false;
                    this.fall_back(entry, &key);
                }
            }
            entry.changed.send_modify(|v| *v += 1);
        });
    }

    fn mark_degraded(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(key) {
            self.fall_back(entry, key);
        }
    }

    /// Admits from the fallback share for the next second, starting from the freshest
    /// cluster total this node has applied.
    fn fall_back(&self, entry: &mut Entry, key: &str) {
        entry.bucket.observe_cluster_total(self.reserver.applied_total(key));
        entry.degraded_until = Some(Instant::now() + Duration::from_secs(1));
    }

    /// Forgets windows that have ended.
    pub fn sweep(&self, now_ms: u64) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, e| e.window_end_ms > now_ms);
    }
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;
