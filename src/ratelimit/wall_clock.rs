//! Unix time for a monotonic instant a request has already read, without reading the wall
//! clock again: on a virtual machine each clock read is a measurable share of a request's
//! CPU. Each thread keeps an anchor (an instant and the wall clock read beside it) and
//! reads the wall clock afresh once its anchor is a second old, so a step of the system
//! clock shows within a second, as Kong's cached `ngx.now()` does within an event loop turn.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a thread's anchor stands in for the wall clock.
const REFRESH: Duration = Duration::from_secs(1);

thread_local! {
    /// The instant and the Unix time in ns read with it.
    static ANCHOR: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
}

/// The wall clock, in ms since the Unix epoch (0 before it).
pub fn now_ms() -> u64 {
    unix_ns(SystemTime::now()) / 1_000_000
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The Unix time in ms at `at`, an instant read a moment ago (not in the future).
pub fn unix_ms_at(at: Instant) -> u64 {
    ANCHOR.with(|anchor| {
        if let Some((since, unix)) = anchor.get() {
            if let Some(elapsed) = at.checked_duration_since(since).filter(|e| *e < REFRESH) {
                return (unix + elapsed.as_nanos() as u64) / 1_000_000;
            }
        }
        let unix = unix_ns(SystemTime::now());
        let now = Instant::now();
        anchor.set(Some((now, unix)));
        unix.saturating_sub(now.saturating_duration_since(at).as_nanos() as u64) / 1_000_000
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `unix_ms_at(at)` against wall clock reads taken just before and after `at`.
    fn check(before: u64, at: Instant, after: u64) {
        let ms = unix_ms_at(at);
        assert!(before <= ms && ms <= after, "{before} <= {ms} <= {after}");
    }

    #[test]
    fn an_instant_maps_to_the_wall_clock_read_around_it_whether_the_anchor_is_new_or_reused() {
        for _ in 0..3 {
            let before = now_ms();
            let at = Instant::now();
            let after = now_ms();
            check(before, at, after);
        }
    }

    #[test]
    fn an_instant_from_before_the_anchor_is_counted_back_from_a_fresh_reading() {
        let before = now_ms();
        let earlier = Instant::now();
        let after = now_ms();
        // An anchor newer than `earlier`.
        unix_ms_at(Instant::now());
        check(before, earlier, after);
    }

    #[test]
    fn a_stale_anchor_is_replaced() {
        let at = Instant::now();
        let base = now_ms();
        ANCHOR.with(|a| a.set(Some((at - 2 * REFRESH, 0))));
        // From the stale anchor this would be about 2000 ms after the epoch.
        assert!(unix_ms_at(at) >= base);
    }
}
