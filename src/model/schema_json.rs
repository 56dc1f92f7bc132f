//! A schema in Kong's JSON form, as `GET /schemas/{entity}` and `/schemas/plugins/{name}`
//! answer it (`api_helpers.schema_to_jsonable`): fields in order, each a one-key object
//! with its type, presence rules, default and what its validators check. Tools read it
//! for defaults (decK fills them in before it diffs) and forms (Kong Manager).
//!
//! Entity checks are closures here, so `entity_checks` is always empty: Kong lists its
//! own (`at_least_one_of` and the like) by name.

use serde_json::{json, Map, Value};

use super::schema::{Field, Record, Ty};

/// `{"fields": [...], "entity_checks": []}` for a record.
pub fn record_json(record: &Record) -> Value {
    json!({ "fields": fields_json(record), "entity_checks": [] })
}

fn fields_json(record: &Record) -> Value {
    record.fields.iter().map(|(name, field)| json!({ *name: field_json(field) })).collect()
}

fn field_json(field: &Field) -> Value {
    let mut out = Map::new();
    let kind = match &field.ty {
        Ty::String => "string",
        Ty::Integer => "integer",
        Ty::Number => "number",
        Ty::Boolean => "boolean",
        Ty::Array(elements) => {
            out.insert("elements".into(), field_json(elements));
            "array"
        }
        Ty::Set(elements) => {
            out.insert("elements".into(), field_json(elements));
            "set"
        }
        Ty::Map(keys, values) => {
            out.insert("keys".into(), field_json(keys));
            out.insert("values".into(), field_json(values));
            "map"
        }
        Ty::Record(record) => {
            out.insert("fields".into(), fields_json(record));
            "record"
        }
        Ty::Foreign(table) => {
            out.insert("reference".into(), Value::from(*table));
            "foreign"
        }
    };
    out.insert("type".into(), Value::from(kind));
    if field.required {
        out.insert("required".into(), Value::Bool(true));
    }
    if let Some(default) = &field.default {
        out.insert("default".into(), default.clone());
    }
    if let Some(len_min) = field.len_min {
        out.insert("len_min".into(), Value::from(len_min));
    }
    if field.must_be_null {
        out.insert("eq".into(), Value::Null);
    }
    for (name, value) in &field.facts {
        out.insert((*name).into(), value.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntityType, Service};

    fn field<'a>(schema: &'a Value, name: &str) -> &'a Value {
        schema["fields"].as_array().unwrap().iter().find_map(|f| f.get(name)).unwrap_or_else(|| panic!("no field {name} in {schema}"))
    }

    #[test]
    fn a_service_schema_reads_as_kongs() {
        let schema = record_json(&Service::schema_for(&Map::new()).unwrap());
        assert_eq!(field(&schema, "id"), &json!({ "type": "string", "uuid": true, "auto": true }));
        assert_eq!(field(&schema, "created_at"), &json!({ "type": "integer", "timestamp": true, "auto": true }));
        let protocol = field(&schema, "protocol");
        assert_eq!((&protocol["type"], &protocol["required"], &protocol["default"]), (&json!("string"), &json!(true), &json!("http")));
        assert!(protocol["one_of"].as_array().unwrap().contains(&json!("https")), "{protocol}");
        assert_eq!(field(&schema, "port")["between"], json!([0, 65535]));
        assert_eq!(field(&schema, "retries")["default"], json!(5));
        assert_eq!(field(&schema, "tags")["elements"]["type"], "string");
        assert_eq!(schema["entity_checks"], json!([]));
        // The shorthand `url` is input only, not a field.
        assert!(schema["fields"].as_array().unwrap().iter().all(|f| f.get("url").is_none()));
    }

    #[test]
    fn nested_records_and_references_are_described() {
        let schema = record_json(&crate::model::plugins::schema("rate-limiting").unwrap());
        assert_eq!(field(&schema, "route"), &json!({ "type": "foreign", "reference": "routes" }));
        let config = field(&schema, "config");
        assert_eq!(config["type"], "record");
        assert_eq!((&field(config, "policy")["default"], &field(config, "policy")["one_of"]), (&json!("cluster"), &json!(["local", "cluster"])));
    }
}
