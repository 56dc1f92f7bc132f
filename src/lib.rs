//! gatehouse: an API gateway cluster in one binary. Every node is an HTTP reverse proxy
//! (the data plane) and a member of a Raft group (the control plane).
pub mod model;
