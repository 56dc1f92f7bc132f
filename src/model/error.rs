//! Kong's error object (`kong/db/errors.lua`): codes, names, message formats, HTTP statuses.

use serde_json::{json, Map, Value};

/// The one error type of the model: what the Admin API sends back as
/// `{"code":..,"name":..,"message":..,"fields":{..}}` with [`KongError::http_status`].
///
/// Callers should not inspect `message` to decide what to do; match on `code`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct KongError {
    /// Kong's numeric error code (2 = schema violation, 5 = unique violation, ...).
    pub code: u16,
    /// Kong's error name for the code ("schema violation", ...).
    pub name: String,
    /// Human readable message, formatted exactly as Kong formats it.
    pub message: String,
    /// The error tree (`fields` in the JSON body), or `Null` when Kong sends none.
    pub fields: Value,
}

/// Kong's error codes (`kong/db/errors.lua`).
pub mod codes {
    pub const INVALID_PRIMARY_KEY: u16 = 1;
    pub const SCHEMA_VIOLATION: u16 = 2;
    pub const PRIMARY_KEY_VIOLATION: u16 = 3;
    pub const FOREIGN_KEY_VIOLATION: u16 = 4;
    pub const UNIQUE_VIOLATION: u16 = 5;
    pub const NOT_FOUND: u16 = 6;
    pub const INVALID_OFFSET: u16 = 7;
    pub const DATABASE_ERROR: u16 = 8;
    pub const INVALID_SIZE: u16 = 9;
    pub const INVALID_UNIQUE: u16 = 10;
    pub const INVALID_OPTIONS: u16 = 11;
    pub const OPERATION_UNSUPPORTED: u16 = 12;
    pub const FOREIGN_KEYS_UNRESOLVED: u16 = 13;
    pub const DECLARATIVE_CONFIG: u16 = 14;
    pub const REFERENCED_BY_OTHERS: u16 = 19;
    pub const INVALID_SEARCH_QUERY: u16 = 20;
}

fn code_name(code: u16) -> &'static str {
    match code {
        1 => "invalid primary key",
        2 => "schema violation",
        3 => "primary key violation",
        4 => "foreign key violation",
        5 => "unique constraint violation",
        6 => "not found",
        7 => "invalid offset",
        8 => "database error",
        9 => "invalid size",
        10 => "invalid unique",
        11 => "invalid options",
        12 => "operation unsupported",
        13 => "foreign keys unresolved",
        14 => "invalid declarative configuration",
        19 => "referenced by others",
        20 => "invalid search query",
        _ => "error",
    }
}

impl KongError {
    /// A raw error with Kong's name for `code`.
    pub fn new(code: u16, message: impl Into<String>, fields: Value) -> Self {
        KongError {
            code,
            name: code_name(code).to_string(),
            message: message.into(),
            fields,
        }
    }

    /// Code 11, for one option (Kong's `ttl`, or a query's `tags`) and why it is refused.
    pub fn invalid_option(option: &str, reason: &str) -> Self {
        KongError::new(codes::INVALID_OPTIONS, format!("invalid option ({option}: {reason})"), json!({ option: reason }))
    }

    /// The HTTP status the Admin API answers with (`ERRORS_HTTP_CODES`).
    pub fn http_status(&self) -> u16 {
        match self.code {
            codes::UNIQUE_VIOLATION => 409,
            codes::NOT_FOUND => 404,
            codes::DATABASE_ERROR => 500,
            codes::OPERATION_UNSUPPORTED => 405,
            _ => 400,
        }
    }

    /// The JSON body: `fields` is left out when there is none, as Kong does.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("code".into(), json!(self.code));
        m.insert("name".into(), json!(self.name));
        m.insert("message".into(), json!(self.message));
        if !self.fields.is_null() {
            m.insert("fields".into(), self.fields.clone());
        }
        Value::Object(m)
    }

    /// Code 2. `fields` is the error tree: `{"name": "msg", "config": {"minute": "msg"},
    /// "paths": [null, "msg"], "@entity": ["msg"]}`. The message lists entity errors
    /// first, then fields in sorted order, one level deep, as Kong does.
    pub fn schema_violation(fields: Value) -> Self {
        let mut buf: Vec<String> = Vec::new();
        if let Value::Object(m) = &fields {
            if let Some(Value::Array(ents)) = m.get("@entity") {
                for e in ents {
                    buf.push(plain(e));
                }
            }
            for (k, v) in m {
                if k == "@entity" {
                    continue;
                }
                match v {
                    Value::Object(sub) => {
                        for (sk, sv) in sub {
                            buf.push(format!("{k}.{sk}: {}", nested(sv)));
                        }
                    }
                    Value::Array(items) => {
                        for (i, sv) in items.iter().enumerate() {
                            if !sv.is_null() {
                                buf.push(format!("{k}.{}: {}", i + 1, nested(sv)));
                            }
                        }
                    }
                    other => buf.push(format!("{k}: {}", plain(other))),
                }
            }
        }
        let message = if buf.len() == 1 {
            format!("schema violation ({})", buf[0])
        } else {
            format!("{} schema violations ({})", buf.len(), buf.join("; "))
        };
        Self::new(codes::SCHEMA_VIOLATION, message, fields)
    }

    /// Code 2 with a single field error, e.g. `("name", "required field missing")`.
    pub fn schema_field(field: &str, msg: impl Into<String>) -> Self {
        let mut m = Map::new();
        m.insert(field.to_string(), Value::String(msg.into()));
        Self::schema_violation(Value::Object(m))
    }

    /// Code 2 with a single entity-level error (`fields["@entity"]`).
    pub fn schema_entity(msg: impl Into<String>) -> Self {
        Self::schema_violation(json!({ "@entity": [msg.into()] }))
    }

    /// Code 5 (HTTP 409): `UNIQUE violation detected on '{name="x"}'`; `fields` is the key.
    pub fn unique_violation(key: Value) -> Self {
        let message = format!(
            "UNIQUE violation detected on '{}'",
            lua_pretty_compact(&key)
        );
        Self::new(codes::UNIQUE_VIOLATION, message, key)
    }

    /// Code 6 (HTTP 404) from the DAO: `could not find the entity with primary key '{id="..."}'`.
    pub fn not_found(primary_key: Value) -> Self {
        let message = format!(
            "could not find the entity with primary key '{}'",
            lua_pretty_compact(&primary_key)
        );
        Self::new(codes::NOT_FOUND, message, primary_key)
    }

    /// The plain 404 body Kong's Admin API sends for a missing entity or path.
    pub fn not_found_body() -> Value {
        json!({ "message": "Not found" })
    }

    /// Code 4: `the foreign key '{id="..."}' does not reference an existing 'services' entity.`
    pub fn foreign_key_violation(field: &str, foreign_key: Value, parent_table: &str) -> Self {
        let message = format!(
            "the foreign key '{}' does not reference an existing '{}' entity.",
            lua_pretty_compact(&foreign_key),
            parent_table
        );
        let mut m = Map::new();
        m.insert(field.to_string(), foreign_key);
        Self::new(codes::FOREIGN_KEY_VIOLATION, message, Value::Object(m))
    }

    /// Code 4, what Kong answers when deleting a parent that a restricting child still
    /// references: `an existing 'routes' entity references this 'services' entity`.
    pub fn foreign_key_restricted(parent_table: &str, child_table: &str) -> Self {
        let message =
            format!("an existing '{child_table}' entity references this '{parent_table}' entity");
        Self::new(
            codes::FOREIGN_KEY_VIOLATION,
            message,
            json!({ "@referenced_by": child_table }),
        )
    }

    /// Code 13: a `{"name": ..}` foreign reference that names nothing.
    pub fn foreign_key_unresolved(
        field: &str,
        key_name: &str,
        key_value: &str,
        parent_table: &str,
    ) -> Self {
        let mut k = Map::new();
        k.insert(key_name.to_string(), Value::String(key_value.to_string()));
        let text = format!(
            "the foreign key cannot be resolved with '{}' for an existing '{}' entity",
            lua_pretty_compact(&Value::Object(k)),
            parent_table
        );
        let message = format!("foreign key unresolved ({field}.{key_name}: {text})");
        Self::new(
            codes::FOREIGN_KEYS_UNRESOLVED,
            message,
            json!({ field: { key_name: text } }),
        )
    }

    /// Code 19, no fields.
    pub fn referenced_by_others(message: impl Into<String>) -> Self {
        Self::new(codes::REFERENCED_BY_OTHERS, message, Value::Null)
    }

    /// Code 9: `size must be an integer between 1 and 1000`.
    pub fn invalid_size() -> Self {
        Self::new(
            codes::INVALID_SIZE,
            "size must be an integer between 1 and 1000",
            Value::Null,
        )
    }

    /// Code 7: `'<offset>' is not a valid offset: <err>`.
    pub fn invalid_offset(offset: &str, err: &str) -> Self {
        Self::new(
            codes::INVALID_OFFSET,
            format!("'{offset}' is not a valid offset: {err}"),
            Value::Null,
        )
    }

    /// Code 1: `invalid primary key: '{id="x"}'`.
    pub fn invalid_primary_key(primary_key: Value) -> Self {
        let message = format!(
            "invalid primary key: '{}'",
            lua_pretty_compact(&primary_key)
        );
        Self::new(codes::INVALID_PRIMARY_KEY, message, primary_key)
    }

    /// Code 3: `primary key violation on key '{id="x"}'`.
    pub fn primary_key_violation(primary_key: Value) -> Self {
        let message = format!(
            "primary key violation on key '{}'",
            lua_pretty_compact(&primary_key)
        );
        Self::new(codes::PRIMARY_KEY_VIOLATION, message, primary_key)
    }

    /// Code 12 (HTTP 405).
    pub fn operation_unsupported(message: impl Into<String>) -> Self {
        Self::new(codes::OPERATION_UNSUPPORTED, message, Value::Null)
    }

    /// Code 8 (HTTP 500).
    pub fn database_error(message: impl Into<String>) -> Self {
        Self::new(codes::DATABASE_ERROR, message, Value::Null)
    }

    /// Code 14: `declarative config is invalid: {...}` with the error tree as `fields`.
    pub fn declarative_config(fields: Value) -> Self {
        let message = format!(
            "declarative config is invalid: {}",
            lua_pretty_compact(&fields)
        );
        Self::new(codes::DECLARATIVE_CONFIG, message, fields)
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => lua_pretty_compact(other),
    }
}

fn nested(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => lua_pretty(other),
    }
}

fn lua_key(k: &str) -> String {
    let ident = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        k.to_string()
    } else {
        format!("[{}]", Value::String(k.to_string()))
    }
}

/// Penlight's `pretty.write(t, "")`: `{consumer=null,name="x",service={id="..."}}`,
/// keys sorted, JSON null shown as `null` (Kong rewrites `userdata: NULL` so).
pub fn lua_pretty_compact(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}={}", lua_key(k), lua_pretty_compact(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(lua_pretty_compact).collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// Penlight's `pretty.write(t)`: multi-line with two-space indentation.
pub fn lua_pretty(v: &Value) -> String {
    fn go(v: &Value, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth + 1);
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push_str("{\n");
                let n = m.len();
                for (i, (k, v)) in m.iter().enumerate() {
                    out.push_str(&format!("{pad}{} = ", lua_key(k)));
                    go(v, depth + 1, out);
                    out.push_str(if i + 1 < n { ",\n" } else { "\n" });
                }
                out.push_str(&"  ".repeat(depth));
                out.push('}');
            }
            Value::Array(a) if !a.is_empty() => {
                out.push_str("{\n");
                let n = a.len();
                for (i, v) in a.iter().enumerate() {
                    out.push_str(&pad);
                    go(v, depth + 1, out);
                    out.push_str(if i + 1 < n { ",\n" } else { "\n" });
                }
                out.push_str(&"  ".repeat(depth));
                out.push('}');
            }
            Value::Object(_) | Value::Array(_) => out.push_str("{}"),
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    go(v, 0, &mut out);
    out
}

#[cfg(test)]
mod tests;
