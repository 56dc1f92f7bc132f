//! Tests of the declarative format: parsing, ids, references, errors, export round trips.

use serde_json::json;

use super::*;
use crate::model::diff::diff;

const KONG_FILE: &str = r#"
_format_version: "3.0"
_transform: true
services:
  - name: orders
    url: http://orders.internal:8080/v1
    routes:
      - name: orders-route
        paths: ["/orders"]
        plugins:
          - name: key-auth
    plugins:
      - name: rate-limiting
        config:
          minute: 100
  - name: users
    host: users.internal
routes:
  - name: users-route
    hosts: ["users.example.com"]
    service: users
upstreams:
  - name: orders.internal
    targets:
      - target: 10.0.0.1:8080
      - target: 10.0.0.2
        weight: 50
consumers:
  - username: alice
    keyauth_credentials:
      - key: alice-secret
    plugins:
      - name: rate-limiting
        config:
          second: 5
  - custom_id: bob-1
plugins:
  - name: rate-limiting
    config:
      hour: 10000
      policy: local
  - name: rate-limiting
    service: orders
    consumer: alice
    config:
      minute: 7
"#;

fn count(es: &[Entity], table: &str) -> usize {
    es.iter().filter(|e| e.table() == table).count()
}

#[test]
fn parses_a_nested_kong_file() {
    let es = parse_declarative_with(KONG_FILE, &ConfigSnapshot::new(), 1_700_000_000.0).unwrap();
    assert_eq!(count(&es, "services"), 2);
    assert_eq!(count(&es, "routes"), 2);
    assert_eq!(count(&es, "upstreams"), 1);
    assert_eq!(count(&es, "targets"), 2);
    assert_eq!(count(&es, "consumers"), 2);
    assert_eq!(count(&es, "keyauth_credentials"), 1);
    assert_eq!(count(&es, "plugins"), 5);
    // dependency order
    let ranks: Vec<usize> = es.iter().map(Entity::table_rank).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]));

    let snap = ConfigSnapshot::from_entities(es.clone());
    let orders = snap.service_by_id_or_name("orders").unwrap();
    assert_eq!(
        (orders.host.as_str(), orders.port, orders.path.as_deref()),
        ("orders.internal", 8080, Some("/v1"))
    );
    let users = snap.service_by_id_or_name("users").unwrap();
    assert_eq!(
        snap.route_by_id_or_name("users-route")
            .unwrap()
            .service
            .unwrap()
            .id,
        users.id
    );
    let orders_route = snap.route_by_id_or_name("orders-route").unwrap();
    assert_eq!(orders_route.service.unwrap().id, orders.id);
    let alice = snap.consumer_by_id_or_username("alice").unwrap();
    let (cred, owner) = snap
        .consumer_by_credential_hash(&hash_key("alice-secret"))
        .unwrap();
    assert_eq!(owner.id, alice.id);
    assert_eq!(cred.key_hash, hash_key("alice-secret"));
    let up = snap.upstream_by_id_or_name("orders.internal").unwrap();
    let mut targets: Vec<(String, u16)> = snap
        .targets_of(up.id)
        .iter()
        .map(|t| (t.target.clone(), t.weight))
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        vec![
            ("10.0.0.1:8080".to_string(), 100),
            ("10.0.0.2:8000".to_string(), 50)
        ]
    );
    // the most specific rate-limiting for alice on the orders route is service+consumer
    let ps = snap.plugins_for(Some(orders_route.id), Some(orders.id), Some(alice.id));
    let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["key-auth", "rate-limiting"]);
    assert_eq!(ps[1].config["minute"], json!(7));
    let anon = snap.plugins_for(Some(orders_route.id), Some(orders.id), None);
    assert_eq!(anon[1].config["minute"], json!(100));
    let elsewhere = snap.plugins_for(None, Some(users.id), None);
    assert_eq!(elsewhere[0].config["hour"], json!(10000));
}

#[test]
fn ids_are_stable_and_reused() {
    let a = parse_declarative_with(KONG_FILE, &ConfigSnapshot::new(), 1.0).unwrap();
    let b = parse_declarative_with(KONG_FILE, &ConfigSnapshot::new(), 2.0).unwrap();
    let ids = |es: &[Entity]| es.iter().map(|e| (e.table(), e.id())).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));

    // Entities created through the Admin API keep their ids when a file names them.
    let svc: Service = create(&json!({"name": "orders", "host": "x.org"}), 1.0).unwrap();
    let existing = ConfigSnapshot::from_entities([Entity::from(svc.clone())]);
    let c = parse_declarative_with(KONG_FILE, &existing, 3.0).unwrap();
    let orders = c
        .iter()
        .find(|e| e.table() == "services" && e.endpoint_key_value().as_deref() == Some("orders"))
        .unwrap();
    assert_eq!(orders.id(), svc.id);
    let Entity::Service(s) = orders else { panic!() };
    assert_eq!(s.created_at, svc.created_at);
}

#[test]
fn applying_the_same_file_twice_is_a_no_op() {
    let first = parse_declarative_with(KONG_FILE, &ConfigSnapshot::new(), 1.0).unwrap();
    let d = diff(&ConfigSnapshot::new(), &first);
    assert_eq!(d.creates.len(), first.len());
    assert_eq!(
        d.summary()["services"],
        json!({"create": 2, "update": 0, "delete": 0})
    );
    let snap = ConfigSnapshot::from_entities(first);
    let second = parse_declarative_with(KONG_FILE, &snap, 100.0).unwrap();
    let d = diff(&snap, &second);
    assert!(d.is_empty(), "{:?}", d.summary());
}

#[test]
fn diff_lists_changes() {
    let snap = ConfigSnapshot::from_entities(
        parse_declarative_with(KONG_FILE, &ConfigSnapshot::new(), 1.0).unwrap(),
    );
    let changed = KONG_FILE
        .replace("minute: 100", "minute: 200")
        .replace("  - custom_id: bob-1\n", "  - custom_id: carol-1\n");
    let es = parse_declarative_with(&changed, &snap, 2.0).unwrap();
    let d = diff(&snap, &es);
    assert_eq!(
        d.summary()["plugins"],
        json!({"create": 0, "update": 1, "delete": 0})
    );
    assert_eq!(
        d.summary()["consumers"],
        json!({"create": 1, "update": 0, "delete": 1})
    );
    let (old, new) = &d.updates[0];
    assert_eq!(old.id(), new.id());
    let d = diff(&snap, &[]);
    assert_eq!(d.deletes.len(), snap.len());
    assert_eq!(d.deletes.first().unwrap().table(), "plugins");
    assert_eq!(d.deletes.last().unwrap().table(), "services");
}

#[test]
fn export_then_parse_is_an_empty_diff() {
    let snap = ConfigSnapshot::from_entities(
        parse_declarative_with(KONG_FILE, &ConfigSnapshot::new(), 1.0).unwrap(),
    );
    for yaml in [true, false] {
        let text = export_declarative(&snap, yaml, 5.0);
        let again = parse_declarative_with(&text, &snap, 5.0).unwrap();
        let d = diff(&snap, &again);
        assert!(d.is_empty(), "yaml={yaml}: {:?}\n{text}", d.summary());
        // and against an empty configuration, the same entities come back
        let fresh = parse_declarative_with(&text, &ConfigSnapshot::new(), 5.0).unwrap();
        assert!(diff(&ConfigSnapshot::from_entities(fresh), &again).is_empty());
    }
    let text = export_declarative(&snap, true, 5.0);
    assert!(
        text.starts_with("_format_version: '3.0'") || text.starts_with("_format_version: \"3.0\""),
        "{text}"
    );
    assert!(text.contains("key_hash"));
    assert!(!text.contains("alice-secret"));
    assert!(!text.contains("created_at"));
}

#[test]
fn an_export_keeps_a_credentials_expiry_and_leaves_out_the_expired() {
    let doc = json!({"_format_version": "3.0", "consumers": [{"username": "a", "keyauth_credentials": [
        {"key": "short", "ttl": 100}, {"key": "kept"}]}]});
    let snap = ConfigSnapshot::from_entities(parse_declarative_with(&doc.to_string(), &ConfigSnapshot::new(), 1_000.0).unwrap());
    let creds_at = |text: &str| -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["consumers"][0]["keyauth_credentials"].as_array().unwrap().clone()
    };
    let text = export_declarative(&snap, false, 1_030.5);
    let ttls: Vec<_> = creds_at(&text).iter().map(|c| c.get("ttl").cloned()).collect();
    assert!(ttls.contains(&Some(json!(69))) && ttls.contains(&None), "{text}");
    // Imported at once, the credential still expires when it would have.
    let imported = ConfigSnapshot::from_entities(parse_declarative_with(&text, &ConfigSnapshot::new(), 1_031.0).unwrap());
    let short = imported.keyauth_credentials.values().find(|c| c.ttl.is_some()).unwrap();
    assert!(!short.is_expired(|| 1_099.0) && short.is_expired(|| 1_100.0));
    // In its last second it keeps a ttl: 0 would make it permanent.
    let last = creds_at(&export_declarative(&snap, false, 1_099.5));
    assert!(last.iter().any(|c| c.get("ttl") == Some(&json!(1))), "{last:?}");
    // Past its ttl it is not exported at all.
    assert_eq!(creds_at(&export_declarative(&snap, false, 1_100.0)).len(), 1);
}

#[test]
fn json_documents_are_accepted() {
    let doc = json!({"_format_version": "3.0", "services": [{"name": "s", "host": "a.org", "routes": [{"paths": ["/"]}]}]});
    let es = parse_declarative_with(&doc.to_string(), &ConfigSnapshot::new(), 1.0).unwrap();
    assert_eq!(es.len(), 2);
}

#[test]
fn errors() {
    let e = parse_declarative("services: []").unwrap_err();
    assert_eq!(e.code, 14);
    assert_eq!(
        e.fields,
        json!({"_format_version": "required field missing"})
    );
    assert_eq!(
        e.message,
        "declarative config is invalid: {_format_version=\"required field missing\"}"
    );

    let e = parse_declarative("_format_version: \"2.0\"").unwrap_err();
    assert_eq!(e.fields, json!({"_format_version": "expected one of: 1.1, 2.1, 3.0"}));
    // Kong 3 still loads 2.1 files, their regex paths marked as 3.0 wants them.
    let old = parse_declarative("_format_version: \"2.1\"\nservices:\n- name: s\n  url: http://u\n  routes:\n  - paths: [/users/\\d+, /plain]\n").unwrap();
    let paths: Vec<Value> = old.iter().filter_map(|e| e.to_json().get("paths").cloned()).collect();
    assert_eq!(paths, [json!(["~/users/\\d+", "/plain"])]);

    let e = parse_declarative("_format_version: \"3.0\"\ncertificates: []").unwrap_err();
    assert_eq!(e.fields, json!({"certificates": "unknown field"}));

    let e = parse_declarative(
        "_format_version: \"3.0\"\nroutes:\n  - paths: [\"/\"]\n    service: nope\n",
    )
    .unwrap_err();
    assert_eq!(
        e.fields,
        json!({"routes": [{"service": "invalid reference 'service: nope' (no such entry in 'services')"}]})
    );

    let text = "_format_version: \"3.0\"\nservices:\n  - name: a\n    host: a.org\n    routes:\n      - paths: [\"x\"]\n";
    let e = parse_declarative(text).unwrap_err();
    assert_eq!(
        e.fields,
        json!({"services": [{"routes": [{"paths": ["should start with: / (fixed path) or ~/ (regex path)"]}]}]})
    );

    let text = "_format_version: \"3.0\"\nservices:\n  - name: a\n    host: a.org\n  - name: a\n    host: b.org\n";
    let e = parse_declarative(text).unwrap_err();
    assert_eq!(
        e.fields,
        json!({"services": [null, {"@entity": ["uniqueness violation: 'services' entity with {name=\"a\"} already declared"]}]})
    );

    let e = parse_declarative("_format_version: \"3.0\"\nplugins:\n  - name: cors\n").unwrap_err();
    assert_eq!(
        e.fields,
        json!({"plugins": [{"name": "plugin 'cors' not enabled; add it to the 'plugins' configuration property"}]})
    );

    let e = parse_declarative("_format_version: [").unwrap_err();
    assert_eq!(e.code, 14);
    assert!(e
        .message
        .starts_with("failed parsing declarative configuration: "));
}
