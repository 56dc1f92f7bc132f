//! Harness for black-box tests: starts the real `gatehouse` binary as separate processes,
//! each on its own loopback address, and talks to them only as a user would (HTTP and
//! the CLI). Every process is killed when its `Cluster` is dropped, even on panic.

pub mod formation;
pub mod http;
pub mod process;

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
