//! Service: an upstream API (Kong's `services.lua`), with the `url` shorthand.

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::entity::{timestamp_field, EntityType, ForeignKey};
use super::error::KongError;
use super::schema::{Errors, Field, Record};
use super::storage::index_key;
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
            .entity_check(null_unless("ca_certificates", tls)),
    )
});

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
        self.name
            .iter()
            .map(|n| (index_key(Self::TABLE, "name", n), json!({ "name": n })))
            .collect()
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
mod tests {
    use super::*;
    use crate::model::entity::{create, patch, replace, PutKey};

    fn mk(v: Value) -> Result<Service, KongError> {
        create::<Service>(&v, 1_700_000_000.5)
    }

    #[test]
    fn defaults() {
        let s = mk(json!({"host": "example.com"})).unwrap();
        assert_eq!(s.protocol, "http");
        assert_eq!(s.port, 80);
        assert_eq!(s.retries, 5);
        assert_eq!(
            (s.connect_timeout, s.read_timeout, s.write_timeout),
            (60000, 60000, 60000)
        );
        assert!(s.enabled);
        assert_eq!(s.path, None);
        assert_eq!((s.created_at, s.updated_at), (1_700_000_000, 1_700_000_000));
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["name"], Value::Null);
        assert_eq!(j["tags"], Value::Null);
        assert_eq!(j["client_certificate"], Value::Null);
    }

    #[test]
    fn url_shorthand() {
        let cases = [
            ("http://example.com", "http", "example.com", 80, None),
            ("https://example.com", "https", "example.com", 443, None),
            (
                "https://example.com:8443/api/v1",
                "https",
                "example.com",
                8443,
                Some("/api/v1"),
            ),
            (
                "http://example.com:443/",
                "http",
                "example.com",
                443,
                Some("/"),
            ),
            ("//example.com:443", "https", "example.com", 443, None),
            ("//example.com:80", "http", "example.com", 80, None),
            ("grpc://example.com", "grpc", "example.com", 80, None),
            (
                "http://user:pw@10.0.0.1:9000/x?q=1#f",
                "http",
                "10.0.0.1",
                9000,
                Some("/x"),
            ),
        ];
        for (url, proto, host, port, path) in cases {
            let s = mk(json!({ "url": url })).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (
                    s.protocol.as_str(),
                    s.host.as_str(),
                    s.port,
                    s.path.as_deref()
                ),
                (proto, host, port, path),
                "{url}"
            );
        }
    }

    #[test]
    fn url_errors() {
        let e = mk(json!({"url": "http://example.com", "host": "x.org"})).unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (url: cannot be set together with 'host')"
        );
        let e = mk(json!({"url": "example"})).unwrap_err();
        assert_eq!(
            e.message,
            "2 schema violations (host: required field missing; path: should start with: /)"
        );
        let e = mk(json!({"url": "ftp://example.com"})).unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (protocol: expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp)"
        );
        let e = mk(json!({"url": "http://example.com:abc"})).unwrap_err();
        assert_eq!(e.message, "schema violation (port: expected an integer)");
        let e = mk(json!({"url": 5})).unwrap_err();
        assert_eq!(e.message, "schema violation (url: expected a string)");
    }

    #[test]
    fn field_rules() {
        assert_eq!(
            mk(json!({})).unwrap_err().message,
            "schema violation (host: required field missing)"
        );
        assert_eq!(
            mk(json!({"host": "x.org", "foo": 1}))
                .unwrap_err()
                .to_json(),
            json!({"code":2,"name":"schema violation","message":"schema violation (foo: unknown field)","fields":{"foo":"unknown field"}})
        );
        assert_eq!(
            mk(json!({"host": "x.org", "port": 70000}))
                .unwrap_err()
                .message,
            "schema violation (port: value should be between 0 and 65535)"
        );
        assert_eq!(
            mk(json!({"host": "x.org", "retries": "3"}))
                .unwrap_err()
                .message,
            "schema violation (retries: expected an integer)"
        );
        assert_eq!(
            mk(json!({"host": "x.org", "connect_timeout": 0}))
                .unwrap_err()
                .message,
            "schema violation (connect_timeout: value should be between 1 and 2147483646)"
        );
        assert_eq!(
            mk(json!({"host": "x.org", "path": "a"}))
                .unwrap_err()
                .message,
            "schema violation (path: should start with: /)"
        );
        assert_eq!(
            mk(json!({"host": "x.org", "path": "/a//b"}))
                .unwrap_err()
                .message,
            "schema violation (path: must not have empty segments)"
        );
        assert_eq!(
            mk(json!({"host": "x.org:80"})).unwrap_err().message,
            "schema violation (host: must not have a port)"
        );
        assert_eq!(
            mk(json!({"host": "x.org", "enabled": "yes"}))
                .unwrap_err()
                .message,
            "schema violation (enabled: expected a boolean)"
        );
        assert_eq!(
            mk(json!({"host": "x.org", "name": "a b"})).unwrap_err().message,
            "schema violation (name: invalid value 'a b': the only accepted ascii characters are alphanumerics or ., -, _, and ~)"
        );
    }

    #[test]
    fn protocol_conditionals() {
        let e = mk(json!({"host": "x.org", "protocol": "tcp", "path": "/a"})).unwrap_err();
        assert_eq!(
            e.message,
            "2 schema violations (failed conditional validation given value of field 'protocol'; path: value must be null)"
        );
        let e = mk(json!({"host": "x.org", "tls_verify": true})).unwrap_err();
        assert_eq!(e.fields["tls_verify"], json!("value must be null"));
        assert!(mk(
            json!({"host": "x.org", "protocol": "https", "tls_verify": true, "tls_verify_depth": 3})
        )
        .is_ok());
    }

    #[test]
    fn put_keeps_created_at_and_reapplies_defaults() {
        let s = mk(json!({"name": "s1", "host": "a.org", "retries": 1})).unwrap();
        let r = replace::<Service>(
            Some(&s),
            &PutKey::EndpointKey("s1".into()),
            &json!({"host": "b.org"}),
            1_800_000_000.0,
        )
        .unwrap();
        assert_eq!(r.id, s.id);
        assert_eq!(r.created_at, s.created_at);
        assert_eq!(r.updated_at, 1_800_000_000);
        assert_eq!(r.retries, 5);
        assert_eq!(r.name.as_deref(), Some("s1"));
        let id = Uuid::new_v4();
        let n = replace::<Service>(None, &PutKey::Id(id), &json!({"host": "b.org"}), 1.0).unwrap();
        assert_eq!(n.id, id);
        let k = replace::<Service>(
            None,
            &PutKey::EndpointKey("new".into()),
            &json!({"host": "b.org"}),
            1.0,
        )
        .unwrap();
        assert_eq!(k.name.as_deref(), Some("new"));
        assert_eq!(PutKey::from_segment(&id.to_string()), PutKey::Id(id));
        assert_eq!(
            PutKey::from_segment("svc"),
            PutKey::EndpointKey("svc".into())
        );
    }

    #[test]
    fn patch_merges_and_revalidates() {
        let s = mk(json!({"name": "s1", "host": "a.org", "retries": 1})).unwrap();
        let p = patch(&s, &json!({"port": 8080}), 1_800_000_000.0).unwrap();
        assert_eq!((p.port, p.retries, p.host.as_str()), (8080, 1, "a.org"));
        assert_eq!(p.created_at, s.created_at);
        assert_eq!(p.updated_at, 1_800_000_000);
        let p = patch(&s, &json!({"url": "https://b.org/x"}), 2.0).unwrap();
        assert_eq!(
            (
                p.protocol.as_str(),
                p.host.as_str(),
                p.port,
                p.path.as_deref()
            ),
            ("https", "b.org", 443, Some("/x"))
        );
        assert_eq!(
            patch(&s, &json!({"port": -1}), 2.0).unwrap_err().message,
            "schema violation (port: value should be between 0 and 65535)"
        );
        let p = patch(&s, &json!({"name": null}), 2.0).unwrap();
        assert_eq!(p.name, None);
    }

    #[test]
    fn unique_and_storage() {
        let s = mk(json!({"name": "s1", "host": "a.org"})).unwrap();
        assert_eq!(s.storage_key(), format!("config/services/{}", s.id));
        assert_eq!(
            s.unique_keys(),
            vec![(
                "config/index/services/name/s1".to_string(),
                "{name=\"s1\"}".to_string()
            )]
        );
        assert_eq!(Service::from_bytes(&s.to_bytes()).unwrap(), s);
    }
}
