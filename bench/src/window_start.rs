//! What a rate-limit window's first request waits: on an idle route, once per window,
//! the first request just after a one-second boundary and the next one at once after it,
//! on one keep-alive connection. With the cluster policy, the first request of a key new to
//! the node finds no tokens for the window and waits for a reservation's Raft round; a key
//! that came in the window before finds the window reserved ahead. The next request takes
//! a token. With the local policy neither waits. The windows are the node's, aligned to the Unix second;
//! node and driver share this machine's clock. With a fresh field, each window's requests
//! carry a value never sent before, so that a route limited by that field sees a new key
//! every window rather than one that comes back.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use bytes::Bytes;
use hyper::Method;

use crate::http::{send, Client};
use crate::stats::{percentile_ms, r3};

/// How far past the boundary the first request goes: clear of the boundary on the node's
/// side, early enough in the window that nothing else has started it.
const PAST_BOUNDARY: Duration = Duration::from_millis(50);

pub async fn run(client: &Client, url: &str, windows: usize, fresh_header: Option<&str>) -> Result<Value, String> {
    let url = format!("http://{url}");
    // Unique to this run: the cluster may have seen the values of a run before.
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_nanos();
    let field = |round: &str| -> Vec<(String, String)> {
        fresh_header.map(|name| vec![(name.to_owned(), format!("{run_id}-{round}"))]).unwrap_or_default()
    };
    // A warm connection, so that the first timed request does not pay for the connect.
    timed(client, &url, &field("warm-up")).await?;
    let (mut first, mut next) = (Vec::with_capacity(windows), Vec::with_capacity(windows));
    for window in 0..windows {
        // The schedule of the measurement itself: each sample starts in a fresh window.
        tokio::time::sleep(until_next_second()? + PAST_BOUNDARY).await;
        let field = field(&window.to_string());
        first.push(timed(client, &url, &field).await?);
        next.push(timed(client, &url, &field).await?);
    }
    // In the order taken, before the percentiles sort them.
    let first_ms: Vec<f64> = first.iter().map(|d| r3(d.as_secs_f64() * 1000.0)).collect();
    Ok(json!({
        "windows": windows,
        "first_p50_ms": r3(percentile_ms(&mut first, 0.5)),
        "first_max_ms": r3(percentile_ms(&mut first, 1.0)),
        "next_p50_ms": r3(percentile_ms(&mut next, 0.5)),
        "first_ms": first_ms,
    }))
}

async fn timed(client: &Client, url: &str, fields: &[(String, String)]) -> Result<Duration, String> {
    let fields: Vec<(&str, &str)> = fields.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let start = Instant::now();
    let status = send(client, Method::GET, url, &fields, Bytes::new(), Duration::from_secs(2)).await.map(|(status, _)| status);
    let took = start.elapsed();
    expect_ok(status, url)?;
    Ok(took)
}

fn expect_ok(status: Result<u16, String>, url: &str) -> Result<(), String> {
    match status? {
        200 => Ok(()),
        other => Err(format!("{url} answered {other}, not 200: the route must admit two requests a window")),
    }
}

fn until_next_second() -> Result<Duration, String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| format!("the clock is before 1970: {e}"))?;
    Ok(to_next_second(now))
}

/// From `since_epoch` to the next whole second; a whole second itself waits a whole one,
/// since a window that has just begun may have been begun already.
fn to_next_second(since_epoch: Duration) -> Duration {
    Duration::from_secs(1) - Duration::from_nanos(u64::from(since_epoch.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_ends_on_the_next_whole_second() {
        let at = |s: u64, ms: u64| Duration::from_secs(s) + Duration::from_millis(ms);
        assert_eq!(to_next_second(at(1_700_000_000, 250)), Duration::from_millis(750));
        assert_eq!(to_next_second(at(1_700_000_000, 999)), Duration::from_millis(1));
        assert_eq!(to_next_second(at(1_700_000_000, 0)), Duration::from_secs(1));
        assert_eq!(to_next_second(at(7, 1) + Duration::from_nanos(500)), Duration::from_nanos(998_999_500));
    }
}
