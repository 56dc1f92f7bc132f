//! Rebuilding the proxy table: what a write that routing does not read leaves shared,
//! and what any write that routing does read rebuilds.

use serde_json::json;

use super::*;
use crate::model::entity::create;
use crate::model::Entity;

fn service(name: &str, port: u16) -> Service {
    create(&json!({"name": name, "host": "a.test", "port": port}), 1.0).unwrap()
}

fn table_of(snapshot: &ConfigSnapshot, previous: Option<&ProxyTable>) -> ProxyTable {
    let config = Arc::new(AppliedConfig { revision: 1, snapshot: snapshot.clone(), mod_revisions: Default::default() });
    // As `server::follow_config` does: reuse where routing is unchanged, else rebuild.
    match previous.and_then(|p| ProxyTable::reuse(&config, p)) {
        Some(reused) => reused,
        None => ProxyTable::build(config, previous, &RegexCache::default()).unwrap(),
    }
}

fn addr_of_first_route(table: &ProxyTable) -> String {
    table.routes[0].service.as_ref().unwrap().addr.clone()
}

#[test]
fn writes_routing_does_not_read_share_the_table_and_others_rebuild_it() {
    let used = service("used", 8080);
    let route: Route = create(&json!({"name": "r", "paths": ["/r"], "service": {"id": used.id}}), 1.0).unwrap();
    let mut snapshot = ConfigSnapshot::from_entities([Entity::from(used.clone()), route.into()]);
    let first = table_of(&snapshot, None);
    assert_eq!(addr_of_first_route(&first), "a.test:8080");

    // A service no route uses, and a consumer: nothing to rebuild.
    let unused = service("unused", 9000);
    snapshot.insert(unused.clone().into());
    snapshot.insert(create::<crate::model::Consumer>(&json!({"username": "bob"}), 1.0).unwrap().into());
    let second = table_of(&snapshot, Some(&first));
    assert!(Arc::ptr_eq(&first.router, &second.router) && Arc::ptr_eq(&first.routes, &second.routes));
    assert!(second.config.snapshot.consumers.values().any(|c| c.username.as_deref() == Some("bob")), "the new table still carries the new config");

    // The used service written again as it was, the unused one edited then deleted.
    snapshot.insert(used.clone().into());
    let mut edited = unused.clone();
    edited.port = 9001;
    snapshot.insert(edited.into());
    assert!(Arc::ptr_eq(&second.routes, &table_of(&snapshot, Some(&second)).routes), "an unused service edited");
    snapshot.remove("services", unused.id);
    let again = table_of(&snapshot, Some(&second));
    assert!(Arc::ptr_eq(&second.router, &again.router) && Arc::ptr_eq(&second.routes, &again.routes));

    // The service a route uses changes: rebuilt, with the new port.
    let mut moved = used.clone();
    moved.port = 8081;
    snapshot.insert(moved.into());
    let third = table_of(&snapshot, Some(&second));
    assert!(!Arc::ptr_eq(&second.routes, &third.routes));
    assert_eq!(addr_of_first_route(&third), "a.test:8081");

    // A new route, and a plugin: rebuilt.
    let other: Route = create(&json!({"name": "r2", "paths": ["/r2"], "service": {"id": used.id}}), 1.0).unwrap();
    snapshot.insert(other.into());
    let fourth = table_of(&snapshot, Some(&third));
    assert!(!Arc::ptr_eq(&third.router, &fourth.router));
    assert_eq!(fourth.routes.len(), 2);
    let plugin: Plugin = create(&json!({"name": "rate-limiting", "config": {"minute": 5}}), 1.0).unwrap();
    snapshot.insert(plugin.into());
    let fifth = table_of(&snapshot, Some(&fourth));
    assert!(!Arc::ptr_eq(&fourth.routes, &fifth.routes));
    assert!(fifth.routes.iter().all(|r| r.plugins.len() == 1), "a global plugin applies to every route");
}

#[test]
fn plugins_are_prepared_once_per_table_only_while_some_plugin_is_consumer_scoped() {
    let used = service("used", 8080);
    let route: Route = create(&json!({"name": "r", "paths": ["/r"], "service": {"id": used.id}}), 1.0).unwrap();
    let bob: crate::model::Consumer = create(&json!({"username": "bob"}), 1.0).unwrap();
    let on_route: Plugin = create(&json!({"name": "key-auth", "route": {"id": route.id}}), 1.0).unwrap();
    let mut snapshot = ConfigSnapshot::from_entities([Entity::from(used), route.into(), bob.clone().into(), on_route.clone().into()]);
    assert!(table_of(&snapshot, None).prepared_plugins.is_empty(), "routes carry their own plugins");

    let for_bob: Plugin = create(&json!({"name": "rate-limiting", "consumer": {"id": bob.id}, "config": {"minute": 3}}), 1.0).unwrap();
    snapshot.insert(for_bob.clone().into());
    let table = table_of(&snapshot, None);
    let ids: std::collections::BTreeSet<Uuid> = table.prepared_plugins.keys().copied().collect();
    assert_eq!(ids, [on_route.id, for_bob.id].into_iter().collect());
    match &table.prepared_plugins[&for_bob.id] {
        ActivePlugin::RateLimiting(limit) => assert_eq!(limit.config.minute, Some(3.0)),
        other => panic!("{other:?}"),
    }
    // A write routing does not read keeps them with the rest of the table.
    snapshot.insert(service("unused", 9000).into());
    let next = table_of(&snapshot, Some(&table));
    assert!(Arc::ptr_eq(&table.prepared_plugins, &next.prepared_plugins));
}

#[test]
fn an_https_service_is_secured_by_its_host_and_its_default_port_stays_out_of_host() {
    let entry = |input: serde_json::Value| service_entry(&create::<Service>(&input, 1.0).unwrap(), &HashMap::new());
    let secured = entry(json!({"url": "https://api.test"}));
    assert_eq!(secured.addr, "api.test:443");
    assert_eq!(secured.host_header.as_ref().unwrap(), "api.test");
    let tls = secured.tls.unwrap();
    assert_eq!((tls.server_name, tls.verify), (TlsTarget::for_host("api.test", false).server_name, false), "Kong leaves it unverified by default");
    assert!(entry(json!({"url": "https://api.test:8443", "tls_verify": true})).tls.unwrap().verify);
    assert_eq!(entry(json!({"url": "https://api.test:8443"})).host_header.unwrap(), "api.test:8443");
    let plain = entry(json!({"url": "http://api.test"}));
    assert!(plain.tls.is_none());
    assert_eq!(plain.host_header.unwrap(), "api.test");
}
