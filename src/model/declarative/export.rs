//! Export of a snapshot as a Kong declarative file, nested the way Kong's dumps are.

use serde_json::{json, Map, Value};

use super::FORMAT_VERSION;
use crate::model::consumer::KeyAuthCredential;
use crate::model::entity::EntityType;
use crate::model::plugin::Plugin;
use crate::model::route::Route;
use crate::model::snapshot::ConfigSnapshot;

/// Removes nulls and timestamps, and the given foreign key fields.
fn clean(v: Value, drop: &[&str]) -> Map<String, Value> {
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            other => other,
        }
    }
    let Value::Object(m) = strip(v) else {
        return Map::new();
    };
    m.into_iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()) && k != "created_at" && k != "updated_at")
        .collect()
}

fn sorted<'a, T: EntityType>(items: impl Iterator<Item = &'a T>) -> Vec<&'a T> {
    let mut v: Vec<&T> = items.collect();
    v.sort_by_key(|e| (e.endpoint_key_value(), e.id()));
    v
}

/// The configuration as a declarative file: routes and service-only plugins nested under
/// services, route-only plugins under routes, targets under upstreams, credentials
/// (with `key_hash`) and consumer-only plugins under consumers; global and multi-scope
/// plugins at the top. Ids are included; timestamps and null fields are left out.
/// Credentials past their ttl at `now` are left out, and the others' ttl is what they
/// have left: a ttl counts from creation, which an import sets anew, so the file must
/// not bring an expired key back nor give a live one its whole ttl again. (What is left
/// counts from the import, as Kong's relative ttl does.)
pub fn export_declarative(snap: &ConfigSnapshot, yaml: bool, now: f64) -> String {
    let scope = |p: &Plugin| (p.route.is_some(), p.service.is_some(), p.consumer.is_some());
    let plugins_with =
        |want: (bool, bool, bool), id: Option<uuid::Uuid>, drop: &[&str]| -> Vec<Value> {
            sorted(snap.plugins.values())
                .into_iter()
                .filter(|p| scope(p) == want)
                .filter(|p| match want {
                    (true, false, false) => p.route.map(|f| f.id) == id,
                    (false, true, false) => p.service.map(|f| f.id) == id,
                    (false, false, true) => p.consumer.map(|f| f.id) == id,
                    _ => true,
                })
                .map(|p| Value::Object(clean(serde_json::to_value(p).unwrap_or_default(), drop)))
                .collect()
        };
    let route_json = |r: &Route, drop: &[&str]| {
        let mut m = clean(serde_json::to_value(r).unwrap_or_default(), drop);
        let ps = plugins_with((true, false, false), Some(r.id), &["route"]);
        if !ps.is_empty() {
            m.insert("plugins".into(), Value::Array(ps));
        }
        Value::Object(m)
    };
    let mut doc = Map::new();
    doc.insert("_format_version".into(), json!(FORMAT_VERSION));
    let services: Vec<Value> = sorted(snap.services.values())
        .into_iter()
        .map(|s| {
            let mut m = clean(serde_json::to_value(s).unwrap_or_default(), &[]);
            let routes: Vec<Value> = sorted(snap.routes_of_service(s.id).into_iter())
                .into_iter()
                .map(|r| route_json(r, &["service"]))
                .collect();
            if !routes.is_empty() {
                m.insert("routes".into(), Value::Array(routes));
            }
            let ps = plugins_with((false, true, false), Some(s.id), &["service"]);
            if !ps.is_empty() {
                m.insert("plugins".into(), Value::Array(ps));
            }
            Value::Object(m)
        })
        .collect();
    let routes: Vec<Value> = sorted(snap.routes.values().filter(|r| r.service.is_none()))
        .into_iter()
        .map(|r| route_json(r, &[]))
        .collect();
    let upstreams: Vec<Value> = sorted(snap.upstreams.values())
        .into_iter()
        .map(|u| {
            let mut m = clean(serde_json::to_value(u).unwrap_or_default(), &[]);
            let ts: Vec<Value> = sorted(snap.targets_of(u.id).into_iter())
                .into_iter()
                .map(|t| {
                    Value::Object(clean(
                        serde_json::to_value(t).unwrap_or_default(),
                        &["upstream"],
                    ))
                })
                .collect();
            if !ts.is_empty() {
                m.insert("targets".into(), Value::Array(ts));
            }
            Value::Object(m)
        })
        .collect();
    let consumers: Vec<Value> = sorted(snap.consumers.values())
        .into_iter()
        .map(|c| {
            let mut m = clean(serde_json::to_value(c).unwrap_or_default(), &[]);
            let mut creds: Vec<&KeyAuthCredential> = snap.credentials_of(c.id);
            creds.retain(|k| !k.is_expired(|| now));
            creds.sort_by_key(|k| (k.key_hash.clone(), k.id));
            let creds: Vec<Value> = creds
                .into_iter()
                .map(|k| {
                    let mut m = clean(serde_json::to_value(k).unwrap_or_default(), &["consumer"]);
                    // At least 1: a ttl of 0 would mean none, making a dying key permanent.
                    if let Some(left) = k.ttl_left(now) {
                        m.insert("ttl".into(), Value::from(left.max(1)));
                    }
                    Value::Object(m)
                })
                .collect();
            if !creds.is_empty() {
                m.insert("keyauth_credentials".into(), Value::Array(creds));
            }
            let ps = plugins_with((false, false, true), Some(c.id), &["consumer"]);
            if !ps.is_empty() {
                m.insert("plugins".into(), Value::Array(ps));
            }
            Value::Object(m)
        })
        .collect();
    // Global and multi-scope plugins, references by id.
    let top_plugins: Vec<Value> = sorted(snap.plugins.values())
        .into_iter()
        .filter(|p| {
            let (r, s, c) = scope(p);
            (r as u8 + s as u8 + c as u8) != 1
        })
        .map(|p| {
            let mut m = clean(serde_json::to_value(p).unwrap_or_default(), &[]);
            for fk in ["route", "service", "consumer"] {
                if let Some(id) = m.get(fk).and_then(|v| v.get("id")).cloned() {
                    m.insert(fk.into(), id);
                }
            }
            Value::Object(m)
        })
        .collect();
    for (k, v) in [
        ("services", services),
        ("routes", routes),
        ("upstreams", upstreams),
        ("consumers", consumers),
        ("plugins", top_plugins),
    ] {
        if !v.is_empty() {
            doc.insert(k.into(), Value::Array(v));
        }
    }
    let doc = Value::Object(doc);
    if yaml {
        serde_yaml_ng::to_string(&doc).unwrap_or_default()
    } else {
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}
