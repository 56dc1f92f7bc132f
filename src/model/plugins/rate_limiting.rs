//! The rate-limiting plugin's config schema (Kong's `kong/plugins/rate-limiting/schema.lua`),
//! with gatehouse's policies: `cluster` (the default: a budget shared through Raft) and
//! `local`. There is no redis policy.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::PluginDef;
use crate::model::schema::{at_least_one_of, conditional_required, Field, Record};
use crate::model::validators::{validate_header_name, validate_path, validate_sni};

pub const NAME: &str = "rate-limiting";

/// The message for `policy: redis`.
pub const NO_REDIS: &str =
    "gatehouse has no redis policy; use 'cluster' (the default, one budget shared by all nodes) or 'local'";

/// A limit window, fixed and aligned to the epoch (calendar-aligned in UTC, as Kong).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

impl Period {
    pub const ALL: [Period; 6] = [
        Period::Second,
        Period::Minute,
        Period::Hour,
        Period::Day,
        Period::Month,
        Period::Year,
    ];

    /// The config field name (`minute`).
    pub fn name(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
            Period::Year => "year",
        }
    }
    /// As in the `X-RateLimit-Limit-Minute` header.
    pub fn header_suffix(self) -> &'static str {
        match self {
            Period::Second => "Second",
            Period::Minute => "Minute",
            Period::Hour => "Hour",
            Period::Day => "Day",
            Period::Month => "Month",
            Period::Year => "Year",
        }
    }
    /// Window length in seconds (Kong's `expiration.lua`).
    pub fn window_secs(self) -> u64 {
        match self {
            Period::Second => 1,
            Period::Minute => 60,
            Period::Hour => 3600,
            Period::Day => 86400,
            Period::Month => 2592000,
            Period::Year => 31536000,
        }
    }
}

/// The typed config, read from a validated plugin's `config`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RateLimitingConfig {
    pub second: Option<f64>,
    pub minute: Option<f64>,
    pub hour: Option<f64>,
    pub day: Option<f64>,
    pub month: Option<f64>,
    pub year: Option<f64>,
    /// consumer, credential, ip, service, header or path.
    pub limit_by: String,
    pub header_name: Option<String>,
    pub path: Option<String>,
    /// `cluster` or `local`.
    pub policy: String,
    pub fault_tolerant: bool,
    pub hide_client_headers: bool,
    pub error_code: f64,
    pub error_message: String,
}

impl RateLimitingConfig {
    pub fn from_value(config: &Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(config.clone())
    }
    /// The configured limits, shortest window first.
    pub fn limits(&self) -> impl Iterator<Item = (Period, f64)> {
        let v = [
            self.second,
            self.minute,
            self.hour,
            self.day,
            self.month,
            self.year,
        ];
        Period::ALL.into_iter().zip(v).filter_map(|(p, l)| l.map(|l| (p, l)))
    }
    /// The status code of the blocked response.
    pub fn status(&self) -> u16 {
        self.error_code as u16
    }
}

/// Limits must not decrease as the period grows; `sync_rate` is redis-only.
fn validate_config(v: &Value) -> Result<(), String> {
    let Some(m) = v.as_object() else {
        return Ok(());
    };
    let periods = Period::ALL;
    for (i, lower) in periods.iter().enumerate() {
        let Some(v1) = m.get(lower.name()).and_then(Value::as_f64) else {
            continue;
        };
        for upper in &periods[i + 1..] {
            if let Some(v2) = m.get(upper.name()).and_then(Value::as_f64) {
                if v2 < v1 {
                    return Err(format!(
                        "The limit for {}({:.1}) cannot be lower than the limit for {}({:.1})",
                        upper.name(),
                        v2,
                        lower.name(),
                        v1
                    ));
                }
            }
        }
    }
    if m.get("sync_rate")
        .and_then(Value::as_f64)
        .is_some_and(|r| r != -1.0)
    {
        return Err("sync_rate can only be used with the redis policy".into());
    }
    Ok(())
}

fn redis_record() -> Record {
    Record::new()
        .field(
            "host",
            Field::string().check_str(crate::model::validators::validate_host),
        )
        .field(
            "port",
            Field::integer().default(json!(6379)).between(0.0, 65535.0),
        )
        .field(
            "timeout",
            Field::integer()
                .default(json!(2000))
                .between(0.0, 2147483646.0),
        )
        .field("username", Field::string())
        .field("password", Field::string().len_min(0))
        .field("database", Field::integer().default(json!(0)))
        .field("ssl", Field::boolean().default(json!(false)))
        .field("ssl_verify", Field::boolean().default(json!(false)))
        .field(
            "server_name",
            Field::string().check_str(|s| validate_sni(s, false)),
        )
}

/// A deprecated flat `redis_<x>` shorthand: fills `redis.<x>` unless that is set.
fn redis_shorthand(
    key: &'static str,
) -> impl Fn(Value, &mut Map<String, Value>) -> Result<(), Value> + Send + Sync + 'static {
    move |v, data| {
        if v.is_null() {
            return Ok(());
        }
        let redis = data
            .entry("redis")
            .or_insert_with(|| Value::Object(Map::new()));
        if !redis.is_object() {
            *redis = Value::Object(Map::new());
        }
        let r = redis.as_object_mut().expect("object");
        if r.get(key).is_none_or(Value::is_null) {
            r.insert(key.to_string(), v);
        }
        Ok(())
    }
}

pub(super) fn definition() -> PluginDef {
    let limit = || Field::number().gt(0.0);
    let mut config = Record::new()
        .field("second", limit())
        .field("minute", limit())
        .field("hour", limit())
        .field("day", limit())
        .field("month", limit())
        .field("year", limit())
        .field(
            "limit_by",
            Field::string().default(json!("consumer")).one_of(&[
                "consumer",
                "credential",
                "ip",
                "service",
                "header",
                "path",
            ]),
        )
        .field(
            "header_name",
            Field::string().check_str(validate_header_name),
        )
        .field("path", Field::string().check_str(validate_path))
        .field(
            "policy",
            Field::string()
                .default(json!("cluster"))
                // Kong's list has redis too, which this build refuses (a cluster needs none).
                .fact("one_of", json!(["local", "cluster"]))
                .check_str(|p| match p {
                    "cluster" | "local" => Ok(()),
                    "redis" => Err(NO_REDIS.into()),
                    _ => Err("expected one of: local, cluster".into()),
                }),
        )
        .field(
            "fault_tolerant",
            Field::boolean().required().default(json!(true)),
        )
        .field("redis", Field::record(redis_record()))
        .field(
            "hide_client_headers",
            Field::boolean().required().default(json!(false)),
        )
        .field("error_code", Field::number().default(json!(429)).gt(0.0))
        .field(
            "error_message",
            Field::string().default(json!("API rate limit exceeded")),
        )
        .field("sync_rate", Field::number().required().default(json!(-1)));
    let shorthands: [(&'static str, &'static str, Field); 9] = [
        ("redis_host", "host", Field::string()),
        ("redis_port", "port", Field::integer()),
        ("redis_password", "password", Field::string().len_min(0)),
        ("redis_username", "username", Field::string()),
        ("redis_ssl", "ssl", Field::boolean()),
        ("redis_ssl_verify", "ssl_verify", Field::boolean()),
        ("redis_server_name", "server_name", Field::string()),
        ("redis_timeout", "timeout", Field::integer()),
        ("redis_database", "database", Field::integer()),
    ];
    for (name, key, field) in shorthands {
        config = config.shorthand(name, field, redis_shorthand(key));
    }
    PluginDef {
        name: NAME,
        priority: 910,
        config,
        config_check: Some(std::sync::Arc::new(validate_config)),
        no_consumer: false,
        entity_checks: vec![
            std::sync::Arc::new(at_least_one_of(&[
                "config.second",
                "config.minute",
                "config.hour",
                "config.day",
                "config.month",
                "config.year",
            ])),
            std::sync::Arc::new(conditional_required(
                "config.limit_by",
                "header",
                "config.header_name",
            )),
            std::sync::Arc::new(conditional_required(
                "config.limit_by",
                "path",
                "config.path",
            )),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entity::{create, patch};
    use crate::model::plugin::Plugin;

    fn mk(config: Value) -> Result<Plugin, crate::model::KongError> {
        create::<Plugin>(&json!({"name": "rate-limiting", "config": config}), 1.0)
    }

    #[test]
    fn defaults() {
        let p = mk(json!({"minute": 5})).unwrap();
        let c = RateLimitingConfig::from_value(&p.config).unwrap();
        assert_eq!(c.policy, "cluster");
        assert_eq!(c.limit_by, "consumer");
        assert!(c.fault_tolerant && !c.hide_client_headers);
        assert_eq!(
            (c.status(), c.error_message.as_str()),
            (429, "API rate limit exceeded")
        );
        assert_eq!(c.limits().collect::<Vec<_>>(), vec![(Period::Minute, 5.0)]);
        assert_eq!(p.config["minute"], json!(5));
        assert_eq!(p.config["sync_rate"], json!(-1));
        assert_eq!(p.config["redis"]["port"], json!(6379));
    }

    #[test]
    fn needs_a_limit() {
        let e = mk(json!({})).unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (at least one of these fields must be non-empty: 'config.second', 'config.minute', \
             'config.hour', 'config.day', 'config.month', 'config.year')"
        );
        let e = create::<Plugin>(&json!({"name": "rate-limiting"}), 1.0).unwrap_err();
        assert!(e
            .message
            .contains("at least one of these fields must be non-empty"));
    }

    #[test]
    fn limits_must_not_decrease() {
        let e = mk(json!({"minute": 20, "hour": 10})).unwrap_err();
        assert_eq!(e.message, "schema violation (config: The limit for hour(10.0) cannot be lower than the limit for minute(20.0))");
        assert!(mk(json!({"second": 1, "minute": 1, "hour": 1})).is_ok());
        let e = mk(json!({"minute": 0})).unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (config.minute: value must be greater than 0)"
        );
    }

    #[test]
    fn limit_by_requirements() {
        let e = mk(json!({"minute": 5, "limit_by": "header"})).unwrap_err();
        assert_eq!(
            e.message,
            "2 schema violations (failed conditional validation given value of field 'config.limit_by'; \
             config.header_name: required field missing)"
        );
        let e = mk(json!({"minute": 5, "limit_by": "path"})).unwrap_err();
        assert_eq!(e.fields["config"]["path"], json!("required field missing"));
        assert!(mk(json!({"minute": 5, "limit_by": "header", "header_name": "x-user"})).is_ok());
        assert!(mk(json!({"minute": 5, "limit_by": "path", "path": "/a"})).is_ok());
        let e = mk(json!({"minute": 5, "limit_by": "cookie"})).unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (config.limit_by: expected one of: consumer, credential, ip, service, header, path)"
        );
    }

    #[test]
    fn policies() {
        assert!(mk(json!({"minute": 5, "policy": "local"})).is_ok());
        let e = mk(json!({"minute": 5, "policy": "redis"})).unwrap_err();
        assert_eq!(e.fields, json!({"config": {"policy": NO_REDIS}}));
        let e = mk(json!({"minute": 5, "policy": "x"})).unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (config.policy: expected one of: local, cluster)"
        );
        let e = mk(json!({"minute": 5, "sync_rate": 1})).unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (config: sync_rate can only be used with the redis policy)"
        );
    }

    #[test]
    fn kong_dump_shape_is_accepted() {
        let p = mk(
            json!({"minute": 5, "redis_host": null, "redis_port": 6379, "redis_timeout": 2000,
                          "redis": {"host": null, "port": 6379}, "sync_rate": -1}),
        )
        .unwrap();
        assert!(p.config.get("redis_port").is_none());
    }

    #[test]
    fn patch_merges_config_field_by_field() {
        let p = mk(json!({"minute": 5, "hide_client_headers": true})).unwrap();
        let q = patch(&p, &json!({"config": {"hour": 100}}), 2.0).unwrap();
        assert_eq!(
            (q.config["minute"].clone(), q.config["hour"].clone()),
            (json!(5), json!(100))
        );
        assert_eq!(q.config["hide_client_headers"], json!(true));
        let e = patch(&p, &json!({"config": {"hour": 1}}), 2.0).unwrap_err();
        assert!(e.message.contains("cannot be lower than"));
    }

    #[test]
    fn a_form_patch_is_typed_by_the_plugin_it_changes() {
        // `--data config.hour=100`: no name in the body, so only the existing plugin says
        // which schema types the text.
        let p = mk(json!({"minute": 5})).unwrap();
        let mut input = crate::model::input::form_to_json("config.hour=100&config.hide_client_headers=true");
        crate::model::entity::coerce_patch_form(&p, &mut input);
        let q = patch(&p, &Value::Object(input), 2.0).unwrap();
        assert_eq!((q.config["hour"].clone(), q.config["hide_client_headers"].clone()), (json!(100), json!(true)));
    }
}
