//! Batches the rate limit's Raft commands: every reservation (`ReserveIn`), enrolment
//! and settlement a node needs while one batch is being committed goes into the next
//! one, so a busy node costs one Raft entry per round trip, not one per key. Also
//! proposes `Expire` for ended windows, from the leader only.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_raft::kv::slices::Counter;
use gatehouse_raft::{Command, Response, Role, SlotUse, Store, WindowRef};
use tokio::sync::{mpsc, oneshot};

use super::wall_clock::now_ms;
use crate::cluster::agreement;
use crate::cluster::protocol::MembersRead;
use crate::shutdown::Shutdown;

/// Largest batch per Raft entry; more wait for the next round (a group that must share
/// an entry may take a batch past it by its own size).
const MAX_BATCH: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// No quorum (or no leader) in time: fall back to the local share.
    #[error("reservation failed: {0}")]
    Unavailable(String),
    /// The node is shutting down.
    #[error("the reserver stopped")]
    Stopped,
}

/// One reservation: up to `want` tokens of `key`'s counter, of `window`, under `limit`;
/// `slot` says how this node's first slice of the counter went, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub key: String,
    pub want: u64,
    pub limit: u64,
    pub expires_at: u64,
    pub window: WindowRef,
    pub slot: Option<SlotUse>,
}

/// What a reservation got: `total` counts every token granted or held as a first slice
/// in the cluster, `held` the first slices not settled, as of `revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub granted: u64,
    pub total: u64,
    pub held: u64,
    pub revision: u64,
}

/// A node's enrolment in a window (see `gatehouse_raft::kv::slices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enrolment {
    pub slot: u8,
    /// The store's revision once it applied the enrolment: a map applied that far shows
    /// every counter created before it.
    pub revision: u64,
    /// False for a slot enrolled before (a retry or a restart) that this process cannot
    /// tell was not used: not to be used, and settled as used when recalled.
    pub fresh: bool,
}

impl Enrolment {
    /// The slot as a node reports it for a counter whose token it did not take: unused,
    /// unless the enrolment is not fresh and it cannot tell.
    pub fn untaken(&self) -> SlotUse {
        SlotUse { slot: self.slot, used: !self.fresh }
    }
}

struct Request {
    cmd: Command,
    reply: oneshot::Sender<Result<Response, ReserveError>>,
}

#[derive(Clone)]
pub struct Reserver {
    /// Requests that must share a Raft entry travel together.
    tx: mpsc::Sender<Vec<Request>>,
    store: Store,
    /// Whether the members read first slices' commands (`MembersRead`, see
    /// `cluster::protocol` and `cluster::agreement`): first slices are taken only once the
    /// cluster has recorded that every member reads them, and until then reservations
    /// are the plain `Reserve` that any reads (see `command_for`).
    members_read: Arc<AtomicU8>,
}

impl Reserver {
    /// Starts the batching task; `timeout` bounds each batch's commit.
    pub fn start(store: Store, timeout: Duration, shutdown: Shutdown) -> Reserver {
        let (tx, rx) = mpsc::channel(16 * MAX_BATCH);
        tokio::spawn(run(store.clone(), rx, timeout, shutdown));
        Reserver { tx, store, members_read: Arc::new(AtomicU8::new(MembersRead::Unheard as u8)) }
    }

    pub fn members_read(&self) -> MembersRead {
        match self.members_read.load(Ordering::Relaxed) {
            m if m == MembersRead::All as u8 => MembersRead::All,
            m if m == MembersRead::Older as u8 => MembersRead::Older,
            _ => MembersRead::Unheard,
        }
    }

    pub fn set_members_read(&self, read: MembersRead) {
        self.members_read.store(read as u8, Ordering::Relaxed);
    }

    /// Whether first slices may be taken: every member reads their commands.
    pub fn first_slices(&self) -> bool {
        self.members_read() == MembersRead::All
    }

    pub async fn reserve(&self, want: Want) -> Result<Grant, ReserveError> {
        self.reserve_many(vec![want]).await.pop().expect("one answer per reservation")
    }

    /// Reserves several keys in one Raft entry (one message to the batcher, so that no
    /// batch can cut them). Answers in order.
    pub async fn reserve_many(&self, wants: Vec<Want>) -> Vec<Result<Grant, ReserveError>> {
        let read = self.members_read();
        let cmds: Vec<Command> = wants.iter().map(|w| self.command_for(w.clone(), read)).collect();
        self.reserve_by(wants, cmds).await
    }

    /// `reserve_many`, with `cmds` the commands chosen for `wants`.
    pub(crate) async fn reserve_by(&self, wants: Vec<Want>, cmds: Vec<Command>) -> Vec<Result<Grant, ReserveError>> {
        let limits: Vec<u64> = wants.iter().map(|w| w.limit).collect();
        let mut answers = self.submit(cmds).await;
        // A plain `Reserve` that landed after the cluster agreed on first slices made no
        // counter (this node's map was behind): asked again with the command that knows
        // the window's enrolled slots.
        let again: Vec<usize> = (0..answers.len()).filter(|i| matches!(answers[*i], Ok(Response::NeedsWindow { .. }))).collect();
        if !again.is_empty() {
            let cmds = again.iter().map(|i| Self::reserve_in(wants[*i].clone())).collect();
            for (i, answer) in again.into_iter().zip(self.submit(cmds).await) {
                answers[i] = answer;
            }
        }
        answers
            .into_iter()
            .zip(limits)
            .map(|(answer, limit)| {
                answer.map(|response| match response {
                    Response::ReserveIn { revision, granted, total, held } => Grant { granted, total, held, revision },
                    Response::Reserve { revision, granted, total } => Grant { granted, total, held: 0, revision },
                    // A counter key holding something else: treat the budget as spent.
                    other => Grant { granted: 0, total: limit, held: 0, revision: other.revision().unwrap_or(0) },
                })
            })
            .collect()
    }

    /// `ReserveIn` when every member reads it, or the cluster has recorded that they do
    /// (`cluster::agreement`: the state machine then lets no plain `Reserve` create a
    /// counter), or the want settles a slot (only the command that knows slots can).
    /// Else the plain `Reserve`, which any member reads.
    pub(crate) fn command_for(&self, w: Want, read: MembersRead) -> Command {
        let slices = w.slot.is_some() || read == MembersRead::All || self.agreed();
        if slices {
            Self::reserve_in(w)
        } else {
            Command::Reserve { key: w.key, want: w.want, limit: w.limit, expires_at: w.expires_at }
        }
    }

    /// Whether the cluster has recorded that every member reads first slices' commands
    /// (a read of the applied map).
    pub fn agreed(&self) -> bool {
        agreement::agreed(&self.store)
    }

    fn reserve_in(w: Want) -> Command {
        Command::ReserveIn { key: w.key, want: w.want, limit: w.limit, expires_at: w.expires_at, window: w.window, slot: w.slot }
    }

    /// Enrolls this node in `window`; `None` when the window has no slot left.
    pub async fn enroll(&self, window: WindowRef, expires_at: u64) -> Result<Option<Enrolment>, ReserveError> {
        let cmd = Command::Enroll { node: self.store.id(), window, expires_at };
        match self.submit(vec![cmd]).await.pop().expect("one answer")? {
            Response::Enrolled { revision, slot, fresh } => Ok(slot.map(|slot| Enrolment { slot, revision, fresh })),
            other => Err(ReserveError::Unavailable(format!("unexpected response {other:?}"))),
        }
    }

    /// Answers a recall of this node's first slice of `key`.
    pub async fn settle(&self, key: String, limit: u64, expires_at: u64, window: WindowRef, slot: SlotUse) -> Result<(), ReserveError> {
        let cmd = Command::Settle { key, limit, expires_at, window, slot };
        self.submit(vec![cmd]).await.pop().expect("one answer").map(|_| ())
    }

    async fn submit(&self, cmds: Vec<Command>) -> Vec<Result<Response, ReserveError>> {
        let stopped = || ReserveError::Stopped;
        let (requests, answers): (Vec<_>, Vec<_>) = cmds
            .into_iter()
            .map(|cmd| {
                let (reply, rx) = oneshot::channel();
                (Request { cmd, reply }, rx)
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
    /// First slices held count too: their holders may have admitted on them.
    pub fn applied_total(&self, key: &str, limit: u64) -> u64 {
        self.applied_counter(key).map_or(0, |(counter, _)| counter.charge(limit))
    }

    /// `key`'s counter as this node has applied it, and the revision it was last changed at.
    pub fn applied_counter(&self, key: &str) -> Option<(Counter, u64)> {
        let kv = self.store.get(key)?;
        Some((Counter::decode(&kv.value)?, kv.mod_revision))
    }

    /// How far this node has applied the store.
    pub fn applied_revision(&self) -> u64 {
        self.store.revision()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Vec<Request>>, timeout: Duration, mut shutdown: Shutdown) {
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
        let (cmds, replies): (Vec<Command>, Vec<_>) = batch.into_iter().map(|r| (r.cmd, r.reply)).unzip();
        let count = cmds.len();
        let result = match tokio::time::timeout(timeout, store.write(Command::Batch(cmds))).await {
            Err(_) => Err(ReserveError::Unavailable(format!("no commit within {timeout:?}"))),
            Ok(Err(e)) => Err(ReserveError::Unavailable(e.to_string())),
            Ok(Ok(w)) => match w.response {
                Response::Batch(responses) if responses.len() == count => Ok(responses),
                other => Err(ReserveError::Unavailable(format!("unexpected response {other:?}"))),
            },
        };
        match result {
            Ok(responses) => {
                for (reply, response) in replies.into_iter().zip(responses) {
                    let _ = reply.send(Ok(response));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
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
