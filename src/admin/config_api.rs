//! The whole configuration at once, in Kong's declarative format: `GET /config` exports
//! it (YAML, or JSON with `?format=json`), `POST /config` replaces it atomically in one
//! Raft entry and answers with what changed (`?dry_run=true` only computes that).

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::body::{media_type, multipart_fields};
use super::server::{AdminContext, AdminRequest};
use super::write::{commit, Change};
use crate::http::{full, json_response, Body};
use crate::model::{diff, export_declarative, parse_declarative_with, unix_now, KongError};

pub fn export(ctx: &AdminContext, req: &AdminRequest) -> Response<Body> {
    let json = req.query("format") == Some("json");
    let text = export_declarative(&ctx.applied.get().snapshot, !json, unix_now());
    let mut resp = Response::new(full(text));
    let ct = if json { "application/json" } else { "application/yaml" };
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, ct.parse().expect("static"));
    resp
}

/// The declarative text of a request: the raw body, or Kong's `{"config": "..."}` form.
fn declarative_text(req: &AdminRequest) -> Result<String, KongError> {
    /// Reads only the `config` field: building the whole body as a `Value` to look for it
    /// cost about 1.5 KB per route, all thrown away.
    #[derive(Deserialize)]
    struct Wrapped {
        config: Option<String>,
    }
    let media = media_type(req);
    if media == "multipart/form-data" {
        // `curl -F config=@kong.yml`, as Kong's docs load a file.
        let fields = multipart_fields(req).map_err(|b| KongError::declarative_config(json!({ "config": b.message })))?;
        let config = fields.into_iter().find(|(name, _)| name == "config").map(|(_, text)| text);
        return config.ok_or_else(|| KongError::declarative_config(json!({ "config": "required field missing" })));
    }
    let text = std::str::from_utf8(&req.body).map_err(|_| KongError::declarative_config(json!({ "config": "not UTF-8" })))?;
    // `--data-urlencode config@kong.yml`; but `--data-binary @kong.yml` is sent with the
    // same content type and is the file itself, as in Kong, which reads the raw body
    // when there is no `config` parameter.
    if media == "application/x-www-form-urlencoded" {
        if let Some((_, config)) = form_urlencoded::parse(text.as_bytes()).find(|(name, _)| name == "config") {
            return Ok(config.into_owned());
        }
    }
    // serde would also read a struct from an array (`["..."]`): only an object wraps.
    if !text.trim_start().starts_with('{') {
        return Ok(text.to_owned());
    }
    match serde_json::from_str::<Wrapped>(text) {
        Ok(Wrapped { config: Some(inner) }) => Ok(inner),
        _ => Ok(text.to_owned()),
    }
}

/// A yes/no query flag, read as Kong reads its own (`1`, `true`, `yes`, `on` and their
/// opposites): anything else is refused, since taking it for "no" would apply a file the
/// caller meant only to check.
fn truthy(value: &str) -> Result<bool, KongError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(KongError::invalid_option("dry_run", "must be a boolean (true or false)")),
    }
}

pub async fn apply(ctx: &AdminContext, req: &AdminRequest) -> Response<Body> {
    let text = match declarative_text(req) {
        Ok(t) => t,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &e.to_json()),
    };
    let dry_run = match req.query("dry_run").map(truthy).transpose() {
        Ok(flag) => flag.unwrap_or(false),
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &e.to_json()),
    };
    let now = unix_now();
    let result = commit(ctx, |cfg| {
        let desired = parse_declarative_with(&text, &cfg.snapshot, now)?;
        let d = diff(&cfg.snapshot, &desired);
        let summary = json!({ "changed": !d.is_empty(), "dry_run": dry_run, "summary": d.summary() });
        if dry_run {
            return Ok((Vec::new(), summary));
        }
        let mut changes: Vec<Change> = d.deletes.into_iter().map(Change::Delete).collect();
        changes.extend(d.creates.into_iter().map(|new| Change::Put { new, old: None }));
        changes.extend(d.updates.into_iter().map(|(old, new)| Change::Put { new, old: Some(old) }));
        Ok((changes, summary))
    })
    .await;
    match result {
        // Kong answers a load with 201; a dry run creates nothing.
        Ok(summary) => json_response(if dry_run { StatusCode::OK } else { StatusCode::CREATED }, &summary),
        Err(e) => {
            let (status, body) = e.status_and_body();
            json_response(status, &body)
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hyper::Method;

    use super::*;

    fn post(body: &str) -> AdminRequest {
        AdminRequest { method: Method::POST, segments: vec!["config".into()], query: vec![], content_type: None, body: Bytes::from(body.to_owned()) }
    }

    #[test]
    fn kongs_wrapped_form_gives_the_inner_text() {
        let inner = "_format_version: \"3.0\"\nservices: []\n";
        let body = serde_json::to_string(&json!({ "config": inner })).unwrap();
        assert_eq!(declarative_text(&post(&body)).unwrap(), inner);
    }

    #[test]
    fn any_other_body_is_the_declarative_text_itself() {
        for body in [
            r#"{"_format_version":"3.0","services":[{"name":"s","url":"http://u"}]}"#,
            r#"{"config":{"nested":"object"},"_format_version":"3.0"}"#,
            r#"{"config":null}"#,
            "_format_version: \"3.0\"\n",
            "[1, 2]",
            r#"["_format_version: \"3.0\""]"#,
        ] {
            assert_eq!(declarative_text(&post(body)).unwrap(), body, "{body}");
        }
    }

    #[test]
    fn dry_run_takes_kongs_flag_words_and_refuses_the_rest() {
        for yes in ["true", "1", "YES", "on"] {
            assert!(truthy(yes).unwrap(), "{yes}");
        }
        for no in ["false", "0", "no", "Off"] {
            assert!(!truthy(no).unwrap(), "{no}");
        }
        for bad in ["", "2", "maybe", "truee"] {
            assert_eq!(truthy(bad).unwrap_err().code, 11, "{bad}");
        }
    }

    #[test]
    fn a_form_or_multipart_config_field_is_the_text() {
        let yaml = "_format_version: \"3.0\"\nservices: []\n";
        let form = form_urlencoded::Serializer::new(String::new()).append_pair("config", yaml).finish();
        let req = AdminRequest { content_type: Some("application/x-www-form-urlencoded".into()), ..post(&form) };
        assert_eq!(declarative_text(&req).unwrap(), yaml);
        // curl --data-binary @kong.yml: the same content type, the file itself.
        let req = AdminRequest { content_type: Some("application/x-www-form-urlencoded".into()), ..post(yaml) };
        assert_eq!(declarative_text(&req).unwrap(), yaml);
        let multipart = format!("--b1\r\nContent-Disposition: form-data; name=\"config\"; filename=\"kong.yml\"\r\n\r\n{yaml}\r\n--b1--\r\n");
        let req = AdminRequest { content_type: Some("multipart/form-data; boundary=b1".into()), ..post(&multipart) };
        assert_eq!(declarative_text(&req).unwrap(), yaml);
        let other = "--b1\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b1--\r\n";
        let req = AdminRequest { content_type: Some("multipart/form-data; boundary=b1".into()), ..post(other) };
        assert_eq!(declarative_text(&req).unwrap_err().code, 14);
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused() {
        let req = AdminRequest { body: Bytes::from_static(&[0xff, 0xfe]), ..post("") };
        assert!(declarative_text(&req).is_err());
    }
}
