//! Reading a request body into memory before it is forwarded: for a route with
//! request_buffering (Kong's default) whose client sent the body chunked, so that the
//! upstream gets a Content-Length as behind Kong's nginx; and for key-auth with
//! key_in_body, which looks for the key in it. A body above `LIMIT` is not held: what
//! was read goes first, and the rest streams after it.

use std::time::Duration;

use bytes::BytesMut;
use http_body_util::BodyExt;
use hyper::body::Body as _;

use crate::http::RequestBody;

/// The most of a body held in memory per request.
pub const LIMIT: usize = 1 << 20;

/// The wait for each part of a body on a route without a service (Kong's write_timeout
/// default); a route with one uses its service's write_timeout.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the client sent nothing of the request body for {0:?}")]
    Idle(Duration),
    #[error("the request body could not be read: {0}")]
    Client(#[from] hyper::Error),
}

/// Which bodies a route reads before forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffering {
    Never,
    /// Bodies without a length (chunked): request_buffering.
    Unsized,
    /// Every body: a plugin reads it.
    Always,
}

impl Buffering {
    pub fn wants(self, body: &RequestBody) -> bool {
        match self {
            Buffering::Never => false,
            Buffering::Unsized => !body.is_end_stream() && body.size_hint().exact().is_none(),
            Buffering::Always => !body.is_end_stream(),
        }
    }
}

/// Reads `body` whole if it ends within `limit` bytes; `idle` bounds the wait for each
/// part. Trailers, which Kong's nginx does not pass on either, are dropped.
pub async fn read(body: RequestBody, limit: usize, idle: Duration) -> Result<RequestBody, ReadError> {
    let RequestBody::Streaming(mut incoming) = body else { return Ok(body) };
    let mut held = BytesMut::new();
    while !incoming.is_end_stream() {
        let frame = tokio::time::timeout(idle, incoming.frame()).await.map_err(|_| ReadError::Idle(idle))?;
        let Some(frame) = frame else { break };
        if let Ok(data) = frame?.into_data() {
            held.extend_from_slice(&data);
            if held.len() > limit {
                return Ok(RequestBody::Prefixed(Some(held.freeze()), incoming));
            }
        }
    }
    Ok(RequestBody::Buffered(Some(held.freeze())))
}
