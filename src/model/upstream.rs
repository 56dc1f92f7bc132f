//! Upstream: a named load-balanced set of targets with hashing and health checks
//! (Kong's `upstreams.lua`, healthcheck defaults included).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::entity::{timestamp_field, EntityType, ForeignKey, Num};
use super::error::KongError;
use super::schema::{conditional_required, Errors, Field, Record};
use super::storage::unique_field;
use super::validators::{self, normalize_ip, HostKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upstream {
    pub id: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
    pub name: String,
    pub algorithm: String,
    pub hash_on: String,
    pub hash_fallback: String,
    pub hash_on_header: Option<String>,
    pub hash_fallback_header: Option<String>,
    pub hash_on_cookie: Option<String>,
    pub hash_on_cookie_path: String,
    pub hash_on_query_arg: Option<String>,
    pub hash_fallback_query_arg: Option<String>,
    pub hash_on_uri_capture: Option<String>,
    pub hash_fallback_uri_capture: Option<String>,
    pub slots: u32,
    pub healthchecks: Healthchecks,
    pub tags: Option<Vec<String>>,
    pub host_header: Option<String>,
    pub client_certificate: Option<ForeignKey>,
    pub use_srv_name: bool,
}

/// Health checking; a value of 0 disables the corresponding check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Healthchecks {
    pub active: ActiveHealthcheck,
    pub passive: PassiveHealthcheck,
    /// Percentage of healthy weight under which the upstream counts as unhealthy.
    pub threshold: Num,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveHealthcheck {
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds.
    pub timeout: Num,
    pub concurrency: u32,
    pub http_path: String,
    pub https_sni: Option<String>,
    pub https_verify_certificate: bool,
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    pub healthy: ActiveHealthy,
    pub unhealthy: ActiveUnhealthy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveHealthy {
    /// Seconds between probes of healthy targets; 0 disables.
    pub interval: Num,
    pub http_statuses: Vec<u16>,
    pub successes: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveUnhealthy {
    /// Seconds between probes of unhealthy targets; 0 disables.
    pub interval: Num,
    pub http_statuses: Vec<u16>,
    pub tcp_failures: u8,
    pub timeouts: u8,
    pub http_failures: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassiveHealthcheck {
    #[serde(rename = "type")]
    pub kind: String,
    pub healthy: PassiveHealthy,
    pub unhealthy: PassiveUnhealthy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassiveHealthy {
    pub http_statuses: Vec<u16>,
    pub successes: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassiveUnhealthy {
    pub http_statuses: Vec<u16>,
    pub tcp_failures: u8,
    pub timeouts: u8,
    pub http_failures: u8,
}

const HASH_ON: &[&str] = &[
    "none",
    "consumer",
    "ip",
    "header",
    "cookie",
    "path",
    "query_arg",
    "uri_capture",
];

fn statuses(default: &[u16]) -> Field {
    Field::array(Field::integer().between(100.0, 999.0)).default(json!(default))
}
fn seconds(default: i64) -> Field {
    Field::number()
        .default(json!(default))
        .between(0.0, 65535.0)
}
fn counter() -> Field {
    Field::integer().default(json!(0)).between(0.0, 255.0)
}
fn check_type() -> Field {
    Field::string()
        .default(json!("http"))
        .one_of(&["tcp", "http", "https", "grpc", "grpcs"])
}

fn healthchecks() -> Field {
    let active = Record::new()
        .field("type", check_type())
        .field("timeout", seconds(1))
        .field(
            "concurrency",
            Field::integer()
                .default(json!(10))
                .between(1.0, 2147483648.0),
        )
        .field(
            "http_path",
            Field::string()
                .default(json!("/"))
                .check_str(validators::validate_path),
        )
        .field(
            "https_sni",
            Field::string().check_str(|s| validators::validate_sni(s, false)),
        )
        .field(
            "https_verify_certificate",
            Field::boolean().required().default(json!(true)),
        )
        .field(
            "headers",
            Field::map(
                Field::string().check_str(validators::validate_header_name),
                Field::array(Field::string()),
            ),
        )
        .field(
            "healthy",
            Field::record(
                Record::new()
                    .field("interval", seconds(0))
                    .field("http_statuses", statuses(&[200, 302]))
                    .field("successes", counter()),
            ),
        )
        .field(
            "unhealthy",
            Field::record(
                Record::new()
                    .field("interval", seconds(0))
                    .field(
                        "http_statuses",
                        statuses(&[429, 404, 500, 501, 502, 503, 504, 505]),
                    )
                    .field("tcp_failures", counter())
                    .field("timeouts", counter())
                    .field("http_failures", counter()),
            ),
        );
    let passive = Record::new()
        .field("type", check_type())
        .field(
            "healthy",
            Field::record(
                Record::new()
                    .field(
                        "http_statuses",
                        statuses(&[
                            200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303,
                            304, 305, 306, 307, 308,
                        ]),
                    )
                    .field("successes", counter()),
            ),
        )
        .field(
            "unhealthy",
            Field::record(
                Record::new()
                    .field("http_statuses", statuses(&[429, 500, 503]))
                    .field("tcp_failures", counter())
                    .field("timeouts", counter())
                    .field("http_failures", counter()),
            ),
        );
    Field::record(
        Record::new()
            .field("active", Field::record(active))
            .field("passive", Field::record(passive))
            .field(
                "threshold",
                Field::number().default(json!(0)).between(0.0, 100.0),
            ),
    )
}

/// `Invalid name ('x'); no port allowed` and friends.
fn validate_name(name: &str) -> Result<(), String> {
    match normalize_ip(name) {
        Err(_) => Err(format!("Invalid name ('{name}'); must be a valid hostname")),
        Ok(p) if p.kind != HostKind::Name => {
            Err(format!("Invalid name ('{name}'); no ip addresses allowed"))
        }
        Ok(p) if p.port.is_some() => Err(format!("Invalid name ('{name}'); no port allowed")),
        Ok(_) => Ok(()),
    }
}

/// `conditional` with `then_match = { one_of = allowed }` on `hash_fallback`.
fn fallback_one_of(
    hash_on: &'static str,
    allowed: &'static [&'static str],
) -> impl Fn(&Map<String, Value>, &mut Errors) + Send + Sync {
    move |m, errors| {
        if m.get("hash_on").and_then(Value::as_str) != Some(hash_on) {
            return;
        }
        let fb = m
            .get("hash_fallback")
            .and_then(Value::as_str)
            .unwrap_or("none");
        if !allowed.contains(&fb) {
            errors.field(
                "hash_fallback",
                format!("expected one of: {}", allowed.join(", ")),
            );
            errors.entity("failed conditional validation given value of field 'hash_on'");
        }
    }
}

fn distinct(
    a: &'static str,
    b: &'static str,
) -> impl Fn(&Map<String, Value>, &mut Errors) + Send + Sync {
    move |m, errors| {
        if let (Some(x), Some(y)) = (
            m.get(a).and_then(Value::as_str),
            m.get(b).and_then(Value::as_str),
        ) {
            if x == y {
                errors.entity(format!(
                    "values of these fields must be distinct: '{a}', '{b}'"
                ));
            }
        }
    }
}

/// Kong's backwards-compatibility shorthands: `least-connections` and `latency` reset
/// `hash_on`; any `hash_on` other than none switches to consistent hashing.
fn apply_algorithm(v: Value, data: &mut Map<String, Value>) -> Result<(), Value> {
    if v.is_null() {
        return Ok(());
    }
    if matches!(v.as_str(), Some("least-connections" | "latency")) {
        data.insert("hash_on".into(), Value::Null);
    }
    data.insert("algorithm".into(), v);
    Ok(())
}

fn apply_hash_on(v: Value, data: &mut Map<String, Value>) -> Result<(), Value> {
    if v.is_null() {
        data.insert("hash_on".into(), json!("none"));
        return Ok(());
    }
    let algorithm = if v.as_str() == Some("none") {
        "round-robin"
    } else {
        "consistent-hashing"
    };
    data.insert("algorithm".into(), json!(algorithm));
    data.insert("hash_on".into(), v);
    Ok(())
}

static SCHEMA: LazyLock<Arc<Record>> = LazyLock::new(|| {
    let simple = || Field::string();
    Arc::new(
        Record::new()
            .field("id", Field::uuid())
            .field("created_at", timestamp_field(false))
            .field("name", Field::string().required().check_str(validate_name))
            .field("updated_at", timestamp_field(false))
            .field(
                "algorithm",
                Field::string().default(json!("round-robin")).one_of(&[
                    "consistent-hashing",
                    "least-connections",
                    "round-robin",
                    "latency",
                ]),
            )
            .field(
                "hash_on",
                Field::string().default(json!("none")).one_of(HASH_ON),
            )
            .field(
                "hash_fallback",
                Field::string().default(json!("none")).one_of(HASH_ON),
            )
            .field(
                "hash_on_header",
                Field::string().check_str(validators::validate_header_name),
            )
            .field(
                "hash_fallback_header",
                Field::string().check_str(validators::validate_header_name),
            )
            .field(
                "hash_on_cookie",
                Field::string().check_str(validators::validate_cookie_name),
            )
            .field(
                "hash_on_cookie_path",
                Field::string()
                    .default(json!("/"))
                    .check_str(validators::validate_path),
            )
            .field("hash_on_query_arg", simple())
            .field("hash_fallback_query_arg", simple())
            .field("hash_on_uri_capture", simple())
            .field("hash_fallback_uri_capture", simple())
            .field(
                "slots",
                Field::integer()
                    .default(json!(10000))
                    .between(10.0, 65536.0),
            )
            .field("healthchecks", healthchecks())
            .field("tags", Field::tags())
            .field(
                "host_header",
                Field::string().check_str(validators::validate_host_with_optional_port),
            )
            .field("client_certificate", Field::foreign("certificates"))
            .field("use_srv_name", Field::boolean().default(json!(false)))
            .shorthand("algorithm", Field::string(), apply_algorithm)
            .shorthand("hash_on", Field::string(), apply_hash_on)
            .entity_check(conditional_required("hash_on", "header", "hash_on_header"))
            .entity_check(conditional_required(
                "hash_fallback",
                "header",
                "hash_fallback_header",
            ))
            .entity_check(conditional_required("hash_on", "cookie", "hash_on_cookie"))
            .entity_check(conditional_required(
                "hash_fallback",
                "cookie",
                "hash_on_cookie",
            ))
            .entity_check(fallback_one_of("none", &["none"]))
            .entity_check(fallback_one_of("cookie", &["none"]))
            .entity_check(fallback_one_of(
                "consumer",
                &[
                    "none",
                    "ip",
                    "header",
                    "cookie",
                    "path",
                    "query_arg",
                    "uri_capture",
                ],
            ))
            .entity_check(fallback_one_of(
                "ip",
                &[
                    "none",
                    "consumer",
                    "header",
                    "cookie",
                    "path",
                    "query_arg",
                    "uri_capture",
                ],
            ))
            .entity_check(fallback_one_of(
                "path",
                &[
                    "none",
                    "consumer",
                    "header",
                    "cookie",
                    "query_arg",
                    "ip",
                    "uri_capture",
                ],
            ))
            .entity_check(distinct("hash_on_header", "hash_fallback_header"))
            .entity_check(conditional_required(
                "hash_on",
                "query_arg",
                "hash_on_query_arg",
            ))
            .entity_check(conditional_required(
                "hash_fallback",
                "query_arg",
                "hash_fallback_query_arg",
            ))
            .entity_check(distinct("hash_on_query_arg", "hash_fallback_query_arg"))
            .entity_check(conditional_required(
                "hash_on",
                "uri_capture",
                "hash_on_uri_capture",
            ))
            .entity_check(conditional_required(
                "hash_fallback",
                "uri_capture",
                "hash_fallback_uri_capture",
            ))
            .entity_check(distinct("hash_on_uri_capture", "hash_fallback_uri_capture")),
    )
});

impl EntityType for Upstream {
    const TABLE: &'static str = "upstreams";
    const ENDPOINT_KEY: Option<&'static str> = Some("name");

    fn schema_for(_: &Map<String, Value>) -> Result<Arc<Record>, KongError> {
        Ok(SCHEMA.clone())
    }
    fn id(&self) -> Uuid {
        self.id
    }
    fn endpoint_key_value(&self) -> Option<String> {
        Some(self.name.clone())
    }
    fn unique_fields(&self) -> Vec<(String, Value)> {
        vec![unique_field(Self::TABLE, "name", &self.name)]
    }
}

#[cfg(test)]
mod tests;
