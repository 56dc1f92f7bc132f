//! The Admin API (Kong-compatible REST on port 8001): authentication, body limits and
//! routing in `server`, the cluster and node endpoints in `cluster_api`.

pub mod cluster_api;
pub mod server;

pub use server::{AdminApi, AdminContext};
