//! A minimal Admin API client for the CLI: one request, a JSON answer, clear errors.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the Admin API at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("{addr} answered {status}: {body}")]
    Status { addr: String, status: StatusCode, body: String },
    #[error("{addr} answered with something that is not JSON ({source}): {body}")]
    NotJson { addr: String, source: serde_json::Error, body: String },
}

pub struct AdminClient {
    pub addr: String,
    pub token: Option<String>,
    pub timeout: Duration,
}

impl AdminClient {
    pub async fn request(&self, method: Method, path: &str, body: Option<(String, Vec<u8>)>) -> Result<(StatusCode, Bytes), ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable { addr: self.addr.clone(), reason };
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut builder = Request::builder().method(method).uri(format!("http://{}{}", self.addr, path));
        if let Some(token) = &self.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let req = match body {
            Some((content_type, bytes)) => builder.header("content-type", content_type).body(Full::new(Bytes::from(bytes))),
            None => builder.body(Full::new(Bytes::new())),
        }
        .map_err(|e| unreachable(e.to_string()))?;
        let resp = tokio::time::timeout(self.timeout, client.request(req))
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| unreachable(crate::http::error_chain(&e)))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| unreachable(e.to_string()))?.to_bytes();
        Ok((status, bytes))
    }

    /// A request whose success answer is JSON; any other status is an error with the body.
    pub async fn json(&self, method: Method, path: &str, body: Option<(String, Vec<u8>)>) -> Result<serde_json::Value, ClientError> {
        let (status, bytes) = self.request(method, path, body).await?;
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        if !status.is_success() {
            return Err(ClientError::Status { addr: self.addr.clone(), status, body: text });
        }
        serde_json::from_slice(&bytes).map_err(|source| ClientError::NotJson { addr: self.addr.clone(), source, body: text })
    }
}

