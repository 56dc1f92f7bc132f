//! The key-auth plugin (Kong's priority 1250): finds an API key in a header, the query
//! string or (key_in_body) a form or JSON body, matches its hash against the consumers'
//! credentials, and tells the upstream who the consumer is; Kong's 401 messages otherwise.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode, Uri};

use crate::http::Body;
use crate::model::plugins::key_auth::{KeyAuthConfig, KeyName};

use super::key_auth_cache;
use crate::model::ConfigSnapshot;
use crate::proxy::consumer_fields::{ConsumerFields, ConsumerValues};
use crate::proxy::context::{ConsumerInfo, RequestContext};
use crate::proxy::errors::error_response;

const NO_KEY: &str = "No API key found in request";
const UNAUTHORIZED: &str = "Unauthorized";
const DUPLICATE: &str = "Duplicate API key found";

enum Found<'c, 'r> {
    None,
    /// A key from a header is borrowed from the request; one from the query or the body
    /// is decoded.
    Key { value: Cow<'r, str>, name: &'c str },
    Duplicate,
}

/// A body key_in_body can read: a form or a JSON object, by Content-Type.
enum BodyFields {
    Form(Vec<(String, String)>),
    Json(serde_json::Map<String, serde_json::Value>),
}

impl BodyFields {
    fn parse(parts: &Parts, body: &[u8]) -> Option<BodyFields> {
        let media = parts.headers.get(CONTENT_TYPE)?.to_str().ok()?.split(';').next()?.trim().to_ascii_lowercase();
        match media.as_str() {
            "application/x-www-form-urlencoded" => Some(BodyFields::Form(form_urlencoded::parse(body).into_owned().collect())),
            "application/json" => match serde_json::from_slice(body) {
                Ok(serde_json::Value::Object(map)) => Some(BodyFields::Json(map)),
                _ => None,
            },
            _ => None,
        }
    }

    fn find<'c, 'r>(&self, name: &'c str) -> Found<'c, 'r> {
        match self {
            BodyFields::Form(pairs) => only_value(pairs, name),
            BodyFields::Json(map) => match map.get(name) {
                Some(serde_json::Value::String(v)) => Found::Key { value: Cow::Owned(v.clone()), name },
                Some(serde_json::Value::Array(_)) => Found::Duplicate,
                _ => Found::None,
            },
        }
    }

    /// The body without `name`, re-encoded; None when it had no such field.
    fn without(self, name: &str) -> Option<Bytes> {
        match self {
            BodyFields::Form(pairs) => form_without(&pairs, name).map(Bytes::from),
            BodyFields::Json(mut map) => map.remove(name).map(|_| serde_json::to_vec(&map).unwrap_or_default().into()),
        }
    }
}

/// `name`'s value among decoded pairs (a query or a form): one is a key, two are a
/// duplicate.
fn only_value<'c, 'r, K: AsRef<str>, V: Clone + Into<Cow<'r, str>>>(pairs: &[(K, V)], name: &'c str) -> Found<'c, 'r> {
    let mut values = pairs.iter().filter(|(k, _)| k.as_ref() == name);
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Found::Duplicate,
        (Some((_, v)), None) => Found::Key { value: v.clone().into(), name },
        _ => Found::None,
    }
}

/// `pairs` encoded again without `name`; None when they have no such pair.
fn form_without(pairs: &[(String, String)], name: &str) -> Option<String> {
    let kept: Vec<_> = pairs.iter().filter(|(k, _)| k != name).collect();
    (kept.len() != pairs.len()).then(|| form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish())
}

fn find_key<'c, 'r>(cfg: &'c KeyAuthConfig, parts: &'r Parts, body: Option<&BodyFields>) -> Found<'c, 'r> {
    // Parsed only if a name is looked for there: most keys come in a header.
    let mut query: Option<Vec<(Cow<'r, str>, Cow<'r, str>)>> = None;
    for KeyName { text: name, header } in &cfg.key_names {
        if let (true, Some(header)) = (cfg.key_in_header, header) {
            let mut values = parts.headers.get_all(header).iter();
            if let Some(v) = values.next() {
                if values.next().is_some() {
                    return Found::Duplicate;
                }
                // Any UTF-8 the client sent, as Kong reads the field's bytes (`to_str` takes
                // visible ASCII only).
                if let Ok(v) = std::str::from_utf8(v.as_bytes()) {
                    return Found::Key { value: Cow::Borrowed(v), name };
                }
            }
        }
        if cfg.key_in_query {
            let query = query.get_or_insert_with(|| form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).collect());
            match only_value(query, name) {
                Found::None => {}
                found => return found,
            }
        }
        if let Some(body) = body {
            match body.find(name) {
                Found::None => {}
                found => return found,
            }
        }
    }
    Found::None
}

fn unauthorized(cfg: &KeyAuthConfig, message: &str, parts: &Parts, ctx: &RequestContext) -> Response<Body> {
    let mut resp = error_response(StatusCode::UNAUTHORIZED, message, ctx.request_id(), &parts.headers);
    let challenge = match &cfg.realm {
        Some(realm) => format!("Key realm=\"{realm}\""),
        None => "Key".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert("www-authenticate", v);
    }
    resp
}

/// `uri` without `name` in its query; None when its query has no such pair.
fn without_query_param(uri: &Uri, name: &str) -> Option<Uri> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(uri.query()?.as_bytes()).into_owned().collect();
    let kept = form_without(&pairs, name)?;
    let mut pq = uri.path().to_owned();
    if !kept.is_empty() {
        pq.push('?');
        pq.push_str(&kept);
    }
    let mut builder = Uri::builder();
    if let Some(s) = uri.scheme() {
        builder = builder.scheme(s.clone());
    }
    if let Some(a) = uri.authority() {
        builder = builder.authority(a.clone());
    }
    builder.path_and_query(pq).build().ok()
}

/// Runs key-auth: Ok with the consumer recorded in `ctx`, or the 401 to send. `now` gives
/// the Unix time in seconds, asked only of a credential with a ttl. `body` is the whole
/// request body when key_in_body is on (the pipeline reads it first; None if too large).
pub fn access(
    cfg: &KeyAuthConfig,
    snapshot: &ConfigSnapshot,
    parts: &mut Parts,
    body: Option<&mut Bytes>,
    ctx: &mut RequestContext,
    now: impl FnOnce() -> f64,
) -> Result<(), Response<Body>> {
    if !cfg.run_on_preflight && parts.method == hyper::Method::OPTIONS {
        return Ok(());
    }
    let body_fields = match &body {
        Some(bytes) if cfg.key_in_body => BodyFields::parse(parts, bytes),
        _ => None,
    };
    let (failure, matched) = match find_key(cfg, parts, body_fields.as_ref()) {
        Found::Duplicate => (DUPLICATE, None),
        Found::None => (NO_KEY, None),
        Found::Key { value, .. } if value.is_empty() => (NO_KEY, None),
        Found::Key { value, name } => match key_auth_cache::lookup(snapshot, &value) {
            Some(known) if !known.credential.is_expired(now) => (UNAUTHORIZED, Some((known, name))),
            _ => (UNAUTHORIZED, None),
        },
    };
    // The request's borrow ends here, so the match can rewrite it.
    if let Some((known, name)) = matched {
        if cfg.hide_credentials {
            // Wherever the key was found, the name goes from both places (as Kong): a copy
            // the client also put in the query must not reach the upstream either.
            parts.headers.remove(name);
            if let Some(uri) = without_query_param(&parts.uri, name) {
                parts.uri = uri;
            }
            if let (Some(fields), Some(body)) = (body_fields, body) {
                if let Some(stripped) = fields.without(name) {
                    *body = stripped;
                }
            }
        }
        ctx.consumer_fields = Some(ConsumerFields { values: Arc::clone(&known.fields), anonymous: false });
        ctx.consumer = Some(Arc::clone(&known.consumer));
        ctx.credential_id = Some(known.credential.id);
        return Ok(());
    }
    if let Some(anon) = &cfg.anonymous {
        let consumer = snapshot.consumer_by_id_or_username(anon);
        return match consumer {
            Some(c) => {
                ctx.consumer_fields = Some(ConsumerFields { values: Arc::new(ConsumerValues::new(c, None)), anonymous: true });
                ctx.consumer = Some(Arc::new(ConsumerInfo::from(c)));
                Ok(())
            }
            None => Err(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("anonymous consumer {anon} is configured but doesn't exist"),
                ctx.request_id(),
                &parts.headers,
            )),
        };
    }
    Err(unauthorized(cfg, failure, parts, ctx))
}

#[cfg(test)]
#[path = "key_auth_tests.rs"]
mod tests;
