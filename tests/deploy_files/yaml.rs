//! YAML helpers: documents, strings, Kubernetes containers.

use super::*;

pub(crate) fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"));
        value.apply_merge().unwrap_or_else(|e| panic!("{rel}: bad merge key: {e}"));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

pub(crate) fn yaml_files(dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path.strip_prefix(repo()).unwrap().to_string_lossy().into_owned());
        }
    }
    out.sort();
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Every Kubernetes container spec (containers and initContainers) anywhere in `v`.
pub(crate) fn containers(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(node) = stack.pop() {
        match node {
            Value::Mapping(m) => {
                for (k, child) in m {
                    if matches!(k.as_str(), Some("containers" | "initContainers")) {
                        out.extend(child.as_sequence().into_iter().flatten());
                    } else {
                        stack.push(child);
                    }
                }
            }
            Value::Sequence(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

/// The image's ENTRYPOINT, read from the Dockerfile (a JSON array).
pub(crate) fn image_entrypoint() -> Vec<String> {
    let dockerfile = read("deploy/Dockerfile");
    let line = dockerfile.lines().rev().find(|l| l.starts_with("ENTRYPOINT ")).expect("the Dockerfile has an ENTRYPOINT");
    serde_json::from_str(line.trim_start_matches("ENTRYPOINT ")).expect("ENTRYPOINT is a JSON array")
}

/// Checks one Kubernetes container: its command/args, probes, lifecycle hooks and env.
pub(crate) fn check_k8s_container(place: &str, c: &Value, problems: &mut Vec<String>) -> Vec<Invocation> {
    let place = format!("{place} container {}", s(c, "name"));
    let argv: Vec<String> = if c["command"].is_null() {
        image_entrypoint().into_iter().chain(strings(&c["args"])).collect()
    } else {
        strings(&c["command"]).into_iter().chain(strings(&c["args"])).collect()
    };
    let found = check_argv(&place, &argv, problems);
    for hook in ["readinessProbe", "livenessProbe", "startupProbe"] {
        check_argv(&format!("{place} {hook}"), &strings(&c[hook]["exec"]["command"]), problems);
    }
    for hook in ["postStart", "preStop"] {
        check_argv(&format!("{place} {hook}"), &strings(&c["lifecycle"][hook]["exec"]["command"]), problems);
    }
    for e in c["env"].as_sequence().into_iter().flatten() {
        check_env_name(&place, s(e, "name"), problems);
    }
    found
}

pub(crate) fn env_value(c: &Value, name: &str) -> Option<String> {
    c["env"].as_sequence()?.iter().find(|e| s(e, "name") == name).and_then(|e| scalar(&e["value"]))
}

pub(crate) fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector.as_mapping().is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}
