//! Tests of the snapshot: store decoding, lookups, references, plugin precedence.
use super::*;
use crate::model::entity::create;
use serde_json::{json, Value};

fn svc(name: &str) -> Service {
    create(&json!({"name": name, "host": "a.org"}), 1.0).unwrap()
}
fn route(name: &str, service: Uuid) -> Route {
    create(
        &json!({"name": name, "paths": ["/"], "service": {"id": service}}),
        1.0,
    )
    .unwrap()
}
fn plugin(v: Value) -> Plugin {
    create(&v, 1.0).unwrap()
}

#[test]
fn store_roundtrip_and_lookups() {
    let s = svc("s1");
    let r = route("r1", s.id);
    let c: Consumer = create(&json!({"username": "bob", "custom_id": "b1"}), 1.0).unwrap();
    let k: KeyAuthCredential =
        create(&json!({"consumer": {"id": c.id}, "key": "sekret"}), 1.0).unwrap();
    let pairs: Vec<(String, Vec<u8>)> = [
        Entity::from(s.clone()),
        r.clone().into(),
        c.clone().into(),
        k.clone().into(),
    ]
    .iter()
    .map(|e| (e.storage_key(), e.to_bytes()))
    .chain(std::iter::once((
        "config/index/services/name/s1".to_string(),
        s.id.to_string().into_bytes(),
    )))
    .collect();
    let snap = ConfigSnapshot::from_store(pairs).unwrap();
    assert_eq!(snap.len(), 4);
    assert_eq!(snap.service_by_id_or_name("s1").unwrap().id, s.id);
    assert_eq!(
        snap.service_by_id_or_name(&s.id.to_string()).unwrap().id,
        s.id
    );
    assert!(snap.service_by_id_or_name("nope").is_none());
    assert_eq!(snap.route_by_id_or_name("r1").unwrap().id, r.id);
    assert_eq!(snap.routes_of_service(s.id).len(), 1);
    assert_eq!(snap.consumer_by_id_or_username("bob").unwrap().id, c.id);
    assert_eq!(snap.consumer_by_custom_id("b1").unwrap().id, c.id);
    let (cred, cons) = snap
        .consumer_by_credential_hash(&hash_key("sekret"))
        .unwrap();
    assert_eq!((cred.id, cons.id), (k.id, c.id));
    assert_eq!(snap.credential_by_id_or_key("sekret").unwrap().id, k.id);
    let bad = ConfigSnapshot::from_store(vec![(
        format!("config/services/{}", Uuid::new_v4()),
        b"{}".to_vec(),
    )]);
    assert_eq!(bad.unwrap_err().code, 8);
}

#[test]
fn references() {
    let s = svc("s1");
    let r = route("r1", s.id);
    let mut snap = ConfigSnapshot::new();
    let e = snap.missing_references(&r.clone().into()).unwrap_err();
    assert_eq!(e.code, 4);
    assert_eq!(
        e.message,
        format!(
            "the foreign key '{{id=\"{}\"}}' does not reference an existing 'services' entity.",
            s.id
        )
    );
    assert_eq!(e.fields, json!({"service": {"id": s.id}}));
    snap.insert(s.clone().into());
    snap.insert(r.clone().into());
    assert!(snap.missing_references(&r.clone().into()).is_ok());
    let e = snap.referenced_by(&s.clone().into()).unwrap_err();
    assert_eq!(
        e.message,
        "an existing 'routes' entity references this 'services' entity"
    );
    assert!(snap.referenced_by(&r.clone().into()).is_ok());
    let p = plugin(json!({"name": "key-auth", "route": {"id": r.id}}));
    snap.insert(p.clone().into());
    assert_eq!(snap.cascade_of(&r.clone().into()), vec![Entity::from(p)]);
    snap.remove("routes", r.id);
    assert!(snap.referenced_by(&s.into()).is_ok());
}

#[test]
fn unique_conflicts() {
    let mut snap = ConfigSnapshot::new();
    snap.insert(svc("s1").into());
    let e = snap.unique_conflict(&svc("s1").into()).unwrap_err();
    assert_eq!((e.code, e.http_status()), (5, 409));
    assert_eq!(e.message, "UNIQUE violation detected on '{name=\"s1\"}'");
    assert!(snap.unique_conflict(&svc("s2").into()).is_ok());
}

#[test]
fn plugin_precedence() {
    let s = svc("s1");
    let r = route("r1", s.id);
    let c: Consumer = create(&json!({"username": "bob"}), 1.0).unwrap();
    let global = plugin(json!({"name": "rate-limiting", "config": {"minute": 1}}));
    let on_service =
        plugin(json!({"name": "rate-limiting", "service": {"id": s.id}, "config": {"minute": 2}}));
    let on_consumer =
        plugin(json!({"name": "rate-limiting", "consumer": {"id": c.id}, "config": {"minute": 3}}));
    let auth = plugin(json!({"name": "key-auth", "service": {"id": s.id}}));
    let mut snap = ConfigSnapshot::from_entities(
        [
            s.clone().into(),
            r.clone().into(),
            c.clone().into(),
            global.clone().into(),
            on_service.clone().into(),
        ]
        .into_iter()
        .chain([Entity::from(on_consumer.clone()), auth.clone().into()]),
    );
    let ids = |v: Vec<&Plugin>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(
        ids(snap.plugins_for(Some(r.id), Some(s.id), None)),
        vec![auth.id, on_service.id]
    );
    assert_eq!(
        ids(snap.plugins_for(Some(r.id), Some(s.id), Some(c.id))),
        vec![auth.id, on_consumer.id]
    );
    assert_eq!(ids(snap.plugins_for(None, None, None)), vec![global.id]);
    // Only an enabled consumer-scoped plugin makes requests resolve theirs per consumer.
    assert!(super::PluginScopes::new(&snap).any_consumer_scoped());
    let mut consumer_off = snap.clone();
    let mut off = on_consumer.clone();
    off.enabled = false;
    consumer_off.insert(off.into());
    assert!(!super::PluginScopes::new(&consumer_off).any_consumer_scoped());
    let mut disabled = on_service.clone();
    disabled.enabled = false;
    snap.insert(disabled.into());
    assert_eq!(
        ids(snap.plugins_for(Some(r.id), Some(s.id), None)),
        vec![auth.id, global.id]
    );
}

#[test]
fn targets_and_name_resolution() {
    let u: Upstream = create(&json!({"name": "up"}), 1.0).unwrap();
    let t: Target = create(&json!({"upstream": {"id": u.id}, "target": "a.org"}), 1.0).unwrap();
    let snap = ConfigSnapshot::from_entities([Entity::from(u.clone()), t.clone().into()]);
    assert_eq!(snap.targets_of(u.id).len(), 1);
    assert_eq!(snap.target_by_id_or_target(u.id, "a.org").unwrap().id, t.id);
    assert_eq!(
        snap.target_by_id_or_target(u.id, "a.org:8000").unwrap().id,
        t.id
    );
    assert!(snap
        .target_by_id_or_target(Uuid::new_v4(), "a.org")
        .is_none());
    let mut input = json!({"upstream": {"name": "up"}})
        .as_object()
        .unwrap()
        .clone();
    snap.resolve_foreign_names(&mut input).unwrap();
    assert_eq!(input["upstream"], json!({"id": u.id.to_string()}));
    let mut input = json!({"service": {"name": "nope"}})
        .as_object()
        .unwrap()
        .clone();
    let e = snap.resolve_foreign_names(&mut input).unwrap_err();
    assert_eq!(e.code, 13);
    assert_eq!(
        e.message,
        "foreign key unresolved (service.name: the foreign key cannot be resolved with '{name=\"nope\"}' for an existing 'services' entity)"
    );
}

#[test]
fn a_consumer_is_resolved_by_username_or_custom_id() {
    let c: Consumer = create(&json!({"username": "carol", "custom_id": "cid-carol"}), 1.0).unwrap();
    let snap = ConfigSnapshot::from_entities([Entity::from(c.clone())]);
    for given in [json!({"username": "carol"}), json!({"custom_id": "cid-carol"}), json!({"username": "nobody", "custom_id": "cid-carol"})] {
        let mut input = json!({ "consumer": given }).as_object().unwrap().clone();
        snap.resolve_foreign_names(&mut input).unwrap();
        assert_eq!(input["consumer"], json!({"id": c.id.to_string()}), "{given}");
    }
    let mut input = json!({"consumer": {"custom_id": "nobody"}}).as_object().unwrap().clone();
    let e = snap.resolve_foreign_names(&mut input).unwrap_err();
    assert_eq!((e.code, e.message.contains("consumer.custom_id")), (13, true), "{}", e.message);
}
