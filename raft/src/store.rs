//! `Store`: the handle the layer above holds. Opens the data dir, starts Raft and the
//! cluster port, and offers writes from any node (forwarded to the leader, returned once
//! applied here), local and linearizable reads, and watches.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::batcher;
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::leader;
use crate::network::{AppHandler, LeaderError, LeaderReply, LeaderRequest, PeerContacts, Reply, Request, Transport};
use crate::restart_hold::LeaderContact;
use crate::state_machine::StateMachine;
use crate::types::{Command, KeyValue, NodeId, Raft, RaftMetrics, RaftNode, Response};
use crate::watch::{WatchError, Watcher};

mod open;

/// A write's result: where it landed in the log and what applying it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub log_index: u64,
    pub response: Response,
}

/// Cheap to clone; every clone drives the same node.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: StoreConfig,
    raft: Raft,
    sm: StateMachine,
    db: sled::Db,
    transport: Arc<Transport>,
    app: Arc<RwLock<Option<Arc<dyn AppHandler>>>>,
    cluster_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    /// The cluster port's accept loop; taken by `shutdown` to await it.
    server: Mutex<Option<JoinHandle<()>>>,
    /// Writes waiting to be batched; emptied on shutdown so the batcher (which holds a
    /// `Store`) ends and the store can be dropped.
    batches: Mutex<Option<tokio::sync::mpsc::UnboundedSender<batcher::Pending>>>,
    batcher: Mutex<Option<JoinHandle<()>>>,
    leader_contact: Arc<LeaderContact>,
    contacts: Arc<PeerContacts>,
    /// The layer above's report of a live leader other than this node (gossip's view).
    leader_elsewhere: watch::Sender<bool>,
}

impl Store {
    pub fn id(&self) -> NodeId {
        self.inner.cfg.node_id
    }

    /// The cluster port's bound address (useful when the config asked for port 0).
    pub fn cluster_addr(&self) -> SocketAddr {
        self.inner.cluster_addr
    }

    /// How peers reach this node, as recorded in the membership.
    pub fn node(&self) -> RaftNode {
        let cfg = &self.inner.cfg;
        let addr = if cfg.advertise.is_empty() { self.inner.cluster_addr.to_string() } else { cfg.advertise.clone() };
        RaftNode { addr, meta: cfg.meta.clone() }
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// How long ago `peer` last answered one of this node's Raft calls (a leader's
    /// heartbeats reach every member several times a second), if it ever did.
    pub fn peer_contact_age(&self, peer: NodeId) -> Option<Duration> {
        self.inner.contacts.age(peer)
    }

    /// How long ago this node last took a leader's append or snapshot; None: not since it
    /// started. A leader counts as hearing itself.
    pub fn leader_contact_age(&self) -> Option<Duration> {
        if self.inner.raft.metrics().borrow().state == ServerState::Leader {
            return Some(Duration::ZERO);
        }
        self.inner.leader_contact.age()
    }

    /// Whether a write made through this node could commit now, as far as it knows:
    /// it leads and a quorum acknowledged it within the longest election timeout (or it
    /// is the only voter), or it follows a leader it heard from within that time. What
    /// Kong's `/status` calls the database being reachable.
    pub fn reachable(&self) -> bool {
        let bound = self.inner.cfg.election_timeout.1;
        let m = self.raft().metrics().borrow().clone();
        match m.state {
            ServerState::Leader => crate::leader::leads_with_quorum(&m, bound),
            _ => m.current_leader.is_some() && self.leader_contact_age().is_some_and(|age| age <= bound),
        }
    }

    /// Tells the store whether another node, alive, says it leads (gossip's view, in
    /// gatehouse). A restarted voter that has not heard from a leader yet holds its
    /// campaigns while this is true (see `restart_hold`).
    pub fn report_leader_elsewhere(&self, alive: bool) {
        self.inner.leader_elsewhere.send_if_modified(|v| std::mem::replace(v, alive) != alive);
    }

    pub fn metrics(&self) -> watch::Receiver<RaftMetrics> {
        self.inner.raft.metrics()
    }

    // ----- writes -----

    /// Replicates `cmd` through the leader and returns once it is applied on this node.
    /// Concurrent writes share log entries (see `batcher`).
    pub async fn write(&self, cmd: Command) -> Result<Written, StoreError> {
        let bytes = cmd.payload_bytes();
        if bytes > crate::types::MAX_WRITE_BYTES {
            return Err(StoreError::TooLarge { bytes, limit: crate::types::MAX_WRITE_BYTES });
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        let queue = self.inner.batches.lock().expect("batch queue lock").clone();
        let Some(queue) = queue else { return Err(StoreError::ShuttingDown) };
        if queue.send(batcher::Pending { cmd, bytes, reply }).is_err() {
            return Err(StoreError::ShuttingDown);
        }
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// One write as its own log entry.
    pub(crate) async fn write_now(&self, cmd: Command) -> Result<Written, StoreError> {
        match self.leader_call(LeaderRequest::Write(cmd)).await? {
            LeaderReply::Written { log_index, response } => {
                self.wait_applied(log_index).await?;
                Ok(Written { log_index, response })
            }
            LeaderReply::ReadIndex { .. } => Err(StoreError::Uncertain("the leader answered a write with a read index".into())),
        }
    }

    pub async fn put(&self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Result<Written, StoreError> {
        self.write(Command::Put { key: key.into(), value: value.into(), expires_at: None }).await
    }

    pub async fn delete(&self, key: impl Into<String>) -> Result<Written, StoreError> {
        self.write(Command::Delete { key: key.into() }).await
    }

    /// Sends `request` to whoever leads, retrying while the request provably was not taken
    /// (no leader, a stale leader, an unreachable one) until `request_timeout`.
    pub(crate) async fn leader_call(&self, request: LeaderRequest) -> Result<LeaderReply, StoreError> {
        let timeout = self.inner.cfg.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut metrics = self.inner.raft.metrics();
        loop {
            let leader = {
                let m = metrics.borrow_and_update();
                m.current_leader.and_then(|id| m.membership_config.membership().get_node(&id).map(|n| (id, n.clone())))
            };
            let outcome = match leader {
                Some((id, _)) if id == self.id() => {
                    let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(50));
                    match tokio::time::timeout(remaining, leader::execute(&self.inner.raft, request.clone())).await {
                        Ok(r) => r,
                        // Appended but not committed in time (no quorum): it may still commit.
                        Err(_) => return Err(StoreError::Uncertain(format!("not committed within {timeout:?}: is a quorum of voters up?"))),
                    }
                }
                Some((_, node)) => {
                    let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(50));
                    match self.inner.transport.call(&node.addr, &Request::Leader(request.clone()), remaining).await {
                        Ok(Reply::Leader(r)) => r,
                        Ok(_) => return Err(StoreError::Uncertain(format!("unexpected reply from {}", node.addr))),
                        Err(e) if e.never_sent() => Err(LeaderError::NotLeader { leader: None }),
                        Err(e) => return Err(StoreError::Uncertain(e.to_string())),
                    }
                }
                None => Err(LeaderError::NotLeader { leader: None }),
            };
            match outcome {
                Ok(reply) => return Ok(reply),
                Err(LeaderError::NotLeader { .. }) => {}
                Err(LeaderError::Refused(reason)) => return Err(StoreError::Refused(reason)),
                Err(LeaderError::Fatal(reason)) if self.is_shutting_down() => {
                    tracing::debug!(%reason, "leader call during shutdown");
                    return Err(StoreError::ShuttingDown);
                }
                Err(LeaderError::Fatal(reason)) => return Err(StoreError::Uncertain(reason)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::NoLeader(timeout));
            }
            if self.is_shutting_down() {
                return Err(StoreError::ShuttingDown);
            }
            // Wait for news of a (new) leader, but not forever: a stale leader entry or an
            // unreachable leader changes no metric, so poll again shortly.
            let pause = (deadline - now).min(Duration::from_millis(100));
            let _ = tokio::time::timeout(pause, metrics.changed()).await;
        }
    }

    /// Waits until this node has applied `log_index`.
    pub(crate) async fn wait_applied(&self, log_index: u64) -> Result<(), StoreError> {
        let applied = self.inner.raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
        if applied >= log_index {
            return Ok(());
        }
        self.inner
            .raft
            .wait(Some(self.inner.cfg.request_timeout))
            .applied_index_at_least(Some(log_index), "apply a forwarded write locally")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::ShuttingDown => StoreError::ShuttingDown,
                openraft::metrics::WaitError::Timeout(..) => StoreError::NotApplied { log_index },
            })
    }

    // ----- reads -----

    /// This node's applied value: fast, possibly a few milliseconds stale.
    pub fn get(&self, key: &str) -> Option<KeyValue> {
        self.inner.sm.read().kv.get(key).cloned()
    }

    /// Every applied key under `prefix`, in key order.
    pub fn scan(&self, prefix: &str) -> Vec<(String, KeyValue)> {
        self.inner.sm.read().kv.scan(prefix).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The revision of this node's applied map.
    pub fn revision(&self) -> u64 {
        self.inner.sm.read().kv.revision()
    }

    /// A digest of this node's applied map: equal on every node that applied the same log.
    pub fn digest(&self) -> String {
        self.inner.sm.read().kv.digest()
    }

    /// Returns once this node has applied everything committed before the call, as
    /// confirmed by the leader with a quorum: reads after it are linearizable.
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        match self.leader_call(LeaderRequest::ReadIndex).await? {
            LeaderReply::ReadIndex { log_index } => self.wait_applied(log_index).await,
            LeaderReply::Written { .. } => Err(StoreError::Uncertain("the leader answered a read with a write".into())),
        }
    }

    pub async fn linearizable_get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.read_barrier().await?;
        Ok(self.get(key))
    }

    /// Every change under `prefix` after revision `after`, then live ones.
    pub fn watch(&self, prefix: &str, after: u64) -> Result<Watcher, WatchError> {
        self.inner.sm.watch_from(prefix, after)
    }

    /// The entries under `prefix` now, their revision, and a watcher continuing from it.
    pub fn snapshot_and_watch(&self, prefix: &str) -> (Vec<(String, KeyValue)>, u64, Watcher) {
        self.inner.sm.snapshot_and_watch(prefix)
    }

    // ----- the layer above's calls -----

    pub fn set_app_handler(&self, handler: Arc<dyn AppHandler>) {
        *self.inner.app.write().expect("app handler lock poisoned") = Some(handler);
    }

    /// Calls the layer above on the node whose cluster port is `addr`.
    pub async fn call_app(&self, addr: &str, method: &str, body: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let request = Request::App { method: method.to_owned(), body };
        match self.inner.transport.call(addr, &request, self.inner.cfg.request_timeout).await {
            Ok(Reply::App(r)) => r.map_err(StoreError::Remote),
            Ok(_) => Err(StoreError::Remote(format!("unexpected reply from {addr}"))),
            Err(e @ crate::network::CallError::Refused { .. }) => Err(StoreError::PeerRefused(e.to_string())),
            Err(e) => Err(StoreError::Remote(e.to_string())),
        }
    }

    // ----- lifecycle -----

    fn is_shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Stops Raft and the cluster port and makes everything durable. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        // No new writes; the batcher finishes what it holds (quickly: leader calls see the
        // shutdown) and lets go of its clone of the store.
        self.inner.batches.lock().expect("batch queue lock").take();
        let batcher = self.inner.batcher.lock().expect("batcher handle lock").take();
        if let Some(batcher) = batcher {
            let _ = batcher.await;
        }
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
        let server = self.inner.server.lock().expect("server handle lock poisoned").take();
        if let Some(server) = server {
            let _ = server.await;
        }
        if let Err(e) = self.inner.db.flush_async().await {
            tracing::error!(error = %e, "final flush failed");
        }
    }

    /// Member data by id, as the current membership records it.
    pub fn members(&self) -> BTreeMap<NodeId, RaftNode> {
        let m = self.inner.raft.metrics().borrow().membership_config.clone();
        m.membership().nodes().map(|(id, n)| (*id, n.clone())).collect()
    }
}
