//! One proxied request, phase by phase. Each phase either moves the request on or ends
//! it with a response; nothing here waits on Raft except a rate-limit reservation when
//! a node has no token left (see `ratelimit::limiter`).
//!
//! 1. route: match the request against the current table (no route: 404);
//! 2. access: run the route's plugins (key-auth, rate-limiting) in priority order;
//! 3. balance + forward: pick a target, send, retry elsewhere only if nothing was sent;
//! 4. response filter: hop-by-hop headers out, the gateway's own fields (`GatewayFields`) beside;
//! 5. log: metrics.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::header::{HeaderValue, CONNECTION, HOST, LOCATION, UPGRADE};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Version};

use super::context::RequestContext;
use super::errors::{error_response, ProxyError};
use super::forward;
use super::h1::UpstreamBody;
use super::headers;
use super::health;
use super::target_dns;
use super::tls::TlsTarget;
use super::request_body;
use super::request_path;
use super::response_fields::GatewayFields;
use super::router::{split_port, RequestView, RouteMatch};
use super::server::Proxy;
use super::table::{ActivePlugin, ProxyTable, RouteEntry, ServiceEntry};
use super::upstream_headers::UpstreamHeaders;
use super::upstream_uri::{upstream_path, upstream_target};
use crate::http::timeout::IdleTimeout;
use crate::http::{empty, Body, RequestBody};
use crate::metrics::RequestLabels;
use crate::plugins::{key_auth, rate_limiting};
use crate::ratelimit::wall_clock::{self, unix_ms_at};

/// The host the client asked for, as sent (a port, if any, included): the Host field,
/// else the request target's authority.
fn raw_host(parts: &Parts) -> &str {
    parts.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| parts.uri.authority().map(|a| a.as_str())).unwrap_or("")
}

fn host_of(parts: &Parts) -> Cow<'_, str> {
    let host = strip_port(raw_host(parts));
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn strip_port(raw: &str) -> &str {
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match raw.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => raw,
    }
}

pub async fn handle(proxy: Arc<Proxy>, req: Request<RequestBody>, peer: SocketAddr) -> (Response<Body>, GatewayFields) {
    let mut ctx = RequestContext::new(peer);
    let table = proxy.table.load_full();
    let (mut parts, mut body) = req.into_parts();

    // 1. route
    if parts.method == Method::CONNECT {
        let resp = ProxyError::TunnelRefused.response(ctx.request_id(), &parts.headers);
        return gateway_response(&proxy, &mut ctx, None, resp);
    }
    let host = host_of(&parts);
    if ctx.normalize_path(&parts.uri).is_err() {
        let resp = ProxyError::MalformedPath.response(ctx.request_id(), &parts.headers);
        return gateway_response(&proxy, &mut ctx, None, resp);
    }
    let port = split_port(raw_host(&parts)).1.unwrap_or(proxy.port);
    let found = table.router.find(&RequestView { method: parts.method.as_str(), host: &host, port, path: ctx.path(&parts.uri), headers: &parts.headers });
    let Some(RouteMatch { route, matched_path }) = found else {
        let resp = ProxyError::NoRoute.response(ctx.request_id(), &parts.headers);
        return gateway_response(&proxy, &mut ctx, None, resp);
    };
    let route = &table.routes[route];
    ctx.route_id = Some(route.id);
    ctx.service_id = route.service.as_ref().map(|s| s.id);
    // Every request here came in the clear: the proxy has no TLS listener, and no
    // trusted proxy vouches for an X-Forwarded-Proto.
    if let Some(code) = route.https_only {
        let resp = https_required(code, &parts, ctx.request_id());
        return gateway_response(&proxy, &mut ctx, Some(route), resp);
    }

    // 2. access
    if route.buffering.wants(&body) {
        let idle = route.service.as_ref().map_or(request_body::DEFAULT_IDLE, |s| s.timeouts.write);
        body = match request_body::read(body, request_body::LIMIT, idle).await {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(error = %e, route = %route.label, "request body not read");
                let resp = match e {
                    request_body::ReadError::Idle(_) => ProxyError::ClientBodyTimeout,
                    request_body::ReadError::Client(_) => ProxyError::ClientBodyBroken,
                }
                .response(ctx.request_id(), &parts.headers);
                return gateway_response(&proxy, &mut ctx, Some(route), resp);
            }
        };
    }
    let held = match &mut body {
        RequestBody::Buffered(Some(whole)) => Some(whole),
        _ => None,
    };
    if let Err(resp) = access(&proxy, &table, route, &mut parts, held, &mut ctx).await {
        return gateway_response(&proxy, &mut ctx, Some(route), resp);
    }
    let Some(service) = route.service.clone() else {
        let resp = error_response(StatusCode::SERVICE_UNAVAILABLE, "no Service found with those values", ctx.request_id(), &parts.headers);
        return gateway_response(&proxy, &mut ctx, Some(route), resp);
    };

    // 3. balance + forward
    // One clock read per phase boundary: each is a measurable share of a proxied request.
    let upstream_started = Instant::now();
    let started = ctx.started_by(upstream_started);
    let proxy_latency = upstream_started - started;
    let path = upstream_path(service.path.as_deref(), ctx.path(&parts.uri), matched_path.as_deref(), route.strip_path);
    let target_path = upstream_target(&request_path::escape(&path), parts.uri.query());
    let escaped_prefix = matched_path.as_deref().filter(|_| route.strip_path).map(request_path::escape);
    let fields = UpstreamHeaders {
        client: &parts.headers,
        client_addr: peer,
        upstream_host: service.host_header.as_ref(),
        preserve_host: route.preserve_host,
        proxy_port: &proxy.listen_port,
        path: parts.uri.path(),
        // Escaped as the path upstream is: the match is of the decoded path.
        prefix: escaped_prefix.as_deref(),
        request_id: &ctx.request_id_header,
        consumer: ctx.consumer_fields.as_ref(),
    };
    // TLS names the host the upstream is sent: the client's when the route preserves it.
    let preserved_tls = match (&service.tls, route.preserve_host, parts.headers.get(HOST).and_then(|h| h.to_str().ok())) {
        (Some(tls), true, Some(client_host)) => TlsTarget::named(client_host, tls.verify).map(|named| TlsTarget { pooled: false, ..named }),
        _ => None,
    };
    let tls = preserved_tls.as_ref().or(service.tls.as_ref());
    let result = forward(&service, tls, &parts, &fields, body, &target_path, &ctx, upstream_started).await;
    let upstream_done = Instant::now();
    let upstream_latency = upstream_done - upstream_started;

    // 4. response filter
    let (resp, mut upstream_fields) = match result {
        Ok(mut resp) => {
            let upstream_fields = resp.body_mut().take_fields();
            (resp.map(|b| IdleTimeout::since(b, service.timeouts.read, upstream_done.into()).boxed()), upstream_fields)
        }
        Err(e) => {
            tracing::debug!(error = %e, route = %route.label, "upstream failed");
            let resp = e.response(ctx.request_id(), &parts.headers);
            return gateway_response(&proxy, &mut ctx, Some(route), resp);
        }
    };
    let sent = headers::filter_response(&mut upstream_fields, ctx.rate_limit_fields.as_ref());
    let fields = GatewayFields::proxied(&mut ctx, upstream_fields, sent, upstream_latency, proxy_latency);

    // 5. log
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let code = resp.status().as_u16();
    route.series.record(&proxy.metrics, &route.labels, code, ms(proxy_latency), ms(upstream_latency), ms(upstream_done - started));
    (resp, fields)
}

/// Runs the route's plugins; consumer-scoped ones are resolved once the consumer is known.
async fn access(proxy: &Proxy, table: &ProxyTable, route: &RouteEntry, parts: &mut Parts, mut body: Option<&mut Bytes>, ctx: &mut RequestContext) -> Result<(), Response<Body>> {
    // Consumer-scoped plugins need a consumer, which only a route plugin (key-auth) finds.
    if route.plugins.is_empty() {
        return Ok(());
    }
    // Key-auth never waits: it reads the clock only for a credential with a ttl, and the
    // request's start is read with the upstream's (its fraction of a microsecond is not
    // counted, as the router's is not).
    for plugin in &route.plugins {
        if let ActivePlugin::KeyAuth(cfg) = plugin {
            key_auth::access(cfg, &table.config.snapshot, parts, body.as_deref_mut(), ctx, || wall_clock::now_ms() as f64 / 1000.0)?;
        }
    }
    match ctx.consumer.as_ref().map(|c| c.id) {
        Some(consumer) if table.plugin_scopes.any_consumer_scoped() => {
            let scoped = table.plugin_scopes.plugins_for(&table.config.snapshot, Some(route.id), ctx.service_id, Some(consumer));
            rate_limits(proxy, scoped.into_iter().filter_map(|p| table.prepared_plugins.get(&p.id)), parts, ctx).await
        }
        _ => rate_limits(proxy, route.plugins.iter(), parts, ctx).await,
    }
}

/// Runs the rate limits among `plugins`, in their order.
async fn rate_limits<'p>(proxy: &Proxy, plugins: impl Iterator<Item = &'p ActivePlugin>, parts: &Parts, ctx: &mut RequestContext) -> Result<(), Response<Body>> {
    let mut now = None;
    for plugin in plugins {
        if let ActivePlugin::RateLimiting(plugin) = plugin {
            // A rate limit may wait for a reservation, which the proxy latency counts: the
            // request's start is read here, and the windows' Unix time from that instant.
            let now = *now.get_or_insert_with(|| unix_ms_at(ctx.started()));
            // Not boxed: the limiter boxes the large part, waiting for a reservation, which
            // only a node out of tokens needs.
            rate_limiting::access(plugin, &proxy.limiters, parts, ctx, now).await?;
        }
    }
    Ok(())
}

/// Sends the request to the service, retrying on another target only when the request
/// has no body and provably never reached the first one.
#[allow(clippy::too_many_arguments)]
async fn forward(
    service: &Arc<ServiceEntry>,
    tls: Option<&TlsTarget>,
    parts: &Parts,
    fields: &UpstreamHeaders<'_>,
    body: RequestBody,
    target_path: &str,
    ctx: &RequestContext,
    started: Instant,
) -> Result<Response<UpstreamBody>, ProxyError> {
    let replayable = body.is_end_stream();
    let mut body = Some(body);
    let mut tried = Vec::new();
    let attempts = if replayable { usize::from(service.retries) + 1 } else { 1 };
    let mut last_err = ProxyError::NoHealthyTarget;
    // The clock as of this attempt: the caller's reading for the first, a fresh one for
    // a retry, which may come a connect timeout later.
    let mut now = started;
    for _ in 0..attempts {
        let pick = match &service.upstream {
            None => None,
            Some(u) => {
                let key = hash_key(&u.hash_on, u.hash_on_header.as_deref(), parts, ctx);
                let Some(p) = u.balancer.pick(key.as_deref(), &tried) else { return Err(last_err_or_no_target(last_err, &tried)) };
                Some(p)
            }
        };
        let addr = pick.as_ref().map_or(service.addr.as_str(), |p| p.target.addr.as_str());
        let outgoing = match body.take() {
            Some(b) if !replayable => IdleTimeout::since(b, service.timeouts.write, now.into()).boxed(),
            _ => empty(),
        };
        let result = forward::send(forward::Destination { addr, tls }, &parts.method, target_path, fields, outgoing, service.timeouts, now).await;
        if let (Some(p), Some(u)) = (&pick, &service.upstream) {
            if u.passive.enabled() {
                let outcome = health::passive_outcome(&u.upstream.healthchecks, result.as_ref().map(|r| r.status().as_u16()));
                health::record(&u.balancer, &p.target, outcome, &u.passive);
            }
        }
        match result {
            Ok(resp) => return Ok(resp),
            Err(e) => {
                if let (Some(p), ProxyError::NameResolution) = (&pick, &e) {
                    target_dns::failed(&p.target, target_dns::RETRY_EVERY);
                }
                let retry = e.retryable() && replayable;
                if let (Some(p), Some(u)) = (&pick, &service.upstream) {
                    tracing::debug!(upstream = %u.name, target = %p.target.addr, error = %e, "target failed");
                    tried.push(p.index);
                }
                last_err = e;
                if !retry {
                    return Err(last_err);
                }
                now = Instant::now();
            }
        }
    }
    Err(last_err)
}

fn last_err_or_no_target(last: ProxyError, tried: &[usize]) -> ProxyError {
    if tried.is_empty() {
        ProxyError::NoHealthyTarget
    } else {
        last
    }
}

/// The consistent-hashing key, by the upstream's hash_on.
fn hash_key(hash_on: &str, header: Option<&str>, parts: &Parts, ctx: &RequestContext) -> Option<Vec<u8>> {
    match hash_on {
        "ip" => Some(ctx.client.ip().to_string().into_bytes()),
        "consumer" => ctx.consumer.as_ref().map(|c| c.id.as_bytes().to_vec()),
        "header" => header.and_then(|h| ctx.request_field(&parts.headers, h)).map(<[u8]>::to_vec),
        "path" => Some(ctx.path(&parts.uri).as_bytes().to_vec()),
        _ => None,
    }
}

/// Kong's answer to plain HTTP on a route that takes only HTTPS: the same URL over https
/// when the route's https_redirect_status_code is a redirect, else 426 with an Upgrade
/// offer. A Host that is not a plain name or address gets the 426: it is not echoed
/// into a Location.
fn https_required(code: u16, parts: &Parts, request_id: &str) -> Response<Body> {
    let raw = raw_host(parts);
    let host = match raw.find(']') {
        Some(end) if raw.starts_with('[') => &raw[..=end],
        _ => strip_port(raw),
    };
    let plain = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    let redirect = StatusCode::from_u16(code).ok().filter(|s| matches!(s.as_u16(), 301 | 302 | 307 | 308));
    if let (Some(status), true) = (redirect, plain) {
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if let Ok(location) = HeaderValue::from_str(&format!("https://{host}{target}")) {
            let mut resp = Response::new(empty());
            *resp.status_mut() = status;
            resp.headers_mut().insert(LOCATION, location);
            return resp;
        }
    }
    let mut resp = error_response(StatusCode::UPGRADE_REQUIRED, "Please use HTTPS protocol", request_id, &parts.headers);
    // HTTP/2 has no Upgrade (RFC 9113 §8.6): the 426 alone says it there.
    if parts.version <= Version::HTTP_11 {
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        resp.headers_mut().insert(UPGRADE, HeaderValue::from_static("TLS/1.2, HTTP/1.1"));
    }
    resp
}

/// A response the gateway made itself: Kong's fields for those, and metrics.
fn gateway_response(proxy: &Proxy, ctx: &mut RequestContext, route: Option<&RouteEntry>, resp: Response<Body>) -> (Response<Body>, GatewayFields) {
    let fields = GatewayFields::generated(ctx, resp.headers());
    // Requests that matched no route are not counted, as in Kong's Prometheus plugin.
    if let Some(route) = route {
        let service = route.service.as_ref().map_or_else(String::new, |s| s.label.clone());
        let labels = RequestLabels { service, route: route.label.clone(), code: resp.status().as_u16(), source: "gatehouse" };
        proxy.metrics.requests.get_or_create(&labels).inc();
    }
    (resp, fields)
}
