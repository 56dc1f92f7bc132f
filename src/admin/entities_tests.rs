//! Listing: Kong's tag filters and the consumers' custom_id lookup.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::json;

use super::*;
use crate::model::{create, ConfigSnapshot};

fn config() -> AppliedConfig {
    let consumers = [("a", "c-a", vec!["t0"]), ("b", "c-b", vec!["t1"]), ("ab", "c-ab", vec!["t0", "t1"]), ("none", "c-n", vec![])];
    let entities = consumers.into_iter().map(|(name, custom_id, tags)| {
        let c: Consumer = create(&json!({ "username": name, "custom_id": custom_id, "tags": tags }), 1.0).unwrap();
        Entity::from(c)
    });
    AppliedConfig { snapshot: ConfigSnapshot::from_entities(entities), ..AppliedConfig::default() }
}

async fn status_and_json(resp: Response<Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn by_custom_id(custom_id: &str) -> (u16, Value) {
    status_and_json(consumer_by_custom_id(&config(), custom_id)).await
}

async fn list_consumers(query: &[(&str, &str)]) -> (u16, Value) {
    let req = AdminRequest {
        method: Method::GET,
        segments: vec!["consumers".into()],
        query: query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        content_type: None,
        body: Bytes::new(),
    };
    status_and_json(list::<Consumer>(&config(), None, &req, "/consumers")).await
}

fn usernames(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["data"].as_array().unwrap().iter().map(|c| c["username"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn tags_joined_by_commas_ask_for_all_and_by_slashes_for_any() {
    let (status, body) = list_consumers(&[("tags", "t0,t1")]).await;
    assert_eq!(status, 200);
    assert_eq!(usernames(&body), ["ab"]);
    assert_eq!(usernames(&list_consumers(&[("tags", "t1/t0")]).await.1), ["a", "ab", "b"]);
    assert_eq!(usernames(&list_consumers(&[("tags", "t0")]).await.1), ["a", "ab"]);
    assert_eq!(usernames(&list_consumers(&[("tags", "t9/t1")]).await.1), ["ab", "b"]);
    let (status, body) = list_consumers(&[("tags", "a,b,c,d,e,f")]).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 11);
    assert_eq!(body["fields"]["tags"], "cannot query more than 5 tags");
    // Both separators at once, an empty tag, a separator's neighbour byte: Kong's 400.
    for bad in ["t0/t1,t2", "", ",t0", "t0,,t1", "t0\t"] {
        let (status, body) = list_consumers(&[("tags", bad)]).await;
        assert_eq!((status, body["message"].as_str()), (400, Some("invalid option (tags: invalid filter syntax)")), "{bad:?}");
    }
    assert_eq!(usernames(&list_consumers(&[("tags", "t0,")]).await.1), ["a", "ab"]);
}

#[tokio::test]
async fn consumers_are_found_by_custom_id() {
    let (status, body) = by_custom_id("c-b").await;
    assert_eq!(status, 200);
    assert_eq!(usernames(&body), ["b"]);
    assert_eq!(body["next"], Value::Null);
    assert_eq!(by_custom_id("nobody").await.1["data"], json!([]));
    let (status, body) = by_custom_id("").await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "custom_id must be an unempty string");
}

#[tokio::test]
async fn a_credential_shows_the_ttl_it_has_left_and_not_at_all_once_expired() {
    let consumer: Consumer = create(&json!({ "username": "c" }), 1.0).unwrap();
    let now = unix_now();
    let credential = |key: &str, ttl: u32| -> Entity {
        let c: KeyAuthCredential = create(&json!({ "consumer": { "id": consumer.id }, "key": key, "ttl": ttl }), now - 10.0).unwrap();
        Entity::from(c)
    };
    let entities = [Entity::from(consumer.clone()), credential("lasting", 100), credential("gone", 5)];
    let cfg = AppliedConfig { snapshot: ConfigSnapshot::from_entities(entities), ..AppliedConfig::default() };
    let req = AdminRequest { method: Method::GET, segments: vec!["key-auths".into()], query: Vec::new(), content_type: None, body: Bytes::new() };
    let (_, body) = status_and_json(list::<KeyAuthCredential>(&cfg, None, &req, "/key-auths")).await;
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{body}");
    let left = data[0]["ttl"].as_i64().unwrap();
    assert!((85..=90).contains(&left), "{left}");
    let id = data[0]["id"].as_str().unwrap();
    assert_eq!(get::<KeyAuthCredential>(&cfg, None, id).status(), 200);
    let expired = cfg.snapshot.keyauth_credentials.values().find(|c| c.matches("gone")).unwrap().id.to_string();
    assert_eq!(get::<KeyAuthCredential>(&cfg, None, &expired).status(), 404);
}
