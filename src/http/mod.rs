//! HTTP plumbing shared by the Admin API, the proxy and the echo upstream: one body type,
//! response helpers, and an accept loop that drains in-flight requests on shutdown.

pub mod body;
pub mod drain;
pub mod fields;
mod h1;
pub mod read_buf;
pub mod reply;
pub mod server;
pub mod timeout;

pub use body::{empty, full, json_response, Body, BoxError, RequestBody};
pub use h1::ClientTimeouts;
pub use reply::{Reply, TailFields};
pub use server::{serve, Handler};

/// An error with its whole source chain, `outer: inner: innermost`, for one-line reports.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
