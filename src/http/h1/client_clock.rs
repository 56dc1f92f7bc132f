//! How long a client may keep a connection waiting: idle between requests (nginx's
//! `keepalive_timeout`), and sending a request's head, counted from its first bytes or,
//! for a connection's first request, from the accept (nginx's `client_header_timeout`).
//! Past either, the connection closes without an answer, as nginx and hyper close it, so
//! a client that opens connections and sends nothing, or a head a byte at a time, cannot
//! hold the proxy's sockets for good.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Sleep};

/// The limits on a client's waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// An idle connection's life between two requests.
    pub keepalive: Duration,
    /// From a request's first bytes, or the accept for a connection's first request, to
    /// the end of its head.
    pub header: Duration,
    /// Between two writes of a response that make progress (see `send_limit`).
    pub send: Duration,
}

impl Default for ClientTimeouts {
    /// nginx's defaults.
    fn default() -> Self {
        ClientTimeouts { keepalive: Duration::from_secs(75), header: Duration::from_secs(60), send: Duration::from_secs(60) }
    }
}

/// One connection's clock. The timer is set once and moved only when it fires early
/// (the connection was used since it was set) or when a head starts: a busy connection
/// sets no timer per request, only notes the time its last response went out.
pub struct ClientClock {
    limits: ClientTimeouts,
    idle_since: Instant,
    head_started: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    /// The task the timer will wake, once it has been polled since it was last set: a
    /// busy connection waits for the client on every request, and polling the timer
    /// each time (registering the same waker again) showed as about 1 % of a request.
    armed_for: Option<Waker>,
}

/// Which limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Idle,
    Header,
}

impl ClientClock {
    pub fn limits(&self) -> ClientTimeouts {
        self.limits
    }

    /// The clock of a connection accepted now. Its first head is due within the header
    /// limit of the accept, as in nginx: a client that connects and sends nothing has
    /// not earned the keep-alive wait, which is for clients that have been served.
    pub fn new(limits: ClientTimeouts) -> ClientClock {
        let now = Instant::now();
        ClientClock { limits, idle_since: now, head_started: Some(now), timer: None, armed_for: None }
    }

    /// A response went out: the connection is idle from now.
    pub fn idle_from_now(&mut self) {
        self.idle_since = Instant::now();
        self.head_started = None;
    }

    /// Part of a head has come: it must be complete within the header limit. Only the
    /// first call per head counts (for a connection's first head, the accept did).
    pub fn head_started(&mut self) {
        if self.head_started.is_none() {
            self.head_started = Some(Instant::now());
        }
    }

    /// Since when a head has been awaited under the header limit: the current head's
    /// first bytes, a new connection's accept, or else now.
    pub fn head_since(&self) -> Instant {
        self.head_started.unwrap_or_else(Instant::now)
    }

    fn deadline(&self) -> (Instant, Expired) {
        match self.head_started {
            Some(started) => (started + self.limits.header, Expired::Header),
            None => (self.idle_since + self.limits.keepalive, Expired::Idle),
        }
    }

    /// Ready once the wait in progress has gone past its limit.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        loop {
            let (deadline, which) = self.deadline();
            let timer = self.timer.get_or_insert_with(|| Box::pin(sleep_until(deadline)));
            if timer.deadline() > deadline {
                timer.as_mut().reset(deadline);
                self.armed_for = None;
            }
            if self.armed_for.as_ref().is_some_and(|w| w.will_wake(cx.waker())) && !timer.is_elapsed() {
                return Poll::Pending;
            }
            // A task out of its cooperative budget gets Pending from the timer before the
            // timer has taken its waker: then the timer is not armed, and the next poll
            // (the runtime wakes the task at once) must poll it again.
            let budget_left = tokio::task::coop::has_budget_remaining();
            if timer.as_mut().poll(cx).is_pending() {
                self.armed_for = budget_left.then(|| cx.waker().clone());
                return Poll::Pending;
            }
            self.armed_for = None;
            if Instant::now() >= deadline {
                return Poll::Ready(which);
            }
            // Set for an earlier wait that has since ended: on to this one's deadline.
            timer.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    const LIMITS: ClientTimeouts = ClientTimeouts { keepalive: Duration::from_secs(75), header: Duration::from_secs(10), send: Duration::from_secs(60) };

    async fn expiry(clock: &mut ClientClock) -> (Expired, Instant) {
        let which = poll_fn(|cx| clock.poll_expired(cx)).await;
        (which, Instant::now())
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_after_the_keepalive_limit_counted_from_its_last_response() {
        let start = Instant::now();
        let mut clock = ClientClock::new(LIMITS);
        // The timer is set while the first head is awaited, then the connection serves a
        // request 5 s in.
        let waiting = tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| clock.poll_expired(cx))).await;
        assert!(waiting.is_err());
        clock.idle_from_now();
        assert_eq!(expiry(&mut clock).await, (Expired::Idle, start + Duration::from_secs(5 + 75)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_gets_the_header_limit_for_its_first_head_counted_from_the_accept() {
        let start = Instant::now();
        let mut clock = ClientClock::new(LIMITS);
        tokio::time::advance(Duration::from_secs(4)).await;
        // Its first bytes, 4 s in, do not restart the count.
        clock.head_started();
        assert_eq!(expiry(&mut clock).await, (Expired::Header, start + LIMITS.header));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_first_polled_out_of_budget_still_expires() {
        let mut clock = ClientClock::new(LIMITS);
        clock.idle_from_now();
        let start = Instant::now();
        let mut first = true;
        let which = poll_fn(|cx| {
            if first {
                first = false;
                // Spend the task's budget, as a connection that has done much in one poll.
                while let Poll::Ready(progress) = tokio::task::coop::poll_proceed(cx) {
                    progress.made_progress();
                }
            }
            clock.poll_expired(cx)
        });
        let which = tokio::time::timeout(LIMITS.keepalive * 2, which).await.expect("the idle limit fires");
        assert_eq!((which, Instant::now()), (Expired::Idle, start + LIMITS.keepalive));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_has_started_must_end_within_the_header_limit() {
        let mut clock = ClientClock::new(LIMITS);
        clock.idle_from_now();
        let start = Instant::now();
        let waiting = tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| clock.poll_expired(cx))).await;
        assert!(waiting.is_err());
        clock.head_started();
        tokio::time::advance(Duration::from_secs(3)).await;
        // A later part of the same head does not extend it.
        clock.head_started();
        assert_eq!(expiry(&mut clock).await, (Expired::Header, start + Duration::from_secs(5 + 10)));
        clock.idle_from_now();
        let idle_from = Instant::now();
        assert_eq!(expiry(&mut clock).await, (Expired::Idle, idle_from + LIMITS.keepalive));
    }
}
