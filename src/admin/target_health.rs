//! Targets' health on the Admin API. `GET /upstreams/{u}/health` reads this node's
//! balancer, as Kong's does. `PUT /upstreams/{u}/targets/{t}[/{address}]/healthy|unhealthy`
//! is an operator's verdict on a target, applied to this node's balancer and sent to
//! every other member over the authenticated cluster port, as Kong broadcasts it to its
//! nodes. It is not stored, as in Kong: a node that starts later sees the target healthy
//! until its own checks say otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_raft::{AppFuture, AppHandler};
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::entities::{self, lookup, not_found, Scope};
use super::server::{message, AdminContext, AdminRequest};
use super::write;
use crate::http::{empty, json_response, Body};
use crate::model::{Entity, Target, Upstream};
use crate::proxy::balancer::TargetState;
use crate::proxy::health;
use crate::proxy::server::Proxy;

/// The cluster call that carries a verdict to the other members.
pub const METHOD: &str = "target_health";

/// How long a member waits for its proxy to know the upstream the verdict names (its
/// config may be a moment behind the sender's), and how long the sender waits for it.
const APPLY_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Verdict {
    upstream: Uuid,
    target: String,
    healthy: bool,
    /// The config revision the sender found the target in: the receiver's proxy must
    /// route by it before the target can be found there.
    revision: u64,
}

/// Kong's `GET /upstreams/{u}/health`: each target as stored, with this node's verdict
/// and its address; `?balancer_health=1` gives the upstream's as a whole instead.
pub fn get(ctx: &AdminContext, upstream_key: &str, req: &AdminRequest) -> Response<Body> {
    let cfg = ctx.applied.get();
    let Some(upstream) = lookup::<Upstream>(&cfg, None, upstream_key) else { return not_found() };
    let checks_on = health::checks_on(&upstream.healthchecks);
    let table = ctx.proxy.table.load();
    let states = table.upstreams.get(&upstream.id).map(|entry| entry.balancer.targets().to_vec()).unwrap_or_default();
    let state_of = |addr: &str| states.iter().find(|t| t.addr == addr);
    // A target an operator took out shows so even with the checks off, since the
    // balancer skips it; one whose name does not resolve shows Kong's DNS_ERROR.
    let verdict = |state: Option<&Arc<TargetState>>| match state {
        Some(t) if t.has_dns_error() => "DNS_ERROR",
        Some(t) if !t.is_healthy() => "UNHEALTHY",
        _ if checks_on => "HEALTHY",
        _ => "HEALTHCHECKS_OFF",
    };
    let node_id = ctx.store.id().to_string();
    if req.query("balancer_health") == Some("1") {
        // As Kong's: `health` is the checks' verdict, off when there are none;
        // `balancer_health` whether the balancer has a target to send to.
        let balancer_health = if states.iter().any(|t| t.usable()) { "HEALTHY" } else { "UNHEALTHY" };
        let health = if checks_on { balancer_health } else { "HEALTHCHECKS_OFF" };
        let data = json!({ "id": upstream.id, "health": health, "balancer_health": balancer_health });
        return json_response(StatusCode::OK, &json!({ "data": data, "next": null, "node_id": node_id }));
    }
    let data: Vec<Value> = cfg
        .snapshot
        .targets_of(upstream.id)
        .into_iter()
        .map(|target| {
            let state = state_of(&target.target);
            // As Kong's: a target of weight 0 takes no traffic, so no verdict applies.
            let health = if target.weight == 0 { "HEALTHCHECKS_OFF" } else { verdict(state) };
            let mut entry = Entity::Target(target.clone()).to_json();
            entry["health"] = json!(health);
            // Addresses are what a name resolved to; a target given as an address is its own.
            let addresses: Vec<Value> = match target.target.parse::<SocketAddr>() {
                Ok(addr) => vec![json!({ "ip": addr.ip().to_string(), "port": addr.port(), "weight": target.weight, "health": health })],
                Err(_) => Vec::new(),
            };
            entry["data"] = json!({ "addresses": addresses });
            entry
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "data": data, "next": null, "node_id": node_id, "upstream": { "id": upstream.id } }))
}

pub async fn give_verdict(ctx: &AdminContext, upstream_key: &str, target_key: &str, address: Option<&str>, healthy: bool) -> Response<Body> {
    let found = |cfg: &crate::applied::AppliedConfig| {
        let upstream = lookup::<Upstream>(cfg, None, upstream_key)?;
        let target = lookup::<Target>(cfg, Some(Scope { field: "upstream", id: upstream.id }), target_key)?;
        Some((upstream.id, target.target, cfg.revision))
    };
    let mut hit = found(&ctx.applied.get());
    if hit.is_none() {
        // Created through another node a moment ago, perhaps: catch up before a 404.
        if let Err(e) = write::catch_up(ctx).await {
            return entities::write_error(e);
        }
        hit = found(&ctx.applied.get());
    }
    let Some((upstream, target, revision)) = hit else { return not_found() };
    // Health is kept per target here, not per address a name resolves to: an address
    // can only name the target itself.
    if address.is_some_and(|a| a != target) {
        let text = format!("address {} is not target {target}: health is kept per target", address.unwrap_or_default());
        return message(StatusCode::BAD_REQUEST, &text);
    }
    let verdict = Verdict { upstream, target, healthy, revision };
    if let Err(e) = apply(&ctx.proxy, &verdict).await {
        return message(StatusCode::SERVICE_UNAVAILABLE, &e);
    }
    broadcast(ctx, &verdict).await;
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// Sets the verdict on this node's balancer, once its proxy routes by the config the
/// verdict was made against.
async fn apply(proxy: &Proxy, verdict: &Verdict) -> Result<(), String> {
    if tokio::time::timeout(APPLY_WAIT, proxy.serving_at_least(verdict.revision)).await.is_err() {
        return Err(format!("this node's proxy has not reached config revision {} yet", verdict.revision));
    }
    let table = proxy.table.load();
    let entry = table.upstreams.get(&verdict.upstream).ok_or_else(|| format!("upstream {} is not in this node's proxy", verdict.upstream))?;
    if !health::set_by_operator(&entry.balancer, &verdict.target, verdict.healthy) {
        return Err(format!("target {} is not in this node's balancer", verdict.target));
    }
    Ok(())
}

/// Sends the verdict to every other member at once and waits for their answers. One that
/// cannot be reached is logged and left out: it will judge the target by its own checks.
async fn broadcast(ctx: &AdminContext, verdict: &Verdict) {
    let body = serde_json::to_vec(verdict).expect("a verdict serializes");
    let mut calls = tokio::task::JoinSet::new();
    for (id, node) in ctx.store.members() {
        if id == ctx.store.id() {
            continue;
        }
        let (store, body) = (ctx.store.clone(), body.clone());
        calls.spawn(async move {
            let sent = match tokio::time::timeout(APPLY_WAIT + Duration::from_secs(1), store.call_app(&node.addr, METHOD, body)).await {
                Ok(answer) => answer.map(drop).map_err(|e| e.to_string()),
                Err(_) => Err("no answer".to_owned()),
            };
            (id, sent)
        });
    }
    while let Some(joined) = calls.join_next().await {
        if let Ok((id, Err(e))) = joined {
            tracing::warn!(node_id = id, target = %verdict.target, error = %e, "a member did not take the target health verdict");
        }
    }
}

/// Takes the verdicts other members send.
pub struct VerdictHandler {
    pub proxy: Arc<Proxy>,
}

impl AppHandler for VerdictHandler {
    fn call(&self, _peer: u64, _method: String, body: Vec<u8>) -> AppFuture {
        let proxy = self.proxy.clone();
        Box::pin(async move {
            let verdict: Verdict = serde_json::from_slice(&body).map_err(|e| format!("bad target health verdict: {e}"))?;
            apply(&proxy, &verdict).await.map(|()| Vec::new())
        })
    }
}
