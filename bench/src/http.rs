//! Keep-alive HTTP/1.1 for the driver: one pooled hyper client shared by all tasks, and a
//! request helper with a deadline that reads the whole body (so the connection is reused).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

pub fn client() -> Client {
    let mut connector = HttpConnector::new();
    // Small requests on loopback: Nagle would add delayed-ACK stalls to every write.
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// One request; Err is a transport error or the deadline, Ok the status and body.
pub async fn send(
    client: &Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).map_err(|e| format!("bad request for {url}: {e}"))?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| format!("{url}: body: {e}"))?;
        Ok((status, body.to_bytes()))
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| format!("{url}: no answer within {timeout:?}"))?
}

pub async fn get(client: &Client, url: &str, timeout: Duration) -> Result<u16, String> {
    send(client, Method::GET, url, &[], Bytes::new(), timeout).await.map(|(s, _)| s)
}
