//! gatehouse-gossip: cluster membership over chitchat (scuttlebutt gossip on UDP with a
//! phi-accrual failure detector).
//!
//! Each node runs one [`Gossip`], publishes key-values about itself
//! ([`Gossip::set_meta`]: "cluster_addr", "proxy_addr", "version", ...) and reads the
//! member list: one [`Member`] per node id, alive or dead, with its meta. The crate knows
//! nothing of Raft or gateways.
//!
//! ```no_run
//! # async fn run() -> Result<(), gatehouse_gossip::GossipError> {
//! use gatehouse_gossip::{diff, Gossip, GossipConfig};
//! let mut config = GossipConfig::new(2, "127.0.0.2:7946".parse().unwrap(), "prod");
//! config.seeds = vec!["127.0.0.1:7946".into()];
//! config.meta.insert("cluster_addr".into(), "127.0.0.2:8005".into());
//! let gossip = Gossip::start(config).await?;
//! let mut members = gossip.watch();
//! let mut seen = members.borrow_and_update().clone();
//! while members.changed().await.is_ok() {
//!     let now = members.borrow_and_update().clone();
//!     for event in diff(&seen, &now) {
//!         println!("{event:?}");
//!     }
//!     seen = now;
//! }
//! # Ok(()) }
//! ```

mod config;
mod contact;
pub use contact::Contacts;
mod error;
mod gossip;
mod member;
mod published;

pub use config::{GossipConfig, MAX_META_VALUE_LEN, MAX_NAME_LEN};
pub use error::GossipError;
pub use gossip::{Gossip, LeaveOutcome};
pub use member::{diff, Member, MemberEvent};
pub use published::LiveCount;
