//! Rate-limit accuracy: drive every node's proxy on one rate-limited route above the
//! limit, and count the 200s per unix-second window. The node decides between the
//! driver's send and receive times, so a response sent and received in the same second
//! belongs to that window for certain; one that straddles a boundary could belong to
//! either, and is counted apart: the certain count per window is a lower bound, adding
//! the straddlers an upper bound. The first and last windows are partial and left out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::http::{get, Client};
use crate::stats::r3;

pub async fn run(client: &Client, urls: &[String], limit: u64, duration: Duration, concurrency: usize) -> Result<Value, String> {
    let base_unix_us = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_micros() as u64;
    let base = Instant::now();
    let mut tasks = Vec::new();
    for url in urls {
        for _ in 0..concurrency {
            let (client, url) = (client.clone(), format!("http://{url}"));
            tasks.push(tokio::spawn(async move {
                let mut counts: BTreeMap<u64, Count> = BTreeMap::new();
                while base.elapsed() < duration {
                    let sent = (base_unix_us + base.elapsed().as_micros() as u64) / 1_000_000;
                    let status = get(&client, &url, Duration::from_secs(2)).await;
                    let received = (base_unix_us + base.elapsed().as_micros() as u64) / 1_000_000;
                    match status {
                        Ok(200) if sent == received => counts.entry(sent).or_default().admitted += 1,
                        Ok(200) => {
                            counts.entry(sent).or_default().straddling += 1;
                            counts.entry(received).or_default().straddling += 1;
                        }
                        Ok(429) => counts.entry(received).or_default().rejected += 1,
                        _ => counts.entry(received).or_default().other += 1,
                    }
                }
                counts
            }));
        }
    }
    let mut all: BTreeMap<u64, Count> = BTreeMap::new();
    for t in tasks {
        for (sec, c) in t.await.map_err(|e| format!("load task: {e}"))? {
            let a = all.entry(sec).or_default();
            a.admitted += c.admitted;
            a.straddling += c.straddling;
            a.rejected += c.rejected;
            a.other += c.other;
        }
    }
    let first = all.keys().next().copied();
    let last = all.keys().next_back().copied();
    let whole: Vec<Count> = all.iter().filter(|(s, _)| Some(**s) != first && Some(**s) != last).map(|(_, c)| *c).collect();
    if whole.is_empty() {
        return Err("the run was too short to hold one whole one-second window".into());
    }
    let admitted: Vec<u64> = whole.iter().map(|c| c.admitted).collect();
    let upper: Vec<u64> = whole.iter().map(|c| c.admitted + c.straddling).collect();
    let ratio = |v: &[u64]| v.iter().map(|a| *a as f64 / limit as f64).collect::<Vec<f64>>();
    let (low, high) = (ratio(&admitted), ratio(&upper));
    Ok(json!({
        "windows": whole.len(),
        "limit": limit,
        "admitted_per_window": admitted,
        "straddling_per_window": whole.iter().map(|c| c.straddling).collect::<Vec<_>>(),
        "max_ratio": r3(low.iter().copied().fold(0.0, f64::max)),
        "max_ratio_upper": r3(high.iter().copied().fold(0.0, f64::max)),
        "mean_ratio": r3(low.iter().sum::<f64>() / low.len() as f64),
        "offered_per_s": r3(whole.iter().map(|c| c.admitted + c.straddling + c.rejected + c.other).sum::<u64>() as f64 / whole.len() as f64),
        "errors": whole.iter().map(|c| c.other).sum::<u64>(),
    }))
}

/// Responses of one window: admitted for certain, admitted across a boundary (counted in
/// both windows it touches), refused with 429, anything else.
#[derive(Default, Clone, Copy)]
struct Count {
    admitted: u64,
    straddling: u64,
    rejected: u64,
    other: u64,
}
