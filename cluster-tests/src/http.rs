//! A bare HTTP client for tests: one request, status and body, with a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub async fn request(method: Method, url: &str, content_type: Option<&str>, body: Vec<u8>) -> Result<Reply, String> {
    let headers: Vec<(&str, &str)> = content_type.map(|ct| vec![("content-type", ct)]).unwrap_or_default();
    request_with_headers(method, url, &headers, body).await
}

pub async fn request_with_headers(method: Method, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<Reply, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("{url}: no answer in 10 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply { status: parts.status, headers: parts.headers, body })
}

pub async fn get(url: &str) -> Result<Reply, String> {
    request(Method::GET, url, None, Vec::new()).await
}

pub async fn post_json(url: &str, body: &serde_json::Value) -> Result<Reply, String> {
    request(Method::POST, url, Some("application/json"), serde_json::to_vec(body).expect("json")).await
}

/// POSTs a form to the Admin API, as `curl --data` does, and requires success.
pub async fn admin_form(url: &str, body: &str) -> Reply {
    let r = request(Method::POST, url, Some("application/x-www-form-urlencoded"), body.as_bytes().to_vec()).await.unwrap();
    assert!(r.status.is_success(), "{url} {body}: {} {}", r.status, String::from_utf8_lossy(&r.body));
    r
}

/// Everything `addr` answers a request written as raw bytes that asks to close: for what
/// a client library would hide (framing, hop-by-hop fields) or not send.
pub async fn raw_exchange(addr: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    String::from_utf8(answer).unwrap()
}
