//! Route: how requests are matched to a service (Kong's `routes.lua` and the http,
//! stream and grpc subschemas of `routes_subschemas.lua`).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::entity::{timestamp_field, EntityType, ForeignKey};
use super::error::KongError;
use super::schema::{is_nonempty, quoted_list, Errors, Field, Record};
use super::service::PROTOCOLS;
use super::storage::unique_field;
use super::validators;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub id: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
    pub name: Option<String>,
    pub protocols: Vec<String>,
    pub methods: Option<Vec<String>>,
    pub hosts: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    pub https_redirect_status_code: u16,
    pub regex_priority: i64,
    pub strip_path: bool,
    pub path_handling: String,
    pub preserve_host: bool,
    pub request_buffering: bool,
    pub response_buffering: bool,
    pub snis: Option<Vec<String>>,
    pub sources: Option<Vec<IpPort>>,
    pub destinations: Option<Vec<IpPort>>,
    pub tags: Option<Vec<String>>,
    pub service: Option<ForeignKey>,
}

/// An element of `sources` / `destinations` (stream routes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpPort {
    pub ip: Option<String>,
    pub port: Option<u16>,
}

const SUBSETS: [&[&str]; 4] = [
    &["http", "https"],
    &["tcp", "tls", "udp"],
    &["tls_passthrough"],
    &["grpc", "grpcs"],
];

/// `mutually_exclusive_subsets` on `protocols`.
fn exclusive_subsets(v: &Value) -> Result<(), String> {
    let mut member_of: Vec<&[&str]> = Vec::new();
    for p in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
        if let Some(set) = SUBSETS.iter().find(|s| s.contains(&p)) {
            if !member_of.contains(set) {
                member_of.push(set);
            }
        }
    }
    if member_of.len() <= 1 {
        return Ok(());
    }
    let groups: Vec<String> = member_of
        .iter()
        .map(|s| format!("({})", quoted_list(s)))
        .collect();
    Err(format!(
        "these sets are mutually exclusive: {}",
        groups.join(", ")
    ))
}

fn ip_port() -> Field {
    Field::record(
        Record::new()
            .field(
                "ip",
                Field::string().check_str(validators::validate_ip_or_cidr),
            )
            .field("port", Field::integer().between(0.0, 65535.0))
            .entity_check(super::schema::at_least_one_of(&["ip", "port"])),
    )
}

fn protocols_of(m: &Map<String, Value>) -> Vec<&str> {
    m.get("protocols")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn forbid(m: &Map<String, Value>, errors: &mut Errors, field: &str, msg: &str) {
    if is_nonempty(m.get(field)) {
        errors.field(field, msg.to_string());
    }
}

fn require_one(
    m: &Map<String, Value>,
    errors: &mut Errors,
    fields: &[&str],
    msg: impl FnOnce(String) -> String,
) {
    if !fields.iter().any(|f| is_nonempty(m.get(*f))) {
        errors.entity(msg(quoted_list(fields)));
    }
}

/// The subschema checks, chosen by the first protocol as Kong does.
fn subschema_checks(m: &Map<String, Value>, errors: &mut Errors) {
    let protocols = protocols_of(m);
    if protocols.is_empty() || errors.has("protocols") {
        return;
    }
    let tls_like = ["grpcs", "https", "tls", "tls_passthrough"];
    if is_nonempty(m.get("snis")) && protocols.iter().all(|p| !tls_like.contains(p)) {
        errors.field("snis", "length must be 0");
        errors.entity("'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'");
    }
    let has = |p: &str| protocols.contains(&p);
    match protocols[0] {
        "http" | "https" => {
            forbid(
                m,
                errors,
                "sources",
                "cannot set 'sources' when 'protocols' is 'http' or 'https'",
            );
            forbid(
                m,
                errors,
                "destinations",
                "cannot set 'destinations' when 'protocols' is 'http' or 'https'",
            );
            if has("https") {
                require_one(
                    m,
                    errors,
                    &["methods", "hosts", "headers", "paths", "snis"],
                    |l| format!("must set one of {l} when 'protocols' is 'https'"),
                );
            } else {
                require_one(m, errors, &["methods", "hosts", "headers", "paths"], |l| {
                    format!("must set one of {l} when 'protocols' is 'http'")
                });
            }
        }
        "grpc" | "grpcs" => {
            if m.get("strip_path") == Some(&Value::Bool(true)) {
                errors.field(
                    "strip_path",
                    "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'",
                );
            }
            forbid(
                m,
                errors,
                "methods",
                "cannot set 'methods' when 'protocols' is 'grpc' or 'grpcs'",
            );
            forbid(
                m,
                errors,
                "sources",
                "cannot set 'sources' when 'protocols' is 'grpc' or 'grpcs'",
            );
            forbid(
                m,
                errors,
                "destinations",
                "cannot set 'destinations' when 'protocols' is 'grpc' or 'grpcs'",
            );
            if has("grpcs") {
                require_one(m, errors, &["hosts", "headers", "paths", "snis"], |l| {
                    format!("must set one of {l} when 'protocols' is 'grpcs'")
                });
            } else {
                require_one(m, errors, &["hosts", "headers", "paths"], |l| {
                    format!("must set one of {l} when 'protocols' is 'grpc'")
                });
            }
        }
        _ => {
            let stream = "when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'";
            for f in ["methods", "hosts", "paths", "headers"] {
                forbid(m, errors, f, &format!("cannot set '{f}' {stream}"));
            }
            if protocols.iter().all(|p| ["tcp", "tls", "udp"].contains(p)) {
                require_one(m, errors, &["sources", "destinations", "snis"], |l| {
                    format!("must set one of {l} when 'protocols' is 'tcp', 'tls' or 'udp'")
                });
            }
            if protocols.iter().all(|p| *p == "tls_passthrough") && !is_nonempty(m.get("snis")) {
                errors.entity("must set snis when 'protocols' is 'tls_passthrough'");
            }
        }
    }
}

static SCHEMA: LazyLock<Arc<Record>> = LazyLock::new(|| {
    let header_name = Field::string()
        .check_str(|k| {
            if k.eq_ignore_ascii_case("host") {
                Err("cannot contain 'host' header, which must be specified in the 'hosts' attribute".into())
            } else {
                Ok(())
            }
        })
        .check_str(validators::validate_header_name);
    let method = Field::string().check_str(|s| {
        if s.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err(format!("invalid value: {s}"))
        }
    });
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
                "protocols",
                Field::set(Field::string().one_of(PROTOCOLS))
                    .required()
                    .len_min(1)
                    .default(json!(["http", "https"]))
                    .check(exclusive_subsets),
            )
            .field("methods", Field::set(method))
            .field(
                "hosts",
                Field::array(Field::string().check_str(validators::validate_route_host)),
            )
            .field(
                "paths",
                Field::array(Field::string().check_str(validators::validate_router_path)),
            )
            .field(
                "headers",
                Field::map(header_name, Field::array(Field::string().check_str(validators::validate_header_value))),
            )
            .field(
                "https_redirect_status_code",
                Field::integer()
                    .required()
                    .default(json!(426))
                    .one_of_int(&[426, 301, 302, 307, 308]),
            )
            .field("regex_priority", Field::integer().default(json!(0)))
            .field(
                "strip_path",
                Field::boolean().required().default(json!(true)),
            )
            .field(
                "path_handling",
                Field::string().default(json!("v0")).one_of(&["v0", "v1"]),
            )
            .field(
                "preserve_host",
                Field::boolean().required().default(json!(false)),
            )
            .field(
                "request_buffering",
                Field::boolean().required().default(json!(true)),
            )
            .field(
                "response_buffering",
                Field::boolean().required().default(json!(true)),
            )
            .field(
                "snis",
                Field::set(Field::string().check_str(|s| validators::validate_sni(s, true))),
            )
            .field("sources", Field::set(ip_port()))
            .field("destinations", Field::set(ip_port()))
            .field("tags", Field::tags())
            .field("service", Field::foreign("services"))
            .entity_check(subschema_checks)
            .entity_check(proxied_here),
    )
});

/// After Kong's own checks: a route gatehouse would store and never serve is refused,
/// rather than answered 404 forever. The proxy speaks HTTP only (gRPC needs HTTP/2 to
/// the upstream; stream routes need a stream listener).
fn proxied_here(m: &Map<String, Value>, errors: &mut Errors) {
    if !errors.is_empty() {
        return;
    }
    if let Some(other) = protocols_of(m).into_iter().find(|p| !["http", "https"].contains(p)) {
        errors.field("protocols", format!("gatehouse proxies 'http' and 'https' routes only, not '{other}'"));
    }
}

impl EntityType for Route {
    const TABLE: &'static str = "routes";
    const ENDPOINT_KEY: Option<&'static str> = Some("name");

    fn schema_for(_: &Map<String, Value>) -> Result<Arc<Record>, KongError> {
        Ok(SCHEMA.clone())
    }
    /// gRPC routes default `strip_path` to false (Kong's grpc subschema).
    fn prepare(input: &mut Map<String, Value>) -> Result<(), KongError> {
        let first = input
            .get("protocols")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str);
        if matches!(first, Some("grpc" | "grpcs"))
            && input.get("strip_path").is_none_or(Value::is_null)
        {
            input.insert("strip_path".into(), Value::Bool(false));
        }
        Ok(())
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

impl Route {
    /// Whether any path is a regex (`~/...`).
    pub fn has_regex_path(&self) -> bool {
        self.paths.iter().flatten().any(|p| p.starts_with('~'))
    }
}

#[cfg(test)]
mod tests;
