//! Routes by protocol: one that takes only HTTPS is not served in the clear (the proxy
//! listens in plain HTTP), as Kong answers such a request with 426 or a redirect. And by
//! path: a request is routed, and sent upstream, by its normalized path, so that dot
//! segments, doubled slashes and escapes can neither dodge a route nor climb out of a
//! service's path. And by a host's port and a header's regex, as Kong's router does.

use cluster_tests::http::{admin_form, raw_exchange, request};
use cluster_tests::wait_for;
use cluster_tests::{form, serial, Cluster};
use hyper::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_only_route_is_refused_in_the_clear_or_redirected() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.29", 1);
    c.start_echo("127.0.29.100:9000", "echo-p");
    form(&mut c, 1, 1, &[]).await;
    let a = c.node(1).admin();
    let proxy = c.node(1).proxy();
    admin_form(&format!("http://{a}/services"), "name=s&url=http://127.0.29.100:9000").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=both&paths[]=/both&protocols[]=http&protocols[]=https").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=sec&paths[]=/sec&protocols[]=https").await;

    let both = raw_exchange(&proxy, "GET /both HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n").await;
    assert!(both.starts_with("HTTP/1.1 200 "), "{both}");

    // Kong's default https_redirect_status_code, 426: an Upgrade offer and Kong's message.
    let refused = raw_exchange(&proxy, "GET /sec HTTP/1.1\r\nHost: api.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n").await;
    let (head, body) = refused.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\nupgrade: tls/1.2, http/1.1") && head.contains("\r\nconnection: upgrade"), "{head}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["message"], "Please use HTTPS protocol");
    let nothing_proxied = request(Method::GET, &format!("http://{proxy}/sec/anything"), None, Vec::new()).await.unwrap();
    assert_eq!(nothing_proxied.status.as_u16(), 426);

    // A redirect code sends the client to the same URL over https (port left to 443).
    let r = request(Method::PATCH, &format!("http://{a}/routes/sec"), Some("application/x-www-form-urlencoded"), b"https_redirect_status_code=308".to_vec()).await.unwrap();
    assert_eq!(r.status.as_u16(), 200);
    let moved = raw_exchange(&proxy, "GET /sec/x?q=1 HTTP/1.1\r\nHost: api.test:8000\r\nConnection: close\r\n\r\n").await;
    assert!(moved.starts_with("HTTP/1.1 308 "), "{moved}");
    assert!(moved.to_ascii_lowercase().contains("\r\nlocation: https://api.test/sec/x?q=1\r\n"), "{moved}");
    // A Host that is not a plain name is not echoed into a Location.
    let odd = raw_exchange(&proxy, "GET /sec HTTP/1.1\r\nHost: evil.test@api.test\r\nConnection: close\r\n\r\n").await;
    assert!(odd.starts_with("HTTP/1.1 426 "), "{odd}");
}

/// The echo upstream's account of a request sent as raw bytes (so that no client
/// normalizes its path first): the status line, and the JSON body when it is a 200.
async fn exchange(proxy: &str, target: &str) -> (String, Option<serde_json::Value>) {
    let reply = raw_exchange(proxy, &format!("GET {target} HTTP/1.1\r\nHost: api.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n")).await;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status.clone(), status.starts_with("HTTP/1.1 200 ").then(|| serde_json::from_str(body).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_routed_and_forwarded_by_their_normalized_path() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.36", 1);
    c.start_echo("127.0.36.100:9000", "echo-n");
    form(&mut c, 1, 1, &[]).await;
    let a = c.node(1).admin();
    let proxy = c.node(1).proxy();
    admin_form(&format!("http://{a}/services"), "name=s&url=http://127.0.36.100:9000/echo").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=open&paths[]=/open").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=locked&paths[]=/locked").await;
    admin_form(&format!("http://{a}/routes/locked/plugins"), "name=key-auth").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=files&paths[]=~/files/[^/]%2B").await;
    wait_for("the locked route to ask for a key", std::time::Duration::from_secs(5), || async {
        exchange(&proxy, "/locked").await.0.starts_with("HTTP/1.1 401 ").then_some(())
    })
    .await;

    // Every disguise of /locked is /locked: key-auth answers, nothing reaches the upstream.
    for target in ["/open/../locked/x", "/open/%2e%2E/locked", "/open/.%2e/locked/x", "//locked/x", "/%6Cocked/x", "/x/./../locked"] {
        let (status, _) = exchange(&proxy, target).await;
        assert!(status.starts_with("HTTP/1.1 401 "), "{target}: {status}");
    }

    // The upstream gets the normalized path, escaped, under the service's; X-Forwarded-Path
    // tells it the path as the client sent it, as Kong's does.
    for (target, upstream) in [
        ("/open/a/../b", "/echo/b"),
        ("/open//a/./b", "/echo/a/b"),
        ("/open/%7euser", "/echo/~user"),
        ("/open/caf%c3%a9%20x", "/echo/caf%C3%A9%20x"),
        ("/open/a%2Fb", "/echo/a%2Fb"),
        ("/open../x", "/echo/x"),
        ("/open/x/../../open/y", "/echo/y"),
    ] {
        let (status, body) = exchange(&proxy, target).await;
        let body = body.unwrap_or_else(|| panic!("{target}: {status}"));
        assert_eq!(body["path"], upstream, "{target}: {body}");
        assert_eq!(body["headers"]["x-forwarded-path"], target, "{target}: {body}");
    }
    // A % that begins no escape is refused, as nginx does: kept, an upstream that decodes
    // once more would see /locked where the router saw /%6Cocked.
    let (status, _) = exchange(&proxy, "/%%36Cocked").await;
    assert!(status.starts_with("HTTP/1.1 400 "), "{status}");
    // Escaped line breaks stay escaped: the regex route's match goes into X-Forwarded-Prefix.
    let (status, body) = exchange(&proxy, "/files/x%0D%0AX-Injected:%201").await;
    let body = body.unwrap_or_else(|| panic!("{status}"));
    assert!(body["headers"].get("x-injected").is_none(), "{body}");
    assert_eq!(body["headers"]["x-forwarded-prefix"], "/files/x%0D%0AX-Injected:%201", "{body}");
    // A path that climbs out of every route's prefix is routed as what it is.
    let (status, _) = exchange(&proxy, "/open/../../../etc/passwd").await;
    assert!(status.starts_with("HTTP/1.1 404 "), "{status}");
    let (status, body) = exchange(&proxy, "/open/a/../b?q=%2e%2e/x").await;
    assert_eq!(body.unwrap_or_else(|| panic!("{status}"))["query"], "q=%2e%2e/x", "the query goes as it came");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_with_a_port_and_header_regexes_route_as_kongs() {
    let _serial = serial();
    let mut c = Cluster::new("127.0.51", 1);
    c.start_echo("127.0.51.100:9000", "echo-h");
    form(&mut c, 1, 1, &[]).await;
    let a = c.node(1).admin();
    let proxy = c.node(1).proxy();
    admin_form(&format!("http://{a}/services"), "name=s&url=http://127.0.51.100:9000").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=port&hosts[]=port.test:8000").await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=other-port&hosts[]=port.test:9000&paths[]=/other").await;
    let r = cluster_tests::http::post_json(&format!("http://{a}/services/s/routes"), &serde_json::json!({"name": "re", "paths": ["/re"], "headers": {"x-version": ["~*^v[0-9]+$"]}})).await.unwrap();
    assert_eq!(r.status.as_u16(), 201, "{}", r.json());
    let bad = cluster_tests::http::post_json(&format!("http://{a}/services/s/routes"), &serde_json::json!({"name": "bad", "paths": ["/bad"], "headers": {"x-version": ["~*(v"]}})).await.unwrap();
    assert_eq!(bad.status.as_u16(), 400, "an invalid regex is refused: {}", bad.json());

    let status = |host: &'static str, target: &'static str, extra: &'static str| {
        let proxy = proxy.clone();
        async move {
            let reply = raw_exchange(&proxy, &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")).await;
            reply.lines().next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_owned()
        }
    };
    wait_for("the routes on the node", std::time::Duration::from_secs(5), || async { (status("port.test:8000", "/", "").await == "200").then_some(()) }).await;
    // No port in Host: the listener's, 8000.
    assert_eq!(status("port.test", "/", "").await, "200");
    assert_eq!(status("port.test:9000", "/other", "").await, "200");
    assert_eq!(status("port.test:8000", "/other", "").await, "200", "the route for :8000 takes it, having no paths");
    assert_eq!(status("port.test:7000", "/", "").await, "404");
    assert_eq!(status("api.test", "/re", "X-Version: V12\r\n").await, "200");
    assert_eq!(status("api.test", "/re", "X-Version: v12b\r\n").await, "404");
}
