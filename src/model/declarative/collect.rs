//! Reading a declarative file: the document itself (YAML or JSON), and the entities in it,
//! top-level and nested, each with its place in the file for errors.

use super::*;

pub(super) fn table_static(t: &str) -> &'static str {
    TABLES.iter().find(|x| **x == t).copied().unwrap_or("")
}

/// Error tree under construction: `{"services": [{"routes": [{"paths": ..}]}]}`.
pub(super) fn set_error(tree: &mut Value, path: &[Seg], err: Value) {
    let Some((first, rest)) = path.split_first() else {
        match (tree, err) {
            (Value::Object(a), Value::Object(b)) => a.extend(b),
            (t, e) => *t = e,
        }
        return;
    };
    match first {
        Seg::Key(k) => {
            if !tree.is_object() {
                *tree = Value::Object(Map::new());
            }
            let slot = tree
                .as_object_mut()
                .expect("object")
                .entry(k.to_string())
                .or_insert(Value::Null);
            set_error(slot, rest, err);
        }
        Seg::Index(i) => {
            if !tree.is_array() {
                *tree = Value::Array(vec![]);
            }
            let a = tree.as_array_mut().expect("array");
            while a.len() <= *i {
                a.push(Value::Null);
            }
            set_error(&mut a[*i], rest, err);
        }
    }
}

pub(super) fn read_document(text: &str) -> Result<Value, KongError> {
    let parsed = if text.trim_start().starts_with('{') {
        serde_json::from_str::<Value>(text).map_err(|e| e.to_string())
    } else {
        serde_yaml_ng::from_str::<Value>(text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        KongError::new(
            crate::model::error::codes::DECLARATIVE_CONFIG,
            format!("failed parsing declarative configuration: {e}"),
            Value::Null,
        )
    })
}

/// Walks the document into a flat list of raw entities (parents before children).
pub(super) fn collect(doc: Map<String, Value>, errors: &mut Value) -> Vec<Raw> {
    let mut raws: Vec<Raw> = Vec::new();
    for (k, v) in &doc {
        let known = TABLES.contains(&k.as_str())
            || ["_format_version", "_transform", "_comment", "_workspace"].contains(&k.as_str());
        if !known {
            set_error(errors, &[], json!({ k: "unknown field" }));
        } else if TABLES.contains(&k.as_str()) && !v.is_array() && !v.is_null() {
            set_error(errors, &[], json!({ k: "expected an array" }));
        }
    }
    for table in TABLES {
        let Some(Value::Array(items)) = doc.get(table) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let path = vec![Seg::Key(table), Seg::Index(i)];
            push_raw(&mut raws, table, item, path, None, errors);
        }
    }
    raws
}

pub(super) fn push_raw(
    raws: &mut Vec<Raw>,
    table: &'static str,
    item: &Value,
    path: Vec<Seg>,
    parent: Option<(&'static str, usize)>,
    errors: &mut Value,
) {
    let Value::Object(m) = item else {
        set_error(errors, &path, json!("expected a record"));
        return;
    };
    let mut map = m.clone();
    let mut children: Vec<(&'static str, &'static str, &'static str, Value)> = Vec::new();
    for (pt, key, ct, fk) in NESTED {
        if pt == table {
            if let Some(v) = map.remove(key) {
                children.push((key, table_static(ct), fk, v));
            }
        }
    }
    let idx = raws.len();
    raws.push(Raw {
        table,
        map,
        path: path.clone(),
        parent,
        id: None,
    });
    for (key, ct, fk, v) in children {
        let mut cpath = path.clone();
        cpath.push(Seg::Key(key));
        match v {
            Value::Array(items) => {
                for (j, child) in items.iter().enumerate() {
                    let mut p = cpath.clone();
                    p.push(Seg::Index(j));
                    push_raw(raws, ct, child, p, Some((fk, idx)), errors);
                }
            }
            Value::Null => {}
            _ => set_error(errors, &cpath, json!("expected an array")),
        }
    }
}
