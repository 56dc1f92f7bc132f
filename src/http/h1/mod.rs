//! The server side of a connection. Requests without a body over HTTP/1.1, nearly all of
//! a gateway's keep-alive traffic, are read and answered here: one parse of the head, one
//! write per response, the handler's future kept inline in the connection's state. At the first request this
//! path does not take (a body, an upgrade, HTTP/1.0, HTTP/2's preface, a malformed or
//! oversized head) the connection and the bytes read so far go to hyper for the rest of
//! its life. hyper's dispatch, its connection task and its header encoding cost about as
//! much CPU per proxied request as the proxy's own work (`bench/results/profile.md`).

mod client_clock;
mod head;
mod hyper_idle;
mod response;
mod rewind;
mod send_limit;

pub use self::client_clock::ClientTimeouts;

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use self::client_clock::{ClientClock, Expired};
use self::head::Parsed;
use self::hyper_idle::{Activity, IdleWatch};
use self::rewind::Rewind;
use self::send_limit::SendLimit;
use super::drain::Graceful;
use super::read_buf::poll_read_buf;
use super::{Handler, Reply, RequestBody};

/// The read buffer's size, and the most a head may take before hyper gets it: hyper reads
/// larger heads up to its own limit and answers 431 past it.
const READ_BUF: usize = 8 * 1024;
const MAX_OWN_HEAD: usize = 16 * 1024;

/// One accepted connection, served until the client closes it or a drain ends it.
pub struct Connection {
    serving: Pin<Box<dyn Future<Output = ()> + Send>>,
    stop: Arc<AtomicBool>,
}

impl Connection {
    pub fn new<H: Handler>(stream: TcpStream, peer: SocketAddr, handler: Arc<H>, hyper: auto::Builder<TokioExecutor>, timeouts: ClientTimeouts, listener: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let serving = Box::pin(serve(stream, peer, handler, hyper, timeouts, stop.clone(), listener));
        Connection { serving, stop }
    }
}

impl Future for Connection {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.serving.as_mut().poll(cx)
    }
}

impl Graceful for Connection {
    /// The request in flight is answered, with `Connection: close`; an idle connection
    /// closes at its next poll, which the drain makes happen.
    fn graceful_shutdown(self: Pin<&mut Self>) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn serve<H: Handler>(stream: TcpStream, peer: SocketAddr, handler: Arc<H>, hyper: auto::Builder<TokioExecutor>, timeouts: ClientTimeouts, stop: Arc<AtomicBool>, listener: &'static str) {
    let handoff = match serve_own(stream, peer, &*handler, ClientClock::new(timeouts), &stop).await {
        Ok(Some(handoff)) => handoff,
        Ok(None) => return,
        Err(e) => return tracing::debug!(listener, error = %e, "connection ended with an error"),
    };
    // hyper's limits are one header timeout per head, counted from when it starts reading;
    // the watch keeps this path's: the head handed over is due from its own start, and
    // HTTP/2 gets an idle limit at all.
    let activity = Activity::new();
    let idle = IdleWatch::new(&activity, timeouts, handoff.head_since);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let exchange = activity.begin();
        let answer = handler.handle(req.map(RequestBody::Streaming), peer);
        async move { Ok::<_, Infallible>(answer.await.into_response().map(|body| exchange.hold_until_sent(body))) }
    });
    let io = TokioIo::new(Rewind::new(SendLimit::new(handoff.stream, timeouts.send), handoff.read.freeze()));
    if handoff.served_own {
        // Mid-connection only HTTP/1.1 may follow: a late HTTP/2 preface is an error, as it
        // was when hyper's HTTP/1 server had the connection from the start.
        finish(hyper_http1(timeouts).serve_connection(io, service), &stop, idle, listener).await;
    } else {
        finish(hyper.serve_connection_with_upgrades(io, service), &stop, idle, listener).await;
    }
}

/// hyper's HTTP/1 server for a connection this path has served requests on. hyper has
/// one limit where this path has two: it counts the wait for a head from the end of the
/// previous response, so it gets the longer of the two.
fn hyper_http1(timeouts: ClientTimeouts) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(hyper_header_timeout(timeouts));
    builder
}

/// The limit hyper applies to the wait for each request's head (see `hyper_http1`).
pub fn hyper_header_timeout(timeouts: ClientTimeouts) -> std::time::Duration {
    timeouts.keepalive.max(timeouts.header)
}

/// Drives a connection hyper took over to its end, telling it to shut down gracefully
/// at a drain or once `idle` says it has waited too long.
async fn finish<C, E>(conn: C, stop: &AtomicBool, mut idle: IdleWatch, listener: &'static str)
where
    C: Graceful<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut conn = pin!(conn);
    let (mut polled, mut told) = (false, false);
    let served = poll_fn(|cx| {
        // Told only once polled: before that, hyper has not read the request in the bytes
        // handed over, and shutting down would drop it unanswered.
        if polled {
            // Watched until told to shut down, and after, if that was for idleness.
            let expired = if !told || idle.is_closing() {
                match idle.poll_expired(cx) {
                    Poll::Ready(which) => Some(which),
                    Poll::Pending => None,
                }
            } else {
                None
            };
            if let Some(which) = expired {
                tracing::debug!(listener, ?which, "client connection timed out");
            }
            if expired == Some(Expired::Header) {
                // Nothing in flight: no answer is owed, and a head half read (or an HTTP/2
                // client that does not answer the GOAWAY's PING) keeps hyper's graceful
                // shutdown waiting.
                return Poll::Ready(Ok(()));
            }
            if !told && (expired.is_some() || stop.load(Ordering::SeqCst)) {
                told = true;
                Graceful::graceful_shutdown(conn.as_mut());
                if expired.is_some() {
                    idle.closing();
                    // Polled now so that its new deadline wakes this task.
                    if idle.poll_expired(cx).is_ready() {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
        let poll = conn.as_mut().poll(cx);
        if poll.is_pending() && !polled {
            polled = true;
            // Polled again at once: a drain may be under way, and the idle watch's timer
            // must be armed even if hyper has nothing to wake this task for.
            cx.waker().wake_by_ref();
        }
        poll
    })
    .await;
    if let Err(e) = served {
        tracing::debug!(listener, error = %e, "connection ended with an error");
    }
}

/// A connection this path hands to hyper.
struct Handoff {
    stream: TcpStream,
    /// Every byte read but not consumed.
    read: BytesMut,
    /// Whether this path answered any request first.
    served_own: bool,
    /// Since when the head being handed over (or the first, on a new connection) has been
    /// awaited.
    head_since: tokio::time::Instant,
}

/// Serves requests on this path until the connection ends (`None`) or one comes that
/// hyper must serve.
async fn serve_own<H: Handler>(mut stream: TcpStream, peer: SocketAddr, handler: &H, mut clock: ClientClock, stop: &AtomicBool) -> io::Result<Option<Handoff>> {
    let mut input = BytesMut::with_capacity(READ_BUF);
    let mut output = Vec::with_capacity(1024);
    let mut served = false;
    loop {
        let (request, meta) = loop {
            if !input.is_empty() {
                let still_ours = match head::parse(&mut input) {
                    Parsed::Request(request, meta) => break (request, meta),
                    Parsed::Partial => {
                        clock.head_started();
                        input.len() < MAX_OWN_HEAD
                    }
                    Parsed::NotOurs => false,
                };
                if !still_ours {
                    return Ok(Some(Handoff { stream, read: input, served_own: served, head_since: clock.head_since() }));
                }
            }
            if input.capacity() - input.len() < READ_BUF / 2 {
                input.reserve(READ_BUF);
            }
            match read_more(&mut stream, &mut input, &mut clock, stop).await? {
                // The client closed (an unfinished head goes unanswered), or a drain
                // found the connection idle.
                Read::Bytes(0) => return Ok(None),
                Read::Bytes(_) => {}
                Read::Expired(which) => {
                    tracing::debug!(%peer, ?which, "client connection timed out");
                    return Ok(None);
                }
            }
        };
        // Pinned where it is made: the handler's future is most of a connection's state,
        // and passing it by value copied it once more per request.
        let answer = pin!(handler.handle(request, peer));
        let Some(reply) = answer_unless_gone(answer, &stream, input.is_empty()).await else {
            // The client left: the handler is dropped, which cancels its upstream exchange.
            return Ok(None);
        };
        served = true;
        let close = !meta.keep_alive || stop.load(Ordering::SeqCst);
        let (response, tail) = reply.into_parts();
        let written = response::write(&mut SendLimit::new(&mut stream, clock.limits().send), &mut output, response, &tail, meta.head, close).await?;
        if !written {
            // A FIN after the response, as hyper sends, rather than only dropping the socket.
            let _ = stream.shutdown().await;
            return Ok(None);
        }
        clock.idle_from_now();
    }
}

/// The handler's answer, or `None` once the client has closed its end while it ran, as
/// hyper notices. A client that sends ahead (a pipelined request, read already or arriving
/// now) is not watched: its data waits its turn.
async fn answer_unless_gone<F: Future>(mut answer: Pin<&mut F>, stream: &TcpStream, nothing_read_ahead: bool) -> Option<F::Output> {
    let mut watching = nothing_read_ahead;
    poll_fn(|cx| {
        if let Poll::Ready(response) = answer.as_mut().poll(cx) {
            return Poll::Ready(Some(response));
        }
        if watching {
            let mut byte = [0u8; 1];
            match stream.poll_peek(cx, &mut ReadBuf::new(&mut byte)) {
                Poll::Pending => {}
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) => watching = false,
            }
        }
        Poll::Pending
    })
    .await
}

/// What a wait for the client brought.
enum Read {
    /// Bytes read; 0 at the stream's end, or at once when a drain finds no request started.
    Bytes(usize),
    /// The client kept the connection waiting past a limit.
    Expired(Expired),
}

/// Reads what the socket has, unless the client's time runs out first.
fn read_more<'a>(stream: &'a mut TcpStream, input: &'a mut BytesMut, clock: &'a mut ClientClock, stop: &'a AtomicBool) -> impl Future<Output = io::Result<Read>> + 'a {
    poll_fn(move |cx| {
        if input.is_empty() && stop.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(Read::Bytes(0)));
        }
        match poll_read_buf(stream, input, cx) {
            Poll::Pending => clock.poll_expired(cx).map(|which| Ok(Read::Expired(which))),
            Poll::Ready(result) => Poll::Ready(result.map(Read::Bytes)),
        }
    })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
