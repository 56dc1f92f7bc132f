//! A Kong declarative file (`_format_version: "3.0"`, JSON) with many routes, for the
//! memory and load-time figures: `routes` routes spread over services of ten routes each.

use serde_json::{json, Value};

pub fn generate(routes: usize, upstream: &str) -> Value {
    const PER_SERVICE: usize = 10;
    let services: Vec<Value> = (0..routes.div_ceil(PER_SERVICE))
        .map(|s| {
            let rs: Vec<Value> = (s * PER_SERVICE..((s + 1) * PER_SERVICE).min(routes))
                .map(|r| json!({ "name": format!("r{r}"), "paths": [format!("/r{r}")] }))
                .collect();
            json!({ "name": format!("s{s}"), "url": upstream, "routes": rs })
        })
        .collect();
    json!({ "_format_version": "3.0", "services": services })
}
