//! One body type for streamed and synthesized bodies, the request body handlers get, and
//! helpers to build responses.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// Any body error: hyper's, or ours (an idle timeout).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A JSON response; `value` is serialized compactly with a trailing newline, as curl users like.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut text = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    text.push(b'\n');
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    resp
}

/// A request's body as handlers see it: none, for a request the server's own HTTP/1.1
/// path read (it takes only bodiless ones), or hyper's stream; the proxy may read it
/// into memory first (`proxy::request_body`).
#[derive(Debug)]
pub enum RequestBody {
    Empty,
    Streaming(hyper::body::Incoming),
    /// The whole body, read before forwarding; taken by the first poll.
    Buffered(Option<Bytes>),
    /// What was read of a body too large to hold, then the rest as it arrives.
    Prefixed(Option<Bytes>, hyper::body::Incoming),
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Streaming(body) => Pin::new(body).poll_frame(cx),
            RequestBody::Buffered(whole) => Poll::Ready(whole.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            RequestBody::Prefixed(head, rest) => match head.take() {
                Some(head) => Poll::Ready(Some(Ok(Frame::data(head)))),
                None => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Streaming(body) => body.is_end_stream(),
            RequestBody::Buffered(whole) => whole.as_ref().is_none_or(Bytes::is_empty),
            RequestBody::Prefixed(head, rest) => head.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Streaming(body) => body.size_hint(),
            RequestBody::Buffered(whole) => SizeHint::with_exact(whole.as_ref().map_or(0, |b| b.len() as u64)),
            RequestBody::Prefixed(head, rest) => {
                let held = head.as_ref().map_or(0, |b| b.len() as u64);
                let more = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(more.lower() + held);
                if let Some(upper) = more.upper() {
                    hint.set_upper(upper + held);
                }
                hint
            }
        }
    }
}
