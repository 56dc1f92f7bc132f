//! Kong's declarative configuration (`_format_version: "3.0"`, YAML or JSON): parsing
//! into validated entities with ids and references resolved, and exporting a snapshot
//! in the same nested shape.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::any::Entity;
use super::consumer::{hash_key, Consumer, KeyAuthCredential};
use super::entity::{create, unix_now};
use super::error::KongError;
use super::plugin::Plugin;
use super::route::Route;
use super::service::Service;
use super::snapshot::ConfigSnapshot;
use super::storage::TABLES;
use super::target::{normalize_target, Target};
use super::upstream::Upstream;

/// The format version gatehouse reads and writes.
pub const FORMAT_VERSION: &str = "3.0";

#[derive(Debug, Clone)]
enum Seg {
    Key(&'static str),
    Index(usize),
}

/// One entity as found in the file, before validation.
struct Raw {
    table: &'static str,
    map: Map<String, Value>,
    path: Vec<Seg>,
    /// The foreign key field set by nesting, and the parent's position in the raw list.
    parent: Option<(&'static str, usize)>,
    id: Option<Uuid>,
}

/// Nested collections: (parent table, key in the parent, child table, child's fk field).
const NESTED: [(&str, &str, &str, &str); 6] = [
    ("services", "routes", "routes", "service"),
    ("services", "plugins", "plugins", "service"),
    ("routes", "plugins", "plugins", "route"),
    ("upstreams", "targets", "targets", "upstream"),
    (
        "consumers",
        "keyauth_credentials",
        "keyauth_credentials",
        "consumer",
    ),
    ("consumers", "plugins", "plugins", "consumer"),
];

/// A uuid that depends only on the table and the entity's natural key.
pub fn deterministic_id(table: &str, key: &str) -> Uuid {
    let digest = Sha256::digest(format!("gatehouse:{table}:{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

fn str_field<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// The key field a string reference names in a table.
fn ref_key(table: &str) -> &'static str {
    match table {
        "consumers" => "username",
        _ => "name",
    }
}

/// Resolves a reference (`"name"`, `"<uuid>"`, `{"id": ..}`, `{"name": ..}`) to an
/// entity of the file.
fn resolve(raws: &[Raw], table: &str, field: &str, v: &Value) -> Result<Uuid, String> {
    let key = ref_key(table);
    let (by_key, by_id) = match v {
        Value::String(s) => (Some(s.as_str()), Some(s.as_str())),
        Value::Object(o) => (str_field(o, key), str_field(o, "id")),
        _ => return Err("expected a string or a record".into()),
    };
    let shown = by_id.or(by_key).unwrap_or("?");
    let in_table = || raws.iter().filter(|r| r.table == table);
    if let Some(k) = by_key {
        if let Some(r) = in_table().find(|r| str_field(&r.map, key) == Some(k)) {
            return r.id.ok_or_else(|| "unresolved".to_string());
        }
    }
    if let Some(id) = by_id.and_then(|s| Uuid::try_parse(s).ok()) {
        if in_table().any(|r| r.id == Some(id)) {
            return Ok(id);
        }
    }
    Err(format!(
        "invalid reference '{field}: {shown}' (no such entry in '{table}')"
    ))
}

fn fk_table(field: &str) -> &'static str {
    match field {
        "service" => "services",
        "route" => "routes",
        "upstream" => "upstreams",
        _ => "consumers",
    }
}

/// The existing id with the same endpoint key, else a deterministic one.
fn assign_id(raw: &Raw, existing: &ConfigSnapshot, parent_id: Option<Uuid>) -> Uuid {
    let m = &raw.map;
    if let Some(id) = str_field(m, "id").and_then(|s| Uuid::try_parse(s).ok()) {
        return id;
    }
    let fk = |f: &str| -> String {
        m.get(f)
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (reuse, natural): (Option<Uuid>, String) = match raw.table {
        "services" | "routes" | "upstreams" => {
            let name = str_field(m, "name");
            let reuse = name.and_then(|n| match raw.table {
                "services" => existing.service_by_id_or_name(n).map(|e| e.id),
                "routes" => existing.route_by_id_or_name(n).map(|e| e.id),
                _ => existing.upstream_by_id_or_name(n).map(|e| e.id),
            });
            let natural = match name {
                Some(n) => format!("name={n}"),
                None => format!(
                    "{}|{}",
                    parent_id.map(|p| p.to_string()).unwrap_or_default(),
                    Value::Object(m.clone())
                ),
            };
            (reuse, natural)
        }
        "consumers" => {
            let u = str_field(m, "username");
            let c = str_field(m, "custom_id");
            let reuse = u
                .and_then(|u| existing.consumer_by_id_or_username(u).map(|e| e.id))
                .or_else(|| c.and_then(|c| existing.consumer_by_custom_id(c).map(|e| e.id)));
            (
                reuse,
                format!("username={}|custom_id={}", u.unwrap_or(""), c.unwrap_or("")),
            )
        }
        "targets" => {
            let t = str_field(m, "target")
                .map(|t| normalize_target(t).unwrap_or_else(|_| t.to_string()))
                .unwrap_or_default();
            let up = fk("upstream");
            let reuse = Uuid::try_parse(&up)
                .ok()
                .and_then(|u| existing.target_by_id_or_target(u, &t))
                .map(|e| e.id);
            (reuse, format!("{up}:{t}"))
        }
        "keyauth_credentials" => {
            let h = str_field(m, "key")
                .map(hash_key)
                .or_else(|| str_field(m, "key_hash").map(str::to_string))
                .unwrap_or_default();
            let reuse = existing.consumer_by_credential_hash(&h).map(|(c, _)| c.id);
            (reuse, h)
        }
        _ => {
            let key = format!(
                "{}:{}:{}:{}",
                str_field(m, "name").unwrap_or(""),
                fk("route"),
                fk("service"),
                fk("consumer")
            );
            let reuse = match str_field(m, "instance_name") {
                Some(n) => existing.plugin_by_id_or_instance_name(n).map(|p| p.id),
                None => existing
                    .plugins
                    .values()
                    .find(|p| p.cache_key() == key)
                    .map(|p| p.id),
            };
            (
                reuse,
                format!("{key}|{}", str_field(m, "instance_name").unwrap_or("")),
            )
        }
    };
    reuse.unwrap_or_else(|| deterministic_id(raw.table, &natural))
}

fn build(table: &str, input: &Value, now: f64) -> Result<Entity, KongError> {
    Ok(match table {
        "services" => create::<Service>(input, now)?.into(),
        "routes" => create::<Route>(input, now)?.into(),
        "upstreams" => create::<Upstream>(input, now)?.into(),
        "targets" => create::<Target>(input, now)?.into(),
        "consumers" => create::<Consumer>(input, now)?.into(),
        "keyauth_credentials" => create::<KeyAuthCredential>(input, now)?.into(),
        _ => create::<Plugin>(input, now)?.into(),
    })
}

/// Parses a declarative file against an empty configuration, at the current time.
pub fn parse_declarative(text: &str) -> Result<Vec<Entity>, KongError> {
    parse_declarative_with(text, &ConfigSnapshot::default(), unix_now())
}

/// Parses a declarative file (YAML or JSON) into validated entities, tables in
/// dependency order. An entity without an id keeps the id of the entity of `existing`
/// with the same endpoint key (name, username, target, key, plugin scope), or gets an
/// id derived from that key, so applying the same file twice changes nothing.
/// Entities equal to their `existing` version (timestamps aside) are returned as they
/// are stored. References must name entities of the file.
pub fn parse_declarative_with(
    text: &str,
    existing: &ConfigSnapshot,
    now: f64,
) -> Result<Vec<Entity>, KongError> {
    let doc = read_document(text)?;
    let Value::Object(mut doc) = doc else {
        return Err(KongError::declarative_config(
            json!({"@entity": ["expected a record"]}),
        ));
    };
    let mut errors = Value::Null;
    match doc.get("_format_version") {
        None | Some(Value::Null) => set_error(
            &mut errors,
            &[],
            json!({"_format_version": "required field missing"}),
        ),
        Some(v) => match legacy::is_legacy(v) {
            Some(false) => {}
            Some(true) => legacy::mark_regex_paths(&mut doc),
            None => set_error(
                &mut errors,
                &[],
                json!({"_format_version": format!("expected one of: {}", legacy::ACCEPTED.join(", "))}),
            ),
        },
    }
    doc.remove("_format_version");
    let mut raws = collect(doc, &mut errors);

    // Ids in dependency order: parents first, then children whose keys need their parents.
    for table in TABLES {
        for i in 0..raws.len() {
            if raws[i].table != table {
                continue;
            }
            let mut fk_errors: Vec<(String, String)> = Vec::new();
            if let Some((fk, p)) = raws[i].parent {
                let pid = raws[p].id;
                if let Some(pid) = pid {
                    raws[i].map.insert(fk.to_string(), json!({"id": pid}));
                }
            } else {
                let fks: &[&str] = match table {
                    "routes" => &["service"],
                    "targets" => &["upstream"],
                    "keyauth_credentials" => &["consumer"],
                    "plugins" => &["route", "service", "consumer"],
                    _ => &[],
                };
                for &fk in fks {
                    let Some(v) = raws[i].map.get(fk).cloned() else {
                        continue;
                    };
                    if v.is_null() {
                        continue;
                    }
                    match resolve(&raws, fk_table(fk), fk, &v) {
                        Ok(id) => {
                            raws[i].map.insert(fk.to_string(), json!({"id": id}));
                        }
                        Err(e) => fk_errors.push((fk.to_string(), e)),
                    }
                }
            }
            for (fk, e) in fk_errors {
                let path = raws[i].path.clone();
                set_error(&mut errors, &path, json!({ fk.clone(): e }));
                raws[i].map.remove(&fk);
            }
            let parent_id = raws[i].parent.and_then(|(_, p)| raws[p].id);
            raws[i].id = Some(assign_id(&raws[i], existing, parent_id));
        }
    }

    let mut out: Vec<(usize, Entity)> = Vec::new();
    let mut seen: HashMap<String, ()> = HashMap::new();
    for (i, raw) in raws.iter().enumerate() {
        let id = raw.id.expect("assigned");
        let mut input = raw.map.clone();
        input.insert("id".into(), json!(id));
        let old = existing.get(raw.table, id);
        match build(raw.table, &Value::Object(input), now) {
            Err(e) => set_error(
                &mut errors,
                &raw.path,
                if e.fields.is_null() {
                    json!(e.message)
                } else {
                    e.fields
                },
            ),
            Ok(mut e) => {
                if let Some(old) = &old {
                    e.keep_created_at(old);
                    if old.content() == e.content() {
                        e = old.clone();
                    }
                }
                let mut dup = false;
                for (k, fields) in e.unique_fields() {
                    if seen.insert(k, ()).is_some() {
                        let msg = format!(
                            "uniqueness violation: '{}' entity with {} already declared",
                            raw.table,
                            super::error::lua_pretty_compact(&fields)
                        );
                        set_error(&mut errors, &raw.path, json!({"@entity": [msg]}));
                        dup = true;
                    }
                }
                let pk = format!("{}/{}", raw.table, id);
                if seen.insert(pk, ()).is_some() && !dup {
                    let msg = format!(
                        "uniqueness violation: '{}' entity with primary key set to '{id}' already declared",
                        raw.table
                    );
                    set_error(&mut errors, &raw.path, json!({"@entity": [msg]}));
                }
                out.push((i, e));
            }
        }
    }
    if !errors.is_null() {
        return Err(KongError::declarative_config(errors));
    }
    out.sort_by_key(|(i, e)| (e.table_rank(), *i));
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

mod collect;
mod export;
mod legacy;
use collect::{collect, read_document, set_error};
pub use export::export_declarative;

#[cfg(test)]
mod tests;
