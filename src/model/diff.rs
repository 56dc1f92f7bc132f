//! `ConfigDiff`: what applying a set of entities (a parsed declarative file) to the
//! current configuration creates, updates and deletes, timestamps aside.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use super::any::Entity;
use super::snapshot::ConfigSnapshot;
use super::storage::TABLES;

/// Changes per entity, ordered so they can be applied in sequence: creates and updates
/// parents first, deletes children first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigDiff {
    pub creates: Vec<Entity>,
    /// `(current, desired)`.
    pub updates: Vec<(Entity, Entity)>,
    pub deletes: Vec<Entity>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.updates.is_empty() && self.deletes.is_empty()
    }

    /// Counts per table: `{"services": {"create": 1, "update": 0, "delete": 2}, ...}`,
    /// every table present.
    pub fn summary(&self) -> Value {
        let mut counts: BTreeMap<&str, [u64; 3]> = TABLES.iter().map(|t| (*t, [0u64; 3])).collect();
        for e in &self.creates {
            counts.entry(e.table()).or_default()[0] += 1;
        }
        for (_, e) in &self.updates {
            counts.entry(e.table()).or_default()[1] += 1;
        }
        for e in &self.deletes {
            counts.entry(e.table()).or_default()[2] += 1;
        }
        let m: Map<String, Value> = counts
            .into_iter()
            .map(|(t, [c, u, d])| {
                (
                    t.to_string(),
                    json!({"create": c, "update": u, "delete": d}),
                )
            })
            .collect();
        Value::Object(m)
    }
}

/// Compares the desired entities with the snapshot by table and id: new ids are
/// creates, ids whose content (all fields but `created_at`/`updated_at`) changed are
/// updates, and ids of the snapshot absent from `desired` are deletes.
pub fn diff(current: &ConfigSnapshot, desired: &[Entity]) -> ConfigDiff {
    let mut out = ConfigDiff::default();
    let mut wanted: HashSet<(&str, uuid::Uuid)> = HashSet::new();
    for e in desired {
        wanted.insert((e.table(), e.id()));
        match current.get(e.table(), e.id()) {
            None => out.creates.push(e.clone()),
            Some(old) if old.content() != e.content() => out.updates.push((old, e.clone())),
            Some(_) => {}
        }
    }
    for e in current.entities() {
        if !wanted.contains(&(e.table(), e.id())) {
            out.deletes.push(e);
        }
    }
    out.creates.sort_by_key(Entity::table_rank);
    out.updates.sort_by_key(|(_, e)| e.table_rank());
    out.deletes
        .sort_by_key(|e| std::cmp::Reverse(e.table_rank()));
    out
}
