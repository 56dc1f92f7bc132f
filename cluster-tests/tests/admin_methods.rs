//! The Admin API's methods, as Kong's router has them: OPTIONS on every endpoint answers
//! 204 with the methods it takes (without the admin token, as a browser's preflight
//! has none), every method left out of that list is 405, GET's are served, and HEAD is
//! GET without the body; CORS fields for the origin `--admin-gui-origin` names.

use std::time::Duration;

use cluster_tests::http::{request_with_headers, Reply};
use cluster_tests::{serial, wait_for, Cluster};
use hyper::Method;

const TOKEN: &str = "Bearer methods-test-token";
const GUI: &str = "http://127.0.34.200:8002";

async fn call(method: Method, url: &str, body: &str) -> Reply {
    let headers = [("authorization", TOKEN), ("content-type", "application/x-www-form-urlencoded")];
    request_with_headers(method, url, &headers, body.as_bytes().to_vec()).await.unwrap()
}

async fn created(url: &str, body: &str) -> String {
    let r = call(Method::POST, url, body).await;
    assert!(r.status.is_success(), "{url} {body}: {} {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_lists_its_methods_and_refuses_the_others() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.34", 1);
    c.start(1, &["--voters", "1", "--admin-token", "methods-test-token", "--admin-gui-origin", GUI]);
    let a = c.node(1).admin();
    wait_for("the node to serve", Duration::from_secs(15), || async {
        let r = request_with_headers(Method::GET, &format!("http://{a}/services"), &[("authorization", TOKEN)], Vec::new()).await.ok()?;
        r.status.is_success().then_some(())
    })
    .await;

    created(&format!("http://{a}/services"), "name=s&url=http://127.0.34.100:9000").await;
    created(&format!("http://{a}/services/s/routes"), "name=r&paths[]=/r").await;
    let plugin = created(&format!("http://{a}/routes/r/plugins"), "name=key-auth").await;

    // Kong's GET /: the Kong API version Kong's tools read, gatehouse's own beside it, and
    // the plugins the node has and those the configuration uses.
    let root = call(Method::GET, &format!("http://{a}/"), "").await.json();
    assert_eq!(root["version"], "3.8.0", "{root}");
    assert_eq!(root["gatehouse_version"], env!("CARGO_PKG_VERSION"), "{root}");
    assert_eq!(root["plugins"]["enabled_in_cluster"], serde_json::json!(["key-auth"]), "{root}");
    assert_eq!(root["plugins"]["available_on_server"]["rate-limiting"]["priority"], 910, "{root}");
    created(&format!("http://{a}/upstreams"), "name=u").await;
    let target = created(&format!("http://{a}/upstreams/u/targets"), "target=127.0.34.101:9000").await;
    created(&format!("http://{a}/consumers"), "username=c").await;
    let key = created(&format!("http://{a}/consumers/c/key-auth"), "key=k").await;
    let consumer_plugin = created(&format!("http://{a}/consumers/c/plugins"), "name=rate-limiting&config.minute=100").await;

    let paths = [
        "/".to_owned(),
        "/status".into(),
        "/cluster".into(),
        "/cluster/members".into(),
        "/cluster/leave".into(),
        "/metrics".into(),
        "/config".into(),
        "/services".into(),
        "/services/s".into(),
        "/services/s/routes".into(),
        "/services/s/routes/r".into(),
        "/services/s/plugins".into(),
        format!("/services/s/plugins/{plugin}"),
        "/routes".into(),
        "/routes/r".into(),
        "/routes/r/plugins".into(),
        format!("/routes/r/plugins/{plugin}"),
        "/routes/r/service".into(),
        "/plugins".into(),
        "/plugins/enabled".into(),
        format!("/plugins/{plugin}"),
        format!("/plugins/{plugin}/route"),
        format!("/plugins/{plugin}/service"),
        format!("/plugins/{plugin}/consumer"),
        "/upstreams".into(),
        "/upstreams/u".into(),
        "/upstreams/u/health".into(),
        "/upstreams/u/targets".into(),
        "/upstreams/u/targets/all".into(),
        format!("/upstreams/u/targets/{target}"),
        format!("/upstreams/u/targets/{target}/healthy"),
        format!("/upstreams/u/targets/{target}/127.0.34.101:9000/unhealthy"),
        "/consumers".into(),
        "/consumers/c".into(),
        "/consumers/c/plugins".into(),
        format!("/consumers/c/plugins/{consumer_plugin}"),
        "/consumers?custom_id=nobody".into(),
        "/consumers/c/key-auth".into(),
        format!("/consumers/c/key-auth/{key}"),
        "/key-auths".into(),
        format!("/key-auths/{key}"),
        format!("/key-auths/{key}/consumer"),
        "/tags".into(),
        "/tags/t".into(),
        "/schemas/services/validate".into(),
        "/schemas/plugins/validate".into(),
        "/schemas/services".into(),
        "/schemas/plugins/rate-limiting".into(),
        "/plugins/schema/key-auth".into(),
    ];
    for path in &paths {
        let url = format!("http://{a}{path}");
        let preflight = request_with_headers(Method::OPTIONS, &url, &[("access-control-request-headers", "Kong-Admin-Token")], Vec::new()).await.unwrap();
        assert_eq!(preflight.status.as_u16(), 204, "OPTIONS {path}: {}", String::from_utf8_lossy(&preflight.body));
        assert_eq!(preflight.headers["access-control-allow-headers"], "Kong-Admin-Token", "{path}");
        let allow = preflight.headers["allow"].to_str().unwrap().to_owned();
        assert_eq!(preflight.headers["access-control-allow-methods"], allow.as_str(), "{path}");
        let listed: Vec<&str> = allow.split(", ").collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(listed, sorted, "{path}: Kong sorts the list");
        assert!(listed.contains(&"OPTIONS"), "{path}: {allow}");

        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            if !listed.contains(&method.as_str()) {
                let r = call(method.clone(), &url, "").await;
                assert_eq!(r.status.as_u16(), 405, "{method} {path} is not in \"{allow}\"");
                assert_eq!(r.json()["message"], "Method not allowed", "{method} {path}");
            }
        }
        // Listed writes are served. With no body they are refused or change nothing that
        // the paths after this one need (DELETE is left out, and so is leaving the cluster).
        for method in [Method::POST, Method::PUT, Method::PATCH] {
            if listed.contains(&method.as_str()) && path != "/cluster/leave" {
                assert_ne!(call(method.clone(), &url, "").await.status.as_u16(), 405, "{method} {path} is in \"{allow}\"");
            }
        }
        if listed.contains(&"GET") {
            assert!(listed.contains(&"HEAD"), "{path}: {allow}");
            let got = call(Method::GET, &url, "").await;
            assert_ne!(got.status.as_u16(), 405, "GET {path} is in \"{allow}\"");
            let head = call(Method::HEAD, &url, "").await;
            assert_eq!(head.status, got.status, "HEAD {path}");
            assert!(head.body.is_empty(), "HEAD {path} sent a body");
        } else {
            assert!(!listed.contains(&"HEAD"), "{path}: {allow}");
        }
    }

    // A method the path does not take is 405 before the parent is looked for.
    for (method, path) in [(Method::DELETE, "/services/nope/routes"), (Method::POST, "/upstreams/nope/targets/all"), (Method::PUT, "/consumers/nope/key-auth")] {
        assert_eq!(call(method.clone(), &format!("http://{a}{path}"), "").await.status.as_u16(), 405, "{method} {path}");
    }

    // Nothing there: 404 to every method, OPTIONS included.
    for path in ["/nope", "/targets", "/services/s/nope"] {
        let r = request_with_headers(Method::OPTIONS, &format!("http://{a}{path}"), &[], Vec::new()).await.unwrap();
        assert_eq!(r.status.as_u16(), 404, "OPTIONS {path}");
    }
    // The token still guards everything but the preflight and the health probe.
    let r = request_with_headers(Method::HEAD, &format!("http://{a}/services"), &[], Vec::new()).await.unwrap();
    assert_eq!(r.status.as_u16(), 401);
    for probe in ["/status", "/status/"] {
        let r = request_with_headers(Method::HEAD, &format!("http://{a}{probe}"), &[], Vec::new()).await.unwrap();
        assert_eq!(r.status.as_u16(), 200, "{probe}");
    }

    // A page from the configured origin may call; another is told that one's origin, so
    // its browser refuses the answer.
    let preflight = request_with_headers(Method::OPTIONS, &format!("http://{a}/services"), &[("origin", GUI)], Vec::new()).await.unwrap();
    assert_eq!((preflight.headers["access-control-allow-origin"].to_str().unwrap(), preflight.headers["access-control-allow-credentials"].to_str().unwrap()), (GUI, "true"));
    let other = request_with_headers(Method::GET, &format!("http://{a}/services"), &[("origin", "http://127.0.34.201"), ("authorization", TOKEN)], Vec::new()).await.unwrap();
    assert_eq!((other.status.as_u16(), other.headers["access-control-allow-origin"].to_str().unwrap()), (200, GUI));

    // `enabled` under /plugins is the list of what this build runs, not a plugin's name.
    let enabled = call(Method::GET, &format!("http://{a}/plugins/enabled"), "").await;
    assert_eq!(enabled.json()["enabled_plugins"], serde_json::json!(["key-auth", "rate-limiting"]));

    // Deleting what is not there is done at the top level, and 404 under a parent, where
    // it may be another parent's: that one is left alone.
    assert_eq!(call(Method::DELETE, &format!("http://{a}/services/nope"), "").await.status.as_u16(), 204);
    created(&format!("http://{a}/consumers"), "username=d").await;
    assert_eq!(call(Method::DELETE, &format!("http://{a}/consumers/d/key-auth/{key}"), "").await.status.as_u16(), 404);
    assert_eq!(call(Method::GET, &format!("http://{a}/consumers/c/key-auth/{key}"), "").await.status.as_u16(), 200);
    assert_eq!(call(Method::DELETE, &format!("http://{a}/upstreams/u/targets/127.0.34.109:9000"), "").await.status.as_u16(), 404);

    // The token's scheme is case-insensitive.
    let lower = request_with_headers(Method::GET, &format!("http://{a}/services"), &[("authorization", "bearer methods-test-token")], Vec::new()).await.unwrap();
    assert_eq!(lower.status.as_u16(), 200);

    // Kong 3 gives a target's verdict by PUT.
    let r = call(Method::PUT, &format!("http://{a}/upstreams/u/targets/{target}/unhealthy"), "").await;
    assert_eq!(r.status.as_u16(), 204, "{}", String::from_utf8_lossy(&r.body));
    let health = call(Method::GET, &format!("http://{a}/upstreams/u/health"), "").await.json();
    assert_eq!(health["data"][0]["health"], "UNHEALTHY", "{health}");
}
