//! The rate limit users know from Kong, across three real nodes: with the cluster
//! policy the limit holds for the whole cluster; with the local policy, per node.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster_tests::http::{admin_form, get};
use cluster_tests::{form, serial, wait_for, Cluster};
use hyper::Method;

/// Waits, if needed, until a minute window has at least 40 s left, so the 15 requests
/// of a test all fall in one window.
async fn well_inside_a_minute() {
    wait_for("a fresh minute window", Duration::from_secs(61), || async {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        (secs % 60 < 20).then_some(())
    })
    .await;
}

async fn get_as(url: &str, who: &str) -> Option<cluster_tests::http::Reply> {
    cluster_tests::http::request_with_headers(Method::GET, url, &[("x-who", who)], vec![]).await.ok()
}

async fn fifteen_round_robin(c: &Cluster, path: &str) -> Vec<cluster_tests::http::Reply> {
    let mut replies = Vec::new();
    for n in 0..15 {
        replies.push(get_as(&format!("http://{}{path}", c.node(n % 3 + 1).proxy()), "run").await.unwrap());
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_per_minute_holds_across_three_nodes_with_the_cluster_policy() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.23", 3);
    c.start_echo("127.0.23.100:9000", "echo-rl");
    form(&mut c, 3, 3, &[]).await;
    let a = c.node(1).admin();
    admin_form(&format!("http://{a}/services"), "name=s&url=http://127.0.23.100:9000").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=cl&paths[]=/cluster").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=lo&paths[]=/local").await;
    // Limited by a header, so the probes below count against their own budget, not the run's.
    let by_header = "config.limit_by=header&config.header_name=x-who";
    admin_form(&format!("http://{a}/routes/cl/plugins"), &format!("name=rate-limiting&config.minute=5&config.policy=cluster&{by_header}")).await;
    admin_form(&format!("http://{a}/routes/lo/plugins"), &format!("name=rate-limiting&config.minute=5&config.policy=local&{by_header}")).await;
    // A limit scoped to one consumer (Kong's per-consumer limit): it applies to alice on a
    // route that has none of its own, and not to bob.
    for (who, key) in [("alice", "alice-key"), ("bob", "bob-key")] {
        admin_form(&format!("http://{a}/consumers"), &format!("username={who}")).await;
        admin_form(&format!("http://{a}/consumers/{who}/key-auth"), &format!("key={key}")).await;
    }
    admin_form(&format!("http://{a}/consumers/alice/plugins"), "name=rate-limiting&config.minute=2&config.policy=cluster").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=keyed&paths[]=/keyed").await;
    admin_form(&format!("http://{a}/routes/keyed/plugins"), "name=key-auth").await;
    for i in 1..=3 {
        // key-auth is the last write: once a node asks for a key, Raft's in-order apply
        // means it has every write above.
        let url = format!("http://{}/keyed", c.node(i).proxy());
        wait_for("key-auth on every node", Duration::from_secs(5), || async { get(&url).await.ok().filter(|r| r.status.as_u16() == 401) }).await;
    }
    for i in 1..=3 {
        let url = format!("http://{}/cluster", c.node(i).proxy());
        wait_for("the plugin on every node", Duration::from_secs(5), || async {
            get_as(&url, "probe").await.filter(|r| r.headers.contains_key("x-ratelimit-limit-minute"))
        })
        .await;
    }
    // Every member reads first slices' commands, each node has heard so by gossip, and
    // the cluster has recorded it.
    for i in 1..=3 {
        let url = format!("http://{}/status", c.node(i).admin());
        let status = wait_for("first slices on every node", Duration::from_secs(10), || async {
            cluster_tests::http::get(&url).await.ok().filter(|r| r.json()["ratelimit"]["first_slices"] == true)
        })
        .await
        .json();
        assert_eq!(status["ratelimit"]["agreed_protocol"], status["ratelimit"]["protocol"], "first slices only once recorded: {status}");
    }
    well_inside_a_minute().await;
    let replies = fifteen_round_robin(&c, "/cluster").await;
    let codes: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(codes.iter().filter(|s| **s == 200).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|s| **s == 429).count(), 10, "{codes:?}");
    let ok = replies.iter().find(|r| r.status.as_u16() == 200).unwrap();
    assert_eq!(ok.headers["x-ratelimit-limit-minute"], "5");
    assert_eq!(ok.headers["ratelimit-limit"], "5");
    assert!(ok.headers.contains_key("ratelimit-reset"));
    let blocked = replies.iter().find(|r| r.status.as_u16() == 429).unwrap();
    assert_eq!(blocked.json()["message"], "API rate limit exceeded");
    assert_eq!(blocked.headers["x-ratelimit-remaining-minute"], "0");
    assert!(blocked.headers.contains_key("retry-after"));

    // A key whose requests all go to one node gets the whole limit, though every node
    // holds a first slice of each new counter of the window (enrolled by the requests
    // above): node 1 takes its own, and recalls the other two when its grants run short.
    well_inside_a_minute().await;
    let mut solo = Vec::new();
    for _ in 0..7 {
        solo.push(get_as(&format!("http://{}/cluster", c.node(1).proxy()), "solo").await.unwrap().status.as_u16());
    }
    assert_eq!(solo, [200, 200, 200, 200, 200, 429, 429], "one node's caller gets the whole limit of 5");

    let mut alice_codes = Vec::new();
    for n in 0..4 {
        let url = format!("http://{}/keyed", c.node(n % 3 + 1).proxy());
        let reply = cluster_tests::http::request_with_headers(Method::GET, &url, &[("apikey", "alice-key")], vec![]).await.unwrap();
        if n == 0 {
            assert_eq!(reply.headers["x-ratelimit-limit-minute"], "2");
        }
        alice_codes.push(reply.status.as_u16());
    }
    assert_eq!(alice_codes, [200, 200, 429, 429], "alice's own limit, across the nodes");
    for n in 0..4 {
        let url = format!("http://{}/keyed", c.node(n % 3 + 1).proxy());
        let reply = cluster_tests::http::request_with_headers(Method::GET, &url, &[("apikey", "bob-key")], vec![]).await.unwrap();
        assert_eq!(reply.status.as_u16(), 200, "bob has no limit");
        assert!(!reply.headers.contains_key("x-ratelimit-limit-minute"));
    }

    let replies = fifteen_round_robin(&c, "/local").await;
    let passed = replies.iter().filter(|r| r.status.as_u16() == 200).count();
    assert_eq!(passed, 15, "the local policy counts per node: 3 nodes x 5");

    // hide_client_headers hides every rate-limit field, Retry-After included (as Kong).
    admin_form(&format!("http://{a}/services/s/routes"), "name=hid&paths[]=/hidden").await;
    admin_form(&format!("http://{a}/routes/hid/plugins"), "name=rate-limiting&config.minute=1&config.policy=local&config.hide_client_headers=true").await;
    let url = format!("http://{}/hidden", c.node(1).proxy());
    let refused = wait_for("a refusal on the hidden route", Duration::from_secs(5), || async {
        get_as(&url, "anyone").await.filter(|r| r.status.as_u16() == 429)
    })
    .await;
    let limit_fields: Vec<_> = refused.headers.keys().filter(|n| n.as_str().contains("ratelimit") || *n == "retry-after").collect();
    assert!(limit_fields.is_empty(), "{limit_fields:?}");

    // A refusal by one period reports the others too, as Kong's does; the longer period
    // is not charged for it.
    admin_form(&format!("http://{a}/services/s/routes"), "name=two&paths[]=/two").await;
    admin_form(&format!("http://{a}/routes/two/plugins"), "name=rate-limiting&config.minute=1&config.hour=50&config.policy=local").await;
    let two = format!("http://{}/two", c.node(1).proxy());
    well_inside_a_minute().await;
    assert_eq!(get_as(&two, "caller").await.unwrap().status.as_u16(), 200, "node 1 acknowledged the plugin, so it runs it");
    let refused = get_as(&two, "caller").await.unwrap();
    assert_eq!(refused.status.as_u16(), 429);
    assert_eq!(refused.headers["x-ratelimit-remaining-minute"], "0");
    assert_eq!(refused.headers["x-ratelimit-limit-hour"], "50");
    assert_eq!(refused.headers["x-ratelimit-remaining-hour"], "49", "one request admitted this hour, none charged for the refusal");

    // A limit lowered in the middle of a window applies at once, as Kong compares each
    // request with the limit of the moment: node 1 holds most of a slice of 100 granted
    // under hour=1200, and must not spend it under hour=2.
    let created = admin_form(&format!("http://{a}/services/s/routes"), "name=lowered&paths[]=/lowered").await;
    assert!(created.status.is_success());
    let plugin = admin_form(&format!("http://{a}/routes/lowered/plugins"), &format!("name=rate-limiting&config.hour=1200&{by_header}")).await;
    let plugin_id = plugin.json()["id"].as_str().unwrap().to_owned();
    let lowered = |n: usize| format!("http://{}/lowered", c.node(n).proxy());
    well_inside_an_hour().await;
    let first = wait_for("the 1200 an hour limit on node 1", Duration::from_secs(5), || async {
        get_as(&lowered(1), "user").await.filter(|r| r.status.as_u16() == 200)
    })
    .await;
    assert_eq!(first.headers["x-ratelimit-limit-hour"], "1200");
    for _ in 0..2 {
        assert_eq!(get_as(&lowered(1), "user").await.unwrap().status.as_u16(), 200);
    }
    let patch = format!("http://{a}/plugins/{plugin_id}");
    let r = cluster_tests::http::request(Method::PATCH, &patch, Some("application/x-www-form-urlencoded"), b"config.hour=2".to_vec()).await.unwrap();
    assert!(r.status.is_success(), "{} {}", r.status, String::from_utf8_lossy(&r.body));
    for n in 1..=3 {
        // Another caller's key shows when a node has the new limit, without using "user"'s.
        wait_for("hour=2 on every node", Duration::from_secs(5), || async {
            get_as(&lowered(n), "probe").await.filter(|r| r.headers.get("x-ratelimit-limit-hour").is_some_and(|v| v == "2"))
        })
        .await;
        let reply = get_as(&lowered(n), "user").await.unwrap();
        assert_eq!(reply.status.as_u16(), 429, "node {n}: 3 admitted already, over the new limit of 2");
    }
}

/// Waits, if needed, until the hour has more than 10 s left, so that the lowered-limit
/// check falls in one hour window.
async fn well_inside_an_hour() {
    wait_for("an hour window with time left", Duration::from_secs(11), || async {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        (secs % 3600 < 3590).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_a_node_falls_back_to_its_share_and_says_so() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.25", 3);
    c.start_echo("127.0.25.100:9000", "echo-q");
    form(&mut c, 3, 3, &[]).await;
    let a = c.node(1).admin();
    admin_form(&format!("http://{a}/services"), "name=s&url=http://127.0.25.100:9000").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=tolerant&paths[]=/tolerant").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=strict&paths[]=/strict").await;
    admin_form(&format!("http://{a}/routes/tolerant/plugins"), "name=rate-limiting&config.hour=6&config.policy=cluster").await;
    admin_form(&format!("http://{a}/routes/strict/plugins"), "name=rate-limiting&config.hour=6&config.policy=cluster&config.fault_tolerant=false").await;
    let proxy = c.node(1).proxy();
    wait_for("the plugins on node 1", Duration::from_secs(5), || async {
        get_as(&format!("http://{proxy}/strict"), "probe").await.filter(|r| r.headers.contains_key("x-ratelimit-limit-hour"))
    })
    .await;
    let reachable = || async { get(&format!("http://{a}/status")).await.ok().map(|r| r.json()["database"]["reachable"].clone()) };
    wait_for("node 1 to reach its store", Duration::from_secs(5), || async { (reachable().await? == true).then_some(()) }).await;
    let (code, out, err) = c.cli(&["status", "--check", "--admin", &a]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("quorum: ok (3 of 3")), "{out}");

    c.kill(2);
    c.kill(3);
    wait_for("node 1 to see both peers dead", Duration::from_secs(10), || async {
        let s = c.status(1).await?;
        (s["nodes"].as_array()?.iter().filter(|n| n["alive"] == false).count() == 2).then_some(())
    })
    .await;

    // One live node: its share is the whole limit, and the proxy keeps answering.
    let mut codes = Vec::new();
    for _ in 0..10 {
        codes.push(get_as(&format!("http://{proxy}/tolerant"), "x").await.unwrap().status.as_u16());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 6, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 4, "{codes:?}");
    let strict = get_as(&format!("http://{proxy}/strict"), "y").await.unwrap();
    assert_eq!(strict.status.as_u16(), 503, "not fault tolerant: no quorum, no admission");
    assert_eq!(strict.json()["message"], "Rate limiting is unavailable: the cluster has no quorum");

    let status = get(&format!("http://{a}/status")).await.unwrap().json();
    assert_eq!(status["ratelimit"]["degraded"], true, "{status}");
    let cluster = c.status(1).await.unwrap();
    let me = cluster["node_id"].clone();
    let node = cluster["nodes"].as_array().unwrap().iter().find(|n| n["id"] == me).unwrap().clone();
    assert_eq!(node["ratelimit_degraded"], true, "{cluster}");
    let scraped = get(&format!("http://{a}/metrics")).await.unwrap();
    assert!(scraped.headers["content-type"].to_str().unwrap().starts_with("application/openmetrics-text; version=1.0.0"), "{:?}", scraped.headers);
    let metrics = String::from_utf8(scraped.body.to_vec()).unwrap();
    assert!(metrics.contains("gatehouse_ratelimit_degraded 1"), "{metrics}");
    // Admissions from the fallback share: a counter, as OpenMetrics types it, at the count
    // /status gives.
    let admissions = status["ratelimit"]["degraded_admissions"].as_u64().unwrap();
    assert!(admissions >= 1, "{status}");
    assert!(metrics.contains("# TYPE gatehouse_ratelimit_degraded_admissions counter"), "{metrics}");
    assert!(metrics.contains(&format!("gatehouse_ratelimit_degraded_admissions_total {admissions}\n")), "{metrics}");
    // Kong's /status says the same of its database: a write here could not commit.
    wait_for("node 1 to know its store unreachable", Duration::from_secs(5), || async { (reachable().await? == false).then_some(()) }).await;
    let metrics = String::from_utf8(get(&format!("http://{a}/metrics")).await.unwrap().body.to_vec()).unwrap();
    assert!(metrics.contains("gatehouse_datastore_reachable 0"), "{metrics}");
    // Node 1 names no leader: none that it hears from (Raft still names the last it knew).
    let status = get(&format!("http://{a}/status")).await.unwrap().json();
    assert!(status["leader_id"].is_null(), "{status}");
    assert!(metrics.contains("gatehouse_raft_leader_id 0"), "{metrics}");
    // `status --check` fails, saying why in one line; plain `status` only shows it.
    let (code, out, err) = c.cli(&["status", "--check", "--admin", &a]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.starts_with("gatehouse: quorum: LOST (1 of 3 voters alive)"), "{err}");
    assert_eq!(c.cli(&["status", "--admin", &a]).0, 0);
}
