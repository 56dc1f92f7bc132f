//! Writing a request to an upstream over HTTP/1.1: the head goes straight from the header
//! map into the connection's write buffer, and the client's body follows as it arrives,
//! as is when its length is known and chunked when it is not.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{HeaderMap, Method};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::http::fields::write_field;
use crate::http::{Body, BoxError};

/// How the request's body is delimited on the upstream connection. It is decided from
/// the body as it was received (its exact length, when the client's framing gave one),
/// never from a Content-Length field the client sent: a client's Content-Length next to
/// a chunked body, passed on as is, would let the upstream read the rest of the body as
/// another request (request smuggling). The encoder writes the framing field itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body. `zero_length`: say `content-length: 0` (the client sent a Content-Length,
    /// and some servers want one on a POST).
    None { zero_length: bool },
    Length(u64),
    /// No length known (a chunked or HTTP/2 client body).
    Chunked,
}

/// A request's header fields as they go on the wire. A header map is one; the proxy
/// writes its own (`proxy::upstream_headers`), composing the client's fields with the
/// gateway's as it writes them instead of editing a map first.
pub trait HeadFields: Sync {
    /// Every field, each through `write_field`, except Content-Length and
    /// Transfer-Encoding: the body's framing is the encoder's to write.
    fn write_fields(&self, out: &mut Vec<u8>);
    /// Whether the client's fields had a Content-Length.
    fn has_content_length(&self) -> bool;
}

impl HeadFields for HeaderMap {
    fn write_fields(&self, out: &mut Vec<u8>) {
        for (name, value) in self {
            if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
                write_field(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
    }

    fn has_content_length(&self) -> bool {
        self.contains_key(CONTENT_LENGTH)
    }
}

pub fn body_framing(fields: &dyn HeadFields, body: &Body) -> BodyFraming {
    use hyper::body::Body as _;
    if body.is_end_stream() {
        return BodyFraming::None { zero_length: fields.has_content_length() };
    }
    match body.size_hint().exact() {
        Some(length) => BodyFraming::Length(length),
        None => BodyFraming::Chunked,
    }
}

/// Whether `target` may stand on a request line: no spaces or control characters, which
/// would let a path split the request (everything else was checked when it was parsed).
pub fn valid_target(target: &str) -> bool {
    !target.is_empty() && target.bytes().all(|b| b > b' ' && b != 0x7f)
}

/// The request line and header fields, into `out` (cleared first).
pub fn encode_head(out: &mut Vec<u8>, method: &Method, target: &str, fields: &dyn HeadFields, framing: BodyFraming) {
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    fields.write_fields(out);
    match framing {
        BodyFraming::None { zero_length: false } => {}
        BodyFraming::None { zero_length: true } => write_field(out, b"content-length", b"0"),
        BodyFraming::Length(length) => write_field(out, b"content-length", itoa::Buffer::new().format(length).as_bytes()),
        BodyFraming::Chunked => write_field(out, b"transfer-encoding", b"chunked"),
    }
    out.extend_from_slice(b"\r\n");
}

#[derive(Debug, thiserror::Error)]
pub enum BodyWriteError {
    /// Reading the client's body failed (it went away, or stalled past the write timeout).
    #[error("reading the client's request body: {0}")]
    Client(BoxError),
    #[error("writing the request body upstream: {0}")]
    Upstream(std::io::Error),
    /// The upstream stopped taking the body for longer than the write timeout.
    #[error("the upstream stopped reading the request body")]
    UpstreamStalled,
}

/// Streams `body` to `out` with the given framing; `scratch` is reused for chunk framing.
/// Each write may take at most `write_timeout` (Kong's write timeout: between two
/// successive writes). Trailers from the client are dropped, as nginx drops them.
pub async fn write_body<W: AsyncWrite + Unpin>(out: &mut W, mut body: Body, framing: BodyFraming, scratch: &mut Vec<u8>, write_timeout: Duration) -> Result<(), BodyWriteError> {
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyWriteError::Client)?.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        let bytes = if framing == BodyFraming::Chunked { chunk(scratch, &data) } else { &data[..] };
        write_within(out, bytes, write_timeout).await?;
    }
    if framing == BodyFraming::Chunked {
        write_within(out, b"0\r\n\r\n", write_timeout).await?;
    }
    // Bounded too: over TLS a write is done once encrypted, and the flush is what sends
    // it, so an upstream that stops reading stalls here.
    match tokio::time::timeout(write_timeout, out.flush()).await {
        Err(_) => Err(BodyWriteError::UpstreamStalled),
        Ok(flushed) => flushed.map_err(BodyWriteError::Upstream),
    }
}

async fn write_within<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8], limit: Duration) -> Result<(), BodyWriteError> {
    match tokio::time::timeout(limit, out.write_all(bytes)).await {
        Err(_) => Err(BodyWriteError::UpstreamStalled),
        Ok(written) => written.map_err(BodyWriteError::Upstream),
    }
}

/// One chunk (size line, data, CRLF) in `scratch`, so it goes out in one write.
fn chunk<'a>(scratch: &'a mut Vec<u8>, data: &Bytes) -> &'a [u8] {
    scratch.clear();
    let _ = write!(scratch, "{:x}\r\n", data.len());
    scratch.extend_from_slice(data);
    scratch.extend_from_slice(b"\r\n");
    scratch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::full;
    use hyper::header::HeaderValue;

    fn head(fields: &HeaderMap, framing: BodyFraming) -> String {
        let mut out = Vec::new();
        encode_head(&mut out, &Method::POST, "/p?q=1", fields, framing);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_head_carries_every_field_and_the_framing_the_body_has() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.com"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let framing = body_framing(&headers, &streamed_body());
        assert_eq!(head(&headers, framing), "POST /p?q=1 HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\nx-a: 2\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(body_framing(&headers, &full("hello")), BodyFraming::Length(5));
        assert_eq!(body_framing(&headers, &crate::http::empty()), BodyFraming::None { zero_length: false });
    }

    #[test]
    fn a_clients_framing_fields_never_go_upstream_as_sent() {
        // A Content-Length next to a chunked body: what goes upstream is the body's own
        // framing, so the upstream cannot read part of the body as a second request.
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        let sent = head(&headers, body_framing(&headers, &streamed_body()));
        assert_eq!(sent, "POST /p?q=1 HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n");
        let sent = head(&headers, body_framing(&headers, &full("hello world")));
        assert_eq!(sent, "POST /p?q=1 HTTP/1.1\r\ncontent-length: 11\r\n\r\n");
        // An empty body the client announced with a Content-Length keeps a zero one.
        let sent = head(&headers, body_framing(&headers, &crate::http::empty()));
        assert_eq!(sent, "POST /p?q=1 HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    }

    /// A body of unknown length, as a chunked client body is.
    fn streamed_body() -> Body {
        let frames: Vec<Result<hyper::body::Frame<Bytes>, BoxError>> = vec![Ok(hyper::body::Frame::data(Bytes::from_static(b"hello")))];
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed()
    }

    #[test]
    fn targets_that_would_split_the_request_line_are_refused() {
        assert!(valid_target("/a/b?c=d%20e"));
        for bad in ["", "/a b", "/a\r\nx: y", "/a\tb"] {
            assert!(!valid_target(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn bodies_go_out_as_is_or_chunked() {
        let mut out = Vec::new();
        write_body(&mut out, full("hello"), BodyFraming::Length(5), &mut Vec::new(), Duration::from_secs(1)).await.unwrap();
        assert_eq!(out, b"hello");
        let mut out = Vec::new();
        write_body(&mut out, full("hello"), BodyFraming::Chunked, &mut Vec::new(), Duration::from_secs(1)).await.unwrap();
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
    }
}
