//! One HTTP/1.1 exchange on an upstream connection, driven by the request's own task:
//! the head is written and the response head read right here, with no connection task
//! and no channel in between (hyper's client hands every request to a task of its own,
//! and every response and body chunk back, which cost a task switch or three per
//! request). The response body then owns the connection (`body::UpstreamBody`).

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hyper::{Method, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;

use super::body::UpstreamBody;
use super::decode::{self, DecodeError, Head};
use super::encode::{self, BodyFraming, BodyWriteError, HeadFields};
use super::stream::UpstreamStream;
use crate::http::Body;

/// Reads go into at least this much free buffer space.
const MIN_READ_SPACE: usize = 4 * 1024;
/// What a read buffer grows by when it runs short.
const READ_GROWTH: usize = 16 * 1024;

pub struct UpstreamConn {
    pub(super) stream: UpstreamStream,
    /// Bytes read and not yet taken: the rest of a head, then body bytes. Empty between
    /// exchanges (a connection with unasked-for bytes is not reused).
    pub(super) read_buf: BytesMut,
    write_buf: Vec<u8>,
    /// The pool's key (the upstream address), shared, so reuse allocates nothing.
    key: Arc<str>,
    /// The wait for a response head's limit, kept from one exchange to the next (see
    /// `poll_read_deadline`).
    read_timer: Option<Pin<Box<Sleep>>>,
    /// When its latest exchange began (the caller's clock reading): the pool counts its
    /// idleness from there, a little early, which only ever retires it sooner.
    last_exchange: Instant,
    /// Whether it goes back to the pool after its exchange (see `TlsTarget::pooled`).
    pub(super) pooled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The connection failed or closed before any of a response arrived: the upstream may
    /// or may not have acted on the request.
    #[error("upstream connection closed before a response: {0}")]
    NoResponse(io::Error),
    #[error("upstream connection failed mid-response: {0}")]
    Io(io::Error),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    ClientBody(BodyWriteError),
    /// A write to the upstream stalled past the write timeout, or its response head did
    /// not come within the read timeout of the request going out.
    #[error("upstream timed out")]
    TimedOut,
}

impl UpstreamConn {
    pub fn new(stream: impl Into<UpstreamStream>, key: Arc<str>) -> Self {
        UpstreamConn { stream: stream.into(), read_buf: BytesMut::new(), write_buf: Vec::new(), key, read_timer: None, last_exchange: Instant::now(), pooled: true }
    }

    /// Closed after its exchange instead of kept.
    pub fn unpooled(mut self) -> Self {
        self.pooled = false;
        self
    }

    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    pub fn last_exchange(&self) -> Instant {
        self.last_exchange
    }

    /// Whether an idle connection can take a request: not if the upstream closed it or
    /// sent something unasked meanwhile. No system call unless the runtime saw the socket
    /// turn readable, which an idle, healthy connection never does.
    pub fn is_reusable(&self) -> bool {
        self.stream.is_quiet()
    }
}

/// Room for the next read, growing the buffer only when little is left.
pub(super) fn reserve_read_space(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < MIN_READ_SPACE {
        buf.reserve(READ_GROWTH);
    }
}

/// Kong's timeouts, which bound the time between two successive operations: each write
/// to the upstream, and the wait for the response head once the request is out (so a
/// long upload that keeps moving is fine).
#[derive(Debug, Clone, Copy)]
pub struct ExchangeTimeouts {
    pub read: Duration,
    pub write: Duration,
    /// The caller's reading of the clock just before the exchange: a request without a
    /// body is out within microseconds of it, so its read timeout counts from here
    /// (a clock read per request less; a body's counts from its last write).
    pub started: Instant,
}

/// Sends one request on `conn` and reads the response head. `target` is the request line's
/// target (origin form); `fields` must carry Host and no hop-by-hop fields.
pub async fn exchange(
    mut conn: UpstreamConn,
    method: &Method,
    target: &str,
    fields: &dyn HeadFields,
    body: Body,
    timeouts: ExchangeTimeouts,
) -> Result<Response<UpstreamBody>, ExchangeError> {
    conn.last_exchange = timeouts.started;
    let framing = encode::body_framing(fields, &body);
    encode::encode_head(&mut conn.write_buf, method, target, fields, framing);
    write_head(&mut conn, timeouts.write).await?;
    let mut request_complete = true;
    let head = if matches!(framing, BodyFraming::None { .. }) {
        let deadline = tokio::time::Instant::from_std(timeouts.started) + timeouts.read;
        read_head_within(&mut conn, method, deadline).await?
    } else {
        // Boxed: this future is most of an exchange's size, and inline it would be copied
        // with the future of every request, bodiless ones included.
        let (head, complete) = Box::pin(send_body_and_read_head(&mut conn, method, body, framing, timeouts)).await?;
        request_complete = complete;
        head
    };
    let Head { parts, fields, framing, keep_alive } = head;
    // A response that came before the whole request went out leaves the connection mid-request.
    let body = UpstreamBody::new(conn, framing, keep_alive && request_complete, fields);
    Ok(Response::from_parts(parts, body))
}

/// Writes the encoded head. A connection that can take it at once, as a pooled one almost
/// always can, takes it without a timer: setting one up costs a clock read.
async fn write_head(conn: &mut UpstreamConn, write_timeout: Duration) -> Result<(), ExchangeError> {
    let written = match conn.stream.try_write(&conn.write_buf) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(ExchangeError::NoResponse(e)),
    };
    if written == conn.write_buf.len() {
        return Ok(());
    }
    // Flushed: TLS holds records until told to send them.
    let stream = &mut conn.stream;
    let rest = &conn.write_buf[written..];
    match tokio::time::timeout(write_timeout, async move {
        stream.write_all(rest).await?;
        stream.flush().await
    })
    .await
    {
        Err(_) => Err(ExchangeError::TimedOut),
        Ok(result) => result.map_err(ExchangeError::NoResponse),
    }
}

/// Reads the response head unless `deadline` passes first.
async fn read_head_within(conn: &mut UpstreamConn, method: &Method, deadline: tokio::time::Instant) -> Result<Head, ExchangeError> {
    let UpstreamConn { stream, read_buf, read_timer, .. } = conn;
    let mut reading = pin!(read_head_from(stream, read_buf, method));
    poll_fn(|cx| {
        if let Poll::Ready(head) = reading.as_mut().poll(cx) {
            return Poll::Ready(head);
        }
        ready!(poll_read_deadline(read_timer, deadline, cx));
        Poll::Ready(Err(ExchangeError::TimedOut))
    })
    .await
}

/// Ready once `deadline` has passed. A timer set up and torn down for every exchange
/// (registered in the runtime's wheel, then removed) showed in profiles; the connection
/// keeps one instead. Left armed for an earlier exchange's deadline, it fires early at
/// most once per read timeout and is then moved on; deadlines only move later, as the
/// exchanges on a connection follow one another.
fn poll_read_deadline(timer: &mut Option<Pin<Box<Sleep>>>, deadline: tokio::time::Instant, cx: &mut Context<'_>) -> Poll<()> {
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    loop {
        ready!(timer.as_mut().poll(cx));
        if timer.deadline() >= deadline {
            return Poll::Ready(());
        }
        timer.as_mut().reset(deadline);
    }
}

/// Writes the body while watching for the response: an upstream may answer (413, 401...)
/// before reading the whole body, and then stop reading it. Returns the head and whether
/// the whole request went out.
async fn send_body_and_read_head(conn: &mut UpstreamConn, method: &Method, body: Body, framing: BodyFraming, timeouts: ExchangeTimeouts) -> Result<(Head, bool), ExchangeError> {
    let UpstreamConn { stream, read_buf, write_buf, .. } = conn;
    match stream {
        // A socket's halves are free to borrow; TLS's share one session, behind a lock.
        UpstreamStream::Plain(tcp) => {
            let (reader, writer) = tcp.split();
            body_and_head(reader, writer, read_buf, write_buf, method, body, framing, timeouts).await
        }
        UpstreamStream::Tls(tls) => {
            let (reader, writer) = tokio::io::split(tls.as_mut());
            body_and_head(reader, writer, read_buf, write_buf, method, body, framing, timeouts).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn body_and_head<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut reader: R,
    mut writer: W,
    read_buf: &mut BytesMut,
    write_buf: &mut Vec<u8>,
    method: &Method,
    body: Body,
    framing: BodyFraming,
    timeouts: ExchangeTimeouts,
) -> Result<(Head, bool), ExchangeError> {
    let writing = encode::write_body(&mut writer, body, framing, write_buf, timeouts.write);
    let reading = read_head_from(&mut reader, read_buf, method);
    tokio::pin!(writing, reading);
    let mut sent = false;
    let mut write_failure = None;
    // The read timeout runs from the moment nothing more will be written.
    let mut read_deadline = None;
    loop {
        tokio::select! {
            biased;
            head = &mut reading => {
                return match (head, write_failure) {
                    (Ok(head), _) => Ok((head, sent)),
                    // The upstream went away mid-body without answering: its reason is the write's.
                    (Err(ExchangeError::NoResponse(_)), Some(e)) => Err(ExchangeError::NoResponse(e)),
                    (Err(e), _) => Err(e),
                };
            }
            written = &mut writing, if !sent && write_failure.is_none() => {
                match written {
                    Ok(()) => sent = true,
                    Err(BodyWriteError::Upstream(e)) => write_failure = Some(e),
                    Err(BodyWriteError::UpstreamStalled) => return Err(ExchangeError::TimedOut),
                    Err(e) => return Err(ExchangeError::ClientBody(e)),
                }
                read_deadline = Some(tokio::time::Instant::now() + timeouts.read);
            }
            _ = tokio::time::sleep_until(read_deadline.unwrap_or_else(tokio::time::Instant::now)), if read_deadline.is_some() => {
                return Err(ExchangeError::TimedOut);
            }
        }
    }
}

async fn read_head_from<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut BytesMut, method: &Method) -> Result<Head, ExchangeError> {
    let mut received = false;
    let mut skipped_interim = false;
    loop {
        if !buf.is_empty() {
            if let Some(head) = decode::parse_head(buf, method, &mut skipped_interim)? {
                return Ok(head);
            }
        }
        reserve_read_space(buf);
        match reader.read_buf(buf).await {
            Ok(0) if !received => return Err(ExchangeError::NoResponse(io::ErrorKind::UnexpectedEof.into())),
            Ok(0) => return Err(ExchangeError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the response head was complete"))),
            Ok(_) => received = true,
            Err(e) if !received => return Err(ExchangeError::NoResponse(e)),
            Err(e) => return Err(ExchangeError::Io(e)),
        }
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
