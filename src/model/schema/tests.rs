//! Tests of the schema engine: defaults, error trees, coercion, merging.
use super::*;
use serde_json::json;

fn rec() -> Record {
    Record::new()
        .field("name", Field::string().required())
        .field(
            "port",
            Field::integer().default(json!(80)).between(0.0, 65535.0),
        )
        .field("on", Field::boolean().default(json!(true)))
        .field("list", Field::array(Field::string().one_of(&["a", "b"])))
        .field(
            "inner",
            Field::record(
                Record::new()
                    .field("x", Field::number().default(json!(1)))
                    .field("y", Field::string()),
            ),
        )
        .field("svc", Field::foreign("services"))
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn defaults_and_nulls() {
    let out = rec().process(&obj(json!({"name": "n"}))).unwrap();
    assert_eq!(
        Value::Object(out),
        json!({"name": "n", "port": 80, "on": true, "list": null, "inner": {"x": 1, "y": null}, "svc": null})
    );
}

#[test]
fn errors_tree_and_messages() {
    let e = rec()
        .process(&obj(json!({"port": "x", "foo": 1, "list": ["a", "c"], "inner": {"x": "s"}, "svc": {"id": "nope"}})))
        .unwrap_err();
    assert_eq!(
        e.fields,
        json!({
            "foo": "unknown field",
            "name": "required field missing",
            "port": "expected an integer",
            "list": [null, "expected one of: a, b"],
            "inner": {"x": "expected a number"},
            "svc": {"id": "expected a valid UUID"},
        })
    );
    assert_eq!(
        e.message,
        "6 schema violations (foo: unknown field; inner.x: expected a number; list.2: expected one of: a, b; \
         name: required field missing; port: expected an integer; svc.id: expected a valid UUID)"
    );
}

#[test]
fn integer_normalisation_and_range() {
    let out = rec()
        .process(&obj(json!({"name": "n", "port": 8080.0})))
        .unwrap();
    assert_eq!(out["port"], json!(8080));
    let e = rec()
        .process(&obj(json!({"name": "n", "port": 70000})))
        .unwrap_err();
    assert_eq!(
        e.message,
        "schema violation (port: value should be between 0 and 65535)"
    );
    let e = rec()
        .process(&obj(json!({"name": "n", "port": 1.5})))
        .unwrap_err();
    assert_eq!(e.message, "schema violation (port: expected an integer)");
}

#[test]
fn empty_string_rejected() {
    let e = rec().process(&obj(json!({"name": ""}))).unwrap_err();
    assert_eq!(
        e.message,
        "schema violation (name: length must be at least 1)"
    );
}

#[test]
fn coerce_form_values() {
    let mut m =
        obj(json!({"name": "n", "port": "81", "on": "false", "list": "a", "inner": {"x": "2.5"}}));
    rec().coerce_form(&mut m);
    assert_eq!(
        Value::Object(m),
        json!({"name": "n", "port": 81, "on": false, "list": ["a"], "inner": {"x": 2.5}})
    );
    let mut m = obj(json!({"name": "n", "port": ""}));
    rec().coerce_form(&mut m);
    assert_eq!(m["port"], Value::Null);
}

#[test]
fn merge_records_field_by_field() {
    let mut existing = obj(json!({"name": "n", "inner": {"x": 1, "y": "a"}, "list": ["a"]}));
    rec().merge(
        &mut existing,
        obj(json!({"inner": {"y": "b"}, "list": ["b"]})),
    );
    assert_eq!(
        Value::Object(existing),
        json!({"name": "n", "inner": {"x": 1, "y": "b"}, "list": ["b"]})
    );
}

#[test]
fn errors_paths() {
    let mut e = Errors::default();
    e.field("config.header_name", REQUIRED);
    assert!(e.has("config.header_name"));
    assert!(e.has("config"));
    assert!(!e.has("config.path"));
}
