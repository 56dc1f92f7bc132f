//! The configuration as this node has applied it: a `ConfigSnapshot` plus the store
//! revision of every config key, kept in step with the store by one watch and published
//! as an immutable `Arc` (readers never lock). The Admin API validates against it and
//! uses its revisions as transaction preconditions; the proxy compiles it into routes.

use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_raft::{EventKind, Store, WatchEvent};
use tokio::sync::watch;

use crate::model::storage::CONFIG_PREFIX;
use crate::model::{ConfigSnapshot, Entity};
use crate::shutdown::Shutdown;

/// One consistent view: every entity and index key as of `revision`.
#[derive(Debug, Clone, Default)]
pub struct AppliedConfig {
    pub revision: u64,
    pub snapshot: ConfigSnapshot,
    /// `mod_revision` of every key under `config/` (entities and unique indexes); a
    /// persistent map, so that each new view shares the unchanged keys with the last.
    pub mod_revisions: imbl::HashMap<String, u64>,
}

impl AppliedConfig {
    /// The revision a transaction must find on `key` for this view to still hold
    /// (0: absent).
    pub fn mod_revision(&self, key: &str) -> u64 {
        self.mod_revisions.get(key).copied().unwrap_or(0)
    }

    /// A SHA-256 over every config key and the revision that last changed it: two nodes
    /// with equal digests hold the same configuration (revisions name committed writes).
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut keys: Vec<(&String, &u64)> = self.mod_revisions.iter().collect();
        keys.sort_unstable();
        let mut hasher = Sha256::new();
        for (key, revision) in keys {
            hasher.update(key.as_bytes());
            hasher.update([0]);
            hasher.update(revision.to_be_bytes());
        }
        hex::encode(hasher.finalize())
    }

    fn load(entries: Vec<(String, gatehouse_raft::KeyValue)>, revision: u64) -> AppliedConfig {
        let mut config = AppliedConfig { revision, ..AppliedConfig::default() };
        for (key, kv) in entries {
            config.put(&key, &kv.value, kv.mod_revision);
        }
        config
    }

    fn put(&mut self, key: &str, value: &[u8], mod_revision: u64) {
        self.mod_revisions.insert(key.to_owned(), mod_revision);
        match Entity::from_store(key, value) {
            Some(Ok(entity)) => self.snapshot.insert(entity),
            Some(Err(e)) => tracing::error!(%key, error = %e, "ignoring an unreadable config entry"),
            None => {}
        }
    }

    fn delete(&mut self, key: &str) {
        self.mod_revisions.remove(key);
        if let Some((table, id)) = crate::model::storage::parse_entity_key(key) {
            self.snapshot.remove(table, id);
        }
    }
}

/// The shared handle: the current view, and revision channels to wait on.
#[derive(Clone)]
pub struct Applied {
    current: Arc<ArcSwap<AppliedConfig>>,
    /// The store revision this view is complete up to: config changes up to it are in
    /// `current` (other keys, such as rate-limit counters, only move it forward).
    seen: watch::Sender<u64>,
    /// The revision of the last configuration change, for consumers that rebuild.
    config: watch::Sender<u64>,
}

impl Applied {
    pub fn get(&self) -> Arc<AppliedConfig> {
        self.current.load_full()
    }

    /// Waits until the view has caught up with `revision` of the store (the watch
    /// applies within microseconds of the store; this closes that gap for
    /// read-your-writes).
    pub async fn at_least(&self, revision: u64) -> Arc<AppliedConfig> {
        let mut rx = self.seen.subscribe();
        let _ = rx.wait_for(|r| *r >= revision).await;
        self.get()
    }

    /// A receiver that changes whenever the configuration changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.config.subscribe()
    }

    /// Loads the current configuration and keeps it current until shutdown.
    pub fn start(store: Store, shutdown: Shutdown) -> Applied {
        let (config, watcher) = load(&store);
        let revision = config.revision;
        let applied = Applied {
            current: Arc::new(ArcSwap::from_pointee(config)),
            seen: watch::channel(revision).0,
            config: watch::channel(revision).0,
        };
        tokio::spawn(follow(store, applied.clone(), watcher, shutdown));
        applied
    }
}

/// A consistent scan of the configuration and a watcher of every key continuing from it
/// (every key, so that the seen revision follows the store's exactly).
fn load(store: &Store) -> (AppliedConfig, gatehouse_raft::Watcher) {
    let (entries, revision, watcher) = store.snapshot_and_watch("");
    let config = entries.into_iter().filter(|(k, _)| k.starts_with(CONFIG_PREFIX)).collect();
    (AppliedConfig::load(config, revision), watcher)
}

async fn follow(store: Store, applied: Applied, mut watcher: gatehouse_raft::Watcher, mut shutdown: Shutdown) {
    loop {
        let first = tokio::select! {
            _ = shutdown.wait() => return,
            e = watcher.next() => e,
        };
        // Apply everything already committed as one new view: a burst of changes (a
        // declarative load) costs one copy and one router rebuild, not one per key;
        // a burst of rate-limit counters costs no copy at all.
        let mut working: Option<AppliedConfig> = None;
        let mut seen = *applied.seen.borrow();
        let mut next = Some(first);
        let mut resync = false;
        while let Some(event) = next {
            match event {
                Ok(WatchEvent::Change(e)) => {
                    seen = seen.max(e.revision);
                    if !e.key.starts_with(CONFIG_PREFIX) {
                        next = watcher.try_next();
                        continue;
                    }
                    let working = working.get_or_insert_with(|| (*applied.get()).clone());
                    working.revision = e.revision;
                    match e.kind {
                        EventKind::Put(kv) => working.put(&e.key, &kv.value, kv.mod_revision),
                        EventKind::Delete { .. } => working.delete(&e.key),
                    }
                }
                Ok(WatchEvent::Reset { .. }) | Err(gatehouse_raft::WatchError::Lagged { .. }) => resync = true,
                Err(gatehouse_raft::WatchError::Compacted { .. }) => resync = true,
                Err(gatehouse_raft::WatchError::Closed) => return,
            }
            next = watcher.try_next();
        }
        if resync {
            // The map was replaced (snapshot install) or we fell behind: start over from
            // a consistent scan, with a watcher that continues exactly from it.
            let (config, fresh) = load(&store);
            seen = config.revision;
            working = Some(config);
            watcher = fresh;
        }
        // The view first, then the revision: whoever waits on the revision finds the view.
        if let Some(config) = working {
            let revision = config.revision;
            applied.current.store(Arc::new(config));
            applied.config.send_replace(revision);
        }
        applied.seen.send_replace(seen);
    }
}

#[cfg(test)]
mod tests {
    use super::AppliedConfig;

    fn config(keys: &[(&str, u64)]) -> AppliedConfig {
        let mut c = AppliedConfig::default();
        for (key, revision) in keys {
            c.mod_revisions.insert((*key).to_owned(), *revision);
        }
        c
    }

    #[test]
    fn digest_depends_on_keys_and_revisions_not_on_insertion_order() {
        let a = config(&[("config/a", 3), ("config/b", 5)]);
        let b = config(&[("config/b", 5), ("config/a", 3)]);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), config(&[("config/a", 3), ("config/b", 6)]).digest());
        assert_ne!(a.digest(), config(&[("config/a", 3)]).digest());
        // The separator keeps "ab"+"c" apart from "a"+"bc".
        assert_ne!(config(&[("ab", 1), ("c", 1)]).digest(), config(&[("a", 1), ("bc", 1)]).digest());
    }
}
