//! The cluster port: framing, authentication, the RPC vocabulary, client and server.

pub mod auth;
pub mod client;
pub mod frame;
pub mod rpc;
pub(crate) mod server;

pub use auth::{Credentials, HandshakeError};
pub use client::{CallError, Network, PeerContacts, Transport};
pub use rpc::{LeaderError, LeaderReply, LeaderRequest, Reply, Request};
pub use server::{AppFuture, AppHandler};
