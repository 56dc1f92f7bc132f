//! Credentials with a ttl: hidden once expired, then deleted from the replicated store
//! by the leader's sweep, after which their key can be used again.

use std::time::Duration;

use cluster_tests::http::{admin_form, get, request};
use cluster_tests::{form, serial, wait_for, Cluster};
use hyper::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_credential_leaves_the_store_and_frees_its_key() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.28", 3);
    form(&mut c, 3, 3, &["--ttl-cleanup-interval", "300ms"]).await;
    let a2 = c.node(2).admin();
    admin_form(&format!("http://{a2}/consumers"), "username=alice").await;
    // A ttl of 2 leaves its credential 1 to 2 s (its creation time is whole seconds):
    // time to find the key taken before a sweep can free it.
    let temp = admin_form(&format!("http://{a2}/consumers/alice/key-auth"), "key=temp-key&ttl=2").await.json();
    let url = format!("http://{a2}/consumers/alice/key-auth");
    let again = request(Method::POST, &url, Some("application/x-www-form-urlencoded"), b"key=temp-key".to_vec()).await.unwrap();
    assert_eq!(again.status.as_u16(), 409, "the key is taken while its credential lives");

    // Once the ttl has passed and a sweep has run, the key is free.
    let fresh = wait_for("the expired credential's key to be free", Duration::from_secs(10), || async {
        let r = request(Method::POST, &url, Some("application/x-www-form-urlencoded"), b"key=temp-key".to_vec()).await.ok()?;
        (r.status.as_u16() == 201).then(|| r.json())
    })
    .await;
    assert_ne!(fresh["id"], temp["id"]);
    // The key's unique index entry was freed: the expired credential left the store.
    // Every node comes to hold the new one (the others apply the write a moment after
    // node 2 acknowledged it).
    let want = vec![fresh["id"].as_str().unwrap().to_owned()];
    for i in 1..=3 {
        let admin = c.node(i).admin();
        wait_for(&format!("node {i} to hold the new credential alone"), Duration::from_secs(5), || async {
            let dump = get(&format!("http://{admin}/config?format=json")).await.ok()?.json();
            let ids: Vec<String> = dump["consumers"][0]["keyauth_credentials"].as_array()?.iter().filter_map(|k| k["id"].as_str().map(str::to_owned)).collect();
            (ids == want).then_some(())
        })
        .await;
    }
}
