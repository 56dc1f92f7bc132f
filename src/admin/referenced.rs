//! The entity another one refers to, at the referrer's path: `/routes/{r}/service`,
//! `/plugins/{p}/route|service|consumer`, `/key-auths/{k}/consumer`. Kong's semantics:
//! GET reads it, PATCH updates it, PUT replaces it (or creates it and refers the holder
//! to it), DELETE is refused with 405 since the holder still refers to it; each is 404
//! when the holder does not exist or refers to nothing.

use hyper::{Method, Response, StatusCode};
use uuid::Uuid;

use super::entities::{self, lookup, not_found, AdminEntity};
use super::server::{message, AdminContext, AdminRequest};
use super::write;
use crate::http::Body;

/// Which of the methods above an endpoint takes (Kong's key-auth plugin serves only GET
/// on `/key-auths/{k}/consumer`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    Allowed,
    ReadOnly,
}

/// Serves `req` on the `T` that the `H` named `holder_key` refers to by `field`.
pub async fn serve<H: AdminEntity, T: AdminEntity>(
    ctx: &AdminContext,
    req: &AdminRequest,
    holder_key: &str,
    field: &'static str,
    target_of: fn(&H) -> Option<Uuid>,
    writes: Writes,
) -> Response<Body> {
    let method = &req.method;
    if *method == Method::GET {
        let cfg = ctx.applied.get();
        return match lookup::<H>(&cfg, None, holder_key).and_then(|h| target_of(&h)) {
            Some(id) => entities::get::<T>(&cfg, None, &id.to_string()),
            None => not_found(),
        };
    }
    let known = [Method::PUT, Method::PATCH, Method::DELETE];
    if writes == Writes::ReadOnly || !known.contains(method) {
        return message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    }
    if *method == Method::PUT {
        return entities::put_referenced::<H, T>(ctx, holder_key, field, target_of, req).await;
    }
    let referred = match holder::<H>(ctx, holder_key).await {
        Ok(holder) => target_of(&holder),
        Err(response) => return response,
    };
    match (referred, method) {
        (None, _) => not_found(),
        (Some(id), &Method::PATCH) => {
            entities::patch_one::<T>(ctx, None, &id.to_string(), req).await
        }
        // Deleting it would leave the holder pointing at nothing.
        (Some(_), _) => message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
    }
}

/// The holder, for a write: a holder this node has not applied yet (created through
/// another node a moment ago) is looked for again after catching up with the leader.
pub(super) async fn holder<H: AdminEntity>(
    ctx: &AdminContext,
    key: &str,
) -> Result<H, Response<Body>> {
    if let Some(found) = lookup::<H>(&ctx.applied.get(), None, key) {
        return Ok(found);
    }
    write::catch_up(ctx).await.map_err(entities::write_error)?;
    lookup::<H>(&ctx.applied.get(), None, key).ok_or_else(not_found)
}
