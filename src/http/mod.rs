//! HTTP plumbing shared by the Admin API, the proxy and the echo upstream: one body type,
//! response helpers, and an accept loop that drains in-flight requests on shutdown.

pub mod body;
pub mod server;

pub use body::{empty, full, json_response, Body};
pub use server::{serve, Handler};
