//! The client limits of connections handed to hyper, whose server has no idle limit for
//! HTTP/2 and starts its header timer afresh for a head it is handed half read. A
//! connection counts its exchanges in flight (a request from its arrival until its
//! response's body has gone out or been dropped); with none, it may wait `keepalive` from
//! the end of the last one, or, before its first, `header` from when the head it was
//! handed began, as the own HTTP/1.1 path does. Past the keep-alive limit it is shut down
//! gracefully (HTTP/2's GOAWAY, and the close once nothing is in flight), and closed if
//! that has not happened a header limit later; past the header limit, with no request
//! ever begun, it is closed at once, as nothing is owed an answer and hyper would wait
//! for a head it has started reading.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::{sleep_until, Instant, Sleep};

use super::client_clock::Expired;
use super::ClientTimeouts;
use crate::http::{Body, BoxError};

/// What a connection's exchanges tell its idle watch.
struct Shared {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the last exchange ended, in ms since `start`.
    last_done_ms: AtomicU64,
    served: AtomicBool,
}

/// A connection's count of exchanges in flight, cloned into its service.
#[derive(Clone)]
pub struct Activity(Arc<Shared>);

impl Activity {
    pub fn new() -> Activity {
        Activity(Arc::new(Shared { start: Instant::now(), in_flight: AtomicUsize::new(0), last_done_ms: AtomicU64::new(0), served: AtomicBool::new(false) }))
    }

    /// A request has arrived; the exchange lasts as long as the guard.
    pub fn begin(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.0.clone())
    }
}

/// One exchange in flight; held by its response's body once there is one.
pub struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The time first, then the count: a watch that sees no exchange in flight sees
        // when the last one ended.
        let ms = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The latest end wins, whichever of two exchanges ending at once stores first.
        self.0.last_done_ms.fetch_max(ms, Ordering::SeqCst);
        self.0.served.store(true, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    /// `body`, holding this exchange in flight until it is sent or dropped.
    pub fn hold_until_sent(self, body: Body) -> Body {
        use http_body_util::BodyExt;
        HeldBody { body, _in_flight: self }.boxed()
    }
}

struct HeldBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for HeldBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Tells when a connection has been idle past its limit.
pub struct IdleWatch {
    shared: Arc<Shared>,
    limits: ClientTimeouts,
    timer: Pin<Box<Sleep>>,
    head_since: Instant,
    /// Set once the connection was told to shut down for idleness: it then has the header
    /// limit to close by itself. An HTTP/2 client that never answers the GOAWAY's PING
    /// would otherwise keep it open.
    closing_since: Option<Instant>,
}

impl IdleWatch {
    /// The watch of a connection whose first exchange must begin within the header limit
    /// of `head_since`.
    pub fn new(activity: &Activity, limits: ClientTimeouts, head_since: Instant) -> IdleWatch {
        let shared = activity.0.clone();
        let timer = Box::pin(sleep_until(head_since + limits.header));
        IdleWatch { shared, limits, timer, head_since, closing_since: None }
    }

    /// The connection has been told to shut down gracefully for idleness: from now the
    /// watch says `Expired::Header` once it has had the header limit to do so with nothing
    /// in flight, and it is then closed.
    pub fn closing(&mut self) {
        let now = Instant::now();
        self.closing_since = Some(now);
        self.timer.as_mut().reset(now + self.limits.header);
    }

    pub fn is_closing(&self) -> bool {
        self.closing_since.is_some()
    }

    /// When the connection's wait runs out, and which, if nothing is in flight.
    fn deadline(&self) -> Option<(Instant, Expired)> {
        if self.shared.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last_done = self.shared.start + std::time::Duration::from_millis(self.shared.last_done_ms.load(Ordering::SeqCst));
        if let Some(told) = self.closing_since {
            return Some((told.max(last_done) + self.limits.header, Expired::Header));
        }
        Some(match self.shared.served.load(Ordering::SeqCst) {
            true => (last_done + self.limits.keepalive, Expired::Idle),
            false => (self.head_since + self.limits.header, Expired::Header),
        })
    }

    /// Ready once the connection has waited past its limit. The timer is never later
    /// than the deadline that matters: while busy it is set a keep-alive ahead, which is
    /// before the deadline of any exchange still to end, and checked again then.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            match self.deadline() {
                Some((deadline, which)) if deadline <= now => return Poll::Ready(which),
                Some((deadline, _)) => self.timer.as_mut().reset(deadline),
                None => self.timer.as_mut().reset(now + self.limits.keepalive),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use super::*;

    const LIMITS: ClientTimeouts = ClientTimeouts { keepalive: Duration::from_secs(75), header: Duration::from_secs(10), send: Duration::from_secs(60) };

    async fn expiry(watch: &mut IdleWatch) -> (Expired, Instant) {
        let which = poll_fn(|cx| watch.poll_expired(cx)).await;
        (which, Instant::now())
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_expires_after_the_header_limit_of_its_head_s_start() {
        let start = Instant::now();
        let activity = Activity::new();
        assert_eq!(expiry(&mut IdleWatch::new(&activity, LIMITS, start - Duration::from_secs(4))).await, (Expired::Header, start + LIMITS.header - Duration::from_secs(4)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_exchange_in_flight_holds_the_connection_and_its_end_starts_the_keepalive_limit() {
        let start = Instant::now();
        let activity = Activity::new();
        let mut watch = IdleWatch::new(&activity, LIMITS, start);
        let exchange = activity.begin();
        // A response streaming for longer than both limits.
        let waiting = tokio::time::timeout(Duration::from_secs(200), poll_fn(|cx| watch.poll_expired(cx))).await;
        assert!(waiting.is_err(), "expired with an exchange in flight");
        drop(exchange);
        assert_eq!(expiry(&mut watch).await, (Expired::Idle, start + Duration::from_secs(200) + LIMITS.keepalive));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_told_to_close_for_idleness_is_closed_a_header_limit_later() {
        let start = Instant::now();
        let activity = Activity::new();
        let mut watch = IdleWatch::new(&activity, LIMITS, start);
        drop(activity.begin());
        assert_eq!(expiry(&mut watch).await, (Expired::Idle, start + LIMITS.keepalive));
        watch.closing();
        // An exchange still in flight then holds it open for as long as it lasts.
        let exchange = activity.begin();
        tokio::time::advance(LIMITS.header * 3).await;
        let ends_at = Instant::now();
        drop(exchange);
        assert_eq!(expiry(&mut watch).await, (Expired::Header, ends_at + LIMITS.header));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_holds_its_exchange_until_dropped() {
        let activity = Activity::new();
        let body = activity.begin().hold_until_sent(crate::http::full("hi"));
        assert_eq!(activity.0.in_flight.load(Ordering::SeqCst), 1);
        drop(body);
        assert_eq!(activity.0.in_flight.load(Ordering::SeqCst), 0);
        assert!(activity.0.served.load(Ordering::SeqCst));
    }
}
