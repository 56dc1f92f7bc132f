//! Request bodies → the JSON input object the schemas validate: JSON bodies as they are,
//! `application/x-www-form-urlencoded` bodies decoded the way Kong's
//! `kong/api/arguments_decoder.lua` does (`a[]=`, `a[1]=`, `a.b=`, `a[b]=`, repeats).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::error::KongError;

/// Parses a JSON request body into an input object. An empty body is `{}`.
/// Kong answers a body it cannot parse with `400 {"message":"Cannot parse JSON body"}`;
/// that is `Err` here with the same message, for the Admin API to send as a plain body.
pub fn json_body(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("Cannot parse JSON body".into()),
        Err(_) => Err("Cannot parse JSON body".into()),
    }
}

/// The input object of a JSON value, or Kong's "expected an input table" schema violation.
pub fn expect_object(v: &Value) -> Result<Map<String, Value>, KongError> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        _ => Err(KongError::schema_violation(
            json!({"@entity": ["expected an input table"]}),
        )),
    }
}

#[derive(Debug)]
enum Node {
    Leaf(Vec<String>),
    Obj(BTreeMap<String, Node>),
    /// Elements with their explicit index (`a[2]=`) or none (`a[]=`, appended).
    List(Vec<(Option<i64>, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(i64),
    Append,
}

/// `name[a][1].b` → `[Key(name), Key(a), Index(1), Key(b)]`. The first delimiter must
/// come after the first character, as in Kong.
fn split_key(k: &str) -> Vec<Seg> {
    let first = k
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '.' || *c == '[')
        .map(|(i, _)| i);
    let Some(pos) = first else {
        return vec![Seg::Key(k.to_string())];
    };
    let mut segs = vec![Seg::Key(k[..pos].to_string())];
    let rest = &k[pos..];
    let mut i = 0;
    let b = rest.as_bytes();
    while i < b.len() {
        match b[i] {
            b'.' => {
                let end = rest[i + 1..]
                    .find(['.', '['])
                    .map(|e| i + 1 + e)
                    .unwrap_or(rest.len());
                if end > i + 1 {
                    segs.push(Seg::Key(rest[i + 1..end].to_string()));
                }
                i = end.max(i + 1);
            }
            b'[' => match rest[i + 1..].find(']') {
                Some(e) => {
                    let inner = &rest[i + 1..i + 1 + e];
                    segs.push(if inner.is_empty() {
                        Seg::Append
                    } else if let Ok(n) = inner.parse::<i64>() {
                        Seg::Index(n)
                    } else {
                        Seg::Key(inner.to_string())
                    });
                    i = i + 2 + e;
                }
                None => i = b.len(),
            },
            _ => i += 1,
        }
    }
    if segs.len() == 1 {
        // "a." or "a[" with nothing usable: keep the raw name, as Kong does.
        return vec![Seg::Key(k.to_string())];
    }
    segs
}

fn container_for(next: &Seg) -> Node {
    match next {
        Seg::Key(_) => Node::Obj(BTreeMap::new()),
        _ => Node::List(vec![]),
    }
}

fn insert(node: &mut Node, segs: &[Seg], value: String) {
    let (seg, rest) = (&segs[0], &segs[1..]);
    match seg {
        Seg::Key(k) => {
            if !matches!(node, Node::Obj(_)) {
                *node = Node::Obj(BTreeMap::new());
            }
            let Node::Obj(m) = node else { unreachable!() };
            if rest.is_empty() {
                match m.get_mut(k) {
                    Some(Node::Leaf(vals)) => vals.push(value),
                    _ => {
                        m.insert(k.clone(), Node::Leaf(vec![value]));
                    }
                }
            } else {
                let child = m
                    .entry(k.clone())
                    .or_insert_with(|| container_for(&rest[0]));
                insert(child, rest, value);
            }
        }
        Seg::Index(_) | Seg::Append => {
            if !matches!(node, Node::List(_)) {
                *node = Node::List(vec![]);
            }
            let Node::List(items) = node else {
                unreachable!()
            };
            let idx = match seg {
                Seg::Index(n) => Some(*n),
                _ => None,
            };
            if rest.is_empty() {
                items.push((idx, Node::Leaf(vec![value])));
            } else {
                // Nested under an array element: `a[2].b=` (and `a[].b=` goes to element 1).
                let idx = idx.or(Some(1));
                let pos = match items.iter().position(|(i, _)| *i == idx) {
                    Some(p) => p,
                    None => {
                        items.push((idx, container_for(&rest[0])));
                        items.len() - 1
                    }
                };
                insert(&mut items[pos].1, rest, value);
            }
        }
    }
}

fn to_json(node: Node) -> Value {
    match node {
        Node::Leaf(mut vals) if vals.len() == 1 => Value::String(vals.remove(0)),
        Node::Leaf(vals) => Value::Array(vals.into_iter().map(Value::String).collect()),
        Node::Obj(m) => Value::Object(m.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
        Node::List(items) => {
            let (mut indexed, appended): (Vec<_>, Vec<_>) =
                items.into_iter().partition(|(i, _)| i.is_some());
            indexed.sort_by_key(|(i, _)| *i);
            Value::Array(
                indexed
                    .into_iter()
                    .chain(appended)
                    .map(|(_, n)| to_json(n))
                    .collect(),
            )
        }
    }
}

/// Decodes an `application/x-www-form-urlencoded` body into an input object of strings,
/// arrays and objects. Pass the result through the entity's form coercion (see
/// [`super::entity::coerce_form`]) to get numbers and booleans where the schema wants them.
pub fn form_to_json(body: &str) -> Map<String, Value> {
    fields_to_json(form_urlencoded::parse(body.as_bytes()))
}

/// The same input object from name/value pairs however they came (a multipart body's
/// fields): `paths[]`, `config.minute` and the like nest as in a urlencoded form.
pub fn fields_to_json<K: AsRef<str>, V: Into<String>>(fields: impl IntoIterator<Item = (K, V)>) -> Map<String, Value> {
    let mut root = Node::Obj(BTreeMap::new());
    for (k, v) in fields {
        let k = k.as_ref();
        if k.is_empty() {
            continue;
        }
        let segs = split_key(k);
        insert(&mut root, &segs, v.into());
    }
    match to_json(root) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(body: &str) -> Value {
        Value::Object(form_to_json(body))
    }

    #[test]
    fn arrays_in_all_spellings() {
        assert_eq!(f("paths[]=/a&paths[]=/b"), json!({"paths": ["/a", "/b"]}));
        assert_eq!(f("paths=/a&paths=/b"), json!({"paths": ["/a", "/b"]}));
        assert_eq!(f("paths[1]=/a"), json!({"paths": ["/a"]}));
        assert_eq!(f("paths[2]=/b&paths[1]=/a"), json!({"paths": ["/a", "/b"]}));
        assert_eq!(f("paths%5B%5D=%2Fa"), json!({"paths": ["/a"]}));
        assert_eq!(f("paths=/a"), json!({"paths": "/a"}));
    }

    #[test]
    fn maps_and_records() {
        assert_eq!(f("headers.x-foo=bar"), json!({"headers": {"x-foo": "bar"}}));
        assert_eq!(
            f("headers[x-foo]=bar&headers[x-foo]=baz"),
            json!({"headers": {"x-foo": ["bar", "baz"]}})
        );
        assert_eq!(
            f("config.minute=5&config.policy=local"),
            json!({"config": {"minute": "5", "policy": "local"}})
        );
        assert_eq!(f("service.id=abc"), json!({"service": {"id": "abc"}}));
        assert_eq!(f("service.name=svc"), json!({"service": {"name": "svc"}}));
        assert_eq!(
            f("config.key_names[]=a&config.key_names[]=b"),
            json!({"config": {"key_names": ["a", "b"]}})
        );
        assert_eq!(
            f("healthchecks.active.healthy.interval=5"),
            json!({"healthchecks": {"active": {"healthy": {"interval": "5"}}}})
        );
    }

    #[test]
    fn plain_values_and_escapes() {
        assert_eq!(
            f("name=my+svc&url=http%3A%2F%2Fx%2Fy"),
            json!({"name": "my svc", "url": "http://x/y"})
        );
        assert_eq!(f("name="), json!({"name": ""}));
        assert_eq!(f(""), json!({}));
    }

    #[test]
    fn json_bodies() {
        assert_eq!(json_body(b"").unwrap(), Map::new());
        assert_eq!(json_body(b"{\"a\":1}").unwrap()["a"], json!(1));
        assert_eq!(json_body(b"{bad").unwrap_err(), "Cannot parse JSON body");
        assert!(expect_object(&json!([1])).is_err());
    }
}
