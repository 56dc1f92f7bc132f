//! Admin write latency and throughput: sequential writes one after another (p50/p99),
//! then N concurrent writers for a fixed time (writes/s). Each writer cycles over a few
//! keys of its own, so the key space stays small and writers never contend on one key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::Client;
use crate::stats::{percentile_ms, r3};
use crate::target::{write, Kind};

const TIMEOUT: Duration = Duration::from_secs(5);
/// Keys per writer: enough to be distinct writes, few enough to keep the config small.
const KEYS_PER_WRITER: u64 = 8;

pub async fn run(client: &Client, kind: Kind, addr: &str, sequential: usize, concurrency: usize, duration: Duration) -> Result<Value, String> {
    // Warm-up: connection set-up and first-write effects stay out of the figures.
    for i in 0..20 {
        write(client, kind, addr, &format!("bench-seq-{}", i % 100), TIMEOUT).await?;
    }
    let mut seq = Vec::with_capacity(sequential);
    for i in 0..sequential {
        let t = Instant::now();
        write(client, kind, addr, &format!("bench-seq-{}", i % 100), TIMEOUT).await?;
        seq.push(t.elapsed());
    }

    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (client, addr, done, errors) = (client.clone(), addr.to_owned(), done.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while start.elapsed() < duration {
                let t = Instant::now();
                match write(&client, kind, &addr, &format!("bench-c{w}-{}", i % KEYS_PER_WRITER), TIMEOUT).await {
                    Ok(()) => {
                        lat.push(t.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("gatehouse-bench: write failed: {e}");
                        }
                    }
                }
                i += 1;
            }
            lat
        }));
    }
    let mut conc = Vec::new();
    for t in tasks {
        conc.extend(t.await.map_err(|e| format!("writer task: {e}"))?);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(json!({
        "seq_count": seq.len(),
        "seq_p50_ms": r3(percentile_ms(&mut seq, 0.50)),
        "seq_p99_ms": r3(percentile_ms(&mut seq, 0.99)),
        "concurrency": concurrency,
        "conc_writes_per_s": r3(done.load(Ordering::Relaxed) as f64 / secs),
        "conc_p50_ms": r3(percentile_ms(&mut conc, 0.50)),
        "conc_p99_ms": r3(percentile_ms(&mut conc, 0.99)),
        "errors": errors.load(Ordering::Relaxed),
    }))
}
