//! The client side of the CLI: commands that talk to a running node's Admin API.

pub mod client;
pub mod commands;
pub mod table;
