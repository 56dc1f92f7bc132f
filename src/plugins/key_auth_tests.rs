use hyper::Request;
use serde_json::json;

use super::*;
use crate::model::{create, Consumer, Entity, KeyAuthCredential};

fn snapshot() -> (ConfigSnapshot, uuid::Uuid) {
    let consumer: Consumer = create(&json!({"username": "alice", "custom_id": "a-1"}), 1.0).unwrap();
    let cred: KeyAuthCredential = create(&json!({"consumer": {"id": consumer.id}, "key": "s3cret"}), 1.0).unwrap();
    let id = consumer.id;
    (ConfigSnapshot::from_entities([Entity::from(consumer), Entity::from(cred)]), id)
}

fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut b = Request::builder().uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn config(extra: serde_json::Value) -> KeyAuthConfig {
    let mut base = json!({"key_names": ["apikey"], "hide_credentials": false, "anonymous": null, "key_in_header": true,
        "key_in_query": true, "key_in_body": false, "run_on_preflight": true, "realm": null});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    KeyAuthConfig::from_value(&base).unwrap()
}

fn ctx() -> RequestContext {
    RequestContext::new("127.0.0.1:1".parse().unwrap())
}

async fn message(resp: Response<Body>) -> (u16, String, Option<String>) {
    use http_body_util::BodyExt;
    let status = resp.status().as_u16();
    let www = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    (status, body["message"].as_str().unwrap().to_owned(), www)
}

#[tokio::test]
async fn a_valid_key_in_a_header_or_the_query_names_the_consumer() {
    let (snap, id) = snapshot();
    for p in [parts("/x", &[("apikey", "s3cret")]), parts("/x?apikey=s3cret&a=1", &[])] {
        let mut p = p;
        let mut c = ctx();
        access(&config(json!({})), &snap, &mut p, None, &mut c, || 2.0).unwrap();
        assert_eq!(c.consumer.as_ref().unwrap().id, id);
        let cred = snap.keyauth_credentials.keys().next().unwrap().to_string();
        assert_eq!(
            c.consumer_fields.unwrap().pairs(),
            [("x-consumer-id", id.to_string()), ("x-consumer-custom-id", "a-1".into()), ("x-consumer-username", "alice".into()), ("x-credential-identifier", cred)]
                .map(|(n, v)| (n.to_owned(), v))
        );
    }
}

#[tokio::test]
async fn missing_wrong_and_duplicate_keys_get_kongs_401s() {
    let (snap, _) = snapshot();
    let cfg = config(json!({"realm": "api"}));
    let cases = [
        (parts("/x", &[]), NO_KEY),
        (parts("/x", &[("apikey", "")]), NO_KEY),
        (parts("/x", &[("apikey", "nope")]), UNAUTHORIZED),
        (parts("/x?apikey=a&apikey=b", &[]), DUPLICATE),
    ];
    for (mut p, want) in cases {
        let resp = access(&cfg, &snap, &mut p, None, &mut ctx(), || 2.0).unwrap_err();
        let (status, msg, www) = message(resp).await;
        assert_eq!((status, msg.as_str()), (401, want));
        assert_eq!(www.as_deref(), Some("Key realm=\"api\""));
    }
}

#[tokio::test]
async fn hide_credentials_strips_the_key_and_plugins_see_the_consumer_not_forged_fields() {
    let (snap, id) = snapshot();
    let cfg = config(json!({"hide_credentials": true}));
    let mut p = parts("/x?apikey=s3cret&keep=1", &[("x-consumer-id", "forged")]);
    let mut c = ctx();
    access(&cfg, &snap, &mut p, None, &mut c, || 2.0).unwrap();
    assert_eq!(p.uri.query(), Some("keep=1"));
    assert_eq!(c.request_field(&p.headers, "X-Consumer-ID"), Some(id.to_string().as_bytes()));
    assert_eq!(c.request_field(&p.headers, "x-anonymous-consumer"), None);
    let mut p = parts("/x", &[("apikey", "s3cret")]);
    access(&cfg, &snap, &mut p, None, &mut ctx(), || 2.0).unwrap();
    assert!(p.headers.get("apikey").is_none());
    // Found in the header, and also in the query: neither copy reaches the upstream.
    let mut p = parts("/x?apikey=s3cret&z=1", &[("apikey", "s3cret")]);
    access(&cfg, &snap, &mut p, None, &mut ctx(), || 2.0).unwrap();
    assert!(p.headers.get("apikey").is_none());
    assert_eq!(p.uri.query(), Some("z=1"));
}

#[tokio::test]
async fn anonymous_consumer_takes_failed_requests() {
    let (snap, id) = snapshot();
    let cfg = config(json!({"anonymous": "alice"}));
    let mut p = parts("/x", &[]);
    let mut c = ctx();
    access(&cfg, &snap, &mut p, None, &mut c, || 2.0).unwrap();
    assert_eq!(c.consumer.unwrap().id, id);
    let fields = c.consumer_fields.unwrap().pairs();
    assert_eq!(fields.last().unwrap(), &("x-anonymous-consumer".to_owned(), "true".to_owned()));
    assert!(!fields.iter().any(|(n, _)| n == "x-credential-identifier"), "no credential matched: {fields:?}");
    let cfg = config(json!({"anonymous": "ghost"}));
    let (status, msg, _) = message(access(&cfg, &snap, &mut parts("/x", &[]), None, &mut ctx(), || 2.0).unwrap_err()).await;
    assert_eq!((status, msg.as_str()), (500, "anonymous consumer ghost is configured but doesn't exist"));
}

#[tokio::test]
async fn a_key_matched_once_follows_later_changes_to_its_consumer_and_credential() {
    let (mut snap, id) = snapshot();
    let cfg = config(json!({}));
    let run = |snap: &ConfigSnapshot| {
        let mut p = parts("/x", &[("apikey", "s3cret")]);
        let mut c = ctx();
        let result = access(&cfg, snap, &mut p, None, &mut c, || 2.0).map(|()| String::from_utf8(c.request_field(&p.headers, "x-consumer-username").unwrap().to_vec()).unwrap());
        result.map_err(|resp| resp.status().as_u16())
    };
    assert_eq!(run(&snap), Ok("alice".to_owned()));
    assert_eq!(run(&snap), Ok("alice".to_owned()), "matched again, from the per-thread cache");

    let renamed: Consumer = create(&json!({"id": id, "username": "alice2"}), 1.0).unwrap();
    snap.insert(Entity::from(renamed));
    assert_eq!(run(&snap), Ok("alice2".to_owned()), "a renamed consumer is seen at once");

    let cred_id = snap.keyauth_credentials.keys().next().copied().unwrap();
    snap.remove("keyauth_credentials", cred_id);
    assert_eq!(run(&snap), Err(401), "a deleted credential no longer authenticates");
}

#[tokio::test]
async fn a_credential_past_its_ttl_is_refused_and_the_clock_is_read_only_for_one_with_a_ttl() {
    let consumer: Consumer = create(&json!({"username": "bob"}), 1.0).unwrap();
    let lasting: KeyAuthCredential = create(&json!({"consumer": {"id": consumer.id}, "key": "lasting"}), 1.0).unwrap();
    let brief: KeyAuthCredential = create(&json!({"consumer": {"id": consumer.id}, "key": "brief", "ttl": 10}), 1.0).unwrap();
    let snap = ConfigSnapshot::from_entities([Entity::from(consumer), Entity::from(lasting), Entity::from(brief)]);
    let cfg = config(json!({}));
    access(&cfg, &snap, &mut parts("/x", &[("apikey", "lasting")]), None, &mut ctx(), || unreachable!("a credential without a ttl needs no clock")).unwrap();
    access(&cfg, &snap, &mut parts("/x", &[("apikey", "brief")]), None, &mut ctx(), || 10.0).unwrap();
    let refused = access(&cfg, &snap, &mut parts("/x", &[("apikey", "brief")]), None, &mut ctx(), || 11.0).unwrap_err();
    assert_eq!(message(refused).await.0, 401);
}

#[tokio::test]
async fn key_in_body_reads_a_form_or_a_json_object_and_hide_credentials_takes_the_key_out() {
    let (snap, id) = snapshot();
    let cfg = config(json!({"key_in_body": true, "hide_credentials": true}));
    let form = ("content-type", "application/x-www-form-urlencoded");
    let mut body = Bytes::from_static(b"a=1&apikey=s3cret&b=2");
    let mut c = ctx();
    let mut p = parts("/x", &[form]);
    access(&cfg, &snap, &mut p, Some(&mut body), &mut c, || 2.0).unwrap();
    assert_eq!(c.request_field(&p.headers, "X-Consumer-ID"), Some(id.to_string().as_bytes()));
    assert_eq!(body, "a=1&b=2");

    let mut body = Bytes::from_static(br#"{"apikey": "s3cret", "keep": [1]}"#);
    let mut p = parts("/x", &[("content-type", "application/json; charset=utf-8")]);
    access(&cfg, &snap, &mut p, Some(&mut body), &mut ctx(), || 2.0).unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap(), json!({"keep": [1]}));

    let mut twice = Bytes::from_static(b"apikey=s3cret&apikey=s3cret");
    let (status, msg, _) = message(access(&cfg, &snap, &mut parts("/x", &[form]), Some(&mut twice), &mut ctx(), || 2.0).unwrap_err()).await;
    assert_eq!((status, msg.as_str()), (401, "Duplicate API key found"));
    // Another media type is not read, and without key_in_body no body is.
    let mut text = Bytes::from_static(b"apikey=s3cret");
    let (_, msg, _) = message(access(&cfg, &snap, &mut parts("/x", &[("content-type", "text/plain")]), Some(&mut text), &mut ctx(), || 2.0).unwrap_err()).await;
    assert_eq!(msg, "No API key found in request");
    let off = config(json!({"hide_credentials": true}));
    let mut kept = Bytes::from_static(b"apikey=s3cret");
    assert!(access(&off, &snap, &mut parts("/x", &[form]), Some(&mut kept), &mut ctx(), || 2.0).is_err());
    assert_eq!(kept, "apikey=s3cret");
}

#[tokio::test]
async fn a_key_in_a_header_may_be_any_utf8() {
    let consumer: Consumer = create(&json!({"username": "ü"}), 1.0).unwrap();
    let cred: KeyAuthCredential = create(&json!({"consumer": {"id": consumer.id}, "key": "ü-key"}), 1.0).unwrap();
    let snap = ConfigSnapshot::from_entities([Entity::from(consumer.clone()), Entity::from(cred)]);
    let mut p = Request::builder().uri("/x").header("apikey", hyper::header::HeaderValue::from_bytes("ü-key".as_bytes()).unwrap()).body(()).unwrap().into_parts().0;
    let mut c = ctx();
    access(&config(json!({})), &snap, &mut p, None, &mut c, || 2.0).unwrap();
    assert_eq!(c.consumer.unwrap().id, consumer.id);
}
