//! An HTTP/1.1 + h2c accept loop with keep-alive that, on shutdown, stops accepting,
//! lets in-flight requests finish within a drain limit, and says if it ran out. Each
//! connection is served by `h1::Connection`, which gives hyper what it does not serve.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::drain::Drain;
use super::h1::{hyper_header_timeout, ClientTimeouts, Connection};
use super::{Reply, RequestBody};
use crate::shutdown::Shutdown;

/// Answers one request; `peer` is the client's address.
pub trait Handler: Send + Sync + 'static {
    /// A `Response<Body>`, or one with fields to add to its head (see `Reply`).
    type Reply: Reply;

    /// The answer owns what it needs (`use<Self>`: it borrows nothing), so a connection keeps it
    /// inline in its own state instead of a box per request.
    fn handle(&self, req: Request<RequestBody>, peer: SocketAddr) -> impl Future<Output = Self::Reply> + Send + use<Self>;
}

/// Serves `listener` until `shutdown` turns true, then drains for at most `drain`.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, mut shutdown: Shutdown, drain: Duration, timeouts: ClientTimeouts, name: &'static str) {
    let connections = Drain::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // For connections hyper serves from their start (HTTP/1.0, h2c, a first request with
    // a body). hyper's server has no idle limit for HTTP/2: `h1::hyper_idle` is that.
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(hyper_header_timeout(timeouts));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connections.watch(Connection::new(stream, peer, handler.clone(), builder.clone(), timeouts, name)));
    }
    drop(listener);
    tokio::select! {
        _ = connections.shutdown() => tracing::debug!(listener = name, "drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!(listener = name, ?drain, "drain limit reached; closing remaining connections"),
    }
}
