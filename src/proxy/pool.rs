//! Idle upstream connections of this thread, by address. A proxy worker keeps its own:
//! a pooled connection is driven by the runtime that opened it, so sharing one across
//! workers would hand every request between threads. Owning the pool (rather than
//! hyper-util's pooled client) also saves a spawned task per request, which that client
//! uses to notice when an HTTP/1.1 connection is ready again.
//!
//! A connection goes back to the pool when its response body has been read to the end
//! (`PooledBody`); one whose body is dropped early is closed by hyper, as HTTP/1.1 cannot
//! abandon a response and reuse the connection.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

use crate::http;

pub type Sender = SendRequest<http::Body>;

/// An idle connection unused for this long is not reused (the upstream may have
/// forgotten it): it is closed when the pool next looks at its address. Until then it
/// stays open unless the upstream closes it, as upstreams' keep-alive timers do.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per address; more are closed when they come back.
pub const MAX_IDLE_PER_ADDR: usize = 256;

struct Idle {
    sender: Sender,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    /// Most recently returned at the back: reuse takes the warmest, expiry drops from the front.
    idle: HashMap<Arc<str>, VecDeque<Idle>>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::default();
}

/// The pool's key for `addr` (shared by its connections, so a request allocates none)
/// and an idle connection to it that can take a request now, with how long it was idle,
/// if this thread has one.
pub fn checkout(addr: &str) -> (Arc<str>, Option<(Sender, Duration)>) {
    POOL.with_borrow_mut(|pool| {
        let Some(key) = pool.idle.get_key_value(addr).map(|(key, _)| key.clone()) else {
            let key: Arc<str> = Arc::from(addr);
            pool.idle.insert(key.clone(), VecDeque::new());
            return (key, None);
        };
        let Some(queue) = pool.idle.get_mut(addr) else { return (key, None) };
        let now = Instant::now();
        // Each idle connection is looked at once at most: one that is open but not ready
        // yet (its last exchange still finishing) goes to the cold end.
        for _ in 0..queue.len() {
            let Some(idle) = queue.pop_back() else { break };
            let idle_for = now.duration_since(idle.since);
            if idle.sender.is_closed() || idle_for > IDLE_TIMEOUT {
                continue;
            }
            if idle.sender.is_ready() {
                return (key, Some((idle.sender, idle_for)));
            }
            queue.push_front(idle);
        }
        (key, None)
    })
}

/// Returns a connection whose last exchange is complete.
pub fn checkin(key: &Arc<str>, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    POOL.with_borrow_mut(|pool| {
        let queue = pool.idle.entry(key.clone()).or_default();
        let now = Instant::now();
        while queue.front().is_some_and(|idle| idle.sender.is_closed() || now.duration_since(idle.since) > IDLE_TIMEOUT) {
            queue.pop_front();
        }
        if queue.len() < MAX_IDLE_PER_ADDR {
            queue.push_back(Idle { sender, since: now });
        }
    });
}

/// How many idle connections to `addr` this thread holds (closed ones included until
/// they are next looked at).
#[cfg(test)]
pub fn idle_count(addr: &str) -> usize {
    POOL.with_borrow(|pool| pool.idle.get(addr).map_or(0, VecDeque::len))
}

/// Whether every idle connection this thread holds to `addr` (if any) is closed.
#[cfg(test)]
pub fn no_open_idle(addr: &str) -> bool {
    POOL.with_borrow(|pool| pool.idle.get(addr).is_none_or(|q| q.iter().all(|i| i.sender.is_closed())))
}

/// An upstream response body that hands its connection back to the pool once read to
/// the end: hyper's server stops polling a body that says it has ended, so the end is
/// noticed either on the last poll or when the finished body is dropped.
#[derive(Debug)]
pub struct PooledBody {
    inner: Incoming,
    connection: Option<(Arc<str>, Sender)>,
}

impl PooledBody {
    pub fn new(inner: Incoming, key: Arc<str>, sender: Sender) -> Self {
        PooledBody { inner, connection: Some((key, sender)) }
    }

    fn release(&mut self) {
        if let Some((key, sender)) = self.connection.take() {
            checkin(&key, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            // The connection is broken: never reuse it.
            Poll::Ready(Some(Err(_))) => self.connection = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}
