//! Harness for black-box tests: starts the real `gatehouse` binary as separate processes,
//! each on its own loopback address, and talks to them only as a user would (HTTP and
//! the CLI). Every process is killed when its `Cluster` is dropped, even on panic.
//! Chaos runs (`run`, `nemesis`, `workload`, `checker`) build on it: faults, workloads
//! recorded in a history, and one checker per invariant.

pub mod checker;
pub mod client;
pub mod formation;
pub mod history;
pub mod http;
pub mod nemesis;
pub mod process;
pub mod run;
pub mod schedule;
pub mod summary;
pub mod verify;
pub mod workload;

pub use formation::{form, wait_agreed};
pub use process::{Cluster, NodeSpec};

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Multi-process tests run one at a time: on two cores, several clusters at once would
/// turn election and failure-detection timing into a lottery.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `check` until it returns Some, or panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
