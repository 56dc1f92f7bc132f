//! What a handler answers with: a response, and fields it adds to the response's head
//! beside it. On the server's own HTTP/1.1 path those fields are written straight into
//! the head, without the hashed insert (and the map's growth) each would cost in the
//! response's HeaderMap; a gateway adds several to every response it passes on.

use hyper::header::HeaderMap;
use hyper::Response;

use super::Body;

/// Fields for a response's head, beyond the response's own. The response must carry
/// none of the same names: these are written after its fields, not instead of them.
/// Framing and Connection are the server's to write, never a tail's.
pub trait TailFields: Send + Sync + 'static {
    /// Appends the fields to a head being written, as `name: value\r\n` lines.
    fn write_into(&self, head: &mut Vec<u8>);

    /// Adds the fields to `headers`, for a response written by hyper.
    fn add_to(self, headers: &mut HeaderMap);

    /// Whether the fields include a Date (a proxied response's), which the server then
    /// does not add.
    fn has_date(&self) -> bool {
        false
    }
}

/// No fields beyond the response's own.
impl TailFields for () {
    fn write_into(&self, _head: &mut Vec<u8>) {}

    fn add_to(self, _headers: &mut HeaderMap) {}
}

/// A handler's answer.
pub trait Reply: Send + 'static {
    type Tail: TailFields;

    fn into_parts(self) -> (Response<Body>, Self::Tail);

    /// The response with its tail fields in its map, for hyper to write.
    fn into_response(self) -> Response<Body>
    where
        Self: Sized,
    {
        let (mut response, tail) = self.into_parts();
        tail.add_to(response.headers_mut());
        response
    }
}

impl Reply for Response<Body> {
    type Tail = ();

    fn into_parts(self) -> (Response<Body>, ()) {
        (self, ())
    }
}

impl<T: TailFields> Reply for (Response<Body>, T) {
    type Tail = T;

    fn into_parts(self) -> (Response<Body>, T) {
        self
    }
}
