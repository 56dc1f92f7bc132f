//! The key-auth plugin's config schema (Kong's `kong/plugins/key-auth/schema.lua`).

use hyper::header::HeaderName;
use serde::Deserialize;
use serde_json::{json, Value};

use super::PluginDef;
use crate::model::schema::{Field, Record};
use crate::model::validators::validate_header_name;

pub const NAME: &str = "key-auth";

/// The typed config, read from a validated plugin's `config`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KeyAuthConfig {
    /// Header, query-argument and body-field names that carry the key.
    pub key_names: Vec<KeyName>,
    /// Remove the key from the request before proxying.
    pub hide_credentials: bool,
    /// Consumer id or username to use when authentication fails.
    pub anonymous: Option<String>,
    pub key_in_header: bool,
    pub key_in_query: bool,
    pub key_in_body: bool,
    /// Authenticate `OPTIONS` preflight requests too.
    pub run_on_preflight: bool,
    /// `WWW-Authenticate: Key realm="<realm>"` when set.
    pub realm: Option<String>,
}

/// A name the key may come under, with its header form parsed as it is read: a header
/// lookup by text would parse the name again on every request.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyName {
    pub text: String,
    /// `None` for a name that is no header name; the schema admits none such.
    pub header: Option<HeaderName>,
}

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let header = HeaderName::from_bytes(text.as_bytes()).ok();
        Ok(KeyName { text, header })
    }
}

impl KeyAuthConfig {
    pub fn from_value(config: &Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(config.clone())
    }
}

pub(super) fn definition() -> PluginDef {
    let config = Record::new()
        .field(
            "key_names",
            Field::array(Field::string().check_str(validate_header_name))
                .required()
                .default(json!(["apikey"])),
        )
        .field(
            "hide_credentials",
            Field::boolean().required().default(json!(false)),
        )
        .field("anonymous", Field::string())
        .field(
            "key_in_header",
            Field::boolean().required().default(json!(true)),
        )
        .field(
            "key_in_query",
            Field::boolean().required().default(json!(true)),
        )
        .field(
            "key_in_body",
            Field::boolean().required().default(json!(false)),
        )
        .field(
            "run_on_preflight",
            Field::boolean().required().default(json!(true)),
        )
        .field("realm", Field::string());
    PluginDef {
        name: NAME,
        priority: 1250,
        config,
        config_check: None,
        no_consumer: true,
        entity_checks: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entity::create;
    use crate::model::plugin::Plugin;
    use uuid::Uuid;

    #[test]
    fn defaults() {
        let p = create::<Plugin>(&json!({"name": "key-auth"}), 1.0).unwrap();
        assert_eq!(
            p.config,
            json!({"key_names": ["apikey"], "hide_credentials": false, "anonymous": null, "key_in_header": true,
                   "key_in_query": true, "key_in_body": false, "run_on_preflight": true, "realm": null})
        );
        assert_eq!(p.protocols, vec!["grpc", "grpcs", "http", "https"]);
        let c = KeyAuthConfig::from_value(&p.config).unwrap();
        assert_eq!(c.key_names, vec![KeyName { text: "apikey".into(), header: Some(HeaderName::from_static("apikey")) }]);
        assert!(c.key_in_header && c.key_in_query && !c.key_in_body && c.run_on_preflight);
    }

    #[test]
    fn rules() {
        let e = create::<Plugin>(
            &json!({"name": "key-auth", "consumer": {"id": Uuid::new_v4()}}),
            1.0,
        )
        .unwrap_err();
        assert_eq!(e.message, "schema violation (consumer: value must be null)");
        let e = create::<Plugin>(
            &json!({"name": "key-auth", "config": {"key_names": ["bad name"]}}),
            1.0,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (config.key_names: {\n  \"bad header name 'bad name', allowed characters are A-Z, a-z, 0-9, '_', and '-'\"\n})"
        );
        let e = create::<Plugin>(
            &json!({"name": "key-auth", "config": {"hide_credentials": "yes"}}),
            1.0,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (config.hide_credentials: expected a boolean)"
        );
        let e =
            create::<Plugin>(&json!({"name": "key-auth", "config": {"foo": 1}}), 1.0).unwrap_err();
        assert_eq!(e.message, "schema violation (config.foo: unknown field)");
    }
}
