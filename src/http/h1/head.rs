//! Reading a request head for the server's own HTTP/1.1 path: a complete, well-formed
//! HTTP/1.1 head of a request without a body becomes a `Request`; anything else is left
//! in the buffer, untouched, for hyper to serve.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use hyper::{Method, Request, Uri, Version};

use crate::http::fields::{append_fields, field_spans, span_in, FieldSpans, Span};
use crate::http::RequestBody;

/// More fields than this and the head goes to hyper, which answers 431 past its own limit.
const MAX_HEADERS: usize = 100;

// One per request, matched at once by the caller: boxing the request would cost an
// allocation per request to save a move.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// The head is not complete yet.
    Partial,
    Request(Request<RequestBody>, Meta),
    /// Not for this path: a body, an upgrade, HTTP/1.0, HTTP/2's preface, a malformed
    /// head. The buffer is as it was.
    NotOurs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The client did not ask to close after this request.
    pub keep_alive: bool,
    /// A HEAD request: the response goes without its body.
    pub head: bool,
}

/// Takes one request head off the front of `buf` if this path serves it.
pub fn parse(buf: &mut BytesMut) -> Parsed {
    // Left uninitialized: zeroing room for every field showed in the client's profiles.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::NotOurs,
    };
    if req.version != Some(1) {
        return Parsed::NotOurs;
    }
    let (Some(method), Some(target)) = (req.method, req.path) else { return Parsed::NotOurs };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else { return Parsed::NotOurs };
    let mut keep_alive = true;
    for field in req.headers.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // Only a zero length is bodiless; any other value, or a list, is hyper's to judge.
            if field.value.trim_ascii() != b"0" {
                return Parsed::NotOurs;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") || name.eq_ignore_ascii_case(b"expect") || name.eq_ignore_ascii_case(b"upgrade") {
            return Parsed::NotOurs;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in field.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::NotOurs;
                }
            }
        }
    }
    // The target, like the fields, is sliced out of the head's bytes, not copied.
    let target = span_in(buf, target.as_bytes());
    let mut spans = FieldSpans::new();
    field_spans(buf, req.headers, &mut spans);
    let bytes = buf.split_to(len).freeze();
    match build(&bytes, method, target, &spans) {
        Some(request) => {
            let head = request.method() == Method::HEAD;
            Parsed::Request(request, Meta { keep_alive, head })
        }
        None => {
            // A target or field httparse took and `http` does not (rare): put the head
            // back for hyper, which answers it.
            let mut restored = BytesMut::with_capacity(bytes.len() + buf.len());
            restored.extend_from_slice(&bytes);
            restored.extend_from_slice(buf);
            *buf = restored;
            Parsed::NotOurs
        }
    }
}

fn build(bytes: &Bytes, method: Method, target: Span, fields: &[(Span, Span)]) -> Option<Request<RequestBody>> {
    let uri = Uri::from_maybe_shared(bytes.slice(target.0..target.1)).ok()?;
    let mut request = Request::new(RequestBody::Empty);
    let headers = request.headers_mut();
    headers.reserve(fields.len());
    append_fields(headers, bytes, fields).ok()?;
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    Some(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(text);
        (parse(&mut buf), buf)
    }

    #[test]
    fn a_bodiless_request_is_read_and_the_next_one_stays_in_the_buffer() {
        let (parsed, rest) = parse_str("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next HTTP/1.1\r\n");
        let Parsed::Request(req, meta) = parsed else { panic!("{parsed:?}") };
        assert_eq!((req.method(), req.uri().path(), req.uri().query()), (&Method::GET, "/a", Some("b=1")));
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()["host"], "x");
        assert_eq!(req.headers().get_all("x-two").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(meta, Meta { keep_alive: true, head: false });
        assert_eq!(&rest[..], b"GET /next HTTP/1.1\r\n");
    }

    #[test]
    fn close_and_head_are_noted() {
        let (parsed, _) = parse_str("HEAD / HTTP/1.1\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n");
        let Parsed::Request(_, meta) = parsed else { panic!("{parsed:?}") };
        assert_eq!(meta, Meta { keep_alive: false, head: true });
    }

    #[test]
    fn an_incomplete_head_waits_for_more() {
        let (parsed, rest) = parse_str("GET / HTTP/1.1\r\nHost: x\r\n");
        assert!(matches!(parsed, Parsed::Partial));
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\nHost: x\r\n");
    }

    #[test]
    fn anything_else_is_left_untouched_for_hyper() {
        for text in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nContent-Length: 0, 0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET /a<b> HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\n",
        ] {
            let (parsed, rest) = parse_str(text);
            assert!(matches!(parsed, Parsed::NotOurs), "{text:?}: {parsed:?}");
            assert_eq!(&rest[..], text.as_bytes(), "{text:?} must stay in the buffer as it came");
        }
    }
}
