//! Latency summaries: percentiles over recorded durations, in milliseconds.

use std::time::Duration;

/// The q-th quantile (0..=1) by nearest rank; 0 when there are no samples.
pub fn percentile_ms(samples: &mut [Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1].as_secs_f64() * 1000.0
}

/// Rounds to three decimals so the JSON stays readable.
pub fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
