//! Target: one `host:port` of an upstream, with a weight (Kong's `targets.lua`; the
//! address is normalised with port 8000 by default, as Kong's targets DAO does).

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::entity::{timestamp_field, EntityType, ForeignKey};
use super::error::KongError;
use super::schema::{Field, Record};
use super::storage::index_key;
use super::validators::{format_host, normalize_ip};

/// The port a target gets when none is given.
pub const DEFAULT_TARGET_PORT: u32 = 8000;

/// Timestamps are Unix seconds with a millisecond fraction (Kong's `auto_timestamp_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub id: Uuid,
    pub created_at: f64,
    pub updated_at: f64,
    pub upstream: ForeignKey,
    pub target: String,
    pub weight: u16,
    pub tags: Option<Vec<String>>,
}

fn invalid(target: &str) -> String {
    format!("Invalid target ('{target}'); not a valid hostname or ip address")
}

/// `host:port` with the default port and IPv6 in brackets, or Kong's message.
pub fn normalize_target(target: &str) -> Result<String, String> {
    let p = normalize_ip(target).map_err(|_| invalid(target))?;
    Ok(format_host(&p, Some(DEFAULT_TARGET_PORT)))
}

static SCHEMA: LazyLock<Arc<Record>> = LazyLock::new(|| {
    Arc::new(
        Record::new()
            .field("id", Field::uuid())
            .field("created_at", timestamp_field(true))
            .field("updated_at", timestamp_field(true))
            .field("upstream", Field::foreign("upstreams").required())
            .field(
                "target",
                Field::string()
                    .required()
                    .check_str(|t| normalize_target(t).map(|_| ())),
            )
            .field(
                "weight",
                Field::integer().default(json!(100)).between(0.0, 65535.0),
            )
            .field("tags", Field::tags()),
    )
});

impl EntityType for Target {
    const TABLE: &'static str = "targets";
    const ENDPOINT_KEY: Option<&'static str> = Some("target");
    const TIMESTAMP_MS: bool = true;

    fn schema_for(_: &Map<String, Value>) -> Result<Arc<Record>, KongError> {
        Ok(SCHEMA.clone())
    }
    fn prepare(input: &mut Map<String, Value>) -> Result<(), KongError> {
        if let Some(Value::String(t)) = input.get("target") {
            if let Ok(n) = normalize_target(t) {
                input.insert("target".into(), Value::String(n));
            }
        }
        Ok(())
    }
    fn id(&self) -> Uuid {
        self.id
    }
    fn endpoint_key_value(&self) -> Option<String> {
        Some(self.target.clone())
    }
    /// Unique per upstream (Kong's cache key `{upstream, target}`).
    fn unique_fields(&self) -> Vec<(String, Value)> {
        let value = format!("{}:{}", self.upstream.id, self.target);
        vec![(
            index_key(Self::TABLE, "upstream_target", &value),
            json!({"target": self.target, "upstream": {"id": self.upstream.id}}),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entity::{create, patch};

    fn mk(v: Value) -> Result<Target, KongError> {
        create::<Target>(&v, 1_700_000_000.123_4)
    }

    #[test]
    fn default_port_and_weight() {
        let up = Uuid::new_v4();
        let t = mk(json!({"upstream": {"id": up}, "target": "10.0.0.1"})).unwrap();
        assert_eq!((t.target.as_str(), t.weight), ("10.0.0.1:8000", 100));
        assert_eq!(t.created_at, 1_700_000_000.123);
        let t = mk(json!({"upstream": {"id": up}, "target": "svc.local:9000"})).unwrap();
        assert_eq!(t.target, "svc.local:9000");
        let t = mk(json!({"upstream": {"id": up}, "target": "::1"})).unwrap();
        assert_eq!(t.target, "[0000:0000:0000:0000:0000:0000:0000:0001]:8000");
    }

    #[test]
    fn errors() {
        let up = Uuid::new_v4();
        assert_eq!(
            mk(json!({"upstream": {"id": up}, "target": "a b"}))
                .unwrap_err()
                .message,
            "schema violation (target: Invalid target ('a b'); not a valid hostname or ip address)"
        );
        assert_eq!(
            mk(json!({"upstream": {"id": up}, "target": "a.org", "weight": 70000}))
                .unwrap_err()
                .message,
            "schema violation (weight: value should be between 0 and 65535)"
        );
        assert_eq!(
            mk(json!({"target": "a.org"})).unwrap_err().message,
            "schema violation (upstream: required field missing)"
        );
    }

    #[test]
    fn unique_per_upstream_and_patch() {
        let up = Uuid::new_v4();
        let t = mk(json!({"upstream": {"id": up}, "target": "a.org:80"})).unwrap();
        assert_eq!(
            t.unique_fields()[0].0,
            format!("config/index/targets/upstream_target/{up}:a.org:80")
        );
        let p = patch(&t, &json!({"weight": 0}), 1_700_000_001.0).unwrap();
        assert_eq!(
            (p.weight, p.updated_at, p.created_at),
            (0, 1_700_000_001.0, t.created_at)
        );
    }
}
