//! Reserving a key's next windows before they begin (see `ClusterLimiter`): a key that
//! comes back (used here in the window before, or in a window reserved ahead for it) or
//! is busy has the first slices of its next windows within a minute reserved together,
//! in one Raft entry, so that their first requests find tokens.

use std::hash::BuildHasher;
use std::sync::Arc;

use super::{ClusterLimiter, Counters, Entries, Entry};
use crate::ratelimit::bucket::{Bucket, LimitSpec};
use crate::ratelimit::window::{sibling_key, Window};

/// The most windows a key reserves ahead, in one Raft entry: a key that keeps coming back
/// then costs one round per this many windows.
pub(super) const WINDOWS_AHEAD: usize = 4;

/// How far ahead windows are reserved: a minute. A wait for a Raft round once an hour is
/// nothing, while an hour's or a day's slice held ahead would stay out of the other
/// nodes' reach (and its counter in the store) for that long if the key went elsewhere.
const AHEAD_HORIZON_MS: u64 = 60_000;

/// How many windows after `window` a key reserves ahead: 4 seconds, 1 minute, none of the
/// longer periods.
pub(super) fn windows_ahead(window: &Window) -> usize {
    usize::try_from(AHEAD_HORIZON_MS / window.len_ms()).unwrap_or(WINDOWS_AHEAD).min(WINDOWS_AHEAD)
}

impl ClusterLimiter {
    /// Reserves the first slice of each of `windows` (key, window), windows not yet
    /// begun, in one Raft entry: their first requests on this node then find tokens, and a
    /// key costs one Raft round per that many windows rather than one per window, off the
    /// request path. Each Raft round takes CPU from every node, which showed in the
    /// proxy's tail. Only while slices are large, as for a prefetch (see
    /// `Bucket::prefetch`), since tokens held here are tokens the other nodes cannot use.
    pub fn reserve_ahead(self: &Arc<Self>, windows: Vec<(String, Window)>, limit: impl Into<LimitSpec>) {
        let limit = limit.into();
        let Some(want) = self.ahead_want(limit) else { return };
        let wants = self.claim_ahead(&mut self.lock().entries, windows, limit, want);
        self.spawn_reservations(wants);
    }

    /// Reserves the next windows of `key`, the key of `window`, if it is busy here: a key
    /// new here that is busy at once. (A key that came in the window before has had them
    /// reserved at its first request in this one; see `on_first_use`.)
    pub fn reserve_ahead_if_busy(self: &Arc<Self>, key: &str, window: Window, limit: impl Into<LimitSpec>) {
        let limit = limit.into();
        let Some(want) = self.ahead_want(limit) else { return };
        let wants = {
            let mut counters = self.lock();
            if !counters.entries.get(key).is_some_and(Entry::busy) {
                return;
            }
            // At least the next one: a busy key's wait at its next window's start is a
            // wait for many requests, whatever the period.
            let count = windows_ahead(&window).max(1);
            self.claim_after(&mut counters.entries, key, window, count, (limit, want))
        };
        self.spawn_reservations(wants);
    }

    /// The first slice of a window not begun, if slices are large enough to reserve ahead.
    /// Every such window starts alike, so one fresh bucket says for all of them.
    fn ahead_want(&self, limit: LimitSpec) -> Option<u64> {
        Bucket::new(limit).prefetch((self.live_nodes)())
    }

    /// Claims the `count` windows after `window` for `key`, the key of `window`, unless the
    /// next one is known already (the windows after it are claimed at its first use).
    /// `reserve` is the limit and each window's first slice (`ahead_want`).
    fn claim_after(&self, entries: &mut Entries, key: &str, window: Window, count: usize, reserve: (LimitSpec, u64)) -> Vec<(String, u64, LimitSpec, Window)> {
        let mut windows = Vec::with_capacity(count);
        let mut next = window.next();
        for _ in 0..count {
            // A key not spelled by `window::counter_key` (tests') has no next windows.
            let Some(next_key) = sibling_key(key, &window, &next) else { return Vec::new() };
            if windows.is_empty() && entries.contains_key(&next_key) {
                return Vec::new();
            }
            windows.push((next_key, next));
            next = next.next();
        }
        self.claim_ahead(entries, windows, reserve.0, reserve.1)
    }

    /// Enters `windows` not known yet as reserved ahead, pending; returns the reservations
    /// of `want` each that they need.
    fn claim_ahead(&self, entries: &mut Entries, windows: Vec<(String, Window)>, limit: LimitSpec, want: u64) -> Vec<(String, u64, LimitSpec, Window)> {
        let mut wants = Vec::with_capacity(windows.len());
        for (key, window) in windows {
            if entries.contains_key(&key) {
                continue;
            }
            let mut entry = Entry::new(limit, window);
            entry.ahead = true;
            entry.bucket.pending = true;
            entries.insert(key.clone(), entry);
            wants.push((key, want, limit, window));
        }
        wants
    }

    /// On a key's first admission in `window` here: records the use and, if the key was
    /// used here in the window before (or this window was reserved ahead for it), claims
    /// its next windows. A client that comes back every window, if fewer than
    /// `AHEAD_MIN_USE` times, would otherwise wait for a Raft round at each window's start.
    pub(super) fn on_first_use(&self, counters: &mut Counters, key: &str, limit: LimitSpec, window: Window, ahead: bool) -> Vec<(String, u64, LimitSpec, Window)> {
        let count = windows_ahead(&window);
        if count == 0 {
            return Vec::new();
        }
        let hasher = counters.entries.hasher();
        counters.recent.insert(hasher.hash_one(key), window.next().end_ms());
        let came_before = || {
            let previous = window.previous().and_then(|previous| sibling_key(key, &window, &previous));
            previous.is_some_and(|previous| counters.recent.contains_key(&hasher.hash_one(previous.as_str())))
        };
        // Checked first: keys are built only for a reservation that can be made.
        let Some(want) = self.ahead_want(limit) else { return Vec::new() };
        if !(ahead || came_before()) {
            return Vec::new();
        }
        self.claim_after(&mut counters.entries, key, window, count, (limit, want))
    }
}
