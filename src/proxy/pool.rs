//! Idle upstream connections of this thread, by address. A proxy worker keeps its own:
//! a connection is registered with the runtime that opened it, so sharing one across
//! workers would hand every request between threads.
//!
//! A connection comes back when its response body has been read to the end
//! (`h1::UpstreamBody`); one whose body is dropped early is closed instead, as HTTP/1.1
//! cannot abandon a response and reuse the connection.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::h1::UpstreamConn;

/// An idle connection unused for this long is not reused (the upstream may have
/// forgotten it): it is closed by the worker's next sweep, or when the pool next looks
/// at its address.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per address; more are closed when they come back.
pub const MAX_IDLE_PER_ADDR: usize = 256;

struct Idle {
    conn: UpstreamConn,
    since: Instant,
}

impl Idle {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.since) > IDLE_TIMEOUT
    }
}

/// An address's idle connections, most recently returned at the back: reuse takes the
/// warmest, expiry drops from the front. The key is kept beside them so that checking
/// a connection out takes one lookup.
struct Queue {
    key: Arc<str>,
    idle: VecDeque<Idle>,
}

#[derive(Default)]
struct Pool {
    /// Hashed with foldhash: addresses are short and come from the configuration, and
    /// SipHash's share of a proxied request showed in profiles.
    idle: HashMap<Arc<str>, Queue, foldhash::fast::RandomState>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::default();
}

/// The pool's key for `addr` (shared by its connections, so a request allocates none)
/// and an idle connection to it that can take a request at `now`, with how long it was
/// idle, if this thread has one.
pub fn checkout(addr: &str, now: Instant) -> (Arc<str>, Option<(UpstreamConn, Duration)>) {
    POOL.with_borrow_mut(|pool| {
        let Some(queue) = pool.idle.get_mut(addr) else {
            let key: Arc<str> = Arc::from(addr);
            pool.idle.insert(key.clone(), Queue { key: key.clone(), idle: VecDeque::new() });
            return (key, None);
        };
        // Closed or expired connections met on the way are dropped (closed).
        while let Some(idle) = queue.idle.pop_back() {
            if !idle.expired(now) && idle.conn.is_reusable() {
                return (queue.key.clone(), Some((idle.conn, now.saturating_duration_since(idle.since))));
            }
        }
        (queue.key.clone(), None)
    })
}

/// Returns a connection whose last exchange is complete. Its idleness counts from that
/// exchange's start, read from the clock already: a clock read per request less.
pub fn checkin(conn: UpstreamConn) {
    POOL.with_borrow_mut(|pool| {
        let queue = &mut pool.idle.entry(conn.key().clone()).or_insert_with(|| Queue { key: conn.key().clone(), idle: VecDeque::new() }).idle;
        let now = conn.last_exchange();
        while queue.front().is_some_and(|idle| idle.expired(now)) {
            queue.pop_front();
        }
        if queue.len() < MAX_IDLE_PER_ADDR {
            queue.push_back(Idle { conn, since: now });
        }
    });
}

/// Closes this thread's idle connections that expired or that their upstream closed
/// (or wrote to unasked), and forgets addresses with none left: without it, connections
/// to an address no longer used (a removed target, a name that resolves elsewhere now)
/// would stay open, in CLOSE_WAIT once their upstream gave up on them.
pub fn sweep() {
    POOL.with_borrow_mut(|pool| {
        let now = Instant::now();
        pool.idle.retain(|_, queue| {
            queue.idle.retain(|idle| !idle.expired(now) && idle.conn.is_reusable());
            !queue.idle.is_empty()
        });
    });
}

/// How many idle connections to `addr` this thread holds (closed ones included until
/// they are next looked at).
#[cfg(test)]
pub fn idle_count(addr: &str) -> usize {
    POOL.with_borrow(|pool| pool.idle.get(addr).map_or(0, |queue| queue.idle.len()))
}
