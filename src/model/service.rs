//! Service: an upstream API (Kong's `services.lua`), with the `url` shorthand.

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::entity::{timestamp_field, EntityType, ForeignKey};
use super::error::KongError;
use super::schema::{Errors, Field, Record};
use super::storage::unique_field;
use super::validators;

/// Kong's `constants.PROTOCOLS`, sorted.
pub const PROTOCOLS: &[&str] = &[
    "grpc",
    "grpcs",
    "http",
    "https",
    "tcp",
    "tls",
    "tls_passthrough",
    "udp",
];

/// Connect, read and write timeouts are at most 2^31 - 2 ms.
const MAX_TIMEOUT: f64 = 2147483646.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
    pub name: Option<String>,
    pub retries: u16,
    pub protocol: String,
    pub host: String,
    pub port: u16,
    pub path: Option<String>,
    pub connect_timeout: u32,
    pub write_timeout: u32,
    pub read_timeout: u32,
    pub tags: Option<Vec<String>>,
    pub client_certificate: Option<ForeignKey>,
    pub tls_verify: Option<bool>,
    pub tls_verify_depth: Option<u8>,
    pub ca_certificates: Option<Vec<String>>,
    pub enabled: bool,
}

/// What `socket.url.parse` yields for the parts the shorthand uses.
#[derive(Debug, Default, PartialEq)]
struct UrlParts {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<String>,
    path: Option<String>,
}

fn parse_url(s: &str) -> UrlParts {
    let mut parts = UrlParts::default();
    let mut rest = s.split('#').next().unwrap_or("");
    if let Some(i) = rest.find(':') {
        let sch = &rest[..i];
        let valid = sch
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && sch
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if valid {
            parts.scheme = Some(sch.to_string());
            rest = &rest[i + 1..];
        }
    }
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?']).unwrap_or(after.len());
        let mut authority = &after[..end];
        rest = &after[end..];
        if let Some(at) = authority.rfind('@') {
            authority = &authority[at + 1..];
        }
        let mut host = authority;
        if let Some(i) = authority.rfind(':') {
            let p = &authority[i + 1..];
            if !p.contains(']') {
                parts.port = Some(p.to_string());
                host = &authority[..i];
            }
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if !host.is_empty() {
            parts.host = Some(host.to_string());
        }
    }
    let rest = rest.split('?').next().unwrap_or("");
    if !rest.is_empty() {
        parts.path = Some(rest.to_string());
    }
    parts
}

/// The `url` shorthand: protocol, host, port and path from one URL. Port 443 means
/// https and 80 means http; without a port, http gets 80 and https 443 (Kong's rules).
fn apply_url(v: Value, data: &mut Map<String, Value>) -> Result<(), Value> {
    if v.is_null() {
        return Ok(());
    }
    let conflicts: Vec<&str> = ["protocol", "host", "port", "path"]
        .into_iter()
        .filter(|k| data.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    if !conflicts.is_empty() {
        return Err(Value::String(format!(
            "cannot be set together with {}",
            super::schema::quoted_list(&conflicts)
        )));
    }
    let url = v.as_str().unwrap_or_default();
    let p = parse_url(url);
    let port_num: Option<u16> = p.port.as_deref().and_then(|s| s.parse().ok());
    let by_port = match port_num {
        Some(80) => Some("http"),
        Some(443) => Some("https"),
        _ => None,
    };
    let protocol = p
        .scheme
        .clone()
        .unwrap_or_else(|| by_port.unwrap_or("http").to_string());
    let port = match (port_num, &p.port) {
        (Some(n), _) => json!(n),
        (None, Some(raw)) => json!(raw),
        (None, None) => match protocol.as_str() {
            "https" => json!(443),
            _ => json!(80),
        },
    };
    data.insert("protocol".into(), json!(protocol));
    data.insert(
        "host".into(),
        p.host.map(Value::String).unwrap_or(Value::Null),
    );
    data.insert("port".into(), port);
    data.insert(
        "path".into(),
        p.path.map(Value::String).unwrap_or(Value::Null),
    );
    Ok(())
}

/// Kong's `conditional` check with `then_match = { eq = null }`.
fn null_unless(
    then_field: &'static str,
    allowed: fn(&str) -> bool,
) -> impl Fn(&Map<String, Value>, &mut Errors) + Send + Sync {
    move |m, errors| {
        let Some(proto) = m.get("protocol").and_then(Value::as_str) else {
            return;
        };
        if !allowed(proto) && m.get(then_field).is_some_and(|v| !v.is_null()) {
            errors.field(then_field, "value must be null");
            errors.entity("failed conditional validation given value of field 'protocol'");
        }
    }
}

fn timeout() -> Field {
    Field::integer()
        .default(json!(60000))
        .between(1.0, MAX_TIMEOUT)
}

static SCHEMA: LazyLock<Arc<Record>> = LazyLock::new(|| {
    let tls = |p: &str| p == "https" || p == "tls";
    Arc::new(
        Record::new()
            .field("id", Field::uuid())
            .field("created_at", timestamp_field(false))
            .field("updated_at", timestamp_field(false))
            .field(
                "name",
                Field::string().check_str(validators::validate_utf8_name),
            )
            .field(
                "retries",
                Field::integer().default(json!(5)).between(0.0, 32767.0),
            )
            .field(
                "protocol",
                Field::string()
                    .required()
                    .default(json!("http"))
                    .one_of(PROTOCOLS),
            )
            .field(
                "host",
                Field::string()
                    .required()
                    .check_str(validators::validate_host),
            )
            .field(
                "port",
                Field::integer()
                    .required()
                    .default(json!(80))
                    .between(0.0, 65535.0),
            )
            .field("path", Field::string().check_str(validators::validate_path))
            .field("connect_timeout", timeout())
            .field("write_timeout", timeout())
            .field("read_timeout", timeout())
            .field("tags", Field::tags())
            .field("client_certificate", Field::foreign("certificates"))
            .field("tls_verify", Field::boolean())
            .field("tls_verify_depth", Field::integer().between(0.0, 64.0))
            .field("ca_certificates", Field::array(Field::uuid()))
            .field("enabled", Field::boolean().required().default(json!(true)))
            .shorthand("url", Field::string(), apply_url)
            .entity_check(null_unless("path", |p| {
                !["tcp", "tls", "udp", "grpc", "grpcs"].contains(&p)
            }))
            .entity_check(null_unless("client_certificate", tls))
            .entity_check(null_unless("tls_verify", tls))
            .entity_check(null_unless("tls_verify_depth", tls))
            .entity_check(null_unless("ca_certificates", tls))
            .entity_check(proxied_here),
    )
});

/// After Kong's own checks: a service gatehouse cannot speak to is refused rather than
/// sent HTTP/1.1 it does not expect. Upstreams are HTTP/1.1, in the clear or over TLS.
fn proxied_here(m: &Map<String, Value>, errors: &mut Errors) {
    if !errors.is_empty() {
        return;
    }
    match m.get("protocol").and_then(Value::as_str) {
        Some(p) if !["http", "https"].contains(&p) => {
            errors.field("protocol", format!("gatehouse proxies to 'http' and 'https' services only, not '{p}'"));
        }
        _ => {}
    }
    // TLS settings the upstream connection would not honour: refused rather than a
    // weaker connection than asked for.
    for field in ["client_certificate", "ca_certificates", "tls_verify_depth"] {
        let set = match m.get(field) {
            None | Some(Value::Null) => false,
            Some(Value::Array(items)) => !items.is_empty(),
            Some(_) => true,
        };
        if set {
            errors.field(field, "not supported by gatehouse yet");
        }
    }
}

impl EntityType for Service {
    const TABLE: &'static str = "services";
    const ENDPOINT_KEY: Option<&'static str> = Some("name");

    fn schema_for(_: &Map<String, Value>) -> Result<Arc<Record>, KongError> {
        Ok(SCHEMA.clone())
    }
    fn id(&self) -> Uuid {
        self.id
    }
    fn endpoint_key_value(&self) -> Option<String> {
        self.name.clone()
    }
    fn unique_fields(&self) -> Vec<(String, Value)> {
        self.name.iter().map(|n| unique_field(Self::TABLE, "name", n)).collect()
    }
}

impl Service {
    /// `protocol://host:port/path` as a URL (for logs and upstream requests).
    pub fn url(&self) -> String {
        format!(
            "{}://{}:{}{}",
            self.protocol,
            self.host,
            self.port,
            self.path.as_deref().unwrap_or("")
        )
    }
}

#[cfg(test)]
mod tests;
