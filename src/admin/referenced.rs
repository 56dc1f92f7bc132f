//! The entity another one refers to, at the referrer's path: `/routes/{r}/service`,
//! `/plugins/{p}/route|service|consumer`, `/key-auths/{k}/consumer`. Kong's semantics:
//! GET reads it, PATCH updates it, PUT replaces it (or creates it and refers the holder
//! to it), DELETE is refused with 405 since the holder still refers to it; each is 404
//! when the holder does not exist or refers to nothing. A write also requires that the
//! holder did not change meanwhile, so it cannot land on what the holder no longer
//! refers to.

use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::entities::{self, checked, input_for, lookup, not_found, respond, AdminEntity};
use super::server::{message, AdminContext, AdminRequest};
use super::write::{self, commit, Change};
use crate::applied::AppliedConfig;
use crate::http::Body;
use crate::model::{patch, replace, unix_now, Entity, PutKey};

/// One entity's reference to another: the holder's key in the path, the field, and how
/// to read the id it holds.
pub struct Reference<'k, H> {
    pub holder_key: &'k str,
    pub field: &'static str,
    pub target_of: fn(&H) -> Option<Uuid>,
}

/// Serves `req` on the `T` that the holder `H` refers to.
pub async fn serve<H: AdminEntity, T: AdminEntity>(ctx: &AdminContext, req: &AdminRequest, reference: Reference<'_, H>) -> Response<Body> {
    let method = &req.method;
    if *method == Method::GET {
        let cfg = ctx.applied.get();
        return match live::<H>(&cfg, reference.holder_key).and_then(|h| (reference.target_of)(&h)) {
            Some(id) => entities::get::<T>(&cfg, None, &id.to_string()),
            None => not_found(),
        };
    }
    // Past GET: PUT, PATCH or DELETE, the methods `methods::allowed` lists here.
    if *method == Method::PUT {
        return put::<H, T>(ctx, reference, req).await;
    }
    let holder = match holder::<H>(ctx, reference.holder_key).await {
        Ok(holder) => holder,
        Err(response) => return response,
    };
    if (reference.target_of)(&holder).is_none() {
        return not_found();
    }
    if *method == Method::DELETE {
        // Deleting it would leave the holder pointing at nothing.
        return message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    }
    entities::patch_where::<T>(ctx, req, |cfg| {
        let holder = live::<H>(cfg, reference.holder_key)?;
        let target = cfg.snapshot.get(T::TABLE, (reference.target_of)(&holder)?).and_then(T::from_entity)?;
        Some((target, Some(holder.into())))
    })
    .await
}

/// The holder as the Admin API shows it: a credential past its ttl is gone.
fn live<H: AdminEntity>(cfg: &AppliedConfig, key: &str) -> Option<H> {
    lookup::<H>(cfg, None, key).filter(|h| !h.expired_at(unix_now()))
}

/// The holder, for a write: a holder this node has not applied yet (created through
/// another node a moment ago) is looked for again after catching up with the leader.
pub(super) async fn holder<H: AdminEntity>(ctx: &AdminContext, key: &str) -> Result<H, Response<Body>> {
    if let Some(found) = live::<H>(&ctx.applied.get(), key) {
        return Ok(found);
    }
    write::catch_up(ctx).await.map_err(entities::write_error)?;
    live::<H>(&ctx.applied.get(), key).ok_or_else(not_found)
}

/// PUT, as Kong does it: the entity referred to is replaced; when there is none, a new
/// one is created and the holder made to refer to it, in one transaction where Kong
/// takes two writes.
async fn put<H: AdminEntity, T: AdminEntity>(ctx: &AdminContext, reference: Reference<'_, H>, req: &AdminRequest) -> Response<Body> {
    let input = match input_for::<T>(req, None) {
        Ok(i) => i,
        Err(resp) => return resp,
    };
    let now = unix_now();
    // Chosen once, so that a retried transaction creates the same entity.
    let fresh = Uuid::new_v4();
    let result = commit(ctx, |cfg| {
        let Some(holder) = live::<H>(cfg, reference.holder_key) else {
            return Ok((vec![], None));
        };
        let mut input = input.clone();
        cfg.snapshot.resolve_foreign_names(&mut input)?;
        let referred = (reference.target_of)(&holder);
        let id = referred.unwrap_or(fresh);
        let existing = cfg.snapshot.get(T::TABLE, id).and_then(T::from_entity);
        let replaced: T = replace(existing.as_ref(), &PutKey::from_segment(&id.to_string()), &Value::Object(input), now)?;
        let target = checked(cfg, replaced.clone().into())?;
        let mut changes = vec![Change::Put { new: target, old: existing.map(Into::into) }];
        if referred.is_none() {
            // The holder's only change is a reference to the entity created beside it,
            // which the snapshot cannot show yet: its other checks still apply.
            let referring: Entity = patch(&holder, &json!({ reference.field: { "id": id } }), now)?.into();
            cfg.snapshot.unique_conflict(&referring)?;
            changes.push(Change::Put { new: referring, old: Some(holder.into()) });
        } else {
            changes.push(Change::Unchanged(holder.into()));
        }
        Ok((changes, Some(replaced)))
    })
    .await;
    match result {
        Ok(None) => not_found(),
        other => respond(StatusCode::OK, other.map(|e| e.expect("None handled above"))),
    }
}
