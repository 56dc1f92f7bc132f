//! Node and cluster endpoints: `GET /` (node and version), `GET /status` (health),
//! `GET /cluster` (as `gatehouse status --json`), `POST /cluster/leave`, and
//! `DELETE /cluster/members/{id}` (removing a member that is gone for good).

use hyper::{Response, StatusCode};
use serde_json::json;

use super::server::{message, AdminContext};
use crate::cluster::status::cluster_status;
use crate::http::{json_response, Body};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Kong Admin API this one answers as, in `GET /`'s `version`: Kong's tools (decK,
/// go-kong, the ingress controller) read it to choose the formats they speak, and would
/// take gatehouse's own version for a Kong before 1.0. gatehouse's is `gatehouse_version`.
pub const KONG_API_VERSION: &str = "3.8.0";

/// Kong's `GET /`: the node, its version, its plugins; and gatehouse's cluster fields.
pub fn root(ctx: &AdminContext) -> Response<Body> {
    let node = ctx.store.node();
    let applied = ctx.applied.get();
    let enabled: std::collections::BTreeSet<&str> = applied.snapshot.plugins.values().map(|p| p.name.as_str()).collect();
    let available: serde_json::Map<String, serde_json::Value> = crate::model::plugins::names()
        .into_iter()
        .map(|name| (name.to_owned(), json!({ "version": VERSION, "priority": crate::model::plugins::priority(name) })))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "tagline": "Welcome to gatehouse",
            "version": KONG_API_VERSION,
            "gatehouse_version": VERSION,
            "edition": "community",
            "hostname": hostname(),
            "node_id": ctx.store.id().to_string(),
            "plugins": { "available_on_server": available, "enabled_in_cluster": enabled },
            "cluster": ctx.cluster_name,
            "cluster_addr": node.addr,
            "configuration": node.meta,
        }),
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// 200 while the node serves; the body says what it last applied and whether the
/// cluster has a leader (the proxy keeps serving without one). `database.reachable` is
/// Kong's field: here, whether a write through this node could commit now.
pub fn status(ctx: &AdminContext) -> Response<Body> {
    let s = ctx.store.status();
    let reachable = ctx.store.reachable();
    json_response(
        StatusCode::OK,
        &json!({
            "database": { "reachable": reachable },
            "server": { "node_id": s.id.to_string(), "role": format!("{:?}", s.role).to_lowercase() },
            "config_revision": s.revision,
            "config_digest": ctx.applied.get().digest(),
            "applied_index": s.applied_index,
            "leader_id": crate::cluster::status::heard_leader(&s, reachable),
            "term": s.term,
            "ratelimit": {
                "degraded": ctx.proxy.limiters.cluster.degraded(),
                "degraded_admissions": ctx.proxy.limiters.cluster.degraded_admissions(),
                "first_slices": ctx.proxy.limiters.cluster.first_slices(),
                // Which Raft protocol this binary reads, and which the cluster recorded
                // that every member reads (0: none yet); first slices need the second.
                "protocol": gatehouse_raft::PROTOCOL,
                "agreed_protocol": crate::cluster::agreement::agreed_protocol(&ctx.store),
            },
        }),
    )
}

pub fn cluster(ctx: &AdminContext) -> Response<Body> {
    let degraded = ctx.proxy.limiters.cluster.degraded();
    let view = cluster_status(&ctx.store, &ctx.peers.peers(), &ctx.cluster_name, degraded);
    json_response(StatusCode::OK, &serde_json::to_value(view).expect("plain struct serializes"))
}

/// Prometheus text; cluster gauges are read at scrape time.
pub fn metrics(ctx: &AdminContext) -> Response<Body> {
    let m = &ctx.metrics;
    let s = ctx.store.status();
    if m.raft_term.get() as u64 != s.term && m.raft_term.get() != 0 {
        m.raft_elections.inc_by(s.term.saturating_sub(m.raft_term.get() as u64));
    }
    m.raft_term.set(s.term as i64);
    let reachable = ctx.store.reachable();
    m.raft_leader.set(crate::cluster::status::heard_leader(&s, reachable).map_or(0, |l| l as i64));
    m.raft_is_leader.set(i64::from(s.role == gatehouse_raft::Role::Leader));
    m.raft_last_log_index.set(s.last_log_index.unwrap_or(0) as i64);
    m.raft_applied_index.set(s.applied_index.unwrap_or(0) as i64);
    m.config_revision.set(ctx.applied.get().revision as i64);
    m.datastore_reachable.set(i64::from(reachable));
    let peers = ctx.peers.peers();
    for (state, count) in [
        ("alive", peers.iter().filter(|p| p.alive && !p.left).count()),
        ("dead", peers.iter().filter(|p| !p.alive && !p.left).count()),
        ("left", peers.iter().filter(|p| p.left).count()),
    ] {
        m.gossip_members.get_or_create(&crate::metrics::StateLabels { state }).set(count as i64);
    }
    let limiter = &ctx.proxy.limiters.cluster;
    m.ratelimit_degraded.set(i64::from(limiter.degraded()));
    // A count since the node started; the counter catches up with it.
    let admissions = m.ratelimit_degraded_admissions.get();
    m.ratelimit_degraded_admissions.inc_by(limiter.degraded_admissions().saturating_sub(admissions));
    let mut resp = Response::new(crate::http::full(m.encode()));
    // prometheus-client writes OpenMetrics (counters typed without their _total, # EOF):
    // labelled as the older text format, a scraper would read every counter as untyped.
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8".parse().expect("static"));
    resp
}

/// The gossip view: every node gossip knows, alive, dead or left, with its meta.
pub fn members(ctx: &AdminContext) -> Response<Body> {
    let members: Vec<_> = ctx
        .peers
        .peers()
        .into_iter()
        .map(|p| json!({ "node_id": p.node_id, "alive": p.alive, "left": p.left, "meta": p.meta }))
        .collect();
    json_response(StatusCode::OK, &json!({ "members": members }))
}

/// Leaves the cluster (Raft first, then gossip) and lets the node exit; answers once
/// this node is no longer a voter, so `gatehouse leave` can report success.
pub async fn leave(ctx: &AdminContext) -> Response<Body> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if ctx.leave.send(tx).await.is_err() {
        return message(StatusCode::SERVICE_UNAVAILABLE, "the node is already shutting down");
    }
    match rx.await {
        Ok(Ok(())) => json_response(StatusCode::OK, &json!({ "left": true, "node_id": ctx.store.id().to_string() })),
        Ok(Err(e)) => message(StatusCode::SERVICE_UNAVAILABLE, &format!("could not leave the cluster: {e}")),
        Err(_) => message(StatusCode::SERVICE_UNAVAILABLE, "the node stopped before it could leave"),
    }
}

/// Removes a member that is gone for good, as etcd's `member remove` and Consul's
/// `force-leave` do: a voter that died with its disk leaves the cluster one voter short
/// of tolerating the next failure until it is removed (autopilot then promotes a learner
/// if there is one). Refused for this node (it should leave) and for a member that still
/// answers at its address, so that a mistyped id cannot take a healthy node out.
pub async fn remove_member(ctx: &AdminContext, id: &str) -> Response<Body> {
    let Ok(id) = id.parse::<u64>() else {
        return message(StatusCode::BAD_REQUEST, &format!("{id:?} is not a node id (a number, as /cluster lists them)"));
    };
    if id == ctx.store.id() {
        return message(StatusCode::BAD_REQUEST, "that is this node: ask it to leave instead (gatehouse leave)");
    }
    let Some(node) = ctx.store.members().get(&id).cloned() else {
        return message(StatusCode::NOT_FOUND, &format!("node {id} is not a member"));
    };
    if crate::cluster::join::answers_as(&ctx.store, &node.addr, id).await {
        return message(StatusCode::CONFLICT, &format!("node {id} answers at {}: stop it first, or run gatehouse leave against it", node.addr));
    }
    // Asked of gossip too: this node may be cut off from a member others still reach.
    if ctx.peers.peers().iter().any(|p| p.node_id == id && p.alive && !p.left) {
        return message(
            StatusCode::CONFLICT,
            &format!("gossip still sees node {id} alive: if it has just stopped, try again once gatehouse status shows it dead"),
        );
    }
    match ctx.store.remove_nodes([id].into()).await {
        Ok(_) => {
            tracing::info!(node_id = id, addr = %node.addr, "removed a member by an operator's request");
            json_response(StatusCode::OK, &json!({ "removed": true, "node_id": id.to_string() }))
        }
        Err(e) => message(StatusCode::SERVICE_UNAVAILABLE, &format!("could not remove node {id}: {e}")),
    }
}
