//! The entity another one refers to, at the referrer's path (`/routes/{r}/service`,
//! `/plugins/{p}/route`, `/key-auths/{k}/consumer`): read, updated and replaced as in
//! Kong, and the write is seen through the other node.

use std::time::Duration;

use cluster_tests::http::{admin_form, get, request};
use cluster_tests::{form, serial, wait_for, Cluster};
use hyper::Method;

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

async fn status(method: Method, url: &str, body: &str) -> (u16, serde_json::Value) {
    let r = request(method, url, FORM, body.as_bytes().to_vec()).await.unwrap();
    let json = if r.body.is_empty() { serde_json::Value::Null } else { r.json() };
    (r.status.as_u16(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_service_is_read_updated_and_replaced_at_the_routes_path() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.33", 2);
    form(&mut c, 2, 1, &[]).await;
    let (a1, a2) = (c.node(1).admin(), c.node(2).admin());
    let s1 = admin_form(&format!("http://{a1}/services"), "name=s1&url=http://127.0.33.100:9000").await.json();
    admin_form(&format!("http://{a1}/services/s1/routes"), "name=r1&paths[]=/one").await;
    admin_form(&format!("http://{a1}/routes"), "name=bare&paths[]=/bare").await;

    // Reads: the route's service, or 404 when it has none or is not there.
    let (code, body) = status(Method::GET, &format!("http://{a1}/routes/r1/service"), "").await;
    assert_eq!((code, body["id"].clone()), (200, s1["id"].clone()), "{body}");
    assert_eq!(status(Method::GET, &format!("http://{a1}/routes/bare/service"), "").await.0, 404);
    assert_eq!(status(Method::GET, &format!("http://{a1}/routes/nope/service"), "").await.0, 404);

    // PATCH through node 2 changes the service itself, seen on node 1.
    let (code, body) = status(Method::PATCH, &format!("http://{a2}/routes/r1/service"), "retries=7").await;
    assert_eq!((code, body["retries"].as_u64(), body["name"].as_str()), (200, Some(7), Some("s1")), "{body}");
    wait_for("the patched service on node 1", Duration::from_secs(5), || async {
        (get(&format!("http://{a1}/services/s1")).await.ok()?.json()["retries"] == 7).then_some(())
    })
    .await;
    assert_eq!(status(Method::PATCH, &format!("http://{a2}/routes/bare/service"), "retries=7").await.0, 404);
    assert_eq!(status(Method::PATCH, &format!("http://{a2}/routes/nope/service"), "retries=7").await.0, 404);

    // PUT on a route without a service creates one and points the route at it, at once.
    let (code, made) = status(Method::PUT, &format!("http://{a2}/routes/bare/service"), "name=made&url=http://127.0.33.101:9000").await;
    assert_eq!((code, made["name"].as_str()), (200, Some("made")), "{made}");
    let bare = get(&format!("http://{a2}/routes/bare")).await.unwrap().json();
    assert_eq!(bare["service"]["id"], made["id"], "{bare}");
    // PUT on a route with a service replaces that one: same id, the fields given.
    let (code, replaced) = status(Method::PUT, &format!("http://{a2}/routes/r1/service"), "name=s1&url=http://127.0.33.102:9001").await;
    assert_eq!((code, replaced["id"].clone(), replaced["port"].as_u64(), replaced["retries"].as_u64()), (200, s1["id"].clone(), Some(9001), Some(5)), "{replaced}");
    // No route, no service made; bad input is Kong's schema error.
    let (code, body) = status(Method::PUT, &format!("http://{a2}/routes/nope/service"), "url=http://127.0.33.103").await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = status(Method::PUT, &format!("http://{a2}/routes/r1/service"), "url=not a url").await;
    assert_eq!((code, body["code"].as_u64()), (400, Some(2)), "{body}");

    // The service cannot be deleted from under its route, and a missing one is 404.
    assert_eq!(status(Method::DELETE, &format!("http://{a1}/routes/r1/service"), "").await.0, 405);
    admin_form(&format!("http://{a1}/routes"), "name=bare2&paths[]=/bare2").await;
    assert_eq!(status(Method::DELETE, &format!("http://{a1}/routes/bare2/service"), "").await.0, 404);
    assert_eq!(status(Method::DELETE, &format!("http://{a1}/routes/nope/service"), "").await.0, 404);
    assert_eq!(status(Method::POST, &format!("http://{a1}/routes/r1/service"), "").await.0, 405);
    let services = get(&format!("http://{a1}/services")).await.unwrap().json();
    assert_eq!(services["data"].as_array().unwrap().len(), 2, "{services}");

    // A plugin's route, and a credential's consumer.
    let plugin = admin_form(&format!("http://{a1}/routes/r1/plugins"), "name=key-auth").await.json();
    let (code, body) = status(Method::GET, &format!("http://{a1}/plugins/{}/route", plugin["id"].as_str().unwrap()), "").await;
    assert_eq!((code, body["name"].as_str()), (200, Some("r1")), "{body}");
    assert_eq!(status(Method::GET, &format!("http://{a1}/plugins/{}/service", plugin["id"].as_str().unwrap()), "").await.0, 404);
    admin_form(&format!("http://{a1}/consumers"), "username=ann").await;
    let cred = admin_form(&format!("http://{a1}/consumers/ann/key-auth"), "key=k1").await.json();
    let cred_consumer = format!("http://{a1}/key-auths/{}/consumer", cred["id"].as_str().unwrap());
    let (code, body) = status(Method::GET, &cred_consumer, "").await;
    assert_eq!((code, body["username"].as_str()), (200, Some("ann")), "{body}");
    let (code, body) = status(Method::PATCH, &cred_consumer, "custom_id=ann-1").await;
    assert_eq!((code, body["username"].as_str(), body["custom_id"].as_str()), (200, Some("ann"), Some("ann-1")), "{body}");
    assert_eq!(status(Method::DELETE, &cred_consumer, "").await.0, 405);
    // Kong 3 also makes a credential at /key-auths, its consumer named in the body.
    let (code, body) = status(Method::POST, &format!("http://{a1}/key-auths"), &format!("key=k9&consumer.id={}", body["id"].as_str().unwrap())).await;
    assert_eq!((code, body["consumer"]["id"].clone()), (201, cred["consumer"]["id"].clone()), "{body}");
    let (code, body) = status(Method::POST, &format!("http://{a1}/key-auths"), "key=k10").await;
    assert_eq!((code, body["code"].as_u64()), (400, Some(2)), "a credential needs its consumer: {body}");
    // A credential past its ttl is gone, and so is the way to its consumer.
    let brief = admin_form(&format!("http://{a1}/consumers/ann/key-auth"), "key=k2&ttl=1").await.json();
    let brief_id = brief["id"].as_str().unwrap();
    wait_for("the credential to expire", Duration::from_secs(5), || async {
        (get(&format!("http://{a1}/key-auths/{brief_id}")).await.ok()?.status == 404).then_some(())
    })
    .await;
    assert_eq!(status(Method::GET, &format!("http://{a1}/key-auths/{brief_id}/consumer"), "").await.0, 404);

    // PUT through a global plugin makes a route and scopes the plugin to it.
    let global = admin_form(&format!("http://{a1}/plugins"), "name=rate-limiting&config.minute=100").await.json();
    let global_route = format!("http://{a2}/plugins/{}/route", global["id"].as_str().unwrap());
    let (code, made) = status(Method::PUT, &global_route, "name=via-plugin&paths[]=/via").await;
    assert_eq!((code, made["name"].as_str()), (200, Some("via-plugin")), "{made}");
    let scoped = get(&format!("http://{a2}/plugins/{}", global["id"].as_str().unwrap())).await.unwrap().json();
    assert_eq!(scoped["route"]["id"], made["id"], "{scoped}");
    // key-auth takes no consumer: the PUT is refused whole, and no consumer is left behind.
    let (code, body) = status(Method::PUT, &format!("http://{a2}/plugins/{}/consumer", plugin["id"].as_str().unwrap()), "username=stray").await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(status(Method::GET, &format!("http://{a2}/consumers/stray"), "").await.0, 404);
}
