//! The gateway on real processes: configure through one node, proxy through the others;
//! Kong's error paths; the declarative round trip; key-auth; routes added under load.

use std::time::Duration;

use cluster_tests::http::{get, post_json, raw_exchange, request, request_with_headers};
use cluster_tests::{form, serial, wait_for, Cluster};
use hyper::Method;
use serde_json::json;

fn form_post(url: &str, body: &str) -> (Method, String, Option<&'static str>, Vec<u8>) {
    (Method::POST, url.to_owned(), Some("application/x-www-form-urlencoded"), body.as_bytes().to_vec())
}

async fn send((method, url, ct, body): (Method, String, Option<&'static str>, Vec<u8>)) -> cluster_tests::http::Reply {
    request(method, &url, ct, body).await.unwrap()
}

/// Waits until `url` answers `status` (a config change reaching that node).
async fn wait_status(url: &str, status: u16) -> cluster_tests::http::Reply {
    wait_for(&format!("{url} to answer {status}"), Duration::from_secs(5), || async {
        get(url).await.ok().filter(|r| r.status.as_u16() == status)
    })
    .await
}

/// Kong's fields on a proxied response: Via, both latencies, the request id the upstream
/// was sent (`sent_upstream`), and a Server (the echo upstream sends none: ours).
fn assert_gateway_fields(reply: &cluster_tests::http::Reply, sent_upstream: Option<&str>) {
    let field = |name: &str| reply.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert!(field("via").is_some_and(|v| v.starts_with("1.1 gatehouse/")), "{:?}", reply.headers);
    for name in ["x-kong-upstream-latency", "x-kong-proxy-latency"] {
        assert!(field(name).is_some_and(|v| v.parse::<u64>().is_ok()), "{name}: {:?}", reply.headers);
    }
    let id = field("x-kong-request-id");
    assert!(id.as_ref().is_some_and(|id| id.len() == 32), "{:?}", reply.headers);
    assert_eq!(id.as_deref(), sent_upstream, "the client and the upstream see one request id");
    assert_eq!(reply.headers.get_all("x-kong-request-id").iter().count(), 1);
    assert_eq!(reply.headers.get_all("server").iter().count(), 1, "{:?}", reply.headers);
}

/// The status line `addr` answers a request written as raw bytes (for what an HTTP
/// client will not send, such as CONNECT to a server that is not a forward proxy).
async fn raw_status(addr: &str, request: &str) -> Option<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), BufReader::new(stream).read_line(&mut line)).await.ok()?.ok()?;
    Some(line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_through_one_node_and_proxy_through_all() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.20", 3);
    c.start_echo("127.0.20.100:9000", "echo-a");
    form(&mut c, 3, 3, &[]).await;
    let (a1, a2) = (c.node(1).admin(), c.node(2).admin());

    // Form data on node 1, JSON on node 2; each answer comes once the node applied it.
    let svc = send(form_post(&format!("http://{a1}/services"), "name=echo&url=http://127.0.20.100:9000/base")).await;
    assert_eq!(svc.status.as_u16(), 201, "{}", String::from_utf8_lossy(&svc.body));
    let route = post_json(&format!("http://{a2}/services/echo/routes"), &json!({"name": "r", "paths": ["/api"]})).await.unwrap();
    assert_eq!(route.status.as_u16(), 201, "{}", String::from_utf8_lossy(&route.body));
    assert_eq!(get(&format!("http://{a2}/routes/r")).await.unwrap().status.as_u16(), 200, "read-your-writes on node 2");

    for i in 1..=3 {
        let reply = wait_status(&format!("http://{}/api/anything?q=1", c.node(i).proxy()), 200).await;
        let echoed = reply.json();
        assert_eq!(echoed["path"], "/base/anything", "strip_path and the service path");
        assert_eq!(echoed["query"], "q=1");
        assert_eq!(echoed["headers"]["x-forwarded-prefix"], "/api");
        assert_gateway_fields(&reply, echoed["headers"]["x-kong-request-id"].as_str());
        // A request with a body is served by hyper's side of the server: the same fields.
        let posted = send((Method::POST, format!("http://{}/api/anything", c.node(i).proxy()), Some("text/plain"), b"hi".to_vec())).await;
        assert_eq!(posted.status.as_u16(), 200);
        assert_gateway_fields(&posted, posted.json()["headers"]["x-kong-request-id"].as_str());
    }
    // A chunked body reaches the upstream with a Content-Length (request_buffering, on
    // by default), and chunked where the route turns buffering off.
    send(form_post(&format!("http://{a1}/services/echo/routes"), "name=streamed&paths[]=/streamed&request_buffering=false")).await;
    for (path, buffered) in [("/api/anything", true), ("/streamed", false)] {
        let chunked = format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        let answer = raw_exchange(&c.node(1).proxy(), &chunked).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 "), "{answer}");
        let echoed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(echoed["body"], "hello");
        assert_eq!(echoed["headers"].get("content-length").is_some(), buffered, "{path}: {echoed}");
        assert_eq!(echoed["headers"].get("transfer-encoding").is_some(), !buffered, "{path}: {echoed}");
    }
    // Above the 1 MiB a route holds, what was read goes first and the rest follows it,
    // still chunked: nothing is lost or reordered.
    let chunk: String = (0..64 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let mut big = String::from("POST /api/anything HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    for _ in 0..24 {
        big.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    big.push_str("0\r\n\r\n");
    let answer = raw_exchange(&c.node(1).proxy(), &big).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let echoed: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echoed["body"].as_str().unwrap(), chunk.repeat(24));
    assert!(echoed["headers"].get("transfer-encoding").is_some(), "{}", echoed["headers"]);
    // A chunked body that stops coming is cut after the service's write_timeout: 408.
    send(form_post(&format!("http://{a1}/services"), "name=stall&url=http://127.0.20.100:9000&write_timeout=300")).await;
    send(form_post(&format!("http://{a1}/services/stall/routes"), "paths[]=/stall")).await;
    let stalled = raw_status(&c.node(1).proxy(), "POST /stall HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n").await;
    assert!(stalled.as_deref().is_some_and(|s| s.starts_with("HTTP/1.1 408 ")), "{stalled:?}");
    // A HEAD's answer keeps the upstream's Content-Length (the GET's body's), once.
    let head = send((Method::HEAD, format!("http://{}/api/anything", c.node(1).proxy()), None, Vec::new())).await;
    let lengths: Vec<u64> = head.headers.get_all("content-length").iter().map(|v| v.to_str().unwrap().parse().unwrap()).collect();
    assert!(lengths.len() == 1 && lengths[0] > 100 && head.body.is_empty(), "{:?}", head.headers);

    // Kong's errors, as JSON with a request id.
    let nope = get(&format!("http://{}/nowhere", c.node(3).proxy())).await.unwrap();
    assert_eq!(nope.status.as_u16(), 404);
    assert_eq!(nope.json()["message"], "no Route matched with those values");
    assert_eq!(nope.json()["request_id"].as_str().unwrap().len(), 32);
    assert_eq!(nope.headers["x-kong-request-id"].to_str().unwrap(), nope.json()["request_id"].as_str().unwrap());
    assert!(nope.headers["server"].to_str().unwrap().starts_with("gatehouse/"));
    assert!(nope.headers.contains_key("x-kong-response-latency") && !nope.headers.contains_key("via"));

    send(form_post(&format!("http://{a1}/services"), "name=dead&url=http://127.0.20.100:9")).await;
    send(form_post(&format!("http://{a1}/services/dead/routes"), "paths[]=/dead")).await;
    let bad = wait_status(&format!("http://{}/dead", c.node(2).proxy()), 502).await;
    // An upstream's failure is typed by Kong's error page: with neither Accept nor
    // Content-Type, text/plain (error_default_type); a bare curl's */* gets JSON.
    assert_eq!(bad.headers["content-type"], "text/plain; charset=utf-8");
    let bad_id = bad.headers["x-kong-request-id"].to_str().unwrap();
    assert_eq!(String::from_utf8_lossy(&bad.body), format!("An invalid response was received from the upstream server\nrequest_id: {bad_id}\n"));
    let curl_like = request_with_headers(Method::GET, &format!("http://{}/dead", c.node(2).proxy()), &[("accept", "*/*")], Vec::new()).await.unwrap();
    assert_eq!((curl_like.status.as_u16(), curl_like.json()["message"].as_str()), (502, Some("An invalid response was received from the upstream server")));
    // The gateway's own errors follow Accept, as kong.response.error does.
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = request_with_headers(Method::GET, &format!("http://{}/nowhere", c.node(2).proxy()), &[("accept", browser)], Vec::new()).await.unwrap();
    assert_eq!((page.status.as_u16(), page.headers["content-type"].to_str().unwrap()), (404, "text/html; charset=utf-8"));
    assert!(String::from_utf8_lossy(&page.body).contains("no Route matched with those values"));

    send(form_post(&format!("http://{a1}/upstreams"), "name=empty-pool")).await;
    send(form_post(&format!("http://{a1}/services"), "name=pooled&host=empty-pool")).await;
    send(form_post(&format!("http://{a1}/services/pooled/routes"), "paths[]=/pooled")).await;
    let none = wait_status(&format!("http://{}/pooled", c.node(3).proxy()), 503).await;
    assert_eq!(none.json()["message"], "failure to get a peer from the ring-balancer");

    send(form_post(&format!("http://{a1}/services"), "name=slow&url=http://127.0.20.100:9000&read_timeout=200")).await;
    send(form_post(&format!("http://{a1}/services/slow/routes"), "paths[]=/slow")).await;
    wait_status(&format!("http://{}/slow/delay/0", c.node(1).proxy()), 200).await;
    let timed_out = request_with_headers(Method::GET, &format!("http://{}/slow/delay/2000", c.node(1).proxy()), &[("accept", "application/json")], Vec::new()).await.unwrap();
    assert_eq!(timed_out.status.as_u16(), 504);
    assert_eq!(timed_out.json()["message"], "The upstream server is timing out");

    // CONNECT is refused even where a route (here one matching any path) would take it.
    send(form_post(&format!("http://{a1}/services/echo/routes"), "name=any-path&hosts[]=tunnel.test")).await;
    let proxy = c.node(2).proxy();
    wait_for("the host route on node 2", Duration::from_secs(5), || async {
        raw_status(&proxy, "GET / HTTP/1.1\r\nHost: tunnel.test\r\nConnection: close\r\n\r\n").await.filter(|s| s.contains(" 200 "))
    })
    .await;
    let tunnel = raw_status(&proxy, "CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n").await.unwrap();
    assert!(tunnel.starts_with("HTTP/1.1 501 "), "{tunnel}");

    // Admin API errors in Kong's shape.
    let dup = send(form_post(&format!("http://{a2}/services"), "name=echo&url=http://x.test")).await;
    assert_eq!(dup.status.as_u16(), 409);
    assert_eq!(dup.json()["code"], 5);
    let invalid = post_json(&format!("http://{a1}/routes"), &json!({"foo": 1, "paths": ["/x"]})).await.unwrap();
    assert_eq!(invalid.status.as_u16(), 400);
    assert_eq!(invalid.json()["fields"]["foo"], "unknown field");
    let in_use = request(Method::DELETE, &format!("http://{a2}/services/echo"), None, vec![]).await.unwrap();
    assert_eq!(in_use.status.as_u16(), 400, "a service with routes cannot be deleted");
    assert_eq!(get(&format!("http://{a1}/services/nothing")).await.unwrap().status.as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declarative_file_applies_atomically_and_dumps_back_equal() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.21", 3);
    c.start_echo("127.0.21.100:9000", "echo-b");
    form(&mut c, 3, 3, &[]).await;
    let file = c.dir.path().join("kong.yml");
    std::fs::write(
        &file,
        r#"_format_version: "3.0"
services:
- name: api
  url: http://127.0.21.100:9000
  routes:
  - name: api-route
    paths: [/api]
  plugins:
  - name: key-auth
upstreams:
- name: pool
  targets:
  - target: 127.0.21.100:9000
consumers:
- username: alice
  custom_id: alice-1
  keyauth_credentials:
  - key: alice-secret
- username: bob
"#,
    )
    .unwrap();
    let (code, out, err) = c.cli(&["apply", "--admin", &c.node(1).admin(), "-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("services: 1 created"), "{out}");
    let (code, dump, _) = c.cli(&["dump", "--admin", &c.node(3).admin()]);
    assert_eq!(code, 0);
    let dumped = c.dir.path().join("dump.yml");
    std::fs::write(&dumped, &dump).unwrap();
    let (code, out, _) = c.cli(&["apply", "--admin", &c.node(2).admin(), "-f", dumped.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "configuration unchanged", "a dump re-applied is a no-op");

    // key-auth from the file works on every node.
    let url = format!("http://{}/api/anything", c.node(3).proxy());
    let denied = wait_status(&url, 401).await;
    assert_eq!(denied.json()["message"], "No API key found in request");
    let ok = request(Method::GET, &format!("{url}?apikey=alice-secret"), None, vec![]).await.unwrap();
    assert_eq!(ok.status.as_u16(), 200);
    assert_eq!(ok.json()["headers"]["x-consumer-username"], "alice");
    let wrong = request(Method::GET, &format!("{url}?apikey=nope"), None, vec![]).await.unwrap();
    assert_eq!(wrong.json()["message"], "Unauthorized");
    // Kong's lookup by custom_id on the consumers endpoint.
    let found = get(&format!("http://{}/consumers?custom_id=alice-1", c.node(2).admin())).await.unwrap().json();
    assert_eq!(found["data"][0]["username"], "alice", "{found}");
    assert_eq!(found["data"].as_array().unwrap().len(), 1);

    // key_in_body, with a chunked form: the key is found in the body and taken out of it,
    // and the upstream gets the rest with a Content-Length (request_buffering).
    let a3 = c.node(3).admin();
    let plugins = get(&format!("http://{a3}/services/api/plugins")).await.unwrap();
    let plugin_id = plugins.json()["data"][0]["id"].as_str().unwrap().to_owned();
    let patch = "config.key_in_body=true&config.hide_credentials=true";
    let patched = request(Method::PATCH, &format!("http://{a3}/plugins/{plugin_id}"), Some("application/x-www-form-urlencoded"), patch.as_bytes().to_vec()).await.unwrap();
    assert_eq!(patched.status.as_u16(), 200, "{}", String::from_utf8_lossy(&patched.body));
    let form = "apikey=alice-secret&q=1";
    let chunked = format!(
        "POST /api/anything HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{form}\r\n0\r\n\r\n",
        form.len()
    );
    let answer = raw_exchange(&c.node(3).proxy(), &chunked).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{answer}");
    let echoed: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echoed["body"], "q=1");
    assert_eq!(echoed["headers"]["content-length"], "3");
    assert!(echoed["headers"].get("transfer-encoding").is_none(), "{echoed}");
    assert_eq!(echoed["headers"]["x-consumer-username"], "alice");

    let (code, _, err) = c.cli(&["apply", "--admin", &c.node(1).admin(), "-f", "/no/such/file.yml"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read"), "{err}");
    // A node started where one already listens says so in one line, its cause once.
    let clash = c.dir.path().join("clash");
    let (code, _, err) = c.cli(&["start", "--bind-addr", "127.0.21.1", "--data-dir", clash.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(err.contains("cannot listen on the Admin API 127.0.21.1:8001"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_added_while_traffic_flows_fails_no_request() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.22", 3);
    c.start_echo("127.0.22.100:9000", "echo-c");
    form(&mut c, 3, 3, &[]).await;
    let a1 = c.node(1).admin();
    // 2,000 routes make each rebuild of the router take milliseconds, which a write's
    // acknowledgement must cover (checked below).
    let routes: Vec<_> = std::iter::once("/old".to_owned()).chain((0..2000).map(|n| format!("/bulk{n}"))).map(|p| json!({ "paths": [p] })).collect();
    let file = json!({ "_format_version": "3.0", "services": [{ "name": "s", "url": "http://127.0.22.100:9000", "routes": routes }] });
    let loaded = post_json(&format!("http://{a1}/config"), &file).await.unwrap();
    assert_eq!(loaded.status.as_u16(), 201, "{}", String::from_utf8_lossy(&loaded.body));
    for i in 1..=3 {
        wait_status(&format!("http://{}/old", c.node(i).proxy()), 200).await;
    }
    let proxies: Vec<String> = (1..=3).map(|i| c.node(i).proxy()).collect();
    let traffic = tokio::spawn(async move {
        let mut failures = Vec::new();
        for n in 0..300 {
            let r = get(&format!("http://{}/old", proxies[n % 3])).await;
            if !matches!(&r, Ok(r) if r.status.as_u16() == 200) {
                failures.push(format!("{r:?}"));
            }
        }
        failures
    });
    let mut unrouted = Vec::new();
    for k in 0..10 {
        let node = c.node(k % 3 + 1);
        let created = send(form_post(&format!("http://{}/services/s/routes", node.admin()), &format!("paths[]=/new{k}"))).await;
        assert_eq!(created.status.as_u16(), 201);
        // The node that acknowledged a write already routes by it: no waiting here.
        let at_once = get(&format!("http://{}/new{k}", node.proxy())).await.unwrap();
        if at_once.status.as_u16() != 200 {
            unrouted.push((k, at_once.status.as_u16()));
        }
    }
    assert!(unrouted.is_empty(), "routes not served right after their acknowledgement: {unrouted:?}");
    let failures = traffic.await.unwrap();
    assert!(failures.is_empty(), "{} requests failed during route changes, e.g. {:?}", failures.len(), failures.first());
    for i in 1..=3 {
        wait_status(&format!("http://{}/new9", c.node(i).proxy()), 200).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancing_skips_a_dead_target_and_reports_its_health() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.24", 1);
    c.start_echo("127.0.24.100:9000", "echo-a");
    c.start_echo("127.0.24.101:9000", "echo-b");
    form(&mut c, 1, 1, &[]).await;
    let a = c.node(1).admin();
    // The only voter reaches its store alone.
    assert_eq!(get(&format!("http://{a}/status")).await.unwrap().json()["database"]["reachable"], true);
    let upstream = json!({"name": "pool", "healthchecks": {"passive": {"unhealthy": {"tcp_failures": 1}}}});
    assert_eq!(post_json(&format!("http://{a}/upstreams"), &upstream).await.unwrap().status.as_u16(), 201);
    for t in ["127.0.24.100:9000", "127.0.24.101:9000", "127.0.24.102:9000"] {
        let r = post_json(&format!("http://{a}/upstreams/pool/targets"), &json!({ "target": t })).await.unwrap();
        assert_eq!(r.status.as_u16(), 201, "{}", String::from_utf8_lossy(&r.body));
    }
    let all = get(&format!("http://{a}/upstreams/pool/targets/all")).await.unwrap();
    assert_eq!(all.status.as_u16(), 200);
    assert_eq!(all.json()["data"].as_array().unwrap().len(), 3, "Kong's targets/all lists every target");
    send(form_post(&format!("http://{a}/services"), "name=lb&host=pool")).await;
    send(form_post(&format!("http://{a}/services/lb/routes"), "paths[]=/lb")).await;
    let url = format!("http://{}/lb/anything", c.node(1).proxy());
    wait_status(&url, 200).await;
    let mut servers = std::collections::BTreeSet::new();
    for _ in 0..30 {
        // The dead target refuses connections: the request moves on to a live one.
        let r = get(&url).await.unwrap();
        assert_eq!(r.status.as_u16(), 200);
        servers.insert(r.json()["server"].as_str().unwrap().to_owned());
    }
    assert_eq!(servers.len(), 2, "round-robin spreads over both live targets: {servers:?}");
    let health = get(&format!("http://{a}/upstreams/pool/health")).await.unwrap().json();
    let dead = health["data"].as_array().unwrap().iter().find(|t| t["target"] == "127.0.24.102:9000").unwrap();
    assert_eq!(dead["health"], "UNHEALTHY", "{health}");
    let live = health["data"].as_array().unwrap().iter().filter(|t| t["health"] == "HEALTHY").count();
    assert_eq!(live, 2, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_oversized_admin_bodies_and_draining_on_sigterm() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.26", 1);
    c.start_echo("127.0.26.100:9000", "echo-d");
    form(&mut c, 1, 1, &["--drain-timeout", "5s"]).await;
    let a = c.node(1).admin();
    send(form_post(&format!("http://{a}/services"), "name=s&url=http://127.0.26.100:9000")).await;
    send(form_post(&format!("http://{a}/services/s/routes"), "paths[]=/s")).await;
    let url = format!("http://{}/s/anything", c.node(1).proxy());
    wait_status(&url, 200).await;

    // HTTP/2 without TLS (prior knowledge), as gRPC-style clients speak it.
    let out = std::process::Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--http2-prior-knowledge", &url]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");

    // 16 MiB is the Admin API's body limit.
    let big = vec![b'a'; 17 << 20];
    let r = request(Method::POST, &format!("http://{a}/config"), Some("application/yaml"), big).await.unwrap();
    assert_eq!(r.status.as_u16(), 413);

    // A request in flight when SIGTERM arrives still gets its answer. The upstream is
    // the test's own: it says when the request has arrived, then answers a second later.
    let upstream = tokio::net::TcpListener::bind("127.0.26.101:9001").await.unwrap();
    let (arrived_tx, arrived) = tokio::sync::oneshot::channel::<()>();
    let arrived_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(arrived_tx)));
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = upstream.accept().await.unwrap();
            let arrived_tx = arrived_tx.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                if String::from_utf8_lossy(&buf[..n]).contains("/slow") {
                    if let Some(tx) = arrived_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nheld").await;
            });
        }
    });
    send(form_post(&format!("http://{a}/services"), "name=held&url=http://127.0.26.101:9001")).await;
    send(form_post(&format!("http://{a}/services/held/routes"), "paths[]=/held")).await;
    wait_status(&format!("http://{}/held/ready", c.node(1).proxy()), 200).await;
    let slow = tokio::spawn({
        let url = format!("http://{}/held/slow", c.node(1).proxy());
        async move { get(&url).await }
    });
    arrived.await.expect("the request reached the upstream");
    let stopping = tokio::spawn(async move {
        let code = c.stop(1, Duration::from_secs(15)).await;
        (c, code)
    });
    let reply = slow.await.unwrap().expect("the in-flight request was answered");
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(&reply.body[..], b"held");
    let (_c, code) = stopping.await.unwrap();
    assert_eq!(code, Some(0), "a clean exit after draining");
}
