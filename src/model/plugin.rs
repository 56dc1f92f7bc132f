//! Plugin: a plugin instance scoped globally or to a route, service and/or consumer
//! (Kong's `plugins.lua`), validated with its plugin's config schema.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::entity::{timestamp_field, EntityType, ForeignKey};
use super::error::KongError;
use super::plugins::{self, PluginDef};
use super::schema::{Field, Record, REQUIRED};
use super::storage::index_key;
use super::validators;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plugin {
    pub id: Uuid,
    pub name: String,
    pub instance_name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub route: Option<ForeignKey>,
    pub service: Option<ForeignKey>,
    pub consumer: Option<ForeignKey>,
    /// The validated config of the plugin `name`; read it typed with e.g.
    /// [`super::plugins::rate_limiting::RateLimitingConfig::from_value`].
    pub config: Value,
    pub protocols: Vec<String>,
    pub enabled: bool,
    pub tags: Option<Vec<String>>,
}

/// Kong's message for a plugin that does not exist here.
pub fn not_enabled_message(name: &str) -> String {
    format!("plugin '{name}' not enabled; add it to the 'plugins' configuration property")
}

/// The plugin entity schema with `def`'s config, protocols and scope rules.
pub(crate) fn full_schema(def: &PluginDef) -> Record {
    let mut config = Field::record(def.config.clone());
    if let Some(check) = &def.config_check {
        config.checks.push(check.clone());
    }
    let consumer = if def.no_consumer {
        Field::foreign("consumers").must_be_null(None)
    } else {
        Field::foreign("consumers")
    };
    let mut rec = entity_record(config, consumer);
    rec.entity_checks.extend(def.entity_checks.iter().cloned());
    rec
}

/// What a plugin defines of its entity, as Kong's `/schemas/plugins/{name}` shows it:
/// `consumer` when it cannot be scoped to one, `protocols` and `config`.
pub fn own_schema(def: &PluginDef) -> Record {
    let full = full_schema(def);
    let own = |name: &str| full.fields.iter().find(|(n, _)| *n == name).cloned();
    let mut record = Record::new();
    let consumer = own("consumer").filter(|_| def.no_consumer);
    record.fields.extend(consumer.into_iter().chain(own("protocols")).chain(own("config")));
    record
}

/// The plugin entity whatever its name, as Kong's `/schemas/plugins` shows it: `config`
/// is a record each plugin defines.
pub fn base_schema() -> Record {
    entity_record(Field::record(Record::new()).fact("abstract", Value::Bool(true)), Field::foreign("consumers"))
}

fn entity_record(config: Field, consumer: Field) -> Record {
    Record::new()
        .field("id", Field::uuid())
        .field("name", Field::string().required())
        .field(
            "instance_name",
            Field::string().check_str(validators::validate_utf8_name),
        )
        .field("created_at", timestamp_field(false))
        .field("updated_at", timestamp_field(false))
        .field("route", Field::foreign("routes"))
        .field("service", Field::foreign("services"))
        .field("consumer", consumer)
        .field("config", config)
        .field("protocols", plugins::protocols_http())
        .field("enabled", Field::boolean().required().default(json!(true)))
        .field("tags", Field::tags())
}

fn fk_part(fk: &Option<ForeignKey>) -> String {
    fk.map(|f| f.id.to_string()).unwrap_or_default()
}

fn fk_json(fk: &Option<ForeignKey>) -> Value {
    fk.map(|f| json!({"id": f.id})).unwrap_or(Value::Null)
}

impl Plugin {
    /// Kong's cache key `{name, route, service, consumer}` as one string: at most one
    /// plugin of a name per scope.
    pub fn cache_key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.name,
            fk_part(&self.route),
            fk_part(&self.service),
            fk_part(&self.consumer)
        )
    }
    /// The plugin's priority (higher runs first).
    pub fn priority(&self) -> i32 {
        plugins::priority(&self.name)
    }
    /// Is this a global plugin (no route, service or consumer)?
    pub fn is_global(&self) -> bool {
        self.route.is_none() && self.service.is_none() && self.consumer.is_none()
    }
}

impl EntityType for Plugin {
    const TABLE: &'static str = "plugins";
    const ENDPOINT_KEY: Option<&'static str> = Some("instance_name");

    fn schema_for(input: &Map<String, Value>) -> Result<Arc<Record>, KongError> {
        match input.get("name") {
            None | Some(Value::Null) => Err(KongError::schema_field("name", REQUIRED)),
            Some(Value::String(n)) => plugins::schema(n)
                .ok_or_else(|| KongError::schema_field("name", not_enabled_message(n))),
            Some(_) => Err(KongError::schema_field("name", "expected a string")),
        }
    }
    fn id(&self) -> Uuid {
        self.id
    }
    fn endpoint_key_value(&self) -> Option<String> {
        self.instance_name.clone()
    }
    fn unique_fields(&self) -> Vec<(String, Value)> {
        let mut out = vec![(
            index_key(Self::TABLE, "cache_key", &self.cache_key()),
            json!({
                "name": self.name,
                "route": fk_json(&self.route),
                "service": fk_json(&self.service),
                "consumer": fk_json(&self.consumer),
            }),
        )];
        if let Some(n) = &self.instance_name {
            out.push((
                index_key(Self::TABLE, "instance_name", n),
                json!({ "instance_name": n }),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entity::create;

    #[test]
    fn unknown_plugin() {
        let e = create::<Plugin>(&json!({"name": "cors"}), 1.0).unwrap_err();
        assert_eq!(
            e.to_json(),
            json!({"code": 2, "name": "schema violation",
                   "message": "schema violation (name: plugin 'cors' not enabled; add it to the 'plugins' configuration property)",
                   "fields": {"name": "plugin 'cors' not enabled; add it to the 'plugins' configuration property"}})
        );
        let e = create::<Plugin>(&json!({}), 1.0).unwrap_err();
        assert_eq!(e.message, "schema violation (name: required field missing)");
    }

    #[test]
    fn scope_and_defaults() {
        let s = Uuid::new_v4();
        let p = create::<Plugin>(
            &json!({"name": "rate-limiting", "service": {"id": s}, "config": {"second": 2}}),
            5.0,
        )
        .unwrap();
        assert!(p.enabled);
        assert_eq!(p.service, Some(ForeignKey::new(s)));
        assert_eq!((p.route, p.consumer), (None, None));
        assert_eq!(p.cache_key(), format!("rate-limiting::{s}:"));
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["route"], Value::Null);
        assert_eq!(j["service"], json!({"id": s}));
        let (_, desc) = &p.unique_keys()[0];
        assert_eq!(
            desc,
            &format!("{{consumer=null,name=\"rate-limiting\",route=null,service={{id=\"{s}\"}}}}")
        );
        let e = create::<Plugin>(
            &json!({"name": "rate-limiting", "protocols": ["tcp"], "config": {"second": 2}}),
            5.0,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (protocols.1: expected one of: grpc, grpcs, http, https)"
        );
    }
}
