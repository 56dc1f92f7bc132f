//! The Admin API's front door: bearer-token check, body size limit, and dispatch of
//! `(method, path)` to the endpoint modules. Errors use Kong's JSON shape.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{AUTHORIZATION, ORIGIN};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use super::{cluster_api, config_api, cors, entity_routes, methods, schemas, tags};
use crate::cluster::PeerView;
use crate::http::{json_response, Body, Handler, RequestBody};

/// Admin request bodies above this get 413: a declarative file of 10,000 routes fits.
pub const MAX_ADMIN_BODY: usize = 16 << 20;

/// What every endpoint may use.
pub struct AdminContext {
    pub store: gatehouse_raft::Store,
    pub applied: crate::applied::Applied,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub proxy: Arc<crate::proxy::server::Proxy>,
    pub peers: Arc<dyn PeerView>,
    pub cluster_name: String,
    pub admin_token: Option<String>,
    /// The origins browsers may call from (`--admin-gui-origin`); empty, no CORS fields.
    pub gui_origins: Vec<String>,
    /// Asks the node to leave the cluster and exit; the reply says how it went.
    pub leave: mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

/// A parsed request as endpoints see it: method, path segments, query, whole body.
pub struct AdminRequest {
    pub method: Method,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl AdminRequest {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

pub struct AdminApi {
    pub ctx: Arc<AdminContext>,
}

impl Handler for AdminApi {
    type Reply = Response<Body>;

    fn handle(&self, req: Request<RequestBody>, _peer: SocketAddr) -> impl Future<Output = Response<Body>> + Send + use<> {
        handle(self.ctx.clone(), req)
    }
}

pub fn message(status: StatusCode, text: &str) -> Response<Body> {
    json_response(status, &json!({ "message": text }))
}

fn authorized(ctx: &AdminContext, req: &Request<RequestBody>) -> bool {
    let Some(token) = &ctx.admin_token else { return true };
    // The scheme's name is case-insensitive (RFC 9110, 11.1).
    let bearer = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start())
    });
    // Kong's own header for admin tokens, so Kong tooling works unchanged.
    let kong = req.headers().get("kong-admin-token").and_then(|v| v.to_str().ok());
    let given = bearer.or(kong).unwrap_or("");
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(ctx: Arc<AdminContext>, req: Request<RequestBody>) -> Response<Body> {
    let origin = req.headers().get(ORIGIN).cloned();
    let mut resp = answer(&ctx, req).await;
    if !ctx.gui_origins.is_empty() {
        cors::allow(&ctx.gui_origins, origin.as_ref(), resp.headers_mut());
    }
    resp
}

async fn answer(ctx: &AdminContext, req: Request<RequestBody>) -> Response<Body> {
    // Health probes (load balancers, Kubernetes readiness) cannot carry a token; /status
    // tells only whether the node serves and what it applied.
    let health_probe = matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().path().trim_end_matches('/') == "/status";
    // A browser's preflight carries no credentials, and the answer is the same for all.
    if req.method() == Method::OPTIONS {
        let segments: Vec<String> = path_segments(req.uri().path());
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        return match methods::allowed(&segs) {
            Some(list) => methods::options(list, req.headers()),
            None => message(StatusCode::NOT_FOUND, "Not found"),
        };
    }
    if !health_probe && !authorized(ctx, &req) {
        let mut resp = message(StatusCode::UNAUTHORIZED, "Unauthorized");
        resp.headers_mut().insert("www-authenticate", "Bearer".parse().expect("static"));
        return resp;
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_ADMIN_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return message(StatusCode::PAYLOAD_TOO_LARGE, &format!("request body exceeds {MAX_ADMIN_BODY} bytes"));
        }
        Err(_) => return message(StatusCode::BAD_REQUEST, "could not read the request body"),
    };
    let segments = path_segments(parts.uri.path());
    let query = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let content_type = parts.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // HEAD is GET's answer without its body, which the server leaves out (as Kong does).
    let method = if parts.method == Method::HEAD { Method::GET } else { parts.method };
    let req = AdminRequest { method, segments, query, content_type, body };
    route(ctx, req).await
}

fn path_segments(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect()
}

fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_owned())
}

async fn route(ctx: &AdminContext, req: AdminRequest) -> Response<Body> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    // As Kong's router: a method the path does not take is 405 before anything is looked
    // up (a missing parent would otherwise make it 404).
    if methods::allowed(&segs).is_some_and(|list| !methods::lists(list, &req.method)) {
        return message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    }
    match (&req.method, segs.as_slice()) {
        (&Method::GET, []) => cluster_api::root(ctx),
        (&Method::GET, ["status"]) => cluster_api::status(ctx),
        (&Method::GET, ["cluster"]) => cluster_api::cluster(ctx),
        (&Method::GET, ["cluster", "members"]) => cluster_api::members(ctx),
        (&Method::POST, ["cluster", "leave"]) => cluster_api::leave(ctx).await,
        (&Method::DELETE, ["cluster", "members", id]) => cluster_api::remove_member(ctx, id).await,
        (&Method::GET, ["config"]) => config_api::export(ctx, &req),
        (&Method::GET, ["metrics"]) => cluster_api::metrics(ctx),
        (&Method::POST, ["config"]) => config_api::apply(ctx, &req).await,
        (&Method::GET, ["tags"]) => tags::list(&ctx.applied.get(), None, &req),
        (&Method::GET, ["tags", tag]) => tags::list(&ctx.applied.get(), Some(tag), &req),
        (&Method::POST, ["schemas", table, "validate"]) => schemas::validate(table, &req),
        (&Method::GET, ["schemas", "plugins", name]) => schemas::plugin(name),
        (&Method::GET, ["schemas", table]) => schemas::entity(table),
        (_, [table, ..]) if entity_routes::serves(table) => entity_routes::dispatch(ctx, &req, &segs).await,
        _ => message(StatusCode::NOT_FOUND, "Not found"),
    }
}
