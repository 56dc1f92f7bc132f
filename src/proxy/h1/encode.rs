//! Writing a request to an upstream over HTTP/1.1: the head goes straight from the header
//! map into the connection's write buffer, and the client's body follows as it arrives,
//! as is when its length is known and chunked when it is not.

use std::io::Write as _;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::CONTENT_LENGTH;
use hyper::{HeaderMap, Method};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::http::{Body, BoxError};

/// How the request's body is delimited on the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    /// The client's Content-Length is forwarded, and exactly that many bytes follow.
    Length,
    /// No length known (a chunked or HTTP/2 client body).
    Chunked,
}

/// A request's header fields as they go on the wire. A header map is one; the proxy
/// writes its own (`proxy::upstream_headers`), composing the client's fields with the
/// gateway's as it writes them instead of editing a map first.
pub trait HeadFields: Sync {
    /// Every field, each through `write_field`.
    fn write_fields(&self, out: &mut Vec<u8>);
    /// Whether the fields carry a Content-Length (the body then goes as is).
    fn has_content_length(&self) -> bool;
}

impl HeadFields for HeaderMap {
    fn write_fields(&self, out: &mut Vec<u8>) {
        for (name, value) in self {
            write_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }

    fn has_content_length(&self) -> bool {
        self.contains_key(CONTENT_LENGTH)
    }
}

/// One `name: value` line. Callers pass names and values that passed `HeaderName` and
/// `HeaderValue` checks (no CR or LF), so nothing can split the head.
pub fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub fn body_framing(fields: &dyn HeadFields, body_is_empty: bool) -> BodyFraming {
    if body_is_empty {
        BodyFraming::None
    } else if fields.has_content_length() {
        BodyFraming::Length
    } else {
        BodyFraming::Chunked
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
    if framing == BodyFraming::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
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
}

/// Streams `body` to `out` with the given framing; `scratch` is reused for chunk framing.
/// Trailers from the client are dropped, as nginx drops them.
pub async fn write_body<W: AsyncWrite + Unpin>(out: &mut W, mut body: Body, framing: BodyFraming, scratch: &mut Vec<u8>) -> Result<(), BodyWriteError> {
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyWriteError::Client)?.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        if framing == BodyFraming::Chunked {
            out.write_all(chunk(scratch, &data)).await.map_err(BodyWriteError::Upstream)?;
        } else {
            out.write_all(&data).await.map_err(BodyWriteError::Upstream)?;
        }
    }
    if framing == BodyFraming::Chunked {
        out.write_all(b"0\r\n\r\n").await.map_err(BodyWriteError::Upstream)?;
    }
    out.flush().await.map_err(BodyWriteError::Upstream)
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

    #[test]
    fn the_head_carries_every_header_and_the_framing() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.com"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let mut out = Vec::new();
        encode_head(&mut out, &Method::POST, "/p?q=1", &headers, body_framing(&headers, false));
        assert_eq!(String::from_utf8(out).unwrap(), "POST /p?q=1 HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\nx-a: 2\r\ntransfer-encoding: chunked\r\n\r\n");
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
        assert_eq!(body_framing(&headers, false), BodyFraming::Length);
        assert_eq!(body_framing(&headers, true), BodyFraming::None);
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
        write_body(&mut out, full("hello"), BodyFraming::Length, &mut Vec::new()).await.unwrap();
        assert_eq!(out, b"hello");
        let mut out = Vec::new();
        write_body(&mut out, full("hello"), BodyFraming::Chunked, &mut Vec::new()).await.unwrap();
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
    }
}
