//! Kong's schema endpoints. `GET /schemas/{entity}`, `/schemas/plugins/{name}` and the
//! older `/plugins/schema/{name}` (the config record alone) describe a schema in Kong's
//! JSON form (`model::schema_json`). `POST /schemas/{entity}/validate` (and
//! `/schemas/plugins/validate`) checks a body against the entity's schema as a create
//! would, without writing anything or looking at the configuration: tooling (decK's
//! `validate --online`, CI checks) uses it to vet a change before applying it.

use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::body::entity_input;
use super::entities::kong;
use super::server::{message, AdminRequest};
use crate::http::{json_response, Body};
use crate::model::schema_json::record_json;
use crate::model::{create, plugins, unix_now, Consumer, EntityType, KeyAuthCredential, Plugin, Route, Service, Target, Upstream};

/// `GET /schemas/{table}`.
pub fn entity(table: &str) -> Response<Body> {
    let record = match table {
        "services" => Service::schema_for(&Default::default()),
        "routes" => Route::schema_for(&Default::default()),
        "upstreams" => Upstream::schema_for(&Default::default()),
        "targets" => Target::schema_for(&Default::default()),
        "consumers" => Consumer::schema_for(&Default::default()),
        "keyauth_credentials" => KeyAuthCredential::schema_for(&Default::default()),
        "plugins" => Ok(std::sync::Arc::new(crate::model::plugin::base_schema())),
        other => return message(StatusCode::NOT_FOUND, &format!("No entity named '{other}'")),
    };
    match record {
        Ok(record) => json_response(StatusCode::OK, &record_json(&record)),
        Err(e) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_json()),
    }
}

/// `GET /schemas/plugins/{name}`: what the plugin defines of its entity.
pub fn plugin(name: &str) -> Response<Body> {
    match plugins::get(name) {
        Some(def) => json_response(StatusCode::OK, &record_json(&crate::model::plugin::own_schema(def))),
        None => message(StatusCode::NOT_FOUND, &format!("No plugin named '{name}'")),
    }
}

/// `GET /plugins/schema/{name}`, deprecated in Kong since 1.2 and still served: the
/// config record alone.
pub fn plugin_config(name: &str) -> Response<Body> {
    match plugins::get(name) {
        Some(def) => json_response(StatusCode::OK, &record_json(&def.config)),
        None => message(StatusCode::NOT_FOUND, &format!("No plugin named '{name}'")),
    }
}

/// The answer to `POST /schemas/{table}/validate`; `table` is Kong's database name of
/// the entity (`keyauth_credentials`, not the `key-auths` path).
pub fn validate(table: &str, req: &AdminRequest) -> Response<Body> {
    match table {
        "services" => check::<Service>(req),
        "routes" => check::<Route>(req),
        "upstreams" => check::<Upstream>(req),
        "targets" => check::<Target>(req),
        "consumers" => check::<Consumer>(req),
        "plugins" => check::<Plugin>(req),
        "keyauth_credentials" => check::<KeyAuthCredential>(req),
        other => message(StatusCode::NOT_FOUND, &format!("No entity named '{other}'")),
    }
}

fn check<E: EntityType>(req: &AdminRequest) -> Response<Body> {
    let input = match entity_input::<E>(req) {
        Ok(input) => input,
        Err(bad) => return json_response(bad.status, &json!({ "message": bad.message })),
    };
    match create::<E>(&Value::Object(input), unix_now()) {
        Ok(_) => message(StatusCode::OK, "schema validation successful"),
        Err(e) => kong(e),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::Method;

    use super::*;

    fn post(body: &str) -> AdminRequest {
        let content_type = Some("application/json".to_owned());
        AdminRequest { method: Method::POST, segments: vec![], query: vec![], content_type, body: Bytes::from(body.to_owned()) }
    }

    async fn answer(table: &str, body: &str) -> (u16, Value) {
        let resp = validate(table, &post(body));
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_valid_entity_passes_and_an_invalid_one_gets_kongs_schema_error() {
        let (status, body) = answer("services", r#"{"url":"http://example.com"}"#).await;
        assert_eq!((status, body["message"].as_str()), (200, Some("schema validation successful")));
        let (status, body) = answer("services", r#"{"host":"example.com","port":70000}"#).await;
        assert_eq!((status, body["code"].as_u64(), body["name"].as_str()), (400, Some(2), Some("schema violation")));
        assert!(body["fields"]["port"].is_string(), "{body}");
    }

    #[tokio::test]
    async fn plugins_are_checked_with_their_config() {
        let (status, _) = answer("plugins", r#"{"name":"rate-limiting","config":{"minute":5}}"#).await;
        assert_eq!(status, 200);
        let (status, body) = answer("plugins", r#"{"name":"rate-limiting","config":{"minute":-1}}"#).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["fields"]["config"].is_object(), "{body}");
    }

    #[tokio::test]
    async fn an_unknown_entity_is_404_by_name() {
        let (status, body) = answer("key-auths", "{}").await;
        assert_eq!((status, body["message"].as_str()), (404, Some("No entity named 'key-auths'")));
    }
}
