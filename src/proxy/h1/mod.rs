//! gatehouse's HTTP/1.1 client for upstreams: a request written from its header map
//! straight onto the connection and the response read back in the request's own task.
//! Everything an upstream can send is bounded (head size, header count, chunk lines,
//! trailers) and framed by RFC 9112's rules.

mod body;
mod conn;
mod decode;
mod encode;
mod raw_fields;
mod stream;

pub use body::{BodyError, UpstreamBody};
pub use conn::{exchange, ExchangeError, ExchangeTimeouts, UpstreamConn};
pub use crate::http::fields::write_field;
pub use encode::{valid_target, BodyWriteError, HeadFields};
pub use raw_fields::RawFields;
pub use stream::UpstreamStream;
