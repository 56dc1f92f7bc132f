//! UTC calendar arithmetic for the month and year windows, which Kong starts on the
//! first of the month and on January 1st (`kong.tools.timestamp`), not at fixed lengths
//! from the epoch. Days from the civil date and back, by the proleptic Gregorian rules
//! (Howard Hinnant's `days_from_civil` algorithms).

const DAY_MS: u64 = 86_400_000;

/// Days since 1970-01-01 of a date (`month` 1-12, `day` 1-31), at or after the epoch.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The (year, month) of a day since the epoch.
fn year_month(days: u64) -> (u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month)
}

/// When the month that `ms` falls in began, and when the next begins (ms since the epoch).
pub fn month_of(ms: u64) -> (u64, u64) {
    let (year, month) = year_month(ms / DAY_MS);
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    (days_from_civil(year, month, 1) * DAY_MS, days_from_civil(next_year, next_month, 1) * DAY_MS)
}

/// When the year that `ms` falls in began, and when the next begins.
pub fn year_of(ms: u64) -> (u64, u64) {
    let (year, _) = year_month(ms / DAY_MS);
    (days_from_civil(year, 1, 1) * DAY_MS, days_from_civil(year + 1, 1, 1) * DAY_MS)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// 2026-12-08T00:30:00Z, and what the calendar says around it.
    #[test]
    fn months_and_years_begin_on_the_first() {
        let now = 1_796_689_800_000;
        assert_eq!(month_of(now), (1_796_083_200_000, 1_798_761_600_000), "2026-12-01 .. 2027-01-01");
        assert_eq!(year_of(now), (1_767_225_600_000, 1_798_761_600_000), "2026-01-01 .. 2027-01-01");
        // February of a leap year has 29 days; 2028 has 366.
        let feb_2028 = days_from_civil(2028, 2, 10) * DAY_MS;
        let (start, end) = month_of(feb_2028);
        assert_eq!((end - start) / DAY_MS, 29);
        let (start, end) = year_of(feb_2028);
        assert_eq!((end - start) / DAY_MS, 366);
        assert_eq!(month_of(0), (0, 31 * DAY_MS));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    proptest! {
        /// Every instant falls in its month and year, which follow one another with no gap.
        #[test]
        fn an_instant_lies_in_its_month_and_the_next_month_follows(ms in 0u64..8_000_000_000_000) {
            let (start, end) = month_of(ms);
            prop_assert!(start <= ms && ms < end);
            prop_assert!((28..=31).contains(&((end - start) / DAY_MS)));
            prop_assert_eq!(month_of(end).0, end);
            prop_assert_eq!(month_of(start), (start, end));
            let (year_start, year_end) = year_of(ms);
            prop_assert!(year_start <= start && end <= year_end);
            prop_assert!((365..=366).contains(&((year_end - year_start) / DAY_MS)));
        }
    }
}
