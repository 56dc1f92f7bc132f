//! When a request has waited as long as it may for a reservation: without quorum the
//! node falls back to its local share of the window (see `ClusterLimiter`); while other
//! nodes' first slices are recalled (`slices`) it refuses instead. And what the node
//! tells of its fallback share.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{ClusterLimiter, Counters, FALLBACK_SPELL};

impl ClusterLimiter {
    /// True while any window of this node is in fallback mode.
    pub fn degraded(&self) -> bool {
        let now = Instant::now();
        self.lock().entries.values().any(|e| e.degraded_until.is_some_and(|t| t > now))
    }

    /// Requests admitted from the local fallback share since start.
    pub fn degraded_admissions(&self) -> u64 {
        self.degraded_admissions.load(Ordering::Relaxed)
    }

    /// Counts a request admitted with at least one period on the fallback share (the
    /// plugin knows the request; a decision here is one period's).
    pub fn count_admission_on_share(&self) {
        self.degraded_admissions.fetch_add(1, Ordering::Relaxed);
    }

    /// A request waited as long as it may. Without quorum the node falls back to its
    /// share; while first slices are recalled (the store answers, so there is a quorum)
    /// the budget may well be spent, and a share could take the window over its limit, so
    /// requests are refused until a recall's answer comes (see `slices::on_marker`).
    pub(super) fn wait_over(&self, key: &str) {
        let mut counters = self.lock();
        if let Some(entry) = counters.entries.get_mut(key).filter(|e| e.recall.is_some()) {
            entry.bucket.end_await();
            entry.bucket.exhausted = true;
            return;
        }
        self.fall_back(&mut counters, key);
    }

    /// Admits `key` from the fallback share for the next second, starting from the
    /// freshest cluster total this node has applied; windows opened meanwhile start so.
    pub(super) fn fall_back(&self, counters: &mut Counters, key: &str) {
        let until = Instant::now() + FALLBACK_SPELL;
        counters.unreachable_until = Some(until);
        if let Some(entry) = counters.entries.get_mut(key) {
            entry.bucket.observe_cluster_total(self.reserver.applied_total(key, entry.bucket.limit));
            entry.degraded_until = Some(until);
        }
    }
}
