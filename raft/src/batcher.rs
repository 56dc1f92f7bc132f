//! Group commit: writes submitted while others are being committed travel together as
//! one `Command::Batch` log entry. openraft 0.9 appends (and so fsyncs) once per client
//! write; batching turns N concurrent writes into one append, one replication round and
//! one fsync per node. A lone write is sent at once, so it waits no longer than before.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::error::StoreError;
use crate::network::{LeaderReply, LeaderRequest};
use crate::store::{Store, Written};
use crate::types::{Command, Response, MAX_WRITE_BYTES};

/// Most commands in one log entry.
const MAX_BATCH: usize = 256;
/// Batches committing at once: a second batch fills while the first is on the wire.
const IN_FLIGHT: usize = 2;

pub(crate) struct Pending {
    pub cmd: Command,
    /// `cmd.payload_bytes()`, as `Store::write` checked it.
    pub bytes: usize,
    pub reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// Runs until every sender is gone (the store drops its own on shutdown), then waits
/// for the batches in flight, so that no clone of the store outlives its shutdown.
pub(crate) async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut in_flight = JoinSet::new();
    // A write that would have taken its batch over `MAX_WRITE_BYTES`: the next batch's first.
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => tokio::select! {
                next = rx.recv() => match next {
                    Some(p) => p,
                    None => break,
                },
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => continue,
            },
        };
        let Ok(permit) = slots.clone().acquire_owned().await else { break };
        // Whatever queued while we waited for a slot goes in this batch, as long as the
        // entry stays within what one write may carry.
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) if bytes + p.bytes > MAX_WRITE_BYTES => {
                    carried = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.bytes;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let store = store.clone();
        in_flight.spawn(async move {
            commit(&store, batch).await;
            drop(permit);
        });
    }
    while in_flight.join_next().await.is_some() {}
}

async fn commit(store: &Store, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        let p = batch.pop().expect("one");
        let _ = p.reply.send(store.write_now(p.cmd).await);
        return;
    }
    let cmd = Command::Batch(batch.iter().map(|p| p.cmd.clone()).collect());
    let result = match store.leader_call(LeaderRequest::Write(cmd)).await {
        Ok(LeaderReply::Written { log_index, response: Response::Batch(responses) }) if responses.len() == batch.len() => {
            store.wait_applied(log_index).await.map(|()| (log_index, responses))
        }
        Ok(other) => Err(StoreError::Uncertain(format!("unexpected answer to a batch: {other:?}"))),
        Err(e) => Err(e),
    };
    match result {
        Ok((log_index, responses)) => {
            for (p, response) in batch.into_iter().zip(responses) {
                let _ = p.reply.send(Ok(Written { log_index, response }));
            }
        }
        Err(e) => {
            for p in batch {
                let _ = p.reply.send(Err(e.duplicate()));
            }
        }
    }
}
