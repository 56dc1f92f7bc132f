//! The Admin API (Kong-compatible REST on port 8001): authentication, body limits and
//! routing in `server`, the cluster and node endpoints in `cluster_api`.

pub mod body;
pub mod cluster_api;
pub mod config_api;
pub mod cors;
pub mod entities;
pub mod entity_routes;
pub mod expiry;
pub mod methods;
pub mod multipart;
pub mod referenced;
pub mod schemas;
pub mod server;
pub mod tags;
pub mod target_health;
pub mod write;

pub use server::{AdminApi, AdminContext};
