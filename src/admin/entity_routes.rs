//! Kong's entity paths mapped onto the generic handlers: top-level tables, nested
//! collections under a parent (`/services/{s}/routes`), and the parent-of-child reads
//! (`/routes/{r}/service` and the like, in `referenced`).

use hyper::{Method, Response, StatusCode};

use super::entities::{self, lookup, not_found, AdminEntity, Scope};
use super::server::{message, AdminContext, AdminRequest};
use super::referenced::{self, Reference};
use super::target_health;
use crate::http::{json_response, Body};
use crate::model::{Consumer, ForeignKey, KeyAuthCredential, Plugin, Route, Service, Target, Upstream};

const TABLES: &[&str] = &["services", "routes", "upstreams", "consumers", "plugins", "key-auths", "targets"];

pub fn serves(first: &str) -> bool {
    TABLES.contains(&first)
}

/// GET/POST on a collection, GET/PUT/PATCH/DELETE on one entity.
async fn op<E: AdminEntity>(ctx: &AdminContext, req: &AdminRequest, scope: Option<Scope>, key: Option<&str>) -> Response<Body> {
    let path = format!("/{}", req.segments.join("/"));
    match (&req.method, key) {
        (&Method::GET, None) => entities::list::<E>(&ctx.applied.get(), scope, req, &path),
        (&Method::POST, None) => entities::post::<E>(ctx, scope, req).await,
        (&Method::GET, Some(k)) => entities::get::<E>(&ctx.applied.get(), scope, k),
        (&Method::PUT, Some(k)) => entities::put::<E>(ctx, scope, k, req).await,
        (&Method::PATCH, Some(k)) => entities::patch_one::<E>(ctx, scope, k, req).await,
        (&Method::DELETE, Some(k)) => entities::delete::<E>(ctx, scope, k).await,
        _ => message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
    }
}

/// The parent named in the path, as a scope for its children; `Err` is the response when
/// it does not exist (or, for a write, when whether it exists cannot be known).
async fn parent<P: AdminEntity>(ctx: &AdminContext, req: &AdminRequest, key: &str, field: &'static str) -> Result<Scope, Response<Body>> {
    let found = if req.method == Method::GET {
        lookup::<P>(&ctx.applied.get(), None, key).ok_or_else(not_found)?
    } else {
        referenced::holder::<P>(ctx, key).await?
    };
    Ok(Scope { field, id: found.id() })
}

/// Runs `op` on child type `C` under parent `P`, or 404 when the parent is missing.
macro_rules! nested {
    ($ctx:expr, $req:expr, $P:ty, $field:expr, $pkey:expr, $C:ty, $key:expr) => {
        match parent::<$P>($ctx, $req, $pkey, $field).await {
            Ok(scope) => op::<$C>($ctx, $req, Some(scope), $key).await,
            Err(response) => response,
        }
    };
}

/// Serves an entity path. `server::route` has already answered 405 to a method the path
/// does not take (`methods::allowed`), so an arm sees only the methods listed there.
pub async fn dispatch(ctx: &AdminContext, req: &AdminRequest, segs: &[&str]) -> Response<Body> {
    match segs {
        ["services"] => op::<Service>(ctx, req, None, None).await,
        ["services", s] => op::<Service>(ctx, req, None, Some(s)).await,
        ["services", s, "routes"] => nested!(ctx, req, Service, "service", s, Route, None),
        ["services", s, "routes", r] => nested!(ctx, req, Service, "service", s, Route, Some(r)),
        ["services", s, "plugins"] => nested!(ctx, req, Service, "service", s, Plugin, None),
        ["services", s, "plugins", p] => nested!(ctx, req, Service, "service", s, Plugin, Some(p)),

        ["routes"] => op::<Route>(ctx, req, None, None).await,
        ["routes", r] => op::<Route>(ctx, req, None, Some(r)).await,
        ["routes", r, "plugins"] => nested!(ctx, req, Route, "route", r, Plugin, None),
        ["routes", r, "plugins", p] => nested!(ctx, req, Route, "route", r, Plugin, Some(p)),
        ["routes", r, "service"] => {
            let reference = Reference { holder_key: r, field: "service", target_of: |r: &Route| ForeignKey::id_of(&r.service) };
            referenced::serve::<Route, Service>(ctx, req, reference).await
        },

        ["upstreams"] => op::<Upstream>(ctx, req, None, None).await,
        ["upstreams", u] => op::<Upstream>(ctx, req, None, Some(u)).await,
        ["upstreams", u, "health"] => target_health::get(ctx, u, req),
        ["upstreams", u, "targets"] => nested!(ctx, req, Upstream, "upstream", u, Target, None),
        // Kong keeps `targets/all` from the days targets had a history: the same list,
        // read-only (a write there is not a target named "all").
        ["upstreams", u, "targets", "all"] => nested!(ctx, req, Upstream, "upstream", u, Target, None),
        ["upstreams", u, "targets", t] => nested!(ctx, req, Upstream, "upstream", u, Target, Some(t)),
        // Kong 3 takes a verdict by PUT; Kong 2 took POST, which scripts still send.
        ["upstreams", u, "targets", t, verdict @ ("healthy" | "unhealthy")] => {
            target_health::give_verdict(ctx, u, t, None, *verdict == "healthy").await
        }
        ["upstreams", u, "targets", t, address, verdict @ ("healthy" | "unhealthy")] => {
            target_health::give_verdict(ctx, u, t, Some(address), *verdict == "healthy").await
        }

        // Kong's consumers endpoint answers a lookup by custom_id in place of a page.
        ["consumers"] if req.method == Method::GET && req.query("custom_id").is_some() => {
            entities::consumer_by_custom_id(&ctx.applied.get(), req.query("custom_id").unwrap_or_default())
        }
        ["consumers"] => op::<Consumer>(ctx, req, None, None).await,
        ["consumers", c] => op::<Consumer>(ctx, req, None, Some(c)).await,
        ["consumers", c, "key-auth"] => nested!(ctx, req, Consumer, "consumer", c, KeyAuthCredential, None),
        ["consumers", c, "key-auth", k] => nested!(ctx, req, Consumer, "consumer", c, KeyAuthCredential, Some(k)),
        ["consumers", c, "plugins"] => nested!(ctx, req, Consumer, "consumer", c, Plugin, None),
        ["consumers", c, "plugins", p] => nested!(ctx, req, Consumer, "consumer", c, Plugin, Some(p)),

        // Kong's key-auth plugin serves its credentials here too: one is created with its
        // consumer in the body.
        ["key-auths"] => op::<KeyAuthCredential>(ctx, req, None, None).await,
        ["key-auths", k] => op::<KeyAuthCredential>(ctx, req, None, Some(k)).await,
        ["key-auths", k, "consumer"] => {
            let reference = Reference { holder_key: k, field: "consumer", target_of: |c: &KeyAuthCredential| Some(c.consumer.id) };
            referenced::serve::<KeyAuthCredential, Consumer>(ctx, req, reference).await
        }

        ["plugins"] => op::<Plugin>(ctx, req, None, None).await,
        // Not a plugin's name: what this build can run, as Kong lists its loaded plugins.
        ["plugins", "enabled"] => json_response(StatusCode::OK, &serde_json::json!({ "enabled_plugins": crate::model::plugins::names() })),
        ["plugins", p] => op::<Plugin>(ctx, req, None, Some(p)).await,
        ["plugins", "schema", name] => super::schemas::plugin_config(name),
        ["plugins", p, "route"] => {
            let reference = Reference { holder_key: p, field: "route", target_of: |p: &Plugin| ForeignKey::id_of(&p.route) };
            referenced::serve::<Plugin, Route>(ctx, req, reference).await
        }
        ["plugins", p, "service"] => {
            let reference = Reference { holder_key: p, field: "service", target_of: |p: &Plugin| ForeignKey::id_of(&p.service) };
            referenced::serve::<Plugin, Service>(ctx, req, reference).await
        }
        ["plugins", p, "consumer"] => {
            let reference = Reference { holder_key: p, field: "consumer", target_of: |p: &Plugin| ForeignKey::id_of(&p.consumer) };
            referenced::serve::<Plugin, Consumer>(ctx, req, reference).await
        }

        // Kong disables the top-level target endpoints: targets live under upstreams.
        ["targets", ..] => message(StatusCode::NOT_FOUND, "Not found"),
        _ => message(StatusCode::NOT_FOUND, "Not found"),
    }
}
