//! Tests of upstreams: Kong defaults, name rules, hashing rules, healthchecks.

use super::*;
use crate::model::entity::{create, patch};

fn mk(v: Value) -> Result<Upstream, KongError> {
    create::<Upstream>(&v, 1_700_000_000.0)
}

#[test]
fn defaults_match_kong() {
    let u = mk(json!({"name": "backend.svc"})).unwrap();
    assert_eq!(
        (
            u.algorithm.as_str(),
            u.hash_on.as_str(),
            u.hash_fallback.as_str()
        ),
        ("round-robin", "none", "none")
    );
    assert_eq!(
        (u.slots, u.hash_on_cookie_path.as_str(), u.use_srv_name),
        (10000, "/", false)
    );
    let hc = serde_json::to_value(&u.healthchecks).unwrap();
    assert_eq!(
        hc,
        json!({
            "active": {
                "type": "http", "timeout": 1, "concurrency": 10, "http_path": "/", "https_sni": null,
                "https_verify_certificate": true, "headers": null,
                "healthy": {"interval": 0, "http_statuses": [200, 302], "successes": 0},
                "unhealthy": {"interval": 0, "http_statuses": [429, 404, 500, 501, 502, 503, 504, 505],
                              "tcp_failures": 0, "timeouts": 0, "http_failures": 0}
            },
            "passive": {
                "type": "http",
                "healthy": {"http_statuses": [200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                                              300, 301, 302, 303, 304, 305, 306, 307, 308], "successes": 0},
                "unhealthy": {"http_statuses": [429, 500, 503], "tcp_failures": 0, "timeouts": 0, "http_failures": 0}
            },
            "threshold": 0
        })
    );
}

#[test]
fn name_must_be_a_hostname() {
    assert_eq!(
        mk(json!({})).unwrap_err().message,
        "schema violation (name: required field missing)"
    );
    assert_eq!(
        mk(json!({"name": "10.0.0.1"})).unwrap_err().message,
        "schema violation (name: Invalid name ('10.0.0.1'); no ip addresses allowed)"
    );
    assert_eq!(
        mk(json!({"name": "svc:8080"})).unwrap_err().message,
        "schema violation (name: Invalid name ('svc:8080'); no port allowed)"
    );
    assert_eq!(
        mk(json!({"name": "a b"})).unwrap_err().message,
        "schema violation (name: Invalid name ('a b'); must be a valid hostname)"
    );
}

#[test]
fn hashing_rules() {
    let u = mk(json!({"name": "u", "hash_on": "header", "hash_on_header": "x-user"})).unwrap();
    assert_eq!(u.algorithm, "consistent-hashing");
    let e = mk(json!({"name": "u", "hash_on": "header"})).unwrap_err();
    assert_eq!(
        e.message,
        "2 schema violations (failed conditional validation given value of field 'hash_on'; hash_on_header: required field missing)"
    );
    let e = mk(json!({"name": "u", "hash_fallback": "ip"})).unwrap_err();
    assert_eq!(e.fields["hash_fallback"], json!("expected one of: none"));
    let u = mk(json!({"name": "u", "algorithm": "least-connections"})).unwrap();
    assert_eq!(
        (u.algorithm.as_str(), u.hash_on.as_str()),
        ("least-connections", "none")
    );
    let e = mk(json!({"name": "u", "hash_on": "header", "hash_on_header": "a", "hash_fallback": "header", "hash_fallback_header": "a"}))
        .unwrap_err();
    assert_eq!(e.message, "schema violation (values of these fields must be distinct: 'hash_on_header', 'hash_fallback_header')");
}

#[test]
fn ranges_and_nested_errors() {
    assert_eq!(
        mk(json!({"name": "u", "slots": 5})).unwrap_err().message,
        "schema violation (slots: value should be between 10 and 65536)"
    );
    let e = mk(json!({"name": "u", "healthchecks": {"active": {"timeout": "x"}}})).unwrap_err();
    assert_eq!(
        e.fields,
        json!({"healthchecks": {"active": {"timeout": "expected a number"}}})
    );
    let e = mk(json!({"name": "u", "healthchecks": {"threshold": 101}})).unwrap_err();
    assert_eq!(
        e.message,
        "schema violation (healthchecks.threshold: value should be between 0 and 100)"
    );
}

#[test]
fn patch_merges_healthchecks() {
    let u =
        mk(json!({"name": "u", "healthchecks": {"active": {"healthy": {"interval": 5}}}})).unwrap();
    assert_eq!(u.healthchecks.active.healthy.interval, Num(5.0));
    let p = patch(
        &u,
        &json!({"healthchecks": {"active": {"unhealthy": {"interval": 2.5}}}}),
        1_800_000_000.0,
    )
    .unwrap();
    assert_eq!(p.healthchecks.active.healthy.interval, Num(5.0));
    assert_eq!(p.healthchecks.active.unhealthy.interval, Num(2.5));
    assert_eq!(p.healthchecks.active.concurrency, 10);
}
