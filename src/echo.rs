//! `gatehouse echo`: a small upstream for demos, tests and benchmarks, in the manner of
//! httpbin: `/anything` echoes the request as JSON, `/status/{code}`, `/delay/{ms}`,
//! `/bytes/{n}`; every other path answers like `/anything`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::http::{full, json_response, Body, Handler, RequestBody};

/// Request bodies echoed back are capped: this is a test upstream, not a sink.
const MAX_ECHO_BODY: usize = 4 << 20;
const MAX_DELAY_MS: u64 = 60_000;
const MAX_BYTES: usize = 10 << 20;

pub struct Echo {
    /// Reported as `"server"` in every echo, so tests can tell which upstream answered.
    pub name: String,
}

impl Handler for Echo {
    type Reply = Response<Body>;

    fn handle(&self, req: Request<RequestBody>, peer: SocketAddr) -> impl Future<Output = Response<Body>> + Send + use<> {
        let name = self.name.clone();
        async move { answer(req, peer, &name).await }
    }
}

impl Echo {
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(Echo { name: name.into() })
    }
}

async fn answer(req: Request<RequestBody>, peer: SocketAddr, name: &str) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    match (parts.next(), parts.next()) {
        (Some("status"), Some(code)) => match code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok()) {
            Some(status) => json_response(status, &json!({ "status": status.as_u16(), "server": name })),
            None => json_response(StatusCode::BAD_REQUEST, &json!({ "message": format!("invalid status code {code:?}") })),
        },
        (Some("delay"), Some(ms)) => match ms.parse::<u64>() {
            Ok(ms) if ms <= MAX_DELAY_MS => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                echo(req, peer, name).await
            }
            _ => json_response(StatusCode::BAD_REQUEST, &json!({ "message": format!("delay must be 0..={MAX_DELAY_MS} ms") })),
        },
        (Some("bytes"), Some(n)) => match n.parse::<usize>() {
            Ok(n) if n <= MAX_BYTES => {
                let mut resp = Response::new(full(Bytes::from(vec![b'x'; n])));
                resp.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/octet-stream".parse().expect("static"));
                resp
            }
            _ => json_response(StatusCode::BAD_REQUEST, &json!({ "message": format!("bytes must be 0..={MAX_BYTES}") })),
        },
        _ => echo(req, peer, name).await,
    }
}

async fn echo(req: Request<RequestBody>, peer: SocketAddr, name: &str) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_ECHO_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return json_response(StatusCode::PAYLOAD_TOO_LARGE, &json!({ "message": "request body too large" })),
    };
    let mut headers = Map::new();
    for (k, v) in &parts.headers {
        let v = Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned());
        match headers.get_mut(k.as_str()) {
            Some(Value::Array(list)) => list.push(v),
            Some(prev) => *prev = Value::Array(vec![prev.take(), v]),
            None => {
                headers.insert(k.as_str().to_owned(), v);
            }
        }
    }
    let args: Map<String, Value> = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "server": name,
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "args": args,
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
            "remote_addr": peer.to_string(),
        }),
    )
}
