//! The vocabulary of the store: keys and values, the commands that change them, the
//! responses that apply returns, and openraft's type configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A Raft member's id. The layer above picks it (and keeps it in the data dir).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// openraft's view of the store: commands in, responses out, whole-map snapshots.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = RaftNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, RaftNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, RaftNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, RaftNode>;

/// How to reach a member, as recorded in the Raft membership itself (so a node that
/// restarts knows its peers without gossip). `meta` carries the layer above's extras,
/// such as the admin and proxy addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftNode {
    /// `host:port` of the member's cluster RPC listener.
    pub addr: String,
    pub meta: BTreeMap<String, String>,
}

impl RaftNode {
    pub fn new(addr: impl Into<String>) -> Self {
        RaftNode { addr: addr.into(), meta: BTreeMap::new() }
    }
}

impl fmt::Display for RaftNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

/// A stored value with etcd-style revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Shared, not copied, by the map, the change's event and the watch history: with
    /// 10,000 routes that is three copies of every entity fewer. Serialized as a
    /// `Vec<u8>` would be, so stored and replicated data reads back unchanged.
    #[serde(with = "crate::bytes_serde::arc")]
    pub value: Arc<[u8]>,
    /// Global revision of the change that created the key (since its last deletion).
    pub create_revision: u64,
    /// Global revision of the last change to the key.
    pub mod_revision: u64,
    /// Number of changes since creation, starting at 1.
    pub version: u64,
    /// Milliseconds since the Unix epoch after which `Expire` may drop the key.
    pub expires_at: Option<u64>,
}

/// A mutation, replicated through the log. Every timestamp in it was stamped by the
/// proposer: applying a command never reads a clock, so every replica computes the same map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put {
        key: String,
        #[serde(with = "crate::bytes_serde::vec")]
        value: Vec<u8>,
        expires_at: Option<u64>,
    },
    Delete { key: String },
    /// All of `ops` if every compare holds, nothing otherwise; one revision for the lot.
    Txn { compares: Vec<Compare>, ops: Vec<TxnOp> },
    /// Grants `min(want, limit - granted so far)` from the counter at `key`. Once the
    /// map holds `kv::slices::AGREED_KEY`, it creates no counter (one it made would hold
    /// no first slices): the answer is `Response::NeedsWindow`, and the proposer asks
    /// again with `ReserveIn`.
    Reserve { key: String, want: u64, limit: u64, expires_at: u64 },
    /// Drops every key whose `expires_at` is at or before `before`.
    Expire { before: u64 },
    /// Several commands in one log entry, applied in order (each with its own revision).
    Batch(Vec<Command>),
    /// Enrolls `node` in `window`: it gets a first slice of one token of every counter of
    /// the window created after this (see `kv::slices`). Answers the node's slot.
    Enroll { node: NodeId, window: WindowRef, expires_at: u64 },
    /// `Reserve` for a counter of `window` that counts its enrolled nodes' first slices,
    /// settling the proposer's own slice first when it says how it went.
    ReserveIn { key: String, want: u64, limit: u64, expires_at: u64, window: WindowRef, slot: Option<SlotUse> },
    /// A node's answer to a recall: whether it used its first slice of `key`, which
    /// then counts as granted or is handed back.
    Settle { key: String, limit: u64, expires_at: u64, window: WindowRef, slot: SlotUse },
}

/// The most one write may carry, keys and values together. Every follower must take the
/// entry within one heartbeat, openraft's append timeout: encoding and decoding cost about
/// a nanosecond a byte, the disk and the network more. Past that an entry is sent again
/// and again, heartbeats starve and the cluster stops committing; 32 MiB leaves room on a
/// loaded machine (a config of 14,500 entities is 9 MB).
pub const MAX_WRITE_BYTES: usize = 32 << 20;

impl Command {
    /// The bytes of keys and values this command carries: what its log entry weighs,
    /// give or take a few bytes per operation.
    pub fn payload_bytes(&self) -> usize {
        const OP: usize = 16;
        match self {
            Command::Put { key, value, .. } => key.len() + value.len() + OP,
            Command::Txn { compares, ops } => {
                let compares: usize = compares.iter().map(|c| c.key.len() + OP).sum();
                let ops: usize = ops
                    .iter()
                    .map(|op| match op {
                        TxnOp::Put { key, value, .. } => key.len() + value.len() + OP,
                        TxnOp::Delete { key } => key.len() + OP,
                    })
                    .sum();
                compares + ops
            }
            Command::Batch(commands) => commands.iter().map(Command::payload_bytes).sum(),
            Command::Delete { key }
            | Command::Reserve { key, .. }
            | Command::ReserveIn { key, .. }
            | Command::Settle { key, .. } => key.len() + OP * 4,
            Command::Expire { .. } | Command::Enroll { .. } => OP * 4,
        }
    }
}

/// Which commands this binary reads, and how it applies them, as it tells other nodes
/// (by gossip): 2 added `Enroll`, `ReserveIn` and `Settle` (first slices); 3 has a plain
/// `Reserve` create no counter once the map holds `kv::slices::AGREED_KEY`. A node that
/// does not say is 1. The record is put, and nodes enroll, only once a node has heard
/// every member read protocol 3 (see `gatehouse::cluster::agreement`); so a member of an
/// older protocol sees the newer commands only if it joins a cluster that already uses
/// them, which it must not.
pub const PROTOCOL: u32 = 3;
/// The first protocol whose first slices a node may take.
pub const PROTOCOL_FIRST_SLICES: u32 = 3;

/// A rate-limit window: its length and its start, in ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowRef {
    pub len_ms: u64,
    pub start_ms: u64,
}

/// A node's slot in a window's enrolment, and whether it admitted a request on its first
/// slice of a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotUse {
    pub slot: u8,
    pub used: bool,
}

/// A precondition of a `Txn`: the key's `mod_revision` must equal `mod_revision`;
/// 0 means the key must not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: String,
    pub mod_revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    Put {
        key: String,
        #[serde(with = "crate::bytes_serde::vec")]
        value: Vec<u8>,
        expires_at: Option<u64>,
    },
    Delete { key: String },
}

/// Which precondition of a `Txn` failed, and what the key's revision really was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCompare {
    pub index: usize,
    pub key: String,
    pub expected: u64,
    pub actual: u64,
}

/// What applying one log entry produced.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Response {
    /// Blank and membership entries.
    #[default]
    None,
    Put { revision: u64, prev: Option<KeyValue> },
    Delete { revision: u64, prev: Option<KeyValue> },
    Txn { revision: u64, failed: Option<FailedCompare> },
    Reserve { revision: u64, granted: u64, total: u64 },
    Expire { revision: u64, removed: u64 },
    /// `fresh` is false when the node was enrolled already, by a call it did not hear
    /// back from or before a restart: it may not use a slot it cannot tell it has not
    /// used, and answers recalls as if it had. `slot` is none when the window is full.
    Enrolled { revision: u64, slot: Option<u8>, fresh: bool },
    /// `total` counts the first slices not settled yet, `held` of them.
    ReserveIn { revision: u64, granted: u64, total: u64, held: u64 },
    Settled { revision: u64, held: u64 },
    /// A plain `Reserve` that would have created a counter after the cluster agreed on
    /// first slices: nothing changed; the proposer asks again with `ReserveIn`.
    NeedsWindow { revision: u64 },
    Batch(Vec<Response>),
    /// The command was refused deterministically and changed nothing (for example a
    /// `Reserve` on a key that holds something other than a counter).
    Invalid { revision: u64, reason: String },
}

impl Response {
    /// The store's global revision right after this entry was applied.
    pub fn revision(&self) -> Option<u64> {
        match self {
            Response::None => None,
            Response::Put { revision, .. }
            | Response::Delete { revision, .. }
            | Response::Txn { revision, .. }
            | Response::Reserve { revision, .. }
            | Response::Expire { revision, .. }
            | Response::Enrolled { revision, .. }
            | Response::ReserveIn { revision, .. }
            | Response::Settled { revision, .. }
            | Response::NeedsWindow { revision }
            | Response::Invalid { revision, .. } => Some(*revision),
            Response::Batch(items) => items.iter().filter_map(Response::revision).max(),
        }
    }
}

/// One committed change to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub revision: u64,
    pub key: String,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put(KeyValue),
    Delete { prev: KeyValue },
}
