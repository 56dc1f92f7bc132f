//! Deleting credentials past their ttl, as Kong's database drops expired rows. Reads
//! hide an expired credential at once (`entities::shown`) and key-auth refuses it; this
//! sweep, run by the leader, removes it from the replicated store, so that short-lived
//! keys do not pile up in every node's memory, snapshot and unique index.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_raft::Role;

use super::server::AdminContext;
use super::write::{commit, Change};
use crate::model::{unix_now, ConfigSnapshot, Entity};
use crate::shutdown::Shutdown;

/// The most credentials one sweep deletes: one Raft entry stays small, and a backlog
/// goes in the sweeps after.
const BATCH: usize = 1_000;

/// Credentials expired at `now` (Unix seconds), at most `limit` of them.
pub fn expired(snapshot: &ConfigSnapshot, now: f64, limit: usize) -> Vec<Entity> {
    snapshot
        .keyauth_credentials
        .values()
        .filter(|c| c.is_expired(|| now))
        .take(limit)
        .map(|c| Entity::KeyAuthCredential(c.clone()))
        .collect()
}

/// Every `every`, while this node leads, deletes the credentials that have expired.
/// Followers only look: two nodes deleting the same credential would both be right, but
/// the loser's write would be a wasted Raft round.
pub async fn sweep_loop(ctx: Arc<AdminContext>, every: Duration, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if ctx.store.status().role != Role::Leader || expired(&ctx.applied.get().snapshot, unix_now(), 1).is_empty() {
            continue;
        }
        let now = unix_now();
        let deleted = commit(&ctx, |cfg| {
            let gone = expired(&cfg.snapshot, now, BATCH);
            let count = gone.len();
            Ok((gone.into_iter().map(Change::Delete).collect(), count))
        })
        .await;
        match deleted {
            Ok(count) => tracing::info!(count, "deleted credentials past their ttl"),
            Err(e) => tracing::warn!(error = ?e, "could not delete credentials past their ttl; the next sweep tries again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{create, KeyAuthCredential};

    fn credential(key: &str, ttl: Option<u32>, created_at: f64) -> Entity {
        let consumer = uuid::Uuid::from_u128(1);
        let mut input = json!({ "consumer": { "id": consumer }, "key": key });
        if let Some(ttl) = ttl {
            input["ttl"] = json!(ttl);
        }
        Entity::KeyAuthCredential(create::<KeyAuthCredential>(&input, created_at).unwrap())
    }

    #[test]
    fn only_credentials_past_their_ttl_are_expired_and_at_most_the_limit() {
        let snapshot = ConfigSnapshot::from_entities([
            credential("forever", None, 1_000.0),
            credential("zero-is-forever", Some(0), 1_000.0),
            credential("short", Some(10), 1_000.0),
            credential("shorter", Some(5), 1_000.0),
            credential("long", Some(100), 1_000.0),
        ]);
        let keys = |now: f64, limit: usize| {
            let mut ttls: Vec<u32> = expired(&snapshot, now, limit)
                .into_iter()
                .map(|e| match e {
                    Entity::KeyAuthCredential(c) => c.ttl.unwrap(),
                    other => panic!("{other:?}"),
                })
                .collect();
            ttls.sort();
            ttls
        };
        assert_eq!(keys(1_004.0, 10), Vec::<u32>::new());
        assert_eq!(keys(1_005.0, 10), vec![5]);
        assert_eq!(keys(1_010.0, 10), vec![5, 10]);
        assert_eq!(keys(1_010.0, 1).len(), 1);
        assert_eq!(keys(9_999.0, 10), vec![5, 10, 100]);
    }
}
