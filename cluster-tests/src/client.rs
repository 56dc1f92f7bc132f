//! The chaos tests' HTTP client: bound to an address no node has (so a partition between
//! node addresses never cuts the test's own traffic), one fresh connection per request
//! (a pooled connection to a node killed since would fail a request that did nothing
//! wrong), and failures classified by whether the request may have reached the server.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::rt::TokioExecutor;

pub use crate::http::Reply;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connection was refused or could not be made: the server saw nothing.
    Connect(String),
    /// No complete answer in time, or the connection dropped mid-request: the server may
    /// have acted on it.
    Unknown(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Unknown(e) => write!(f, "no answer: {e}"),
        }
    }
}

#[derive(Clone)]
pub struct Client {
    hyper: Hyper<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Client {
    /// A client whose connections leave from `local` (e.g. 127.0.40.200).
    pub fn bound(local: &str, timeout: Duration) -> Client {
        let ip: IpAddr = local.parse().unwrap_or_else(|e| panic!("client address {local}: {e}"));
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(ip));
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        let hyper = Hyper::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
        Client { hyper, timeout }
    }

    pub async fn request(&self, method: Method, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<Reply, Failure> {
        let mut req = Request::builder().method(method).uri(url).header("connection", "close");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| Failure::Connect(format!("bad request {url}: {e}")))?;
        let exchange = async {
            let resp = self.hyper.request(req).await.map_err(|e| {
                if e.is_connect() {
                    Failure::Connect(format!("{url}: {e}"))
                } else {
                    Failure::Unknown(format!("{url}: {e}"))
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| Failure::Unknown(format!("{url}: body: {e}")))?.to_bytes();
            Ok(Reply { status: parts.status, headers: parts.headers, body })
        };
        tokio::time::timeout(self.timeout, exchange).await.unwrap_or_else(|_| Err(Failure::Unknown(format!("{url}: no answer in {:?}", self.timeout))))
    }

    pub async fn get(&self, url: &str) -> Result<Reply, Failure> {
        self.request(Method::GET, url, &[], Vec::new()).await
    }

    /// A form body, as `curl --data` sends it.
    pub async fn form(&self, method: Method, url: &str, body: &str) -> Result<Reply, Failure> {
        self.request(method, url, &[("content-type", "application/x-www-form-urlencoded")], body.as_bytes().to_vec()).await
    }
}

/// The address a test client binds to for the cluster on `prefix`: .200, never a node's.
pub fn client_addr(prefix: &str) -> String {
    format!("{prefix}.200")
}

