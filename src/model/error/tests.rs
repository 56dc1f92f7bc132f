//! Tests of the error object: message formats, codes and statuses.

use super::*;

#[test]
fn one_schema_violation() {
    let e = KongError::schema_field("foo", "unknown field");
    assert_eq!(
        e.to_json(),
        json!({"code":2,"name":"schema violation","message":"schema violation (foo: unknown field)","fields":{"foo":"unknown field"}})
    );
    assert_eq!(e.http_status(), 400);
}

#[test]
fn several_violations_entity_first_then_sorted_fields() {
    let e = KongError::schema_violation(json!({
        "name": "required field missing",
        "@entity": ["failed conditional validation given value of field 'config.limit_by'"],
        "config": {"header_name": "required field missing"},
        "paths": [null, "should start with: / (fixed path) or ~/ (regex path)"],
    }));
    assert_eq!(
        e.message,
        "4 schema violations (failed conditional validation given value of field 'config.limit_by'; \
         config.header_name: required field missing; name: required field missing; \
         paths.2: should start with: / (fixed path) or ~/ (regex path))"
    );
}

#[test]
fn unique_violation_message() {
    let e = KongError::unique_violation(json!({"username": "bob"}));
    assert_eq!(
        e.message,
        "UNIQUE violation detected on '{username=\"bob\"}'"
    );
    assert_eq!(e.http_status(), 409);
    assert_eq!(e.fields, json!({"username": "bob"}));
    let e = KongError::unique_violation(
        json!({"name": "key-auth", "route": null, "service": {"id": "x"}, "consumer": null}),
    );
    assert_eq!(
        e.message,
        "UNIQUE violation detected on '{consumer=null,name=\"key-auth\",route=null,service={id=\"x\"}}'"
    );
}

#[test]
fn other_codes() {
    assert_eq!(KongError::invalid_size().http_status(), 400);
    assert_eq!(KongError::invalid_size().code, 9);
    assert_eq!(KongError::not_found(json!({"id": "x"})).http_status(), 404);
    assert_eq!(KongError::not_found_body(), json!({"message": "Not found"}));
    let fk = KongError::foreign_key_violation("service", json!({"id": "abc"}), "services");
    assert_eq!(fk.code, 4);
    assert_eq!(
        fk.message,
        "the foreign key '{id=\"abc\"}' does not reference an existing 'services' entity."
    );
    assert_eq!(fk.fields, json!({"service": {"id": "abc"}}));
    let r = KongError::foreign_key_restricted("services", "routes");
    assert_eq!(
        r.message,
        "an existing 'routes' entity references this 'services' entity"
    );
    assert_eq!(KongError::referenced_by_others("x").code, 19);
    assert_eq!(KongError::declarative_config(json!({"a": "b"})).code, 14);
    assert_eq!(
        KongError::declarative_config(json!({"a": "b"})).name,
        "invalid declarative configuration"
    );
    assert!(KongError::invalid_size().to_json().get("fields").is_none());
}

#[test]
fn pretty_nested_value_in_message() {
    let e = KongError::schema_violation(
        json!({"healthchecks": {"active": {"timeout": "expected a number"}}}),
    );
    assert_eq!(
        e.message,
        "schema violation (healthchecks.active: {\n  timeout = \"expected a number\"\n})"
    );
}
