//! Batches reservations: every `Reserve` a node needs while one batch is being committed
//! goes into the next one, so a busy node costs one Raft entry per round trip, not one
//! per key. Also proposes `Expire` for ended windows, from the leader only.

use std::time::Duration;

use gatehouse_raft::{Command, Response, Role, Store};
use tokio::sync::{mpsc, oneshot};

use super::wall_clock::now_ms;
use crate::shutdown::Shutdown;

/// Largest batch per Raft entry; more wait for the next round (a group that must share
/// an entry may take a batch past it by its own size).
const MAX_BATCH: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// No quorum (or no leader) in time: fall back to the local share.
    #[error("reservation failed: {0}")]
    Unavailable(String),
}

pub struct ReserveRequest {
    pub key: String,
    pub want: u64,
    pub limit: u64,
    pub expires_at: u64,
    pub reply: oneshot::Sender<Result<(u64, u64), ReserveError>>,
}

#[derive(Clone)]
pub struct Reserver {
    /// Requests that must share a Raft entry travel together.
    tx: mpsc::Sender<Vec<ReserveRequest>>,
    store: Store,
}

impl Reserver {
    /// Starts the batching task; `timeout` bounds each batch's commit.
    pub fn start(store: Store, timeout: Duration, shutdown: Shutdown) -> Reserver {
        let (tx, rx) = mpsc::channel(16 * MAX_BATCH);
        tokio::spawn(run(store.clone(), rx, timeout, shutdown));
        Reserver { tx, store }
    }

    /// Reserves up to `want` tokens of `key`'s budget; returns (granted, cluster total).
    pub async fn reserve(&self, key: String, want: u64, limit: u64, expires_at: u64) -> Result<(u64, u64), ReserveError> {
        self.reserve_many(vec![(key, want, limit, expires_at)]).await.pop().expect("one answer per reservation")
    }

    /// Reserves several keys in one Raft entry (one message to the batcher, so that no
    /// batch can cut them). Answers in order.
    pub async fn reserve_many(&self, wants: Vec<(String, u64, u64, u64)>) -> Vec<Result<(u64, u64), ReserveError>> {
        let stopped = || ReserveError::Unavailable("the reserver stopped".into());
        let (requests, answers): (Vec<_>, Vec<_>) = wants
            .into_iter()
            .map(|(key, want, limit, expires_at)| {
                let (reply, rx) = oneshot::channel();
                (ReserveRequest { key, want, limit, expires_at, reply }, rx)
            })
            .unzip();
        if self.tx.send(requests).await.is_err() {
            return answers.iter().map(|_| Err(stopped())).collect();
        }
        let mut results = Vec::with_capacity(answers.len());
        for rx in answers {
            results.push(rx.await.unwrap_or_else(|_| Err(stopped())));
        }
        results
    }
}

impl Reserver {
    /// The cluster-wide total granted for `key` as this node has applied it, with no I/O.
    /// When reservations start failing this is the freshest figure the node has: every
    /// committed reservation is in the log of a majority, often this node's.
    pub fn applied_total(&self, key: &str) -> u64 {
        self.store.get(key).and_then(|kv| gatehouse_raft::kv::decode_counter(&kv.value)).unwrap_or(0)
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Vec<ReserveRequest>>, timeout: Duration, mut shutdown: Shutdown) {
    loop {
        let mut batch = tokio::select! {
            _ = shutdown.wait() => return,
            r = rx.recv() => match r { Some(r) => r, None => return },
        };
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let cmd = Command::Batch(
            batch
                .iter()
                .map(|r| Command::Reserve { key: r.key.clone(), want: r.want, limit: r.limit, expires_at: r.expires_at })
                .collect(),
        );
        let result = match tokio::time::timeout(timeout, store.write(cmd)).await {
            Err(_) => Err(ReserveError::Unavailable(format!("no commit within {timeout:?}"))),
            Ok(Err(e)) => Err(ReserveError::Unavailable(e.to_string())),
            Ok(Ok(w)) => match w.response {
                Response::Batch(responses) if responses.len() == batch.len() => Ok(responses),
                other => Err(ReserveError::Unavailable(format!("unexpected response {other:?}"))),
            },
        };
        match result {
            Ok(responses) => {
                for (req, resp) in batch.into_iter().zip(responses) {
                    let answer = match resp {
                        Response::Reserve { granted, total, .. } => Ok((granted, total)),
                        // A counter key holding something else: treat the budget as spent.
                        _ => Ok((0, req.limit)),
                    };
                    let _ = req.reply.send(answer);
                }
            }
            Err(e) => {
                for req in batch {
                    let _ = req.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// On the leader, drops counters of ended windows every `every`.
pub async fn expire_loop(store: Store, every: Duration, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if store.status().role != Role::Leader {
            continue;
        }
        // The proposer stamps the time: apply never reads a clock.
        if let Err(e) = store.write(Command::Expire { before: now_ms() }).await {
            tracing::debug!(error = %e, "expire of ended rate-limit windows failed; will retry");
        }
    }
}
