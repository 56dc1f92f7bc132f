//! Harness for black-box tests: starts the real `gatehouse` binary as separate processes,
//! each on its own loopback address, and talks to them only as a user would (HTTP and
//! the CLI). Every process is killed when its `Cluster` is dropped, even on panic.

pub mod http;
pub mod process;

pub use process::{Cluster, NodeSpec};

use std::future::Future;
use std::time::{Duration, Instant};

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
