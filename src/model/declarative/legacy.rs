//! Files of Kong's older declarative formats, `_format_version` "1.1" and "2.1", which
//! Kong 3 still loads: a route path was a regex there whenever it held more than plain
//! path characters, where 3.0 asks for a `~` prefix. Kong marks such paths on loading;
//! so does this, so that an old file routes as it did.

use serde_json::{Map, Value};

use super::FORMAT_VERSION;

/// The versions accepted, newest last.
pub const ACCEPTED: [&str; 3] = ["1.1", "2.1", FORMAT_VERSION];

/// Whether `version` (a string, or a YAML number such as `2.1`) names a format before
/// 3.0 that Kong still loads; `None` when it names none Kong knows.
pub fn is_legacy(version: &Value) -> Option<bool> {
    let text = match version {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map(|f| format!("{f:.1}"))?,
        _ => return None,
    };
    ACCEPTED.contains(&text.as_str()).then(|| text != FORMAT_VERSION)
}

/// Marks each regex path of the document's routes, top-level or under a service.
pub fn mark_regex_paths(doc: &mut Map<String, Value>) {
    if let Some(Value::Array(routes)) = doc.get_mut("routes") {
        routes.iter_mut().for_each(mark_route);
    }
    if let Some(Value::Array(services)) = doc.get_mut("services") {
        for service in services {
            if let Some(Value::Array(routes)) = service.get_mut("routes") {
                routes.iter_mut().for_each(mark_route);
            }
        }
    }
}

fn mark_route(route: &mut Value) {
    if let Some(Value::Array(paths)) = route.get_mut("paths") {
        for path in paths.iter_mut() {
            if let Value::String(p) = path {
                if !is_plain(p) {
                    p.insert(0, '~');
                }
            }
        }
    }
}

/// Kong's test for a path that was never a regex: letters, digits and `.-_~/%` only.
fn is_plain(path: &str) -> bool {
    path.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_~/%".contains(&b))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn versions_kong_3_loads() {
        for (v, legacy) in [(json!("3.0"), Some(false)), (json!(3.0), Some(false)), (json!("2.1"), Some(true)), (json!(2.1), Some(true)), (json!("1.1"), Some(true))] {
            assert_eq!(is_legacy(&v), legacy, "{v}");
        }
        for v in [json!("2.0"), json!(4), json!(true), json!("")] {
            assert_eq!(is_legacy(&v), None, "{v}");
        }
    }

    #[test]
    fn regex_paths_are_marked_and_plain_ones_kept() {
        let mut doc = json!({
            "routes": [{ "paths": ["/plain/path-1.json", "/users/\\d+$", "/%7Euser"] }],
            "services": [{ "name": "s", "routes": [{ "paths": ["/v(1|2)/", "/ok_~"] }] }]
        });
        mark_regex_paths(doc.as_object_mut().unwrap());
        assert_eq!(doc["routes"][0]["paths"], json!(["/plain/path-1.json", "~/users/\\d+$", "/%7Euser"]));
        assert_eq!(doc["services"][0]["routes"][0]["paths"], json!(["~/v(1|2)/", "/ok_~"]));
    }
}
