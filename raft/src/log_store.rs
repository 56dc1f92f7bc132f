//! The Raft log, the vote and the committed index, persisted in sled: one tree for log
//! entries under big-endian u64 keys (so sled's byte order is index order), one for metadata.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError};

use crate::codec;
use crate::flusher::Flusher;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// Cheap to clone: sled trees are handles onto one database.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
    flusher: Flusher,
}

impl LogStore {
    pub fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(LogStore {
            db: db.clone(),
            logs: db.open_tree("raft_log")?,
            meta: db.open_tree("raft_meta")?,
            flusher: Flusher::start().map_err(sled::Error::Io)?,
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let Some(bytes) = self.meta.get(key).map_err(|e| StorageIOError::read(&e))? else { return Ok(None) };
        codec::decode(&bytes).map(Some).map_err(|e| StorageIOError::read(&e).into())
    }

    fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), sled::Error> {
        let bytes = codec::encode(value).map_err(|e| sled::Error::Io(io::Error::other(e)))?;
        self.meta.insert(key, bytes)?;
        Ok(())
    }

    /// Makes everything written so far durable: sled's flush fsyncs the whole database.
    async fn flush(&self) -> Result<(), sled::Error> {
        self.flusher.flush(&self.db).await
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn to_io(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => io::Error::other(other),
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        for item in self.logs.range((Bound::Included(index_key(start)), end)) {
            let (_, bytes) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            entries.push(codec::decode::<Entry>(&bytes).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(LAST_PURGED)?;
        let last_in_log = match self.logs.last().map_err(|e| StorageIOError::read_logs(&e))? {
            Some((_, bytes)) => Some(codec::decode::<Entry>(&bytes).map_err(|e| StorageIOError::read_logs(&e))?.log_id),
            None => None,
        };
        Ok(LogState { last_purged_log_id, last_log_id: last_in_log.or(last_purged_log_id) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(VOTE, vote).map_err(|e| StorageIOError::write_vote(&e))?;
        // Durable before returning: a vote forgotten after a crash could let this node vote twice in a term.
        self.flush().await.map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: it only lets a restart re-apply sooner; losing it loses nothing.
        self.write_meta(COMMITTED, &committed).map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Plain inserts, not a `sled::Batch`: sled 0.34 writes out its I/O buffer twice to
        // start a batch (two more writes and syncs per append, seen with strace). Without
        // one, a crash may keep a prefix of these entries, which Raft allows: none of them
        // is acknowledged before the flush below.
        let mut inserted = Ok(());
        for entry in entries {
            let bytes = codec::encode(&entry).map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            if let Err(e) = self.logs.insert(index_key(entry.log_id.index), bytes) {
                inserted = Err(e);
                break;
            }
        }
        match inserted {
            Ok(()) => {
                // The entries are readable now; openraft counts this node toward the
                // quorum only once the callback fires, after the fsync, so they survive a
                // crash from then on. Returning before it lets Raft go on meanwhile.
                self.flusher.flush_then(&self.db, callback);
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e);
                callback.log_io_completed(Err(to_io(e)));
                Err(err.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let doomed = self.logs.range(index_key(log_id.index)..);
        let mut batch = sled::Batch::default();
        for item in doomed {
            let (key, _) = item.map_err(|e| StorageIOError::write_logs(&e))?;
            batch.remove(key);
        }
        self.logs.apply_batch(batch).map_err(|e| StorageIOError::write_logs(&e))?;
        // Durable: a conflicting suffix that came back after a crash could be re-acknowledged.
        self.flush().await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The purge mark goes first, so a crash half-way leaves a consistent log state.
        self.write_meta(LAST_PURGED, &log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        let mut batch = sled::Batch::default();
        for item in self.logs.range(..=index_key(log_id.index)) {
            let (key, _) = item.map_err(|e| StorageIOError::write_logs(&e))?;
            batch.remove(key);
        }
        self.logs.apply_batch(batch).map_err(|e| StorageIOError::write_logs(&e))?;
        self.flush().await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
