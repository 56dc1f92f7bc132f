//! gatehouse: an API gateway cluster in one binary. Every node is an HTTP reverse proxy
//! (the data plane) and a member of a Raft group (the control plane).

pub mod echo;
pub mod http;
pub mod shutdown;
pub mod config;
pub mod cluster;
pub mod admin;
pub mod cli;
pub mod proxy;
pub mod ratelimit;
pub mod metrics;
pub mod node;
