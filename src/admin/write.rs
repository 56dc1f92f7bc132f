//! Writing configuration: a set of entity changes becomes one store transaction whose
//! preconditions are the revisions of everything the validation looked at (the entity,
//! its unique index keys, the parents it references). If any moved meanwhile, the view
//! is refreshed and the change recomputed, so two nodes racing can never break
//! uniqueness or leave a dangling reference.

use std::collections::BTreeMap;
use std::time::Duration;

use gatehouse_raft::{Command, Compare, Response, StoreError, TxnOp};
use hyper::StatusCode;
use serde_json::Value;

use super::server::AdminContext;
use crate::applied::AppliedConfig;
use crate::model::storage::entity_key;
use crate::model::{Entity, KongError};

/// How often a change is recomputed after losing a race before giving up with 409.
const ATTEMPTS: usize = 8;

pub enum Change {
    Put { new: Entity, old: Option<Entity> },
    Delete(Entity),
    /// No write, a precondition: the transaction fails (and is planned again) if this
    /// entity changed meanwhile, as when a write reaches its target through it.
    Unchanged(Entity),
}

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// Invalid input, a conflict, a missing reference: Kong's error.
    Kong(KongError),
    /// No leader or quorum: nothing was written.
    Unavailable(String),
    /// The leader failed mid-way: the change may or may not have been applied.
    Uncertain(String),
    /// More than one write may carry: nothing was written.
    TooLarge(String),
}

impl From<KongError> for WriteError {
    fn from(e: KongError) -> Self {
        WriteError::Kong(e)
    }
}

impl WriteError {
    pub fn status_and_body(&self) -> (StatusCode, Value) {
        match self {
            WriteError::Kong(e) => (StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST), e.to_json()),
            WriteError::Unavailable(m) => {
                (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "message": format!("cluster unavailable: {m}") }))
            }
            WriteError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, serde_json::json!({ "message": m })),
            WriteError::Uncertain(m) => (
                StatusCode::GATEWAY_TIMEOUT,
                serde_json::json!({ "message": format!("the change may or may not have been applied: {m}") }),
            ),
        }
    }
}

fn store_error(e: StoreError) -> WriteError {
    match e {
        StoreError::NoLeader(_) | StoreError::ShuttingDown | StoreError::Refused(_) => WriteError::Unavailable(e.to_string()),
        StoreError::TooLarge { .. } => WriteError::TooLarge(e.to_string()),
        other => WriteError::Uncertain(other.to_string()),
    }
}

/// The parents an entity references: `(field's table, id)`.
fn parents(entity: &Entity) -> Vec<(&'static str, uuid::Uuid)> {
    let json = entity.to_json();
    [("service", "services"), ("route", "routes"), ("consumer", "consumers"), ("upstream", "upstreams")]
        .into_iter()
        .filter_map(|(field, table)| {
            let id = json.get(field)?.get("id")?.as_str()?;
            Some((table, uuid::Uuid::try_parse(id).ok()?))
        })
        .collect()
}

/// The transaction that applies `changes` if nothing they depend on moved since `cfg`.
pub fn build_txn(cfg: &AppliedConfig, changes: &[Change]) -> Command {
    let mut compares: BTreeMap<String, u64> = BTreeMap::new();
    let mut ops: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let touched: std::collections::BTreeSet<String> = changes
        .iter()
        .map(|c| match c {
            Change::Put { new, .. } => new.storage_key(),
            Change::Delete(e) | Change::Unchanged(e) => e.storage_key(),
        })
        .collect();
    let mut expect = |key: &str| {
        compares.entry(key.to_owned()).or_insert_with(|| cfg.mod_revision(key));
    };
    // Deletes first, so that a unique key handed from one entity to another in the same
    // transaction ends up written.
    for change in changes {
        if let Change::Unchanged(e) = change {
            expect(&e.storage_key());
        }
        if let Change::Delete(e) = change {
            expect(&e.storage_key());
            ops.insert(e.storage_key(), None);
            for (k, _) in e.unique_keys() {
                expect(&k);
                ops.insert(k, None);
            }
        }
        if let Change::Put { old: Some(old), new } = change {
            let kept: Vec<String> = new.unique_keys().into_iter().map(|(k, _)| k).collect();
            for (k, _) in old.unique_keys() {
                if !kept.contains(&k) {
                    expect(&k);
                    ops.insert(k, None);
                }
            }
        }
    }
    for change in changes {
        let Change::Put { new, .. } = change else { continue };
        expect(&new.storage_key());
        ops.insert(new.storage_key(), Some(new.to_bytes()));
        for (k, _) in new.unique_keys() {
            expect(&k);
            ops.insert(k, Some(new.id().to_string().into_bytes()));
        }
        // Rewriting each parent (same bytes, new revision) makes a concurrent delete of
        // the parent fail its precondition instead of orphaning this entity.
        for (table, id) in parents(new) {
            let key = entity_key(table, id);
            if touched.contains(&key) {
                continue;
            }
            if let Some(parent) = cfg.snapshot.get(table, id) {
                expect(&key);
                ops.insert(key, Some(parent.to_bytes()));
            }
        }
    }
    Command::Txn {
        compares: compares.into_iter().map(|(key, mod_revision)| Compare { key, mod_revision }).collect(),
        ops: ops
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => TxnOp::Put { key, value, expires_at: None },
                None => TxnOp::Delete { key },
            })
            .collect(),
    }
}

/// Waits until this node's view holds everything committed before now (a read barrier
/// through the leader, so it needs a quorum).
pub async fn catch_up(ctx: &AdminContext) -> Result<(), WriteError> {
    ctx.store.read_barrier().await.map_err(store_error)?;
    let target = ctx.store.revision();
    if tokio::time::timeout(Duration::from_secs(5), ctx.applied.at_least(target)).await.is_err() {
        return Err(WriteError::Unavailable("this node's configuration view is not catching up".into()));
    }
    Ok(())
}

/// Waits until this node's proxy routes by `revision`: a client that curls the node
/// right after its write was acknowledged finds the change. The rebuild is milliseconds
/// even with 10,000 routes; the bound only keeps a stuck rebuild from holding the
/// answer of a write that is committed either way.
async fn served_here(ctx: &AdminContext, revision: u64) {
    if tokio::time::timeout(Duration::from_secs(5), ctx.proxy.serving_at_least(revision)).await.is_err() {
        tracing::warn!(revision, "acknowledging a write this node's proxy does not route by yet");
    }
}

/// Computes changes with `plan` against the current view and commits them; recomputes
/// against a fresher view when a precondition failed. Returns `plan`'s output once
/// committed and visible on this node.
pub async fn commit<T>(ctx: &AdminContext, mut plan: impl FnMut(&AppliedConfig) -> Result<(Vec<Change>, T), KongError>) -> Result<T, WriteError> {
    let mut caught_up = false;
    for _ in 0..ATTEMPTS {
        let cfg = ctx.applied.get();
        let (changes, out) = plan(&cfg)?;
        if changes.is_empty() {
            // Nothing to write, judged from this node's view, which may be stale (a
            // partitioned follower): a DELETE answered 204 here while the entity lives on
            // would be a lie. Catch up with the leader first (which takes a quorum),
            // and only then trust that there is nothing to do.
            if caught_up {
                return Ok(out);
            }
            catch_up(ctx).await?;
            caught_up = true;
            continue;
        }
        let written = ctx.store.write(build_txn(&cfg, &changes)).await.map_err(store_error)?;
        match written.response {
            Response::Txn { failed: None, revision } => {
                ctx.applied.at_least(revision).await;
                served_here(ctx, revision).await;
                return Ok(out);
            }
            Response::Txn { failed: Some(f), .. } => {
                tracing::debug!(key = %f.key, expected = f.expected, actual = f.actual, "config changed under a write; retrying");
                catch_up(ctx).await?;
                caught_up = true;
            }
            other => return Err(WriteError::Uncertain(format!("unexpected store response {other:?}"))),
        }
    }
    Err(WriteError::Kong(KongError::new(5, "the configuration kept changing under this request; retry it", Value::Null)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{create, ConfigSnapshot, Route, Service};

    /// A write that reached its target through a holder fails if the holder changed:
    /// the holder's key is compared at the revision this view saw, and left as it is.
    #[test]
    fn an_unchanged_entity_is_compared_and_not_written() {
        let service: Service = create(&json!({ "name": "s", "url": "http://u" }), 1.0).unwrap();
        let route: Route = create(&json!({ "name": "r", "paths": ["/r"], "service": { "id": service.id } }), 1.0).unwrap();
        let (service, route) = (Entity::from(service), Entity::from(route));
        let mut cfg = AppliedConfig { snapshot: ConfigSnapshot::from_entities([service.clone(), route.clone()]), ..AppliedConfig::default() };
        cfg.mod_revisions.insert(route.storage_key(), 7);
        let Command::Txn { compares, ops } = build_txn(&cfg, &[Change::Put { new: service.clone(), old: Some(service.clone()) }, Change::Unchanged(route.clone())]) else {
            panic!("a config write is a transaction");
        };
        assert!(compares.iter().any(|c| c.key == route.storage_key() && c.mod_revision == 7), "{compares:?}");
        assert!(ops.iter().all(|op| !matches!(op, TxnOp::Put { key, .. } | TxnOp::Delete { key } if *key == route.storage_key())), "{ops:?}");
        assert!(ops.iter().any(|op| matches!(op, TxnOp::Put { key, .. } if *key == service.storage_key())), "{ops:?}");
    }

    /// A change over what one write may carry was never written: 413, with the sizes,
    /// not the 504 of an outcome unknown.
    #[test]
    fn a_change_too_large_for_one_write_is_a_413_that_says_so() {
        let (status, body) = store_error(StoreError::TooLarge { bytes: 40 << 20, limit: 32 << 20 }).status_and_body();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("41943040 bytes, over the 33554432") && message.contains("make it in parts"), "{message}");
    }
}
