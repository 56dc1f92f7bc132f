//! Sending a request to one upstream target: pooled HTTP/1.1 clients per thread and
//! connect timeout, the service's timeouts, and upstream failures classified into `ProxyError`
//! (connection refused may be retried elsewhere; anything after sending may not).

use std::collections::HashMap;
use std::cell::RefCell;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::errors::ProxyError;
use crate::http::Body;

/// Per-service timeouts, in Kong's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to the response headers, and between two chunks of
    /// the response body.
    pub read: Duration,
    /// Between two chunks of the request body sent upstream.
    pub write: Duration,
}

type HttpClient = Client<HttpConnector, Body>;

thread_local! {
    /// Upstream connection pools of this thread, one per distinct connect timeout (the
    /// connector holds it). Per thread because a pooled connection is driven by the
    /// runtime that opened it: a proxy worker reusing another worker's connection would
    /// hand every request across threads.
    static CLIENTS: RefCell<HashMap<Duration, HttpClient>> = RefCell::default();
}

fn client(connect: Duration) -> HttpClient {
    CLIENTS.with_borrow_mut(|clients| {
        clients
            .entry(connect)
            .or_insert_with(|| {
                let mut connector = HttpConnector::new();
                connector.set_connect_timeout(Some(connect));
                connector.set_nodelay(true);
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(60))
                    .pool_max_idle_per_host(256)
                    .build(connector)
            })
            .clone()
    })
}

/// Sends `req` (whose URI names the target) over this thread's pools and waits for the
/// response headers.
pub async fn send(req: Request<Body>, timeouts: Timeouts) -> Result<Response<Incoming>, ProxyError> {
    let client = client(timeouts.connect);
    // The connector enforces the connect timeout itself. The pooled client does not say
    // when a fresh connection is ready, so the wait for headers is bounded by the read
    // timeout plus at most as much again for connecting: a small read timeout then
    // holds even with Kong's 60 s default connect timeout.
    let budget = timeouts.read + timeouts.connect.min(timeouts.read);
    match tokio::time::timeout(budget, client.request(req)).await {
        Err(_) => Err(ProxyError::UpstreamTimeout),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => Err(classify(&e)),
    }
}

fn classify(e: &hyper_util::client::legacy::Error) -> ProxyError {
    let chain = crate::http::error_chain(e);
    if e.is_connect() {
        if chain.contains("dns error") {
            return ProxyError::NameResolution;
        }
        if chain.contains("timed out") || chain.contains("timeout") {
            return ProxyError::UpstreamTimeout;
        }
        // Nothing reached the upstream: another target may take the request.
        return ProxyError::UpstreamBroken { retryable: true, detail: chain };
    }
    ProxyError::UpstreamBroken { retryable: false, detail: chain }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::empty;

    fn get(uri: &str) -> Request<Body> {
        Request::builder().uri(uri).body(empty()).unwrap()
    }

    const QUICK: Timeouts = Timeouts { connect: Duration::from_millis(500), read: Duration::from_millis(500), write: Duration::from_millis(500) };

    #[tokio::test]
    async fn a_refused_connection_may_be_retried_elsewhere() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = send(get(&format!("http://127.0.0.1:{port}/")), QUICK).await.unwrap_err();
        assert!(err.retryable(), "{err:?}");
        assert_eq!(err.status().as_u16(), 502);
    }

    #[tokio::test]
    async fn an_upstream_that_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accept and hold the connection without answering.
        let hold = tokio::spawn(async move {
            let (_s, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await
        });
        let err = send(get(&format!("http://{addr}/")), QUICK).await.unwrap_err();
        assert_eq!(err, ProxyError::UpstreamTimeout);
        assert!(!err.retryable());
        hold.abort();
    }

    #[tokio::test]
    async fn an_unresolvable_host_is_a_name_resolution_failure() {
        let err = send(get("http://no-such-host.invalid/"), QUICK).await.unwrap_err();
        assert_eq!(err, ProxyError::NameResolution);
    }
}
