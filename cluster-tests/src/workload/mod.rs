//! Workloads that run alongside faults, each a set of tokio tasks recording into the
//! run's history: admin writes, proxied traffic, rate-limited load, and the status poller
//! the leader and rate-limit checkers read.

pub mod proxy;
pub mod ratelimit;
pub mod status;
pub mod writes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::client::Client;
use crate::history::{History, Outcome};
use crate::nemesis::process::NodeStates;
use crate::run::Run;

/// What a workload task needs from the run, cloned into each task.
#[derive(Clone)]
pub struct Shared {
    pub seed: u64,
    pub prefix: String,
    pub n: usize,
    pub client: Client,
    pub history: History,
    pub nodes: NodeStates,
    pub stop: Arc<AtomicBool>,
}

impl Shared {
    pub fn admin(&self, i: usize) -> String {
        format!("http://{}.{i}:8001", self.prefix)
    }

    pub fn proxy(&self, i: usize) -> String {
        format!("http://{}.{i}:8000", self.prefix)
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// A per-task seed derived from the run's, so every task draws its own sequence.
    pub fn task_seed(&self, salt: u64) -> u64 {
        self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(salt)
    }
}

impl Run {
    pub fn shared(&self) -> Shared {
        Shared {
            seed: self.seed,
            prefix: self.prefix.clone(),
            n: self.n(),
            client: self.client.clone(),
            history: self.history.clone(),
            nodes: self.nodes.clone(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Running workload tasks; `stop` asks them to finish their current request and waits.
pub struct Handle {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Handle {
    pub fn new(shared: &Shared, tasks: Vec<JoinHandle<()>>) -> Handle {
        Handle { stop: shared.stop.clone(), tasks }
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            if let Err(e) = t.await {
                panic!("a workload task failed: {e}");
            }
        }
    }
}

/// How an HTTP exchange ended, as the history records it.
pub fn classify(reply: &Result<crate::client::Reply, crate::client::Failure>) -> (Outcome, Option<u16>, String) {
    use crate::client::Failure;
    match reply {
        Ok(r) => {
            let status = r.status.as_u16();
            let outcome = match status {
                200..=299 => Outcome::Ok,
                400..=499 => Outcome::Failed,
                _ => Outcome::Unknown,
            };
            let details = if outcome == Outcome::Ok { String::new() } else { String::from_utf8_lossy(&r.body).chars().take(300).collect() };
            (outcome, Some(status), details)
        }
        Err(f @ Failure::Connect(_)) => (Outcome::Failed, None, f.to_string()),
        Err(f @ Failure::Unknown(_)) => (Outcome::Unknown, None, f.to_string()),
    }
}
