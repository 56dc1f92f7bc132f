//! Rate-limit accuracy: drive every node's proxy on one rate-limited route above the
//! limit, and count the 200s per unix-second window. A response belongs to the window of
//! the midpoint between sending and receiving it (loopback round trips are well under a
//! millisecond, so few land on the wrong side of a boundary). The first and last windows
//! are partial and left out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::http::{get, Client};
use crate::stats::r3;

pub async fn run(client: &Client, urls: &[String], limit: u64, duration: Duration, concurrency: usize) -> Result<Value, String> {
    let base_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_millis() as u64;
    let base = Instant::now();
    let mut tasks = Vec::new();
    for url in urls {
        for _ in 0..concurrency {
            let (client, url) = (client.clone(), format!("http://{url}"));
            tasks.push(tokio::spawn(async move {
                // window second -> (admitted, rejected, other)
                let mut counts: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
                while base.elapsed() < duration {
                    let sent = base.elapsed();
                    let status = get(&client, &url, Duration::from_secs(2)).await;
                    let mid = (sent + base.elapsed()) / 2;
                    let c = counts.entry((base_unix_ms + mid.as_millis() as u64) / 1000).or_default();
                    match status {
                        Ok(200) => c.0 += 1,
                        Ok(429) => c.1 += 1,
                        _ => c.2 += 1,
                    }
                }
                counts
            }));
        }
    }
    let mut all: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    for t in tasks {
        for (sec, (a, r, o)) in t.await.map_err(|e| format!("load task: {e}"))? {
            let c = all.entry(sec).or_default();
            c.0 += a;
            c.1 += r;
            c.2 += o;
        }
    }
    let first = all.keys().next().copied();
    let last = all.keys().next_back().copied();
    let whole: Vec<_> = all.iter().filter(|(s, _)| Some(**s) != first && Some(**s) != last).map(|(_, c)| *c).collect();
    if whole.is_empty() {
        return Err("the run was too short to hold one whole one-second window".into());
    }
    let admitted: Vec<u64> = whole.iter().map(|c| c.0).collect();
    let ratios: Vec<f64> = admitted.iter().map(|a| *a as f64 / limit as f64).collect();
    Ok(json!({
        "windows": whole.len(),
        "limit": limit,
        "admitted_per_window": admitted,
        "max_ratio": r3(ratios.iter().copied().fold(0.0, f64::max)),
        "mean_ratio": r3(ratios.iter().sum::<f64>() / ratios.len() as f64),
        "offered_per_s": r3(whole.iter().map(|c| c.0 + c.1 + c.2).sum::<u64>() as f64 / whole.len() as f64),
        "errors": whole.iter().map(|c| c.2).sum::<u64>(),
    }))
}
