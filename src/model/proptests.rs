//! Property tests: valid entities survive storage and re-validation unchanged, and a
//! random configuration exported and parsed back is an empty diff.

use std::collections::HashSet;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;

const NOW: f64 = 1_700_000_000.25;

fn tags() -> impl Strategy<Value = Option<Vec<String>>> {
    option::of(vec("[a-z]{1,4}", 0..3))
}

fn service_input() -> impl Strategy<Value = Value> {
    (
        option::of("[a-z]{1,6}"),
        prop_oneof![Just("a.org"), Just("b.example.com"), Just("10.0.0.1")],
        1u16..=65535,
        any::<bool>(),
        option::of("/[a-z]{1,5}"),
        0u16..10,
        tags(),
        any::<bool>(),
    )
        .prop_map(|(name, host, port, https, path, retries, tags, enabled)| {
            json!({"name": name, "host": host, "port": port, "protocol": if https { "https" } else { "http" },
                   "path": path, "retries": retries, "tags": tags, "enabled": enabled})
        })
}

fn route_input() -> impl Strategy<Value = Value> {
    (
        vec("/[a-z]{1,6}", 1..3),
        option::of(prop::sample::subsequence(vec!["GET", "POST", "PUT"], 1..3)),
        option::of(vec(
            prop_oneof![Just("a.org"), Just("*.b.org"), Just("c.*")],
            1..2,
        )),
        any::<bool>(),
        any::<bool>(),
        -5i64..5,
        any::<bool>(),
    )
        .prop_map(|(paths, methods, hosts, strip, preserve, prio, regex)| {
            let mut paths = paths;
            if regex {
                paths.push("~/r/\\d+$".to_string());
            }
            json!({"paths": paths, "methods": methods, "hosts": hosts, "strip_path": strip,
                   "preserve_host": preserve, "regex_priority": prio, "headers": {"x-v": ["1"]}})
        })
}

fn upstream_input() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("round-robin"),
            Just("least-connections"),
            Just("latency")
        ],
        10u32..1000,
        0u32..10,
        tags(),
    )
        .prop_map(|(alg, slots, interval, tags)| {
            json!({"algorithm": alg, "slots": slots, "tags": tags,
                   "healthchecks": {"active": {"healthy": {"interval": interval}, "timeout": 2.5}}})
        })
}

fn plugin_input() -> impl Strategy<Value = Value> {
    prop_oneof![
        (1u32..100, option::of(100u32..1000), any::<bool>(), prop_oneof![Just("cluster"), Just("local")]).prop_map(
            |(m, h, hide, policy)| json!({"name": "rate-limiting",
                "config": {"minute": m, "hour": h, "hide_client_headers": hide, "policy": policy}})
        ),
        (any::<bool>(), vec("[a-z]{1,6}", 1..3)).prop_map(|(hide, names)| json!({"name": "key-auth",
            "config": {"hide_credentials": hide, "key_names": names}})),
    ]
}

fn with(mut v: Value, extra: Value) -> Value {
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

fn store_roundtrip<E: EntityType>(e: &E) {
    let back = E::from_bytes(&e.to_bytes()).unwrap();
    assert_eq!(&back, e);
    // The stored JSON is itself valid input that validates to the same entity.
    let again: E = create(&serde_json::to_value(e).unwrap(), NOW).unwrap();
    assert_eq!(&again, e);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn entities_survive_storage_and_revalidation(
        s in service_input(), r in route_input(), u in upstream_input(), p in plugin_input(),
        key in "[a-zA-Z0-9]{8,16}", weight in 0u16..1000, host in "[a-z]{1,8}\\.svc",
    ) {
        let svc: Service = create(&s, NOW).unwrap();
        store_roundtrip(&svc);
        let route: Route = create(&with(r, json!({"service": {"id": svc.id}})), NOW).unwrap();
        store_roundtrip(&route);
        let up: Upstream = create(&with(u, json!({"name": host})), NOW).unwrap();
        store_roundtrip(&up);
        let t: Target = create(&json!({"upstream": {"id": up.id}, "target": "10.1.2.3", "weight": weight}), NOW).unwrap();
        store_roundtrip(&t);
        let c: Consumer = create(&json!({"username": "u", "custom_id": key}), NOW).unwrap();
        store_roundtrip(&c);
        let mut cred: KeyAuthCredential = create(&json!({"consumer": {"id": c.id}, "key": key}), NOW).unwrap();
        cred.key = None;
        store_roundtrip(&cred);
        let plugin: Plugin = create(&with(p, json!({"route": {"id": route.id}})), NOW).unwrap();
        store_roundtrip(&plugin);
    }

    #[test]
    fn export_parse_diff_is_empty(
        services in vec(service_input(), 0..4),
        routes in vec((any::<Index>(), route_input(), any::<bool>()), 0..5),
        upstreams in vec(upstream_input(), 0..3),
        targets in vec((any::<Index>(), 1u8..20, 0u16..500), 0..5),
        consumers in vec(any::<bool>(), 0..3),
        creds in vec((any::<Index>(), "[a-zA-Z0-9]{8,16}"), 0..4),
        plugins in vec((plugin_input(), any::<Index>(), any::<Index>(), any::<Index>(), 0u8..8), 0..6),
        yaml in any::<bool>(),
    ) {
        let mut es: Vec<Entity> = Vec::new();
        let svcs: Vec<Service> = services.into_iter().enumerate()
            .map(|(i, s)| create(&with(s, json!({"name": format!("svc{i}")})), NOW).unwrap()).collect();
        let mut route_ids: Vec<Uuid> = Vec::new();
        for (i, (ix, r, named)) in routes.into_iter().enumerate() {
            let mut extra = json!({});
            if named { extra["name"] = json!(format!("route{i}")); }
            if !svcs.is_empty() { extra["service"] = json!({"id": svcs[ix.index(svcs.len())].id}); }
            let route: Route = create(&with(r, extra), NOW).unwrap();
            route_ids.push(route.id);
            es.push(route.into());
        }
        let ups: Vec<Upstream> = upstreams.into_iter().enumerate()
            .map(|(i, u)| create(&with(u, json!({"name": format!("up{i}.svc")})), NOW).unwrap()).collect();
        let mut seen = HashSet::new();
        for (ix, host, weight) in targets {
            if ups.is_empty() { break; }
            let up = ups[ix.index(ups.len())].id;
            if !seen.insert((up, host)) { continue; }
            let t: Target = create(&json!({"upstream": {"id": up}, "target": format!("10.0.0.{host}"), "weight": weight}), NOW).unwrap();
            es.push(t.into());
        }
        let cons: Vec<Consumer> = consumers.into_iter().enumerate().map(|(i, by_name)| {
            let input = if by_name { json!({"username": format!("user{i}")}) } else { json!({"custom_id": format!("cid{i}")}) };
            create(&input, NOW).unwrap()
        }).collect();
        let mut keys = HashSet::new();
        for (ix, key) in creds {
            if cons.is_empty() || !keys.insert(key.clone()) { continue; }
            let mut cred: KeyAuthCredential = create(&json!({"consumer": {"id": cons[ix.index(cons.len())].id}, "key": key}), NOW).unwrap();
            cred.key = None;
            es.push(cred.into());
        }
        let mut scopes = HashSet::new();
        for (p, ri, si, ci, mask) in plugins {
            let mut extra = json!({});
            let is_key_auth = p["name"] == "key-auth";
            if mask & 1 != 0 && !route_ids.is_empty() { extra["route"] = json!({"id": route_ids[ri.index(route_ids.len())]}); }
            if mask & 2 != 0 && !svcs.is_empty() { extra["service"] = json!({"id": svcs[si.index(svcs.len())].id}); }
            if mask & 4 != 0 && !cons.is_empty() && !is_key_auth { extra["consumer"] = json!({"id": cons[ci.index(cons.len())].id}); }
            let plugin: Plugin = create(&with(p, extra), NOW).unwrap();
            if !scopes.insert(plugin.cache_key()) { continue; }
            es.push(plugin.into());
        }
        es.extend(svcs.into_iter().map(Entity::from));
        es.extend(ups.into_iter().map(Entity::from));
        es.extend(cons.into_iter().map(Entity::from));
        let snap = ConfigSnapshot::from_entities(es);

        let text = export_declarative(&snap, yaml, NOW);
        let parsed = parse_declarative_with(&text, &snap, NOW + 10.0).unwrap();
        let d = diff(&snap, &parsed);
        prop_assert!(d.is_empty(), "{}\n{}", d.summary(), text);
        // Parsed without the snapshot, the file names the same entities.
        let fresh = parse_declarative_with(&text, &ConfigSnapshot::new(), NOW + 10.0).unwrap();
        let d = diff(&snap, &fresh);
        prop_assert!(d.is_empty(), "{}\n{}", d.summary(), text);
    }
}
