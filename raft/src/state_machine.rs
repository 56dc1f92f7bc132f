//! openraft's state machine over `KvState`: applies entries in memory, tells watchers,
//! and persists whole-map snapshots in sled. Applied state lives in memory only; after a
//! restart it is the last snapshot plus the log replayed after it, which is why log
//! entries are purged only once a snapshot covering them is durable.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::kv::KvState;
use crate::types::{Entry, LogId, Response, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::watch::{WatchError, WatchHub, Watcher};

const CURRENT_SNAPSHOT: &[u8] = b"current";

/// What the state machine knows, behind one lock. Held only for in-memory work, never
/// across an await or disk I/O.
pub(crate) struct Applied {
    pub kv: KvState,
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership,
    hub: WatchHub,
}

/// A snapshot as kept on disk: its metadata and the encoded `KvState`.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The state machine handle. Clones share the same state: the store keeps one for reads
/// and watches, openraft owns another.
#[derive(Clone)]
pub struct StateMachine {
    applied: Arc<RwLock<Applied>>,
    db: sled::Db,
    snapshots: sled::Tree,
    /// Makes snapshot ids unique when two are built at the same log id.
    snapshot_seq: Arc<AtomicU64>,
}

impl StateMachine {
    /// Opens the state machine from the last durable snapshot, if any.
    pub fn open(db: &sled::Db, watch_history: usize) -> Result<Self, StorageError> {
        let snapshots = db.open_tree("snapshot").map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        let stored = match snapshots.get(CURRENT_SNAPSHOT).map_err(|e| StorageIOError::read_snapshot(None, &e))? {
            Some(bytes) => Some(codec::decode::<StoredSnapshot>(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?),
            None => None,
        };
        let (kv, last_applied, last_membership) = match &stored {
            Some(s) => (
                codec::decode::<KvState>(&s.data).map_err(|e| StorageIOError::read_snapshot(None, &e))?,
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => (KvState::default(), None, StoredMembership::default()),
        };
        let hub = WatchHub::new(watch_history, kv.revision());
        Ok(StateMachine {
            applied: Arc::new(RwLock::new(Applied { kv, last_applied, last_membership, hub })),
            db: db.clone(),
            snapshots,
            snapshot_seq: Arc::new(AtomicU64::new(0)),
        })
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Applied> {
        // A poisoned lock means an apply panicked half-way: the map may be inconsistent,
        // and serving from it would be worse than stopping.
        self.applied.read().expect("state machine lock poisoned")
    }

    fn write(&self) -> RwLockWriteGuard<'_, Applied> {
        self.applied.write().expect("state machine lock poisoned")
    }

    /// A watcher of `prefix` replaying every change after revision `after`.
    pub fn watch_from(&self, prefix: &str, after: u64) -> Result<Watcher, WatchError> {
        let applied = self.read();
        applied.hub.subscribe(prefix, after, applied.kv.revision())
    }

    /// The current entries under `prefix`, their revision, and a watcher that continues
    /// exactly from there.
    pub fn snapshot_and_watch(&self, prefix: &str) -> (Vec<(String, crate::types::KeyValue)>, u64, Watcher) {
        let applied = self.read();
        let entries = applied.kv.scan(prefix).map(|(k, v)| (k.clone(), v.clone())).collect();
        let revision = applied.kv.revision();
        let watcher = applied.hub.subscribe(prefix, revision, revision).expect("the current revision is always resumable");
        (entries, revision, watcher)
    }

    async fn persist_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let stored = StoredSnapshot { meta: meta.clone(), data: data.to_vec() };
        let bytes = codec::encode(&stored).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.snapshots.insert(CURRENT_SNAPSHOT, bytes).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        // Durable before openraft may purge the log entries this snapshot replaces.
        self.db.flush_async().await.map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (data, meta) = {
            let applied = self.read();
            let data = codec::encode(&applied.kv).map_err(|e| StorageIOError::read_state_machine(&e))?;
            let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
            let snapshot_id = match applied.last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, seq),
                None => format!("none-{seq}"),
            };
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.last_membership.clone(),
                snapshot_id,
            };
            (data, meta)
        };
        self.persist_snapshot(&meta, &data).await?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.read();
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self.write();
        let mut responses = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::None,
                EntryPayload::Normal(cmd) => {
                    let mut events = Vec::new();
                    let response = applied.kv.apply(&cmd, &mut events);
                    applied.hub.publish(events);
                    response
                }
                EntryPayload::Membership(m) => {
                    applied.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    Response::None
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let kv: KvState = codec::decode(&data).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.persist_snapshot(meta, &data).await?;
        let mut applied = self.write();
        let revision = kv.revision();
        applied.kv = kv;
        applied.last_applied = meta.last_log_id;
        applied.last_membership = meta.last_membership.clone();
        applied.hub.reset(revision);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(bytes) = self.snapshots.get(CURRENT_SNAPSHOT).map_err(|e| StorageIOError::read_snapshot(None, &e))? else {
            return Ok(None);
        };
        let stored: StoredSnapshot = codec::decode(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }))
    }
}
