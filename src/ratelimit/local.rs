//! The `local` policy: a counter per window on this node alone, as Kong's local policy
//! (three nodes let through three times the limit: that is what users pick it for).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::limiter::Decision;

#[derive(Default)]
pub struct LocalLimiter {
    /// key → (admitted, window end ms). Held only to bump a counter; a poisoned lock is
    /// used as it is, so that one panicking request cannot fail all later ones. Hashed
    /// with foldhash for the reason `limiter::Entries` gives.
    counters: Mutex<HashMap<String, (u64, u64), foldhash::fast::RandomState>>,
}

impl LocalLimiter {
    pub fn admit(&self, key: &str, limit: u64, window_end_ms: u64) -> Decision {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        // Looked up first: a known key is not copied.
        let entry = match counters.get_mut(key) {
            Some(entry) => entry,
            None => counters.entry(key.to_owned()).or_insert((0, window_end_ms)),
        };
        if entry.0 < limit {
            entry.0 += 1;
            Decision::Admitted { remaining: limit - entry.0, on_share: false }
        } else {
            Decision::Rejected
        }
    }

    /// Takes back an admission to `key` for a request another period then refused.
    pub fn refund(&self, key: &str) {
        if let Some(entry) = self.counters.lock().unwrap_or_else(PoisonError::into_inner).get_mut(key) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }

    /// What `key` has left, without counting a request.
    pub fn remaining(&self, key: &str, limit: u64) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        limit.saturating_sub(counters.get(key).map_or(0, |(admitted, _)| *admitted))
    }

    pub fn sweep(&self, now_ms: u64) {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, (_, end)| *end > now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_limit_per_key_then_rejects_until_swept() {
        let l = LocalLimiter::default();
        assert_eq!(l.admit("a", 2, 1000), Decision::Admitted { remaining: 1, on_share: false });
        assert_eq!(l.admit("a", 2, 1000), Decision::Admitted { remaining: 0, on_share: false });
        assert_eq!(l.admit("a", 2, 1000), Decision::Rejected);
        assert_eq!((l.remaining("a", 2), l.remaining("b", 2)), (0, 2));
        assert_eq!(l.admit("b", 2, 1000), Decision::Admitted { remaining: 1, on_share: false });
        assert_eq!(l.remaining("b", 2), 1, "a look does not count");
        l.refund("b");
        assert_eq!(l.remaining("b", 2), 2, "a refund gives the token back");
        l.refund("b");
        assert_eq!(l.admit("b", 2, 1000), Decision::Admitted { remaining: 1, on_share: false }, "no more than was taken");
        l.sweep(1000);
        assert_eq!(l.admit("a", 2, 2000), Decision::Admitted { remaining: 1, on_share: false });
    }
}
