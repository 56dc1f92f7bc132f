//! A schema in Kong's JSON form, as `GET /schemas/{entity}` and `/schemas/plugins/{name}`
//! answer it (`api_helpers.schema_to_jsonable`): fields in order, each a one-key object
//! with its type, presence rules, default and what its validators check. Tools read it
//! for defaults (decK fills them in before it diffs) and forms (Kong Manager).
//!
//! Entity checks are closures here, so `entity_checks` is always empty: Kong lists its
//! own (`at_least_one_of` and the like) by name.

use serde_json::{json, Map, Value};

use super::schema::{Field, Record, Ty};

/// `{"fields": [...], "entity_checks": []}` for an entity's record, or a plugin's.
pub fn record_json(record: &Record) -> Value {
    let fields: Vec<Value> = record
        .fields
        .iter()
        .map(|(name, field)| {
            let mut json = record_field_json(field);
            // An entity's id is made on insert when not given (`typedefs.uuid`'s `auto`).
            if *name == "id" {
                json["auto"] = Value::Bool(true);
            }
            json!({ *name: json })
        })
        .collect();
    json!({ "fields": fields, "entity_checks": [] })
}

fn fields_json(record: &Record) -> Value {
    record.fields.iter().map(|(name, field)| json!({ *name: record_field_json(field) })).collect()
}

/// A field of a record. Kong makes every record field of an entity required unless it
/// says otherwise (`make_records_required`), and this model fills them all in.
fn record_field_json(field: &Field) -> Value {
    let mut json = field_json(field);
    if matches!(field.ty, Ty::Record(_)) && !is_abstract(field) {
        json["required"] = Value::Bool(true);
    }
    json
}

/// A record each entity defines for itself (a plugin's `config` in the plugins schema).
fn is_abstract(field: &Field) -> bool {
    field.facts.iter().any(|(name, value)| *name == "abstract" && *value == Value::Bool(true))
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
            if !is_abstract(field) {
                out.insert("fields".into(), fields_json(record));
            }
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
    use crate::model::{EntityType, Service, Upstream};

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
    fn records_are_required_and_ids_alone_are_auto() {
        let schema = record_json(&Upstream::schema_for(&Map::new()).unwrap());
        let healthchecks = field(&schema, "healthchecks");
        assert_eq!((&healthchecks["type"], &healthchecks["required"]), (&json!("record"), &json!(true)));
        assert_eq!(field(healthchecks, "active")["required"], true, "nested records too");
        let services = record_json(&Service::schema_for(&Map::new()).unwrap());
        assert_eq!(field(&services, "ca_certificates")["elements"], json!({ "type": "string", "uuid": true }));
    }

    #[test]
    fn a_plugins_schema_is_its_own_fields() {
        let def = crate::model::plugins::get("key-auth").unwrap();
        let schema = record_json(&crate::model::plugin::own_schema(def));
        let names: Vec<&str> = schema["fields"].as_array().unwrap().iter().filter_map(|f| f.as_object()?.keys().next().map(String::as_str)).collect();
        assert_eq!(names, ["consumer", "protocols", "config"]);
        assert_eq!(field(&schema, "consumer"), &json!({ "type": "foreign", "reference": "consumers", "eq": null }));
        let base = record_json(&crate::model::plugin::base_schema());
        assert_eq!(field(&base, "config"), &json!({ "type": "record", "abstract": true }));
    }

    #[test]
    fn nested_records_and_references_are_described() {
        let schema = record_json(&crate::model::plugins::schema("rate-limiting").unwrap());
        assert_eq!(field(&schema, "route"), &json!({ "type": "foreign", "reference": "routes" }));
        let config = field(&schema, "config");
        assert_eq!((&config["type"], &config["required"]), (&json!("record"), &json!(true)));
        assert_eq!((&field(config, "policy")["default"], &field(config, "policy")["one_of"]), (&json!("cluster"), &json!(["local", "cluster"])));
    }
}
