//! Sending a request to one upstream address over this thread's pooled HTTP/1.1
//! connections (`pool`, `h1`): connecting within the connect timeout, the service's
//! timeouts, and upstream failures classified into `ProxyError` (nothing sent: another
//! target may take the request; anything after sending may not be retried).

use std::time::{Duration, Instant};

use hyper::{Method, Response};
use tokio::net::TcpStream;

use super::errors::ProxyError;
use super::h1::{self, ExchangeError, HeadFields, UpstreamBody, UpstreamConn, UpstreamStream};
use super::tls::{self, TlsTarget};
use super::pool;
use crate::http::{empty, Body};

/// Per-service timeouts, in Kong's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// From the end of the request to the response headers, and between two chunks of
    /// the response body.
    pub read: Duration,
    /// For each write to the upstream, and between two chunks of the client's body.
    pub write: Duration,
}

/// A pooled connection idle for longer than this may be closed by the upstream just as
/// a request goes out on it (many servers drop idle keep-alive connections after a few
/// seconds): an idempotent request without a body sent on one is resent on a fresh
/// connection if no response came. Connections in steady use are idle for far less.
#[cfg(not(test))]
const REPLAY_AFTER_IDLE: Duration = Duration::from_secs(1);
#[cfg(test)]
const REPLAY_AFTER_IDLE: Duration = Duration::ZERO;

/// Where a request goes: a `host:port`, and how the connection is secured.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub addr: &'a str,
    pub tls: Option<&'a TlsTarget>,
}

/// Sends a request to `to` and waits for the response headers. `target`
/// goes on the request line (origin form); `fields` must carry Host and no hop-by-hop
/// fields. They are only read, so a caller can try another target with them. `now` is
/// the caller's reading of the clock, taken just before (see `h1::ExchangeTimeouts`).
pub async fn send(to: Destination<'_>, method: &Method, target: &str, fields: &dyn HeadFields, body: Body, timeouts: Timeouts, now: Instant) -> Result<Response<UpstreamBody>, ProxyError> {
    use hyper::body::Body as _;
    let Destination { addr, tls } = to;
    if !h1::valid_target(target) {
        return Err(ProxyError::Internal(format!("invalid upstream request target {target:?}")));
    }
    let replayable = idempotent(method) && body.is_end_stream();
    let mut exchange_timeouts = h1::ExchangeTimeouts { read: timeouts.read, write: timeouts.write, started: now };
    let mut body = Some(body);
    // TLS connections pool apart from plain ones to the same address, and by name; one
    // named by the client is neither taken from the pool nor given back.
    let pooled = tls.is_none_or(|t| t.pooled);
    let tls_key = tls.filter(|_| pooled).map(|t| t.pool_key(addr));
    let (key, idle) = if pooled { pool::checkout(tls_key.as_deref().unwrap_or(addr), now) } else { (std::sync::Arc::from(addr), None) };
    if let Some((conn, idle_for)) = idle {
        let first = body.take().unwrap_or_else(empty);
        match h1::exchange(conn, method, target, fields, first, exchange_timeouts).await {
            Ok(resp) => return Ok(resp),
            // The upstream closed the long-idle connection as the request went out: safe
            // to send again on a new one, the request being idempotent and bodiless.
            Err(ExchangeError::NoResponse(e)) if replayable && idle_for >= REPLAY_AFTER_IDLE => {
                tracing::debug!(addr, error = %e, "idle upstream connection failed; resending on a new one");
            }
            Err(e) => return Err(sent_failure(&e)),
        }
    }
    // Boxed: connecting is rare and its future is large; inline, it would be copied
    // with every request's future.
    let mut conn = Box::pin(connect(addr, tls, key, timeouts.connect)).await?;
    if !pooled {
        conn = conn.unpooled();
    }
    exchange_timeouts.started = Instant::now();
    h1::exchange(conn, method, target, fields, body.unwrap_or_else(empty), exchange_timeouts).await.map_err(|e| sent_failure(&e))
}

/// RFC 9110 §9.2.2.
fn idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

/// A new connection to `addr`, with its TLS handshake if `tls`. The connect timeout
/// covers the handshake, as nginx's proxy_connect_timeout does.
async fn connect(addr: &str, tls: Option<&TlsTarget>, key: std::sync::Arc<str>, timeout: Duration) -> Result<UpstreamConn, ProxyError> {
    let connecting = async {
        // An IP address resolves at once; a name goes through the system resolver.
        let addrs = tokio::net::lookup_host(addr).await.map_err(|e| {
            tracing::debug!(addr, error = %e, "upstream name did not resolve");
            ProxyError::NameResolution
        })?;
        let mut last = None;
        for socket_addr in addrs {
            match TcpStream::connect(socket_addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => ProxyError::UpstreamBroken { retryable: true, detail: format!("connecting to {addr}: {e}") },
            None => ProxyError::NameResolution,
        })
    };
    let securing = async {
        let stream = connecting.await?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = tls else { return Ok(UpstreamStream::from(stream)) };
        // Nothing of the request has gone out: another target may be tried.
        match tls::handshake(stream, tls).await {
            Ok(secured) => Ok(UpstreamStream::from(secured)),
            Err(e) => Err(ProxyError::UpstreamBroken { retryable: true, detail: format!("TLS handshake with {addr}: {e}") }),
        }
    };
    let stream = tokio::time::timeout(timeout, securing).await.map_err(|_| ProxyError::ConnectTimeout)??;
    Ok(UpstreamConn::new(stream, key))
}

/// A failure once the request may have reached the upstream: never retried elsewhere.
/// The client's body failing is the client's, and not held against the upstream.
fn sent_failure(e: &ExchangeError) -> ProxyError {
    match e {
        ExchangeError::TimedOut => ProxyError::UpstreamTimeout,
        ExchangeError::ClientBody(h1::BodyWriteError::Client(cause)) if cause.downcast_ref::<crate::http::timeout::Idle>().is_some() => ProxyError::ClientBodyTimeout,
        ExchangeError::ClientBody(h1::BodyWriteError::Client(_)) => ProxyError::ClientBodyBroken,
        _ => ProxyError::UpstreamBroken { retryable: false, detail: crate::http::error_chain(e) },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::BodyExt;
    use hyper::body::Body as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::http::empty;
    use hyper::HeaderMap;

    fn plain(addr: &str) -> Destination<'_> {
        Destination { addr, tls: None }
    }

    fn host(addr: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(hyper::header::HOST, addr.parse().unwrap());
        headers
    }

    async fn get(addr: &str) -> Result<Response<UpstreamBody>, ProxyError> {
        send(plain(addr), &Method::GET, "/", &host(addr), empty(), QUICK, Instant::now()).await
    }

    const QUICK: Timeouts = Timeouts { connect: Duration::from_millis(500), read: Duration::from_millis(500), write: Duration::from_millis(500) };

    #[tokio::test]
    async fn a_refused_connection_may_be_retried_elsewhere() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let err = get(&addr).await.unwrap_err();
        assert!(err.retryable(), "{err:?}");
        assert_eq!(err.status().as_u16(), 502);
    }

    /// An upstream that accepts one connection and holds it without answering; abort the
    /// handle to close it.
    async fn silent_upstream() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hold = tokio::spawn(async move {
            let (_s, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await
        });
        (addr, hold)
    }

    #[tokio::test]
    async fn a_tls_handshake_that_never_ends_is_a_connect_timeout_another_target_may_take() {
        let (addr, hold) = silent_upstream().await;
        let tls = crate::proxy::tls::TlsTarget::for_host("upstream.test", false);
        let err = send(Destination { addr: &addr, tls: Some(&tls) }, &Method::GET, "/", &host(&addr), empty(), QUICK, Instant::now()).await.unwrap_err();
        assert_eq!(err, ProxyError::ConnectTimeout);
        assert!(err.retryable());
        hold.abort();
    }

    #[tokio::test]
    async fn an_upstream_that_never_answers_times_out() {
        let (addr, hold) = silent_upstream().await;
        let err = get(&addr).await.unwrap_err();
        assert_eq!(err, ProxyError::UpstreamTimeout);
        assert!(!err.retryable());
        hold.abort();
    }

    #[tokio::test]
    async fn an_unresolvable_host_is_a_name_resolution_failure() {
        let err = send(plain("no-such-host.invalid:80"), &Method::GET, "/", &host("no-such-host.invalid"), empty(), QUICK, Instant::now()).await.unwrap_err();
        assert_eq!(err, ProxyError::NameResolution);
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Upstream {
        KeepAlive,
        /// Closes each connection after one response, without saying so (as an upstream
        /// whose keep-alive timer fired would).
        CloseAfterOne,
        /// Reads a connection's second request, then closes without answering (its
        /// keep-alive timer fired just as the request arrived).
        DropSecond,
    }

    /// An upstream answering "ok"; counts the connections it accepted.
    async fn upstream(mode: Upstream) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for served in 0.. {
                        // Small GETs: one read holds one whole request.
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if served == 1 && mode == Upstream::DropSecond {
                            return;
                        }
                        if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.is_err() || mode == Upstream::CloseAfterOne {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn get_ok(addr: &str) {
        let resp = get(addr).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_response_was_read() {
        let (addr, accepted) = upstream(Upstream::KeepAlive).await;
        for _ in 0..5 {
            get_ok(&addr).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool::idle_count(&addr), 1);
    }

    #[tokio::test]
    async fn a_response_dropped_unread_does_not_return_its_connection() {
        let (addr, accepted) = upstream(Upstream::KeepAlive).await;
        let resp = get(&addr).await.unwrap();
        assert!(!resp.body().is_end_stream(), "nothing of the body was read");
        drop(resp);
        assert_eq!(pool::idle_count(&addr), 0);
        get_ok(&addr).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_replaced() {
        let (addr, accepted) = upstream(Upstream::CloseAfterOne).await;
        get_ok(&addr).await;
        // The worker's sweep closes it once the runtime has seen the upstream close it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            pool::sweep();
            if pool::idle_count(&addr) == 0 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the sweep never closed the connection the upstream closed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..3 {
            get_ok(&addr).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn an_idempotent_request_lost_on_a_closing_idle_connection_is_resent() {
        let (addr, accepted) = upstream(Upstream::DropSecond).await;
        get_ok(&addr).await;
        // Goes out on the pooled connection, which the upstream then closes unanswered.
        get_ok(&addr).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_client_body_that_stalls_is_the_clients_fault_not_the_upstreams() {
        // The upstream waits for the rest of the body, which never comes.
        let (addr, hold) = silent_upstream().await;
        let (_open, frames) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<bytes::Bytes>, crate::http::BoxError>>(1);
        let stalled = http_body_util::StreamBody::new(futures_util::stream::poll_fn({
            let mut frames = frames;
            move |cx| frames.poll_recv(cx)
        }));
        let body = crate::http::timeout::IdleTimeout::new(stalled, Duration::from_millis(50)).boxed();
        let err = send(plain(&addr), &Method::POST, "/", &host(&addr), body, QUICK, Instant::now()).await.unwrap_err();
        assert_eq!(err, ProxyError::ClientBodyTimeout);
        assert!(!err.upstream_fault());
        hold.abort();
    }

    #[tokio::test]
    async fn an_upload_longer_than_the_read_timeout_that_keeps_moving_succeeds() {
        // The upstream answers once the whole body is in.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (mut seen, mut buf) = (Vec::new(), [0u8; 1024]);
            while !seen.ends_with(b"0\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0);
                seen.extend_from_slice(&buf[..n]);
            }
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
        });
        // Five chunks 100 ms apart: 500 ms in all, against a 300 ms read timeout.
        let chunks = futures_util::stream::unfold(0, |sent| async move {
            (sent < 5).then_some(())?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok::<_, crate::http::BoxError>(hyper::body::Frame::data(bytes::Bytes::from_static(b"chunk"))), sent + 1))
        });
        let body = http_body_util::StreamBody::new(chunks).boxed();
        let timeouts = Timeouts { connect: Duration::from_millis(300), read: Duration::from_millis(300), write: Duration::from_millis(300) };
        let resp = send(plain(&addr), &Method::POST, "/", &host(&addr), body, timeouts, Instant::now()).await.unwrap();
        assert_eq!(resp.status(), 200);
    }

    #[tokio::test]
    async fn a_non_idempotent_request_lost_that_way_is_not_resent() {
        let (addr, accepted) = upstream(Upstream::DropSecond).await;
        get_ok(&addr).await;
        let err = send(plain(&addr), &Method::POST, "/", &host(&addr), empty(), QUICK, Instant::now()).await.unwrap_err();
        assert!(matches!(err, ProxyError::UpstreamBroken { retryable: false, .. }), "{err:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }
}
