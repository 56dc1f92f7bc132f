//! What can go wrong when using the store, and what the caller should do about it.

use crate::config::ConfigError;
use crate::types::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Fix the configuration.
    #[error("invalid store config: {0}")]
    Config(#[from] ConfigError),
    /// The data dir cannot be opened: wrong permissions, or another process holds it.
    #[error("cannot open data dir {path}: {source}")]
    Open { path: String, source: sled::Error },
    /// Another process (a second gatehouse on the same --data-dir) holds the database.
    #[error("data dir {path} is in use by another process (a second gatehouse with the same --data-dir?)")]
    InUse { path: String },
    /// The disk failed under the store; the node should stop.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The cluster port is taken or the address is not local.
    #[error("cannot listen on the cluster port {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    /// No leader could be reached in time (no quorum, or an election is running):
    /// nothing was written; retry later.
    #[error("no leader reachable within {0:?}: the cluster has no quorum or is electing")]
    NoLeader(std::time::Duration),
    /// The request reached the leader but its outcome is unknown (the leader failed or
    /// the connection broke): read before retrying a write that is not idempotent.
    #[error("outcome unknown: {0}")]
    Uncertain(String),
    /// Committed by the cluster, but this node had not applied it in time (it may be
    /// partitioned from the leader); other nodes already see it.
    #[error("committed at log index {log_index} but not yet applied on this node")]
    NotApplied { log_index: u64 },
    /// The leader refused the request (for example a membership change in progress).
    #[error("refused by the leader: {0}")]
    Refused(String),
    /// The peer refused our connection: wrong cluster name or secret. Retrying will not help.
    #[error("{0}")]
    PeerRefused(String),
    /// A call to the layer above on a peer failed.
    #[error("remote call failed: {0}")]
    Remote(String),
    /// One write carries more than a log entry may (`MAX_WRITE_BYTES`): nothing was
    /// written; split it.
    #[error("the change carries {bytes} bytes, over the {limit} one write may (each node must take it within a heartbeat); make it in parts")]
    TooLarge { bytes: usize, limit: usize },
    /// The store is shutting down.
    #[error("the store is shutting down")]
    ShuttingDown,
}

impl StoreError {
    /// The same error for another caller of a batch that failed as a whole.
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::NoLeader(d) => StoreError::NoLeader(*d),
            StoreError::NotApplied { log_index } => StoreError::NotApplied { log_index: *log_index },
            StoreError::Refused(m) => StoreError::Refused(m.clone()),
            StoreError::PeerRefused(m) => StoreError::PeerRefused(m.clone()),
            StoreError::Remote(m) => StoreError::Remote(m.clone()),
            StoreError::ShuttingDown => StoreError::ShuttingDown,
            StoreError::TooLarge { bytes, limit } => StoreError::TooLarge { bytes: *bytes, limit: *limit },
            other => StoreError::Uncertain(other.to_string()),
        }
    }
}
