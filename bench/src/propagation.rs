//! Config propagation: create a route through one node's Admin API and, from the moment
//! the write is acknowledged, poll every node's proxy until the route answers 200 there.
//! The figure per write is the time until the last node answers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use crate::http::{get, send, Client};
use crate::stats::{percentile_ms, r3};

/// A node that has not served the route by then counts as a failure of the run.
const GIVE_UP: Duration = Duration::from_secs(10);
/// Pause between polls of one node: fine enough for a 50 ms target, and leaves the CPU
/// to the nodes being measured.
const POLL_GAP: Duration = Duration::from_micros(200);

pub async fn run(client: &Client, admin: &str, service: &str, proxies: &[String], count: usize) -> Result<Value, String> {
    let mut samples = Vec::with_capacity(count);
    let tag = std::process::id();
    for i in 0..count {
        let name = format!("prop-{tag}-{i}");
        let url = format!("http://{admin}/services/{service}/routes/{name}");
        let body = Bytes::from(format!("paths[]=/{name}"));
        let hdr = [("content-type", "application/x-www-form-urlencoded")];
        let (status, resp) = send(client, Method::PUT, &url, &hdr, body, Duration::from_secs(5)).await?;
        if !(200..300).contains(&status) {
            return Err(format!("{url}: {status} {}", String::from_utf8_lossy(&resp)));
        }
        let acked = Instant::now();
        let polls = proxies.iter().map(|p| {
            let (client, url) = (client.clone(), format!("http://{p}/{name}"));
            async move {
                loop {
                    if let Ok(200) = get(&client, &url, Duration::from_secs(1)).await {
                        return Ok(acked.elapsed());
                    }
                    if acked.elapsed() > GIVE_UP {
                        return Err(format!("{url} still not routed {GIVE_UP:?} after the write was acknowledged"));
                    }
                    tokio::time::sleep(POLL_GAP).await;
                }
            }
        });
        let mut slowest = Duration::ZERO;
        for r in futures_join(polls.collect()).await {
            slowest = slowest.max(r?);
        }
        samples.push(slowest);
    }
    Ok(json!({
        "count": samples.len(),
        "p50_ms": r3(percentile_ms(&mut samples, 0.50)),
        "p99_ms": r3(percentile_ms(&mut samples, 0.99)),
        "max_ms": r3(percentile_ms(&mut samples, 1.0)),
    }))
}

/// Runs the polls of all nodes at once (tokio tasks, so no extra crate is needed).
async fn futures_join<F, T>(futs: Vec<F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("poll task panicked"));
    }
    out
}
