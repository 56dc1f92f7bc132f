//! The key layout of configuration in the replicated store: entities at
//! `config/<table>/<uuid>`, unique indexes at `config/index/<table>/<field>/<value>`
//! (whose value is the owning entity's uuid).

use uuid::Uuid;

/// Everything configuration lives under this prefix (what a watch subscribes to).
pub const CONFIG_PREFIX: &str = "config/";
/// Unique indexes live under this prefix; a snapshot skips it.
pub const INDEX_PREFIX: &str = "config/index/";

/// The tables, in dependency order: a table only references tables before it.
pub const TABLES: [&str; 7] = [
    "services",
    "routes",
    "upstreams",
    "targets",
    "consumers",
    "keyauth_credentials",
    "plugins",
];

/// `config/<table>/<uuid>`.
pub fn entity_key(table: &str, id: Uuid) -> String {
    format!("{CONFIG_PREFIX}{table}/{id}")
}

/// `config/<table>/`: the prefix to list one table.
pub fn table_prefix(table: &str) -> String {
    format!("{CONFIG_PREFIX}{table}/")
}

/// `config/index/<table>/<field>/<escaped value>`.
pub fn index_key(table: &str, field: &str, value: &str) -> String {
    format!("{INDEX_PREFIX}{table}/{field}/{}", escape_segment(value))
}

/// One unique field of an entity: its index key and how a violation names it
/// (`{"name": "x"}`), for `EntityType::unique_fields`.
pub fn unique_field(table: &str, field: &str, value: &str) -> (String, serde_json::Value) {
    let shown = serde_json::Map::from_iter([(field.to_owned(), serde_json::Value::String(value.to_owned()))]);
    (index_key(table, field, value), serde_json::Value::Object(shown))
}

/// Splits `config/<table>/<uuid>` into its table and id (`None` for index keys and
/// anything else).
pub fn parse_entity_key(key: &str) -> Option<(&str, Uuid)> {
    let rest = key.strip_prefix(CONFIG_PREFIX)?;
    if key.starts_with(INDEX_PREFIX) {
        return None;
    }
    let (table, id) = rest.split_once('/')?;
    if !TABLES.contains(&table) {
        return None;
    }
    Some((table, Uuid::try_parse(id).ok()?))
}

/// Percent-escapes `%`, `/` and control characters so a value is one key segment that
/// cannot collide with another value.
pub fn escape_segment(v: &str) -> String {
    let needs_escape = |c: char| c == '%' || c == '/' || c.is_control();
    if !v.contains(needs_escape) {
        return v.to_owned();
    }
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        if needs_escape(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let id = Uuid::nil();
        assert_eq!(
            entity_key("services", id),
            "config/services/00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            parse_entity_key(&entity_key("routes", id)),
            Some(("routes", id))
        );
        assert_eq!(
            index_key("consumers", "username", "a/b%"),
            "config/index/consumers/username/a%2Fb%25"
        );
        assert_eq!(parse_entity_key("config/index/services/name/x"), None);
        assert_eq!(
            parse_entity_key("config/unknown/00000000-0000-0000-0000-000000000000"),
            None
        );
    }
}
