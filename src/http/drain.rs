//! Draining a listener's connections on shutdown: every connection is told to finish
//! its request in flight and close, and the listener waits until all have.
//!
//! hyper-util's `GracefulShutdown` does the same by polling a watch channel, which takes
//! a mutex, on every poll of every connection: a measurable share of a proxied request.
//! Here a poll reads one atomic flag, and the mutex is taken only when a connection
//! starts, ends, or is first polled from a new task.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use tokio::sync::Notify;

/// A connection that can be told to answer the request in flight, if any, and close.
pub trait Graceful: Future {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<C: GracefulConnection> Graceful for C {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        GracefulConnection::graceful_shutdown(self);
    }
}

#[derive(Default)]
struct Shared {
    draining: AtomicBool,
    /// Connections not finished yet, with the waker of the task polling each (none
    /// until first polled).
    live: Mutex<Live>,
    all_done: Notify,
}

#[derive(Default)]
struct Live {
    next_id: u64,
    wakers: HashMap<u64, Option<Waker>>,
}

impl Shared {
    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connections of one listener.
#[derive(Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

impl Drain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `conn` until it ends, or until a shutdown has let it finish its request.
    /// It counts as live from this call on, polled or not.
    pub fn watch<C: Graceful>(&self, conn: C) -> Watched<C> {
        let mut live = self.shared.live();
        let id = live.next_id;
        live.next_id += 1;
        live.wakers.insert(id, None);
        Watched { conn, shared: self.shared.clone(), id, waker: None, told: false }
    }

    /// Tells every connection to finish, then waits until all have ended.
    pub async fn shutdown(self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        for waker in self.shared.live().wakers.values().flatten() {
            waker.wake_by_ref();
        }
        loop {
            let done = self.shared.all_done.notified();
            tokio::pin!(done);
            // Registered before looking, so that the last connection ending in between
            // is not missed.
            done.as_mut().enable();
            if self.shared.live().wakers.is_empty() {
                return;
            }
            done.await;
        }
    }
}

pin_project! {
    /// A connection that notices a shutdown at its next poll.
    pub struct Watched<C> {
        #[pin]
        conn: C,
        shared: Arc<Shared>,
        id: u64,
        // The waker last registered in `Shared::live`, to tell when the task changed.
        waker: Option<Waker>,
        told: bool,
    }

    impl<C> PinnedDrop for Watched<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut live = this.shared.live();
            live.wakers.remove(this.id);
            if live.wakers.is_empty() && this.shared.draining.load(Ordering::SeqCst) {
                this.shared.all_done.notify_waiters();
            }
        }
    }
}

impl<C: Graceful> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *this.waker = Some(cx.waker().clone());
            this.shared.live().wakers.insert(*this.id, Some(cx.waker().clone()));
        }
        // After registering the waker: a shutdown that began before it either shows here
        // or wakes the task again.
        if !*this.told && this.shared.draining.load(Ordering::SeqCst) {
            *this.told = true;
            this.conn.as_mut().graceful_shutdown();
        }
        this.conn.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;

    use super::*;
    use crate::http::{full, Body};

    /// A connection served under `drain`, whose first request reports on `entered`
    /// and waits for `release`; returns the client's end.
    async fn held_connection(drain: &Drain, entered: oneshot::Sender<()>, release: oneshot::Receiver<()>) -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (accepted, client) = tokio::join!(listener.accept(), TcpStream::connect(listener.local_addr().unwrap()));
        let hold = Mutex::new(Some((entered, release)));
        let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
            let hold = hold.lock().unwrap().take();
            async move {
                if let Some((entered, release)) = hold {
                    let _ = entered.send(());
                    let _ = release.await;
                }
                Ok::<_, std::convert::Infallible>(Response::new(full("done")))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(accepted.unwrap().0), service);
        tokio::spawn(drain.watch(conn));
        client.unwrap()
    }

    #[tokio::test]
    async fn shutdown_lets_the_request_in_flight_finish_then_closes_the_connection() {
        let drain = Drain::new();
        let (entered, in_handler) = oneshot::channel();
        let (release, held) = oneshot::channel();
        let stream = held_connection(&drain, entered, held).await;
        let (mut sender, client_conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await.unwrap();
        let client_conn = tokio::spawn(client_conn);
        let request = tokio::spawn(sender.send_request(Request::get("/").body(crate::http::empty()).unwrap()));
        in_handler.await.unwrap();

        let shutdown = tokio::spawn(drain.shutdown());
        // The request is held: the drain must still be waiting on it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!shutdown.is_finished(), "shutdown returned with a request in flight");

        release.send(()).unwrap();
        let resp = request.await.unwrap().unwrap();
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "done");
        tokio::time::timeout(Duration::from_secs(5), shutdown).await.expect("drained once the request was answered").unwrap();
        // The server closed the connection after its answer.
        tokio::time::timeout(Duration::from_secs(5), client_conn).await.expect("connection closed").unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_with_no_connections_returns_at_once() {
        tokio::time::timeout(Duration::from_secs(1), Drain::new().shutdown()).await.unwrap();
    }
}
