//! A large declarative config on a three-node cluster (prefix 127.0.56): 14,500 entities
//! in one write (about 9 MB as a Raft entry), then replaced by a smaller one. Each must
//! commit in the term it was proposed in and leave the cluster taking writes: once the
//! entry took longer to encode and decode than openraft's append timeout (one heartbeat),
//! it was sent again and again, the leader's heartbeats starved, terms churned and no
//! write committed again.

use std::time::Duration;

use cluster_tests::http::{get, post_json, request};
use cluster_tests::{form, serial, wait_for, Cluster};
use hyper::Method;
use serde_json::{json, Value};

fn big_config() -> Value {
    let services: Vec<Value> = (0..5000)
        .map(|i| {
            let plugins = if i % 10 == 0 { json!([{ "name": "rate-limiting", "config": { "minute": 100, "policy": "local" } }]) } else { json!([]) };
            json!({ "name": format!("s{i}"), "url": format!("http://127.0.56.100:9000/p{i}"),
                    "routes": [{ "name": format!("r{i}"), "paths": [format!("/r{i}")], "plugins": plugins }] })
        })
        .collect();
    let consumers: Vec<Value> = (0..2000).map(|i| json!({ "username": format!("u{i}"), "keyauth_credentials": [{ "key": format!("k{i}") }] })).collect();
    json!({ "_format_version": "3.0", "services": services, "consumers": consumers })
}

fn smaller_config() -> Value {
    let services: Vec<Value> = (0..2000)
        .map(|i| json!({ "name": format!("t{i}"), "url": "http://127.0.56.100:9000", "routes": [{ "name": format!("q{i}"), "paths": [format!("/q{i}")] }] }))
        .collect();
    json!({ "_format_version": "3.0", "services": services })
}

async fn status(c: &Cluster, i: usize) -> Option<Value> {
    let r = get(&format!("http://{}/status", c.node(i).admin())).await.ok()?;
    r.status.is_success().then(|| r.json())
}

/// Every node's term and config digest, once all three report the same.
async fn agreed(c: &Cluster) -> (u64, String) {
    wait_for("every node to apply the same config", Duration::from_secs(30), || async {
        let mut seen = Vec::new();
        for i in 1..=3 {
            let s = status(c, i).await?;
            seen.push((s["term"].as_u64()?, s["config_digest"].as_str()?.to_owned()));
        }
        seen.windows(2).all(|w| w[0] == w[1]).then(|| seen[0].clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_config_and_its_replacement_commit_without_an_election() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.56", 3);
    form(&mut c, 3, 3, &[]).await;
    let (term, _) = agreed(&c).await;
    let a1 = c.node(1).admin();
    for (what, file) in [("14,500 entities", big_config()), ("their replacement", smaller_config())] {
        let loaded = post_json(&format!("http://{a1}/config"), &file).await.unwrap();
        assert_eq!(loaded.status.as_u16(), 201, "{what}: {}", String::from_utf8_lossy(&loaded.body));
        // A small write through another node commits at once after it.
        let url = format!("http://{}/services/probe", c.node(2).admin());
        let probe = request(Method::PUT, &url, Some("application/x-www-form-urlencoded"), b"url=http://x".to_vec());
        let probe = tokio::time::timeout(Duration::from_secs(5), probe).await.expect("a small write answered within 5 s").unwrap();
        assert_eq!(probe.status.as_u16(), 200, "{what}: {}", String::from_utf8_lossy(&probe.body));
        let (now, _) = agreed(&c).await;
        assert_eq!(now, term, "{what}: the cluster held an election (term {term} -> {now})");
    }
}
