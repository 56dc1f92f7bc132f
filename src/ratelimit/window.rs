//! Rate-limit windows, as Kong's: seconds to days are fixed lengths aligned to the Unix
//! epoch (UTC); a month begins on the first and a year on January 1st (UTC), so their
//! lengths vary. And the store key of one window's counter.

use gatehouse_raft::WindowRef;

use super::calendar;

pub use crate::model::plugins::rate_limiting::Period;

/// One window of one period: `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub period: Period,
    pub start_ms: u64,
}

impl Window {
    pub fn containing(period: Period, now_ms: u64) -> Window {
        let start_ms = match period {
            Period::Month => calendar::month_of(now_ms).0,
            Period::Year => calendar::year_of(now_ms).0,
            _ => {
                let len = period.window_secs() * 1000;
                now_ms - now_ms % len
            }
        };
        Window { period, start_ms }
    }

    /// How long this window lasts (a month or a year: as the calendar has it).
    pub fn len_ms(&self) -> u64 {
        self.end_ms() - self.start_ms
    }

    pub fn end_ms(&self) -> u64 {
        match self.period {
            Period::Month => calendar::month_of(self.start_ms).1,
            Period::Year => calendar::year_of(self.start_ms).1,
            _ => self.start_ms + self.period.window_secs() * 1000,
        }
    }

    /// The window of the same period that follows this one.
    pub fn next(&self) -> Window {
        Window { period: self.period, start_ms: self.end_ms() }
    }

    /// The window of the same period before this one; none before the epoch's first.
    pub fn previous(&self) -> Option<Window> {
        self.start_ms.checked_sub(1).map(|before| Window::containing(self.period, before))
    }

    /// Whether `now_ms` falls in the window's last tenth (at most its last `cap_ms`): the
    /// time to reserve the next windows of a key that is busy.
    pub fn ending(&self, now_ms: u64, cap_ms: u64) -> bool {
        let lead = (self.len_ms() / 10).min(cap_ms);
        self.end_ms().saturating_sub(now_ms) <= lead
    }

    /// The window as the store names it.
    pub fn to_ref(&self) -> WindowRef {
        WindowRef { len_ms: self.len_ms(), start_ms: self.start_ms }
    }

    /// The window the store names, if it is one of a period's (its start and length).
    pub fn from_ref(window: WindowRef) -> Option<Window> {
        Period::ALL.into_iter().map(|period| Window { period, start_ms: window.start_ms }).find(|w| w.to_ref() == window && Window::containing(w.period, w.start_ms) == *w)
    }

    /// Seconds until the window resets, at least 1 (Kong's RateLimit-Reset).
    pub fn reset_secs(&self, now_ms: u64) -> u64 {
        (self.end_ms().saturating_sub(now_ms)).div_ceil(1000).max(1)
    }
}

/// The store key of a window's cluster-wide counter. The identifier is hex-encoded so
/// that any header value is a safe key segment.
pub fn counter_key(plugin_id: &str, identifier: &str, window: &Window) -> String {
    let mut key = String::new();
    key_prefix(&mut key, plugin_id, identifier.as_bytes());
    push_window(&mut key, window);
    key
}

/// Writes the part of a counter key that all windows of one plugin and identifier share,
/// so that a request checking several periods writes it once, in a buffer of its own.
pub fn key_prefix(out: &mut String, plugin_id: &str, identifier: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("ratelimit/");
    out.push_str(plugin_id);
    out.push('/');
    // A chunk at a time through a buffer: a push per digit showed in instruction counts.
    let mut digits = [0u8; 64];
    for chunk in identifier.chunks(digits.len() / 2) {
        for (pair, &b) in digits.chunks_exact_mut(2).zip(chunk) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xf)];
        }
        out.push_str(std::str::from_utf8(&digits[..chunk.len() * 2]).expect("hex digits are ASCII"));
    }
    out.push('/');
}

/// The key of `other`'s counter for the plugin and identifier of `key`, the key of
/// `window`'s counter; none for a key `counter_key` did not spell.
pub fn sibling_key(key: &str, window: &Window, other: &Window) -> Option<String> {
    let mut suffix = String::with_capacity(32);
    push_window(&mut suffix, window);
    let prefix = key.strip_suffix(suffix.as_str()).filter(|prefix| prefix.ends_with('/'))?;
    let mut sibling = String::with_capacity(prefix.len() + suffix.len() + 2);
    sibling.push_str(prefix);
    push_window(&mut sibling, other);
    Some(sibling)
}

/// Completes a `key_prefix` for `window`.
pub fn push_window(out: &mut String, window: &Window) {
    out.push_str(window.period.name());
    out.push('/');
    // itoa, not core::fmt: this runs for every rate-limited request.
    out.push_str(itoa::Buffer::new().format(window.start_ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let w = Window::containing(Period::Minute, 1_700_000_123_456);
        assert_eq!(w.start_ms % 60_000, 0);
        assert!(w.start_ms <= 1_700_000_123_456 && 1_700_000_123_456 < w.end_ms());
        assert_eq!(w.end_ms() - w.start_ms, 60_000);
    }

    #[test]
    fn a_window_ends_in_its_last_tenth_at_most_the_cap_and_is_followed_by_the_next() {
        let second = Window::containing(Period::Second, 5_000);
        assert!(!second.ending(5_899, 250) && second.ending(5_900, 250) && second.ending(5_999, 250));
        let minute = Window::containing(Period::Minute, 60_000);
        assert!(!minute.ending(119_749, 250) && minute.ending(119_750, 250));
        assert_eq!(minute.next(), Window { period: Period::Minute, start_ms: 120_000 });
    }

    #[test]
    fn a_sibling_key_names_another_window_of_the_same_plugin_and_identifier() {
        let w = Window::containing(Period::Second, 7_000);
        let key = counter_key("p", "1.2.3.4", &w);
        assert_eq!(w.previous(), Some(Window::containing(Period::Second, 6_000)));
        assert_eq!(Window::containing(Period::Second, 999).previous(), None);
        assert_eq!(sibling_key(&key, &w, &w.next()), Some(counter_key("p", "1.2.3.4", &w.next())));
        assert_eq!(sibling_key(&key, &w, &w.previous().unwrap()), Some(counter_key("p", "1.2.3.4", &w.previous().unwrap())));
        let minute = Window::containing(Period::Minute, 7_000);
        assert_eq!(sibling_key(&key, &minute, &minute.next()), None, "not the key of that window");
        assert_eq!(sibling_key("second/7000", &w, &w.next()), None, "no prefix");
        assert_eq!(sibling_key("w0", &w, &w.next()), None);
    }

    /// 2026-12-08T00:30Z: the month began on the 1st and the year on January 1st, as Kong's
    /// do (not 30 and 365 days after some multiple of them since the epoch).
    #[test]
    fn months_and_years_follow_the_calendar() {
        let now = 1_796_689_800_000;
        let month = Window::containing(Period::Month, now);
        assert_eq!((month.start_ms, month.end_ms()), (1_796_083_200_000, 1_798_761_600_000));
        assert_eq!(month.reset_secs(now), 2_071_800, "until 2027-01-01T00:00Z");
        let year = Window::containing(Period::Year, now);
        assert_eq!((year.start_ms, year.end_ms()), (1_767_225_600_000, 1_798_761_600_000));
        assert_eq!(month.next(), Window::containing(Period::Month, 1_798_761_600_000));
        assert_eq!(month.next().previous(), Some(month));
        assert_eq!(year.next().len_ms(), 365 * 86_400_000);
        for w in [month, year, month.next(), Window::containing(Period::Day, now), Window::containing(Period::Second, now)] {
            assert_eq!(Window::from_ref(w.to_ref()), Some(w), "{w:?}");
        }
        assert_eq!(Window::from_ref(WindowRef { len_ms: 30 * 86_400_000, start_ms: month.start_ms }), None, "December has 31 days");
    }

    #[test]
    fn reset_is_at_least_one_second_and_rounds_up() {
        let w = Window::containing(Period::Minute, 60_000);
        assert_eq!(w.reset_secs(60_000), 60);
        assert_eq!(w.reset_secs(119_001), 1);
        assert_eq!(w.reset_secs(119_999), 1);
        assert_eq!(w.reset_secs(61_500), 59);
    }

    #[test]
    fn the_identifier_is_written_as_lowercase_hex_of_any_length() {
        let w = Window::containing(Period::Second, 7_000);
        for len in [0, 1, 31, 32, 33, 64, 65, 200] {
            let identifier: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let hex: String = identifier.iter().map(|b| format!("{b:02x}")).collect();
            let mut key = String::new();
            key_prefix(&mut key, "p", &identifier);
            push_window(&mut key, &w);
            assert_eq!(key, format!("ratelimit/p/{hex}/second/7000"));
        }
    }

    #[test]
    fn keys_differ_by_plugin_identifier_period_and_window() {
        let w1 = Window::containing(Period::Second, 1_000);
        let w2 = Window::containing(Period::Second, 2_000);
        let keys = [
            counter_key("p", "1.2.3.4", &w1),
            counter_key("p", "1.2.3.4", &w2),
            counter_key("p", "1.2.3.5", &w1),
            counter_key("q", "1.2.3.4", &w1),
            counter_key("p", "1.2.3.4", &Window::containing(Period::Minute, 1_000)),
        ];
        let unique: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
        assert!(keys[0].starts_with("ratelimit/p/"));
    }

    #[test]
    fn the_key_format_is_stable() {
        // Keys live in the replicated store: nodes of one cluster must spell them alike.
        let w = Window::containing(Period::Minute, 125_000);
        assert_eq!(counter_key("p", "1.2.3.4\u{e9}", &w), format!("ratelimit/p/{}/minute/120000", hex::encode("1.2.3.4\u{e9}")));
    }
}
