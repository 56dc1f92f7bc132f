//! gatehouse: an API gateway cluster in one binary. Every node is an HTTP reverse proxy
//! (the data plane) and a member of a Raft group (the control plane).

pub mod admin;
pub mod applied;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod echo;
pub mod http;
pub mod log_filter;
pub mod metrics;
pub mod model;
pub mod node;
pub mod plugins;
pub mod proxy;
pub mod ratelimit;
pub mod shutdown;
