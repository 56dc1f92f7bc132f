//! An operator's verdict on a target (Kong's `/upstreams/{u}/targets/{t}/healthy` and
//! `/unhealthy`), given through one node, holds on every node's balancer at once.

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_tests::http::{admin_form, get, request};
use cluster_tests::{form, serial, wait_for, Cluster};
use hyper::Method;

const A: &str = "127.0.27.100:9000";
const B: &str = "127.0.27.101:9000";

async fn post(url: &str) -> u16 {
    request(Method::POST, url, None, Vec::new()).await.unwrap().status.as_u16()
}

/// Kong 3's form of a verdict (`post` is Kong 2's, which still works).
async fn put(url: &str) -> u16 {
    request(Method::PUT, url, None, Vec::new()).await.unwrap().status.as_u16()
}

/// The echo servers that answered 12 requests through `proxy`.
async fn servers_behind(proxy: &str) -> BTreeSet<String> {
    let mut servers = BTreeSet::new();
    for _ in 0..12 {
        let r = get(&format!("http://{proxy}/lb/anything")).await.unwrap();
        assert_eq!(r.status.as_u16(), 200, "{}", String::from_utf8_lossy(&r.body));
        servers.insert(r.json()["server"].as_str().unwrap().to_owned());
    }
    servers
}

/// How node `admin` reports `target`.
async fn health_of(admin: &str, target: &str) -> String {
    let health = get(&format!("http://{admin}/upstreams/pool/health")).await.unwrap().json();
    let entry = health["data"].as_array().unwrap().iter().find(|t| t["target"] == target).cloned();
    entry.map(|t| t["health"].as_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_through_one_node_holds_on_every_node_at_once() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.27", 3);
    c.start_echo(A, "echo-a");
    c.start_echo(B, "echo-b");
    form(&mut c, 3, 3, &[]).await;
    let a1 = c.node(1).admin();
    admin_form(&format!("http://{a1}/upstreams"), "name=pool").await;
    let target_a = admin_form(&format!("http://{a1}/upstreams/pool/targets"), &format!("target={A}")).await.json();
    admin_form(&format!("http://{a1}/upstreams/pool/targets"), &format!("target={B}")).await;
    admin_form(&format!("http://{a1}/services"), "name=lb&host=pool").await;
    admin_form(&format!("http://{a1}/services/lb/routes"), "paths[]=/lb").await;
    for i in 1..=3 {
        let proxy = c.node(i).proxy();
        wait_for("both targets served", Duration::from_secs(10), || async { (servers_behind(&proxy).await.len() == 2).then_some(()) }).await;
        assert_eq!(health_of(&c.node(i).admin(), A).await, "HEALTHCHECKS_OFF");
    }

    // Each entry is the target as stored, with its verdict and address, as Kong's.
    let health = get(&format!("http://{a1}/upstreams/pool/health")).await.unwrap().json();
    let a_entry = health["data"].as_array().unwrap().iter().find(|t| t["target"] == A).unwrap().clone();
    assert_eq!(a_entry["id"], target_a["id"], "{health}");
    assert_eq!(a_entry["data"]["addresses"][0]["ip"], "127.0.27.100", "{health}");
    let whole = get(&format!("http://{a1}/upstreams/pool/health?balancer_health=1")).await.unwrap().json();
    assert_eq!((whole["data"]["health"].as_str(), whole["data"]["balancer_health"].as_str()), (Some("HEALTHCHECKS_OFF"), Some("HEALTHY")), "{whole}");
    // One method per endpoint, and targets/all is no target to write.
    assert_eq!(request(Method::PUT, &format!("http://{a1}/upstreams/pool/targets/all"), None, Vec::new()).await.unwrap().status.as_u16(), 405);
    assert_eq!(request(Method::GET, &format!("http://{a1}/upstreams/pool/targets/{A}/healthy"), None, Vec::new()).await.unwrap().status.as_u16(), 405);
    assert_eq!(post(&format!("http://{a1}/upstreams/pool/health")).await, 405);

    // Taken out through node 1: no node sends it anything from the answer on.
    assert_eq!(post(&format!("http://{a1}/upstreams/pool/targets/{A}/unhealthy")).await, 204);
    for i in 1..=3 {
        assert_eq!(health_of(&c.node(i).admin(), A).await, "UNHEALTHY", "node {i}");
        assert_eq!(servers_behind(&c.node(i).proxy()).await, BTreeSet::from(["echo-b".to_owned()]), "node {i}");
    }

    // Back through node 2, by the target's id and its address.
    let a2 = c.node(2).admin();
    let id = target_a["id"].as_str().unwrap();
    assert_eq!(post(&format!("http://{a2}/upstreams/pool/targets/{id}/{A}/healthy")).await, 204);
    for i in 1..=3 {
        assert_eq!(health_of(&c.node(i).admin(), A).await, "HEALTHCHECKS_OFF", "node {i}");
        assert_eq!(servers_behind(&c.node(i).proxy()).await.len(), 2, "node {i}");
    }

    // What does not exist is 404; an address other than the target's own is refused.
    assert_eq!(post(&format!("http://{a1}/upstreams/pool/targets/127.0.27.109:9000/unhealthy")).await, 404);
    assert_eq!(post(&format!("http://{a1}/upstreams/nope/targets/{A}/unhealthy")).await, 404);
    assert_eq!(post(&format!("http://{a1}/upstreams/pool/targets/{A}/127.0.27.109:9000/unhealthy")).await, 400);

    // With a member down, the others still take the verdict.
    c.kill(3);
    assert_eq!(post(&format!("http://{a1}/upstreams/pool/targets/{B}/unhealthy")).await, 204);
    for i in 1..=2 {
        assert_eq!(health_of(&c.node(i).admin(), B).await, "UNHEALTHY", "node {i}");
        assert_eq!(servers_behind(&c.node(i).proxy()).await, BTreeSet::from(["echo-a".to_owned()]), "node {i}");
    }
    // Both out: the balancer has nowhere to send, whatever the (absent) checks say.
    assert_eq!(put(&format!("http://{a1}/upstreams/pool/targets/{A}/unhealthy")).await, 204);
    let whole = get(&format!("http://{a1}/upstreams/pool/health?balancer_health=1")).await.unwrap().json();
    assert_eq!((whole["data"]["health"].as_str(), whole["data"]["balancer_health"].as_str()), (Some("HEALTHCHECKS_OFF"), Some("UNHEALTHY")), "{whole}");
    assert_eq!(put(&format!("http://{a1}/upstreams/pool/targets/{A}/healthy")).await, 204);

    // A target whose name does not resolve costs no request: the one sent its way goes
    // on to A, and the target leaves the rotation, shown as Kong's DNS_ERROR.
    // Acknowledged by node 1 once its own proxy routes by the new target list.
    admin_form(&format!("http://{a1}/upstreams/pool/targets"), "target=nowhere.invalid:80").await;
    let proxy = c.node(1).proxy();
    assert_eq!(servers_behind(&proxy).await, BTreeSet::from(["echo-a".to_owned()]));
    assert_eq!(health_of(&a1, "nowhere.invalid:80").await, "DNS_ERROR");

    // A target of weight 0 takes no traffic: no verdict applies, even one given.
    admin_form(&format!("http://{a1}/upstreams/pool/targets"), "target=127.0.27.102:9000&weight=0").await;
    assert_eq!(health_of(&a1, "127.0.27.102:9000").await, "HEALTHCHECKS_OFF");
    assert_eq!(put(&format!("http://{a1}/upstreams/pool/targets/127.0.27.102:9000/unhealthy")).await, 204);
    assert_eq!(health_of(&a1, "127.0.27.102:9000").await, "HEALTHCHECKS_OFF");
}
