//! gatehouse-raft: an embedded, Raft-replicated ordered key/value store with revisions
//! and watch, in the manner of a small etcd. openraft 0.9 replicates, sled 0.34 persists,
//! bincode 2 encodes. It knows nothing about gateways.

mod elections;
mod restart_hold;
mod batcher;
mod bytes_serde;
pub mod codec;
pub mod config;
pub mod error;
mod flusher;
pub mod kv;
mod leader;
mod leader_log;
pub mod log_store;
pub mod membership;
pub mod network;
mod pre_vote;
pub mod state_machine;
pub mod store;
pub mod types;
pub mod watch;

pub use config::{ConfigError, StoreConfig};
pub use error::StoreError;
pub use kv::KvState;
pub use log_store::LogStore;
pub use membership::{MemberStatus, Role, Status};
pub use network::{AppFuture, AppHandler};
pub use state_machine::StateMachine;
pub use store::{Store, Written};
pub use types::*;
pub use watch::{WatchError, WatchEvent, Watcher};
