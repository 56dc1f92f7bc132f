//! An upstream response's body, read from the connection it arrived on. The body owns
//! the connection and hands it back to this thread's pool the moment its last byte is
//! taken, so a small response's connection is free again before hyper's server even
//! writes the response out. A body dropped before its end closes the connection:
//! HTTP/1.1 cannot abandon a response and reuse the connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::conn::{reserve_read_space, UpstreamConn};
use super::decode::{ChunkedDecoder, DecodeError, Framing};
use super::raw_fields::RawFields;
use crate::http::read_buf::poll_read_buf;
use crate::proxy::pool;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("upstream closed the connection before the end of the body")]
    Truncated,
    #[error("reading the upstream's body: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

pub struct UpstreamBody {
    /// `None` once the body is done (the connection went back to the pool or was closed).
    conn: Option<UpstreamConn>,
    state: State,
    /// Whether the connection may carry another request after this body.
    reusable: bool,
    /// The response's header fields, which ride with the body until the proxy takes them
    /// (`take_fields`): the response's own map is left empty, see `raw_fields`.
    fields: RawFields,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Length(left) => format!("{left} bytes left"),
            State::Chunked(_) => "chunked".into(),
            State::UntilClose => "until close".into(),
            State::Done => "done".into(),
        };
        f.debug_struct("UpstreamBody").field("state", &state).field("reusable", &self.reusable).finish()
    }
}

impl UpstreamBody {
    pub(super) fn new(conn: UpstreamConn, framing: Framing, reusable: bool, fields: RawFields) -> Self {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = UpstreamBody { conn: Some(conn), state, reusable, fields };
        if matches!(body.state, State::Done) {
            body.finish();
        }
        body
    }

    /// The response's header fields as the upstream sent them; empty once taken.
    pub fn take_fields(&mut self) -> RawFields {
        std::mem::take(&mut self.fields)
    }

    /// The body is complete: the connection goes back to the pool if it can be reused,
    /// which it cannot if the upstream sent more than the response.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            if self.reusable && conn.read_buf.is_empty() && conn.pooled {
                pool::checkin(conn);
            }
        }
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.state = State::Done;
        self.conn = None;
        Poll::Ready(Some(Err(error)))
    }

    /// The next data already in the buffer, if any; finishes the body when it is the last.
    fn take_buffered(&mut self) -> Result<Option<Bytes>, BodyError> {
        let Some(conn) = self.conn.as_mut() else { return Ok(None) };
        let buf = &mut conn.read_buf;
        let (data, last) = match &mut self.state {
            State::Done => return Ok(None),
            State::Length(_) | State::UntilClose if buf.is_empty() => return Ok(None),
            State::Length(left) => {
                let take = usize::try_from(*left).map_or(buf.len(), |l| l.min(buf.len()));
                *left -= take as u64;
                (Some(buf.split_to(take).freeze()), *left == 0)
            }
            State::UntilClose => (Some(buf.split().freeze()), false),
            State::Chunked(decoder) => {
                let data = decoder.decode(buf)?;
                (data, decoder.is_done())
            }
        };
        if last {
            self.finish();
        }
        Ok(data)
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        loop {
            match this.take_buffered() {
                Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(None) => {}
                Err(e) => return this.fail(e),
            }
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match ready!(poll_read(conn, cx)) {
                Ok(0) if matches!(this.state, State::UntilClose) => {
                    this.reusable = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(BodyError::Truncated),
                Ok(_) => {}
                // TLS says so when the upstream closes without close_notify; for a body
                // that ends with the connection, that is its end, as nginx takes it.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && matches!(this.state, State::UntilClose) => {
                    this.reusable = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Err(e) => return this.fail(e.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(left) => SizeHint::with_exact(left),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// Through `poll_read_buf`, so that a pooled connection whose body was drained is not
/// still taken for readable when its reuse is checked (a system call that finds nothing).
fn poll_read(conn: &mut UpstreamConn, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    reserve_read_space(&mut conn.read_buf);
    poll_read_buf(&mut conn.stream, &mut conn.read_buf, cx)
}
