//! Glue between gossip and Raft: who this node is, how it joins, how the leader keeps
//! the voter set healthy (autopilot), how a node leaves, and the cluster status view.

pub mod agreement;
pub mod autopilot;
pub mod calls;
pub mod gossip_view;
pub mod identity;
pub mod join;
pub mod peers;
pub mod protocol;
pub mod status;

pub use peers::{PeerInfo, PeerView};
