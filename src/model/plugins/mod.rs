//! The plugin registry: each plugin's config schema, scope rules and priority. Adding a
//! plugin is one new file here plus its line in `all()`.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde_json::json;

use super::schema::{Check, EntityCheck, Field, Record};

pub mod key_auth;
pub mod rate_limiting;

/// What the model knows about one plugin.
pub struct PluginDef {
    pub name: &'static str,
    /// Kong's PRIORITY: higher runs first.
    pub priority: i32,
    /// The `config` record.
    pub config: Record,
    /// A validator on the whole `config` record, run once its fields are valid.
    pub config_check: Option<Check>,
    /// Kong's `no_consumer`: the plugin cannot be scoped to a consumer.
    pub no_consumer: bool,
    /// Checks on the whole plugin entity (`config.*` paths), e.g. `at_least_one_of`.
    pub entity_checks: Vec<EntityCheck>,
}

/// Every plugin gatehouse has, in one list.
fn all() -> Vec<PluginDef> {
    vec![key_auth::definition(), rate_limiting::definition()]
}

static REGISTRY: LazyLock<BTreeMap<&'static str, PluginDef>> =
    LazyLock::new(|| all().into_iter().map(|d| (d.name, d)).collect());

/// The definition of a plugin by name.
pub fn get(name: &str) -> Option<&'static PluginDef> {
    REGISTRY.get(name)
}

/// The names of all available plugins (for `/plugins/enabled`).
pub fn names() -> Vec<&'static str> {
    REGISTRY.keys().copied().collect()
}

/// The priority of a plugin (0 when unknown).
pub fn priority(name: &str) -> i32 {
    get(name).map(|d| d.priority).unwrap_or(0)
}

/// Kong's `typedefs.protocols_http`: the http-subsystem protocols, sorted.
pub const HTTP_PROTOCOLS: &[&str] = &["grpc", "grpcs", "http", "https"];

/// `protocols` for http plugins.
pub fn protocols_http() -> Field {
    Field::set(Field::string().one_of(HTTP_PROTOCOLS))
        .required()
        .default(json!(HTTP_PROTOCOLS))
}

static SCHEMAS: LazyLock<BTreeMap<&'static str, Arc<Record>>> = LazyLock::new(|| {
    REGISTRY
        .values()
        .map(|d| (d.name, Arc::new(super::plugin::full_schema(d))))
        .collect()
});

/// The whole plugin entity schema for a plugin name.
pub fn schema(name: &str) -> Option<Arc<Record>> {
    SCHEMAS.get(name).cloned()
}
