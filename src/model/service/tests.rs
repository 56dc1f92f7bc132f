//! Tests of services: defaults, the url shorthand, field rules, PUT and PATCH.

use super::*;
use crate::model::entity::{create, patch, replace, PutKey};

fn mk(v: Value) -> Result<Service, KongError> {
    create::<Service>(&v, 1_700_000_000.5)
}

#[test]
fn defaults() {
    let s = mk(json!({"host": "example.com"})).unwrap();
    assert_eq!(s.protocol, "http");
    assert_eq!(s.port, 80);
    assert_eq!(s.retries, 5);
    assert_eq!(
        (s.connect_timeout, s.read_timeout, s.write_timeout),
        (60000, 60000, 60000)
    );
    assert!(s.enabled);
    assert_eq!(s.path, None);
    assert_eq!((s.created_at, s.updated_at), (1_700_000_000, 1_700_000_000));
    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(j["name"], Value::Null);
    assert_eq!(j["tags"], Value::Null);
    assert_eq!(j["client_certificate"], Value::Null);
}

#[test]
fn url_shorthand() {
    let cases = [
        ("http://example.com", "http", "example.com", 80, None),
        ("https://example.com", "https", "example.com", 443, None),
        (
            "https://example.com:8443/api/v1",
            "https",
            "example.com",
            8443,
            Some("/api/v1"),
        ),
        (
            "http://example.com:443/",
            "http",
            "example.com",
            443,
            Some("/"),
        ),
        ("//example.com:443", "https", "example.com", 443, None),
        ("//example.com:80", "http", "example.com", 80, None),
        (
            "http://user:pw@10.0.0.1:9000/x?q=1#f",
            "http",
            "10.0.0.1",
            9000,
            Some("/x"),
        ),
    ];
    for (url, proto, host, port, path) in cases {
        let s = mk(json!({ "url": url })).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            (
                s.protocol.as_str(),
                s.host.as_str(),
                s.port,
                s.path.as_deref()
            ),
            (proto, host, port, path),
            "{url}"
        );
    }
}

#[test]
fn a_protocol_the_proxy_does_not_speak_is_refused_after_kongs_checks() {
    let e = mk(json!({ "url": "grpc://example.com" })).unwrap_err();
    assert_eq!(e.to_string(), "schema violation (protocol: gatehouse proxies to 'http' and 'https' services only, not 'grpc')");
    assert!(mk(json!({ "protocol": "tcp", "host": "example.com", "path": "/x" })).unwrap_err().to_string().contains("path"), "Kong's own error first");
    let e = mk(json!({ "url": "https://example.com", "tls_verify_depth": 3 })).unwrap_err();
    assert_eq!(e.to_string(), "schema violation (tls_verify_depth: not supported by gatehouse yet)");
    assert!(mk(json!({ "url": "https://example.com", "tls_verify": true, "ca_certificates": [] })).is_ok());
}

#[test]
fn url_errors() {
    let e = mk(json!({"url": "http://example.com", "host": "x.org"})).unwrap_err();
    assert_eq!(
        e.message,
        "schema violation (url: cannot be set together with 'host')"
    );
    let e = mk(json!({"url": "example"})).unwrap_err();
    assert_eq!(
        e.message,
        "2 schema violations (host: required field missing; path: should start with: /)"
    );
    let e = mk(json!({"url": "ftp://example.com"})).unwrap_err();
    assert_eq!(
        e.message,
        "schema violation (protocol: expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp)"
    );
    let e = mk(json!({"url": "http://example.com:abc"})).unwrap_err();
    assert_eq!(e.message, "schema violation (port: expected an integer)");
    let e = mk(json!({"url": 5})).unwrap_err();
    assert_eq!(e.message, "schema violation (url: expected a string)");
}

#[test]
fn field_rules() {
    assert_eq!(
        mk(json!({})).unwrap_err().message,
        "schema violation (host: required field missing)"
    );
    assert_eq!(
        mk(json!({"host": "x.org", "foo": 1}))
            .unwrap_err()
            .to_json(),
        json!({"code":2,"name":"schema violation","message":"schema violation (foo: unknown field)","fields":{"foo":"unknown field"}})
    );
    assert_eq!(
        mk(json!({"host": "x.org", "port": 70000}))
            .unwrap_err()
            .message,
        "schema violation (port: value should be between 0 and 65535)"
    );
    assert_eq!(
        mk(json!({"host": "x.org", "retries": "3"}))
            .unwrap_err()
            .message,
        "schema violation (retries: expected an integer)"
    );
    assert_eq!(
        mk(json!({"host": "x.org", "connect_timeout": 0}))
            .unwrap_err()
            .message,
        "schema violation (connect_timeout: value should be between 1 and 2147483646)"
    );
    assert_eq!(
        mk(json!({"host": "x.org", "path": "a"}))
            .unwrap_err()
            .message,
        "schema violation (path: should start with: /)"
    );
    assert_eq!(
        mk(json!({"host": "x.org", "path": "/a//b"}))
            .unwrap_err()
            .message,
        "schema violation (path: must not have empty segments)"
    );
    assert_eq!(
        mk(json!({"host": "x.org:80"})).unwrap_err().message,
        "schema violation (host: must not have a port)"
    );
    assert_eq!(
        mk(json!({"host": "x.org", "enabled": "yes"}))
            .unwrap_err()
            .message,
        "schema violation (enabled: expected a boolean)"
    );
    assert_eq!(
        mk(json!({"host": "x.org", "name": "a b"})).unwrap_err().message,
        "schema violation (name: invalid value 'a b': the only accepted ascii characters are alphanumerics or ., -, _, and ~)"
    );
}

#[test]
fn protocol_conditionals() {
    let e = mk(json!({"host": "x.org", "protocol": "tcp", "path": "/a"})).unwrap_err();
    assert_eq!(
        e.message,
        "2 schema violations (failed conditional validation given value of field 'protocol'; path: value must be null)"
    );
    let e = mk(json!({"host": "x.org", "tls_verify": true})).unwrap_err();
    assert_eq!(e.fields["tls_verify"], json!("value must be null"));
    assert!(mk(json!({"host": "x.org", "protocol": "https", "tls_verify": true})).is_ok());
}

#[test]
fn put_keeps_created_at_and_reapplies_defaults() {
    let s = mk(json!({"name": "s1", "host": "a.org", "retries": 1})).unwrap();
    let r = replace::<Service>(
        Some(&s),
        &PutKey::EndpointKey("s1".into()),
        &json!({"host": "b.org"}),
        1_800_000_000.0,
    )
    .unwrap();
    assert_eq!(r.id, s.id);
    assert_eq!(r.created_at, s.created_at);
    assert_eq!(r.updated_at, 1_800_000_000);
    assert_eq!(r.retries, 5);
    assert_eq!(r.name.as_deref(), Some("s1"));
    let id = Uuid::new_v4();
    let n = replace::<Service>(None, &PutKey::Id(id), &json!({"host": "b.org"}), 1.0).unwrap();
    assert_eq!(n.id, id);
    let k = replace::<Service>(
        None,
        &PutKey::EndpointKey("new".into()),
        &json!({"host": "b.org"}),
        1.0,
    )
    .unwrap();
    assert_eq!(k.name.as_deref(), Some("new"));
    assert_eq!(PutKey::from_segment(&id.to_string()), PutKey::Id(id));
    assert_eq!(
        PutKey::from_segment("svc"),
        PutKey::EndpointKey("svc".into())
    );
}

#[test]
fn patch_merges_and_revalidates() {
    let s = mk(json!({"name": "s1", "host": "a.org", "retries": 1})).unwrap();
    let p = patch(&s, &json!({"port": 8080}), 1_800_000_000.0).unwrap();
    assert_eq!((p.port, p.retries, p.host.as_str()), (8080, 1, "a.org"));
    assert_eq!(p.created_at, s.created_at);
    assert_eq!(p.updated_at, 1_800_000_000);
    let p = patch(&s, &json!({"url": "https://b.org/x"}), 2.0).unwrap();
    assert_eq!(
        (
            p.protocol.as_str(),
            p.host.as_str(),
            p.port,
            p.path.as_deref()
        ),
        ("https", "b.org", 443, Some("/x"))
    );
    assert_eq!(
        patch(&s, &json!({"port": -1}), 2.0).unwrap_err().message,
        "schema violation (port: value should be between 0 and 65535)"
    );
    let p = patch(&s, &json!({"name": null}), 2.0).unwrap();
    assert_eq!(p.name, None);
}

#[test]
fn unique_and_storage() {
    let s = mk(json!({"name": "s1", "host": "a.org"})).unwrap();
    assert_eq!(s.storage_key(), format!("config/services/{}", s.id));
    assert_eq!(
        s.unique_keys(),
        vec![(
            "config/index/services/name/s1".to_string(),
            "{name=\"s1\"}".to_string()
        )]
    );
    assert_eq!(Service::from_bytes(&s.to_bytes()).unwrap(), s);
}
