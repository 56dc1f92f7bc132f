//! Failover: SIGKILL the leader, then write through the survivors until one write is
//! acknowledged; the figure is kill -> acknowledgement. A new write attempt starts every
//! 50 ms (round-robin over survivors) so a survivor that hangs on the dead leader does
//! not hide the moment another could answer. Meanwhile steady proxy load runs against
//! the survivors and every request that does not answer 200 is counted as failed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::http::{get, Client};
use crate::stats::r3;
use crate::target::{write, Kind};

const ATTEMPT_EVERY: Duration = Duration::from_millis(50);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const GIVE_UP: Duration = Duration::from_secs(30);
/// Proxy load before the kill and after the acknowledgement, so both edges are covered.
const MARGIN: Duration = Duration::from_secs(1);

pub struct Plan<'a> {
    pub kind: Kind,
    pub pid: i32,
    pub survivors: &'a [String],
    /// host:port/path of each survivor's proxy (empty: no proxy load).
    pub proxy_urls: &'a [String],
    pub proxy_concurrency: usize,
}

pub async fn run(client: &Client, plan: Plan<'_>) -> Result<Value, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for url in plan.proxy_urls {
        for _ in 0..plan.proxy_concurrency {
            let (client, url, stop, ok, failed) = (client.clone(), format!("http://{url}"), stop.clone(), ok.clone(), failed.clone());
            load.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match get(&client, &url, Duration::from_secs(2)).await {
                        Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                        Ok(s) => {
                            if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("gatehouse-bench: proxy {url} answered {s} during failover");
                            }
                            0
                        }
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("gatehouse-bench: proxy failed during failover: {e}");
                            }
                            0
                        }
                    };
                }
            }));
        }
    }
    // The survivors must take writes before the kill, or the figure would mean nothing.
    for s in plan.survivors {
        write(client, plan.kind, s, "bench-fo-before", ATTEMPT_TIMEOUT).await?;
    }
    tokio::time::sleep(MARGIN).await;

    let killed_at = Instant::now();
    kill(Pid::from_raw(plan.pid), Signal::SIGKILL).map_err(|e| format!("kill -9 {}: {e}", plan.pid))?;
    let mut attempts = JoinSet::new();
    let mut tick = tokio::time::interval(ATTEMPT_EVERY);
    let mut n = 0usize;
    let mut last_err = String::new();
    let acked = loop {
        if killed_at.elapsed() > GIVE_UP {
            stop.store(true, Ordering::Relaxed);
            return Err(format!("no write acknowledged within {GIVE_UP:?} of the kill; last error: {last_err}"));
        }
        tokio::select! {
            _ = tick.tick() => {
                let (client, addr, kind) = (client.clone(), plan.survivors[n % plan.survivors.len()].clone(), plan.kind);
                let key = format!("bench-fo-{n}");
                attempts.spawn(async move { write(&client, kind, &addr, &key, ATTEMPT_TIMEOUT).await.map(|()| Instant::now()) });
                n += 1;
            }
            Some(done) = attempts.join_next() => match done {
                Ok(Ok(at)) => break at,
                Ok(Err(e)) => last_err = e,
                Err(e) => last_err = e.to_string(),
            },
        }
    };
    attempts.abort_all();
    let failover = acked - killed_at;
    tokio::time::sleep(MARGIN).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.await;
    }
    Ok(json!({
        "failover_ms": r3(failover.as_secs_f64() * 1000.0),
        "write_attempts": n,
        "proxy_ok": ok.load(Ordering::Relaxed),
        "proxy_failed": failed.load(Ordering::Relaxed),
    }))
}
