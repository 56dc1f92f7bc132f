//! Kong's entity endpoints, one generic implementation for every table: list with
//! pagination, get, create (POST), upsert (PUT), update (PATCH) and delete, at the top
//! level (`/routes/{r}`) or under a parent (`/services/{s}/routes`).

use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::body::{entity_input, is_form};
use super::server::{AdminContext, AdminRequest};
use super::write::{commit, Change, WriteError};
use crate::applied::AppliedConfig;
use crate::http::{json_response, Body};
use crate::model::storage::index_key;
use crate::model::{coerce_patch_form, create, patch, replace, unix_now, Consumer, Entity, EntityType, KeyAuthCredential, KongError, Plugin, PutKey, Route, Service, Target, Upstream};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// The typed entities the Admin API serves, with their way in and out of `Entity`.
pub trait AdminEntity: EntityType + Into<Entity> {
    fn from_entity(e: Entity) -> Option<Self>;
    /// The unique index key naming the entity whose endpoint key is `key`.
    fn endpoint_index(key: &str, _scope: Option<Scope>) -> Option<String> {
        Some(index_key(Self::TABLE, Self::ENDPOINT_KEY?, key))
    }
    /// The JSON of a write's response (a new credential shows its plain key once).
    fn response(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
    /// Whether it is past its ttl at `now` (Unix seconds): gone for the Admin API, as
    /// from Kong's database, though the sweep may not have deleted it yet.
    fn expired_at(&self, _now: f64) -> bool {
        false
    }
}

macro_rules! admin_entity {
    ($($t:ident),*) => {$(
        impl AdminEntity for $t {
            fn from_entity(e: Entity) -> Option<Self> {
                match e { Entity::$t(x) => Some(x), _ => None }
            }
        }
    )*};
}
admin_entity!(Service, Route, Consumer, Plugin);

impl AdminEntity for Upstream {
    fn from_entity(e: Entity) -> Option<Self> {
        match e {
            Entity::Upstream(x) => Some(*x),
            _ => None,
        }
    }
}

impl AdminEntity for Target {
    fn from_entity(e: Entity) -> Option<Self> {
        match e {
            Entity::Target(x) => Some(x),
            _ => None,
        }
    }
    /// Targets are unique per upstream, so their index carries the upstream's id.
    fn endpoint_index(key: &str, scope: Option<Scope>) -> Option<String> {
        Some(index_key(Self::TABLE, "upstream_target", &format!("{}:{key}", scope?.id)))
    }
}

impl AdminEntity for KeyAuthCredential {
    fn from_entity(e: Entity) -> Option<Self> {
        match e {
            Entity::KeyAuthCredential(x) => Some(x),
            _ => None,
        }
    }
    fn response(&self) -> Value {
        self.response_json(unix_now())
    }
    fn expired_at(&self, now: f64) -> bool {
        self.is_expired(|| now)
    }
    /// Keys are stored hashed: look the credential up by the hash of the key given.
    fn endpoint_index(key: &str, _scope: Option<Scope>) -> Option<String> {
        Some(index_key(Self::TABLE, "key_hash", &crate::model::hash_key(key)))
    }
}

/// A parent in the path (`/services/{s}/routes`): the field naming it and its id.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub field: &'static str,
    pub id: Uuid,
}

impl Scope {
    fn holds(&self, e: &Value) -> bool {
        e.get(self.field).and_then(|f| f.get("id")).and_then(Value::as_str) == Some(self.id.to_string().as_str())
    }
}

/// A model error as Kong's JSON answer, with its status.
pub(super) fn kong(e: KongError) -> Response<Body> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, &e.to_json())
}

pub fn write_error(e: WriteError) -> Response<Body> {
    let (status, body) = e.status_and_body();
    json_response(status, &body)
}

/// The answer to a write: the entity as its response JSON, or the write's error.
pub(super) fn respond<E: AdminEntity>(status: StatusCode, result: Result<E, WriteError>) -> Response<Body> {
    match result {
        Ok(e) => json_response(status, &e.response()),
        Err(e) => write_error(e),
    }
}

pub fn not_found() -> Response<Body> {
    json_response(StatusCode::NOT_FOUND, &json!({ "message": "Not found" }))
}

/// Finds an entity by id, or by its endpoint key (`name`, `username`, `target`...),
/// within `scope` when given.
pub fn lookup<E: AdminEntity>(cfg: &AppliedConfig, scope: Option<Scope>, key: &str) -> Option<E> {
    let by_id = Uuid::try_parse(key).ok().filter(|_| key.len() == 36).and_then(|id| cfg.snapshot.get(E::TABLE, id));
    let found = by_id.or_else(|| {
        let owner = cfg.snapshot.unique_owner(&E::endpoint_index(key, scope)?)?;
        cfg.snapshot.get(E::TABLE, owner)
    })?;
    if let Some(scope) = scope {
        if !scope.holds(&found.to_json()) {
            return None;
        }
    }
    E::from_entity(found)
}

/// The bytes a tag may hold in a filter (Kong's `tag_bytes`): printable ASCII but the
/// separators `,` and `/`, and the bytes of non-ASCII UTF-8.
pub(super) fn tag_byte(b: u8) -> bool {
    matches!(b, 0x20..=0x2B | 0x2D | 0x2E | 0x30..=0x7E | 0x80..=0xF4)
}

/// Kong's `?tags=`: `a,b` asks for both tags, `a/b` for either; at most five.
struct TagFilter<'q> {
    tags: Vec<&'q str>,
    any: bool,
}

impl<'q> TagFilter<'q> {
    fn parse(query: Option<&'q str>) -> Result<TagFilter<'q>, KongError> {
        let Some(query) = query else { return Ok(TagFilter { tags: Vec::new(), any: false }) };
        let any = query.contains('/');
        let mut tags: Vec<&str> = query.split(if any { '/' } else { ',' }).collect();
        // One separator kind throughout, as Kong's patterns ask; a trailing one is allowed.
        if tags.len() > 1 && tags.last() == Some(&"") {
            tags.pop();
        }
        if (any && query.contains(',')) || tags.iter().any(|t| t.is_empty() || !t.bytes().all(tag_byte)) {
            return Err(KongError::invalid_option("tags", "invalid filter syntax"));
        }
        if tags.len() > 5 {
            return Err(KongError::invalid_option("tags", "cannot query more than 5 tags"));
        }
        Ok(TagFilter { tags, any })
    }

    fn admits(&self, entity: &Value) -> bool {
        if self.tags.is_empty() {
            return true;
        }
        let Some(has) = entity["tags"].as_array() else { return false };
        let tagged = |t: &&str| has.iter().any(|x| x == *t);
        if self.any {
            self.tags.iter().any(tagged)
        } else {
            self.tags.iter().all(tagged)
        }
    }
}

/// Kong's `?size=`: 100 rows a page unless asked, at most 1000.
pub(super) fn page_size(req: &AdminRequest) -> Result<usize, KongError> {
    match req.query("size") {
        None => Ok(DEFAULT_PAGE),
        Some(s) => s.parse::<usize>().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(KongError::invalid_size),
    }
}

pub fn list<E: AdminEntity>(cfg: &AppliedConfig, scope: Option<Scope>, req: &AdminRequest, path: &str) -> Response<Body> {
    let size = match page_size(req) {
        Ok(size) => size,
        Err(e) => return kong(e),
    };
    let after = match req.query("offset") {
        None => None,
        Some(o) => match Uuid::try_parse(o) {
            Ok(id) => Some(id),
            Err(e) => return kong(KongError::invalid_offset(o, &e.to_string())),
        },
    };
    let now = unix_now();
    let tags = match TagFilter::parse(req.query("tags")) {
        Ok(t) => t,
        Err(e) => return kong(e),
    };
    let mut page: Vec<(Uuid, Value)> = cfg
        .snapshot
        .entities()
        .into_iter()
        .filter(|e| e.table() == E::TABLE && after.is_none_or(|a| e.id() > a))
        .filter_map(|e| Some((e.id(), shown(&e, now)?)))
        .filter(|(_, j)| scope.is_none_or(|s| s.holds(j)))
        .filter(|(_, j)| tags.admits(j))
        .collect();
    page.sort_by_key(|(id, _)| *id);
    let more = page.len() > size;
    page.truncate(size);
    let mut body = json!({ "data": page.iter().map(|(_, j)| j.clone()).collect::<Vec<_>>(), "next": Value::Null });
    if more {
        let last = page.last().map(|(id, _)| id.to_string()).unwrap_or_default();
        body["offset"] = Value::String(last.clone());
        let mut next = format!("{path}?offset={last}");
        if req.query("size").is_some() {
            next.push_str(&format!("&size={size}"));
        }
        if let Some(t) = req.query("tags") {
            next.push_str(&format!("&tags={t}"));
        }
        body["next"] = Value::String(next);
    }
    json_response(StatusCode::OK, &body)
}

/// Kong's `GET /consumers?custom_id=`: the one consumer with that custom_id, as a page.
pub fn consumer_by_custom_id(cfg: &AppliedConfig, custom_id: &str) -> Response<Body> {
    if custom_id.is_empty() {
        return json_response(StatusCode::BAD_REQUEST, &json!({ "message": "custom_id must be an unempty string" }));
    }
    let found: Vec<Value> = cfg.snapshot.consumer_by_custom_id(custom_id).map(|c| Entity::Consumer(c.clone()).to_json()).into_iter().collect();
    json_response(StatusCode::OK, &json!({ "data": found, "next": Value::Null }))
}

pub fn get<E: AdminEntity>(cfg: &AppliedConfig, scope: Option<Scope>, key: &str) -> Response<Body> {
    match lookup::<E>(cfg, scope, key).and_then(|e| shown(&e.into(), unix_now())) {
        Some(json) => json_response(StatusCode::OK, &json),
        None => not_found(),
    }
}

/// What a read shows of `entity` at `now` (Unix seconds): nothing of a credential past its
/// ttl, which Kong's database no longer returns, and the seconds a ttl has left, rounded
/// down as Kong's are (the stored ttl counts from `created_at`).
pub(super) fn shown(entity: &Entity, now: f64) -> Option<Value> {
    let mut json = entity.to_json();
    if let Entity::KeyAuthCredential(c) = entity {
        if let Some(left) = c.ttl_left(now) {
            if c.is_expired(|| now) {
                return None;
            }
            json["ttl"] = json!(left);
        }
    }
    Some(json)
}

/// The body as input, with the path's parent filled in and foreign names resolved.
pub(super) fn input_for<E: AdminEntity>(req: &AdminRequest, scope: Option<Scope>) -> Result<Map<String, Value>, Response<Body>> {
    let mut input = entity_input::<E>(req).map_err(|b| json_response(b.status, &json!({ "message": b.message })))?;
    if let Some(scope) = scope {
        input.insert(scope.field.to_owned(), json!({ "id": scope.id }));
    }
    Ok(input)
}

/// The checks every upsert makes against the view it is computed on.
pub(super) fn checked(cfg: &AppliedConfig, entity: Entity) -> Result<Entity, KongError> {
    cfg.snapshot.missing_references(&entity)?;
    cfg.snapshot.unique_conflict(&entity)?;
    Ok(entity)
}

pub async fn post<E: AdminEntity>(ctx: &AdminContext, scope: Option<Scope>, req: &AdminRequest) -> Response<Body> {
    let input = match input_for::<E>(req, scope) {
        Ok(i) => i,
        Err(resp) => return resp,
    };
    let now = unix_now();
    let result = commit(ctx, |cfg| {
        let mut input = input.clone();
        cfg.snapshot.resolve_foreign_names(&mut input)?;
        let created: E = create(&Value::Object(input), now)?;
        if cfg.snapshot.get(E::TABLE, created.id()).is_some() {
            return Err(KongError::primary_key_violation(json!({ "id": created.id() })));
        }
        let entity = checked(cfg, created.clone().into())?;
        Ok((vec![Change::Put { new: entity, old: None }], created))
    })
    .await;
    respond(StatusCode::CREATED, result)
}

pub async fn put<E: AdminEntity>(ctx: &AdminContext, scope: Option<Scope>, key: &str, req: &AdminRequest) -> Response<Body> {
    let input = match input_for::<E>(req, scope) {
        Ok(i) => i,
        Err(resp) => return resp,
    };
    let now = unix_now();
    let result = commit(ctx, |cfg| {
        let mut input = input.clone();
        cfg.snapshot.resolve_foreign_names(&mut input)?;
        let existing = lookup::<E>(cfg, scope, key);
        let replaced: E = replace(existing.as_ref(), &PutKey::from_segment(key), &Value::Object(input), now)?;
        let entity = checked(cfg, replaced.clone().into())?;
        Ok((vec![Change::Put { new: entity, old: existing.map(Into::into) }], replaced))
    })
    .await;
    respond(StatusCode::OK, result)
}

pub async fn patch_one<E: AdminEntity>(ctx: &AdminContext, scope: Option<Scope>, key: &str, req: &AdminRequest) -> Response<Body> {
    patch_where::<E>(ctx, req, |cfg| lookup::<E>(cfg, scope, key).map(|e| (e, None))).await
}

/// PATCH on what `find` finds in the config the write is planned against: the entity,
/// and one that must not change meanwhile (the holder it was reached through). 404 when
/// it finds nothing.
pub async fn patch_where<E: AdminEntity>(
    ctx: &AdminContext,
    req: &AdminRequest,
    find: impl Fn(&AppliedConfig) -> Option<(E, Option<Entity>)>,
) -> Response<Body> {
    let input = match input_for::<E>(req, None) {
        Ok(i) => i,
        Err(resp) => return resp,
    };
    let now = unix_now();
    let form = is_form(req);
    let result = commit(ctx, |cfg| {
        let Some((existing, through)) = find(cfg).filter(|(e, _)| !e.expired_at(now)) else {
            return Ok((vec![], None));
        };
        let mut input = input.clone();
        if form {
            coerce_patch_form(&existing, &mut input);
        }
        cfg.snapshot.resolve_foreign_names(&mut input)?;
        let updated: E = patch(&existing, &Value::Object(input), now)?;
        let entity = checked(cfg, updated.clone().into())?;
        let mut changes = vec![Change::Put { new: entity, old: Some(existing.into()) }];
        changes.extend(through.map(Change::Unchanged));
        Ok((changes, Some(updated)))
    })
    .await;
    match result {
        Ok(None) => not_found(),
        other => respond(StatusCode::OK, other.map(|e| e.expect("None handled above"))),
    }
}

pub async fn delete<E: AdminEntity>(ctx: &AdminContext, scope: Option<Scope>, key: &str) -> Response<Body> {
    let result = commit(ctx, |cfg| {
        let Some(existing) = lookup::<E>(cfg, scope, key) else {
            return Ok((vec![], false));
        };
        let entity: Entity = existing.into();
        cfg.snapshot.referenced_by(&entity)?;
        let mut changes: Vec<Change> = cfg.snapshot.cascade_of(&entity).into_iter().map(Change::Delete).collect();
        changes.push(Change::Delete(entity));
        Ok((changes, true))
    })
    .await;
    match result {
        // As Kong: deleting what is not there is done, but under a parent it is 404 (the
        // entity may be another parent's, which this path does not reach).
        Ok(false) if scope.is_some() => not_found(),
        Ok(_) => Response::builder().status(StatusCode::NO_CONTENT).body(crate::http::empty()).expect("static response"),
        Err(e) => write_error(e),
    }
}

#[cfg(test)]
#[path = "entities_tests.rs"]
mod tests;
