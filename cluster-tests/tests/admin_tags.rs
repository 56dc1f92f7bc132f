//! Kong's `/tags` and `/schemas` endpoints on a running node: every tagged entity shows
//! once per tag, pages join up to the whole list, one tag's list is that tag's rows
//! only; a schema reads as Kong's, and a validation writes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_tests::http::{request_with_headers, Reply};
use cluster_tests::{serial, wait_for, Cluster};
use hyper::Method;
use serde_json::Value;

async fn call(method: Method, url: &str, body: &str) -> Reply {
    let headers = [("content-type", "application/json")];
    request_with_headers(method, url, &headers, body.as_bytes().to_vec()).await.unwrap()
}

async fn created(url: &str, body: &str) -> String {
    let r = call(Method::POST, url, body).await;
    assert!(r.status.is_success(), "{url} {body}: {} {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_owned()
}

/// (tag, entity_name, entity_id) of every row of a page.
fn rows(page: &Value) -> Vec<(String, String, String)> {
    let field = |row: &Value, f: &str| row[f].as_str().unwrap().to_owned();
    page["data"].as_array().unwrap().iter().map(|r| (field(r, "tag"), field(r, "entity_name"), field(r, "entity_id"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_list_every_tagged_entity_and_validation_writes_nothing() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.35", 1);
    c.start(1, &["--voters", "1"]);
    let a = c.node(1).admin();
    wait_for("the node to serve", Duration::from_secs(15), || async {
        let r = request_with_headers(Method::GET, &format!("http://{a}/services"), &[], Vec::new()).await.ok()?;
        r.status.is_success().then_some(())
    })
    .await;

    let service = created(&format!("http://{a}/services"), r#"{"name":"s","url":"http://127.0.35.100:9000","tags":["blue","prod"]}"#).await;
    let route = created(&format!("http://{a}/services/s/routes"), r#"{"name":"r","paths":["/r"],"tags":["blue"]}"#).await;
    let consumer = created(&format!("http://{a}/consumers"), r#"{"username":"c","tags":["team a ü"]}"#).await;
    created(&format!("http://{a}/upstreams"), r#"{"name":"untagged"}"#).await;
    let mut expected = BTreeSet::from([
        ("blue".to_owned(), "services".to_owned(), service.clone()),
        ("prod".to_owned(), "services".to_owned(), service.clone()),
        ("blue".to_owned(), "routes".to_owned(), route.clone()),
        ("team a ü".to_owned(), "consumers".to_owned(), consumer.clone()),
    ]);

    let all = call(Method::GET, &format!("http://{a}/tags"), "").await;
    assert_eq!(all.status.as_u16(), 200, "{}", String::from_utf8_lossy(&all.body));
    let listed = rows(&all.json());
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), expected, "{listed:?}");
    assert_eq!(all.json()["next"], Value::Null);

    // One row a page: following `next` gives every row once, in the same order.
    let mut paged = Vec::new();
    let mut next = Some("/tags?size=1".to_owned());
    while let Some(path) = next {
        let page = call(Method::GET, &format!("http://{a}{path}"), "").await;
        assert_eq!(page.status.as_u16(), 200, "{path}: {}", String::from_utf8_lossy(&page.body));
        let page = page.json();
        paged.extend(rows(&page));
        next = page["next"].as_str().map(str::to_owned);
        assert!(paged.len() <= listed.len(), "pages repeat rows: {paged:?}");
    }
    assert_eq!(paged, listed);

    // A tag with a space and non-ASCII, named in the path.
    let team = rows(&call(Method::GET, &format!("http://{a}/tags/team%20a%20%C3%BC"), "").await.json());
    assert_eq!(team, vec![("team a ü".to_owned(), "consumers".to_owned(), consumer.clone())]);

    let blue = rows(&call(Method::GET, &format!("http://{a}/tags/blue"), "").await.json());
    expected.retain(|(tag, _, _)| tag == "blue");
    assert_eq!(blue.into_iter().collect::<BTreeSet<_>>(), expected);

    let bad = call(Method::GET, &format!("http://{a}/tags/a,b"), "").await;
    assert_eq!((bad.status.as_u16(), bad.json()["code"].as_u64(), bad.json()["name"].as_str()), (400, Some(10), Some("invalid unique tag")));
    let bad = call(Method::GET, &format!("http://{a}/tags/%FF"), "").await;
    assert_eq!((bad.status.as_u16(), bad.json()["code"].as_u64()), (400, Some(10)), "not UTF-8");
    let bad = call(Method::GET, &format!("http://{a}/tags?offset=nope"), "").await;
    assert_eq!((bad.status.as_u16(), bad.json()["code"].as_u64()), (400, Some(7)));

    // Validation answers as a create would, and creates nothing.
    let ok = call(Method::POST, &format!("http://{a}/schemas/routes/validate"), r#"{"name":"v","paths":["/v"]}"#).await;
    assert_eq!((ok.status.as_u16(), ok.json()["message"].as_str()), (200, Some("schema validation successful")));
    let bad = call(Method::POST, &format!("http://{a}/schemas/plugins/validate"), r#"{"name":"rate-limiting","config":{"minute":"lots"}}"#).await;
    assert_eq!((bad.status.as_u16(), bad.json()["name"].as_str()), (400, Some("schema violation")), "{}", String::from_utf8_lossy(&bad.body));
    let routes = call(Method::GET, &format!("http://{a}/routes"), "").await.json();
    assert_eq!(routes["data"].as_array().unwrap().len(), 1, "{routes}");
    let none = call(Method::POST, &format!("http://{a}/schemas/nope/validate"), "{}").await;
    assert_eq!((none.status.as_u16(), none.json()["message"].as_str()), (404, Some("No entity named 'nope'")));

    // Schemas in Kong's JSON form, with the defaults tools fill in from them.
    let field = |schema: &Value, name: &str| schema["fields"].as_array().unwrap().iter().find_map(|f| f.get(name).cloned()).unwrap();
    let services = call(Method::GET, &format!("http://{a}/schemas/services"), "").await.json();
    assert_eq!(field(&services, "port")["default"], 80, "{services}");
    let rate_limiting = call(Method::GET, &format!("http://{a}/schemas/plugins/rate-limiting"), "").await.json();
    assert!(rate_limiting["fields"].as_array().unwrap().iter().all(|f| f.get("id").is_none()), "the plugin's own fields only: {rate_limiting}");
    assert_eq!(field(&field(&rate_limiting, "config"), "limit_by")["default"], "consumer", "{rate_limiting}");
    let key_auth = call(Method::GET, &format!("http://{a}/plugins/schema/key-auth"), "").await.json();
    assert_eq!(field(&key_auth, "key_names")["default"], serde_json::json!(["apikey"]), "{key_auth}");
    for (path, said) in [("/schemas/nope", "No entity named 'nope'"), ("/schemas/plugins/nope", "No plugin named 'nope'"), ("/plugins/schema/nope", "No plugin named 'nope'")] {
        let r = call(Method::GET, &format!("http://{a}{path}"), "").await;
        assert_eq!((r.status.as_u16(), r.json()["message"].as_str()), (404, Some(said)), "{path}");
    }
}
