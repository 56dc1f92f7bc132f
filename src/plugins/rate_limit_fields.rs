//! The rate-limiting plugin's fields on a client's response, as Kong's: each period's
//! X-RateLimit-Limit-<Period> and X-RateLimit-Remaining-<Period>, then RateLimit-Limit,
//! -Remaining and -Reset for the period closest to running out. They are kept as numbers
//! and written straight into the response's head: rendered as header values first, they
//! cost allocations and map inserts on every admitted request.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

use crate::http::fields::write_field;
use crate::ratelimit::window::Period;

// Names made once: building and validating them per request showed in profiles.
static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// `X-RateLimit-Limit-<Period>` and `X-RateLimit-Remaining-<Period>`.
fn period_names(period: Period) -> (&'static HeaderName, &'static HeaderName) {
    static LIMIT: [HeaderName; 6] = [
        HeaderName::from_static("x-ratelimit-limit-second"),
        HeaderName::from_static("x-ratelimit-limit-minute"),
        HeaderName::from_static("x-ratelimit-limit-hour"),
        HeaderName::from_static("x-ratelimit-limit-day"),
        HeaderName::from_static("x-ratelimit-limit-month"),
        HeaderName::from_static("x-ratelimit-limit-year"),
    ];
    static REMAINING: [HeaderName; 6] = [
        HeaderName::from_static("x-ratelimit-remaining-second"),
        HeaderName::from_static("x-ratelimit-remaining-minute"),
        HeaderName::from_static("x-ratelimit-remaining-hour"),
        HeaderName::from_static("x-ratelimit-remaining-day"),
        HeaderName::from_static("x-ratelimit-remaining-month"),
        HeaderName::from_static("x-ratelimit-remaining-year"),
    ];
    let i = match period {
        Period::Second => 0,
        Period::Minute => 1,
        Period::Hour => 2,
        Period::Day => 3,
        Period::Month => 4,
        Period::Year => 5,
    };
    (&LIMIT[i], &REMAINING[i])
}

/// What one period's check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodOutcome {
    pub period: Period,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the period's window ends.
    pub reset: u64,
}

/// The outcomes of one request's checks, shortest period first, as its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitFields {
    outcomes: SmallVec<[PeriodOutcome; 2]>,
}

impl RateLimitFields {
    pub fn new(outcomes: SmallVec<[PeriodOutcome; 2]>) -> RateLimitFields {
        RateLimitFields { outcomes }
    }

    /// Each field as name and value, in the order they are written.
    fn each(&self, mut field: impl FnMut(&'static HeaderName, u64)) {
        for o in &self.outcomes {
            let (limit, remaining) = period_names(o.period);
            field(limit, o.limit);
            field(remaining, o.remaining);
        }
        if let Some(closest) = self.closest() {
            field(&RATELIMIT_LIMIT, closest.limit);
            field(&RATELIMIT_REMAINING, closest.remaining);
            field(&RATELIMIT_RESET, closest.reset);
        }
    }

    /// Whether one of the fields is named `name` (any case).
    pub fn includes(&self, name: &[u8]) -> bool {
        // Asked of every field of every upstream response on a limited route: most names
        // are told apart by their first bytes.
        let starts = |prefix: &[u8]| name.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix));
        if !starts(b"ratelimit-") && !starts(b"x-ratelimit-") {
            return false;
        }
        let mut found = false;
        self.each(|ours, _| found |= name.eq_ignore_ascii_case(ours.as_str().as_bytes()));
        found
    }

    /// Whether `headers` has a field of one of these names already.
    pub fn any_in(&self, headers: &HeaderMap) -> bool {
        let mut found = false;
        self.each(|ours, _| found |= headers.contains_key(ours));
        found
    }

    /// The period closest to running out, which speaks for RateLimit-*; on a tie, the
    /// longer (as Kong picks).
    fn closest(&self) -> Option<&PeriodOutcome> {
        self.outcomes.iter().rev().min_by_key(|o| o.remaining)
    }

    /// Retry-After's seconds for a refused request: RateLimit-Reset's, as in Kong. That is
    /// the refusing period's, or a longer one's that has run out too and ends later.
    pub fn retry_after(&self) -> Option<u64> {
        self.closest().map(|o| o.reset)
    }

    /// Appends the fields to a head being written.
    pub fn write_into(&self, head: &mut Vec<u8>) {
        // itoa, not core::fmt: its machinery showed in profiles at five numbers a request.
        let mut digits = itoa::Buffer::new();
        self.each(|name, value| write_field(head, name.as_str().as_bytes(), digits.format(value).as_bytes()));
    }

    /// Puts the fields in `headers`, replacing any of the same names.
    pub fn add_to(&self, headers: &mut HeaderMap) {
        self.each(|name, value| {
            headers.insert(name.clone(), HeaderValue::from(value));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(period: Period, limit: u64, remaining: u64, reset: u64) -> PeriodOutcome {
        PeriodOutcome { period, limit, remaining, reset }
    }

    fn written(fields: &RateLimitFields) -> String {
        let mut head = Vec::new();
        fields.write_into(&mut head);
        String::from_utf8(head).unwrap()
    }

    #[test]
    fn every_period_is_reported_and_the_closest_to_running_out_speaks_for_ratelimit() {
        let fields = RateLimitFields::new(SmallVec::from_slice(&[outcome(Period::Second, 10, 3, 1), outcome(Period::Minute, u64::MAX, 3, 42)]));
        assert_eq!(
            written(&fields),
            "x-ratelimit-limit-second: 10\r\n\
             x-ratelimit-remaining-second: 3\r\n\
             x-ratelimit-limit-minute: 18446744073709551615\r\n\
             x-ratelimit-remaining-minute: 3\r\n\
             ratelimit-limit: 18446744073709551615\r\n\
             ratelimit-remaining: 3\r\n\
             ratelimit-reset: 42\r\n",
            "a tie goes to the longer period"
        );
        assert_eq!(fields.retry_after(), Some(42));

        let fields = RateLimitFields::new(SmallVec::from_slice(&[outcome(Period::Hour, 100, 99, 3000), outcome(Period::Day, 1000, 5, 80_000)]));
        assert!(written(&fields).ends_with("ratelimit-limit: 1000\r\nratelimit-remaining: 5\r\nratelimit-reset: 80000\r\n"));
        // Refused by the second, with the hour reported as it stands: retry after the second.
        let refused = RateLimitFields::new(SmallVec::from_slice(&[outcome(Period::Second, 2, 0, 1), outcome(Period::Hour, 100, 97, 3000)]));
        assert_eq!(refused.retry_after(), Some(1));
        assert!(written(&refused).contains("x-ratelimit-remaining-hour: 97\r\n"));
        assert_eq!(written(&RateLimitFields::default()), "");
        assert_eq!(RateLimitFields::default().retry_after(), None);
    }

    #[test]
    fn the_map_gets_the_same_fields_as_the_head() {
        let fields = RateLimitFields::new(SmallVec::from_slice(&[outcome(Period::Minute, 5, 0, 17)]));
        let mut map = HeaderMap::new();
        map.insert("ratelimit-limit", HeaderValue::from_static("999"));
        fields.add_to(&mut map);
        let mut from_map: Vec<String> = map.iter().map(|(n, v)| format!("{n}: {}\r\n", v.to_str().unwrap())).collect();
        let mut from_head: Vec<String> = written(&fields).split_inclusive("\r\n").map(str::to_owned).collect();
        from_map.sort();
        from_head.sort();
        assert_eq!(from_map, from_head);
    }

    #[test]
    fn names_are_recognised_only_when_written() {
        let fields = RateLimitFields::new(SmallVec::from_slice(&[outcome(Period::Minute, 5, 4, 17)]));
        for name in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "x-ratelimit-limit-minute", "x-ratelimit-remaining-minute"] {
            assert!(fields.includes(name.as_bytes()), "{name}");
            assert!(fields.includes(name.to_ascii_uppercase().as_bytes()), "{name}");
            assert!(!RateLimitFields::default().includes(name.as_bytes()), "{name}");
        }
        assert!(!fields.includes(b"x-ratelimit-limit-second"));
        let mut map = HeaderMap::new();
        map.insert("x-other", HeaderValue::from_static("1"));
        assert!(!fields.any_in(&map));
        map.insert("ratelimit-reset", HeaderValue::from_static("1"));
        assert!(fields.any_in(&map));
    }
}
