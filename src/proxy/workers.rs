//! The proxy's worker threads: one single-threaded runtime per core, all accepting from
//! the one listening socket, as nginx's workers do. A connection, the requests on it and
//! the upstream connections they use stay on the thread that accepted it, so the hot path
//! never hands work between threads; on the shared multi-threaded runtime, those
//! cross-core wakeups cost about as much as the proxying itself.

use std::io;
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::http::{serve, ClientTimeouts, Handler};
use crate::shutdown::Shutdown;

/// How many workers to run: one per core this process may use (its CPU affinity counts).
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Serves `listener` on `count` worker threads until `shutdown`, each draining its own
/// connections for at most `drain`; resolves once every worker has stopped.
pub async fn serve_on_workers<H: Handler>(listener: TcpListener, handler: Arc<H>, count: usize, shutdown: Shutdown, drain: Duration, timeouts: ClientTimeouts) -> io::Result<()> {
    let listener = listener.into_std()?;
    let mut done = Vec::new();
    for n in 0..count.max(1) {
        // Every worker polls a duplicate of the same socket: one bind, so a port clash is
        // still caught at startup, and an idle worker is the one likely to accept first.
        let socket: StdListener = listener.try_clone()?;
        let (handler, shutdown) = (handler.clone(), shutdown.clone());
        let (finished, on_finished) = oneshot::channel::<()>();
        std::thread::Builder::new().name(format!("proxy-worker-{n}")).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => return tracing::error!(worker = n, error = %e, "proxy worker could not start its runtime"),
            };
            runtime.block_on(async move {
                tokio::spawn(tick(shutdown.clone()));
                match TcpListener::from_std(socket) {
                    Ok(listener) => serve(listener, handler, shutdown, drain, timeouts, "proxy").await,
                    Err(e) => tracing::error!(worker = n, error = %e, "proxy worker could not register the listener"),
                }
            });
            // Connections still open after the drain are closed with the runtime.
            drop(runtime);
            let _ = finished.send(());
        })?;
        done.push(on_finished);
    }
    drop(listener);
    for worker in done {
        // An Err means the worker thread ended without saying so (it panicked): nothing
        // is left to wait for either way.
        let _ = worker.await;
    }
    Ok(())
}

/// How often a worker ticks: below any read timeout a service is likely to have, so a
/// request's timer never lands before the tick's.
const TICK: Duration = Duration::from_millis(500);

/// A worker's ticker, until shutdown: each tick sweeps the thread's idle upstream
/// connections (`pool::sweep`), and the tick's own timer stays armed, which matters:
/// tokio's timer driver wakes itself (an eventfd write) whenever a timer is set earlier
/// than the earliest one it knew of when it last went to sleep, and "none at all" counts
/// as later than anything. With a fast upstream every request's timer is gone by then,
/// so each request's timeout cost a system call (strace: one eventfd write per proxied
/// request); a timer that is always there and always earlier stops that.
async fn tick(mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(TICK) => super::pool::sweep(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::http::{full, Body};
    use crate::shutdown::ShutdownTrigger;
    use crate::http::RequestBody;
    use hyper::{Request, Response};

    /// Answers with the name of the thread that served the request.
    struct ThreadName;

    impl Handler for ThreadName {
        type Reply = Response<Body>;

        fn handle(&self, _req: Request<RequestBody>, _peer: std::net::SocketAddr) -> impl std::future::Future<Output = Response<Body>> + Send + use<> {
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            async move { Response::new(full(name)) }
        }
    }

    async fn get(addr: std::net::SocketAddr) -> String {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let req = Request::builder().uri("/").header("host", "x").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
        let body = sender.send_request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_share_one_socket_and_stop_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let trigger = ShutdownTrigger::new();
        let serving = tokio::spawn(serve_on_workers(listener, Arc::new(ThreadName), 2, trigger.signal(), Duration::from_secs(1), ClientTimeouts::default()));
        // Many connections at once: each is served by a worker thread, never the caller's.
        let names: HashSet<String> = futures_util::future::join_all((0..40).map(|_| get(addr))).await.into_iter().collect();
        assert!(names.iter().all(|n| n.starts_with("proxy-worker-")), "{names:?}");
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(5), serving).await.expect("workers stop").unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the socket is closed once every worker stopped");
    }
}
