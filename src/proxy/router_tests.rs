//! Router tests: each precedence rule of Kong's traditional_compatible router, and a
//! proptest showing the indexed lookup always agrees with a plain scan in priority order.

use std::collections::BTreeMap;

use hyper::HeaderMap;
use proptest::prelude::*;

use super::*;

fn route(id: &str) -> RouteSpec {
    RouteSpec { id: id.into(), ..RouteSpec::default() }
}

fn find(r: &Router, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Option<usize> {
    find_on(r, 8000, method, host, path, headers)
}

/// As `find`, for a request whose Host names `port` (or that came to a listener on it).
fn find_on(r: &Router, port: u16, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Option<usize> {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let req = RequestView { method, host, port, path, headers: &h };
    let fast = r.find(&req);
    assert_eq!(fast, r.find_linear(&req), "index and scan disagree for {method} {host}{path}");
    fast.map(|m| m.route)
}

/// A host with a port matches that port only (the Host field's, else the listener's),
/// as Kong's `net.dst.port`; one without matches any. Wildcards take ports too.
#[test]
fn hosts_with_a_port_match_that_port() {
    let r = Router::build(&[
        RouteSpec { hosts: vec!["api.test:8000".into()], ..route("1") },
        RouteSpec { hosts: vec!["*.wild.test:9000".into()], ..route("2") },
        RouteSpec { hosts: vec!["[::1]:8000".into()], ..route("3") },
        RouteSpec { hosts: vec!["any.test".into()], ..route("4") },
    ])
    .unwrap();
    assert_eq!(find_on(&r, 8000, "GET", "api.test", "/", &[]), Some(0));
    assert_eq!(find_on(&r, 8443, "GET", "api.test", "/", &[]), None);
    assert_eq!(find_on(&r, 9000, "GET", "a.wild.test", "/", &[]), Some(1));
    assert_eq!(find_on(&r, 8000, "GET", "a.wild.test", "/", &[]), None);
    assert_eq!(find_on(&r, 8000, "GET", "::1", "/", &[]), Some(2));
    assert_eq!(find_on(&r, 1234, "GET", "any.test", "/", &[]), Some(3));
}

/// A header value `~*regex` matches by regex, whatever the case; others match the whole
/// value, whatever the case.
#[test]
fn header_values_with_a_tilde_star_are_regexes() {
    let mut headers = BTreeMap::new();
    headers.insert("x-v".to_owned(), vec!["~*^v[0-9]+$".to_owned(), "beta".to_owned()]);
    let r = Router::build(&[RouteSpec { headers, ..route("1") }]).unwrap();
    assert_eq!(find(&r, "GET", "h", "/", &[("x-v", "v12")]), Some(0));
    assert_eq!(find(&r, "GET", "h", "/", &[("x-v", "V7")]), Some(0));
    assert_eq!(find(&r, "GET", "h", "/", &[("x-v", "BETA")]), Some(0));
    assert_eq!(find(&r, "GET", "h", "/", &[("x-v", "v1x")]), None);
    assert_eq!(find(&r, "GET", "h", "/", &[("x-v", "~*^v[0-9]+$")]), None, "the regex is not a literal");
    let mut bad = BTreeMap::new();
    bad.insert("x-v".to_owned(), vec!["~*(".to_owned()]);
    assert!(matches!(Router::build(&[RouteSpec { headers: bad, ..route("2") }]), Err(RouterError::BadHeaderRegex { .. })));
}

#[test]
fn longest_prefix_wins_among_prefixes() {
    let r = Router::build(&[
        RouteSpec { paths: vec!["/a".into()], ..route("1") },
        RouteSpec { paths: vec!["/a/b".into()], ..route("2") },
    ])
    .unwrap();
    assert_eq!(find(&r, "GET", "x", "/a/b/c", &[]), Some(1));
    assert_eq!(find(&r, "GET", "x", "/a/c", &[]), Some(0));
    assert_eq!(find(&r, "GET", "x", "/b", &[]), None);
    // Prefixes are string prefixes, as in Kong.
    assert_eq!(find(&r, "GET", "x", "/ab", &[]), Some(0));
}

#[test]
fn more_matching_fields_beat_a_longer_path() {
    let r = Router::build(&[
        RouteSpec { paths: vec!["/a/very/long/prefix".into()], ..route("1") },
        RouteSpec { paths: vec!["/a".into()], methods: vec!["GET".into()], ..route("2") },
    ])
    .unwrap();
    assert_eq!(find(&r, "GET", "x", "/a/very/long/prefix", &[]), Some(1));
    assert_eq!(find(&r, "POST", "x", "/a/very/long/prefix", &[]), Some(0));
}

#[test]
fn plain_hosts_beat_wildcards_and_wildcards_match_one_side() {
    let r = Router::build(&[
        RouteSpec { hosts: vec!["*.example.com".into()], ..route("1") },
        RouteSpec { hosts: vec!["api.example.com".into()], ..route("2") },
        RouteSpec { hosts: vec!["internal.*".into()], ..route("3") },
    ])
    .unwrap();
    assert_eq!(find(&r, "GET", "api.example.com", "/", &[]), Some(1));
    assert_eq!(find(&r, "GET", "web.example.com", "/", &[]), Some(0));
    assert_eq!(find(&r, "GET", "example.com", "/", &[]), None);
    assert_eq!(find(&r, "GET", "internal.corp", "/", &[]), Some(2));
}

#[test]
fn regex_paths_beat_prefixes_and_regex_priority_orders_regexes() {
    let r = Router::build(&[
        RouteSpec { paths: vec!["/users/admin".into()], ..route("1") },
        RouteSpec { paths: vec![r"~/users/\d+".into()], ..route("2") },
        RouteSpec { paths: vec![r"~/users/.*".into()], regex_priority: 10, ..route("3") },
    ])
    .unwrap();
    assert_eq!(find(&r, "GET", "x", "/users/42", &[]), Some(2));
    let r = Router::build(&[
        RouteSpec { paths: vec!["/users/admin".into()], ..route("1") },
        RouteSpec { paths: vec![r"~/users/\d+".into()], ..route("2") },
    ])
    .unwrap();
    assert_eq!(find(&r, "GET", "x", "/users/42", &[]), Some(1));
    assert_eq!(find(&r, "GET", "x", "/users/admin", &[]), Some(0));
    // Anchored at the start of the path.
    assert_eq!(find(&r, "GET", "x", "/v1/users/42", &[]), None);
}

#[test]
fn headers_match_case_insensitively_and_more_headers_win() {
    let one = BTreeMap::from([("x-version".to_string(), vec!["v2".to_string()])]);
    let two = BTreeMap::from([("x-version".to_string(), vec!["v2".to_string()]), ("x-beta".to_string(), vec!["yes".to_string()])]);
    let r = Router::build(&[RouteSpec { headers: one, ..route("1") }, RouteSpec { headers: two, ..route("2") }]).unwrap();
    assert_eq!(find(&r, "GET", "x", "/", &[("X-Version", "V2")]), Some(0));
    assert_eq!(find(&r, "GET", "x", "/", &[("x-version", "v2"), ("x-beta", "YES")]), Some(1));
    assert_eq!(find(&r, "GET", "x", "/", &[("x-version", "v1")]), None);
}

#[test]
fn ties_go_to_the_older_route_and_a_route_with_several_paths_competes_per_path() {
    let r = Router::build(&[
        RouteSpec { paths: vec!["/a".into()], created_at: 2, ..route("new") },
        RouteSpec { paths: vec!["/a".into()], created_at: 1, ..route("old") },
        RouteSpec { paths: vec!["/x".into(), "/a/long".into()], created_at: 3, ..route("multi") },
    ])
    .unwrap();
    assert_eq!(find(&r, "GET", "h", "/a", &[]), Some(1));
    assert_eq!(find(&r, "GET", "h", "/a/long/er", &[]), Some(2));
    let m = r.find(&RequestView { method: "GET", host: "h", port: 8000, path: "/a/long/er", headers: &HeaderMap::new() }).unwrap();
    assert_eq!(m.matched_path.as_deref(), Some("/a/long"));
}

#[test]
fn a_bad_regex_is_an_error_naming_the_route() {
    let err = Router::build(&[RouteSpec { paths: vec!["~/(".into()], ..route("r9") }]).unwrap_err();
    assert!(matches!(err, RouterError::BadRegex { ref id, .. } if id == "r9"));
}

fn spec_strategy() -> impl Strategy<Value = RouteSpec> {
    let host = proptest::sample::select(vec!["a.com", "b.com", "*.com", "a.*", "x.a.com"]);
    let path = proptest::sample::select(vec!["/", "/a", "/a/b", "/ab", "/b", "~/a/[0-9]+", "~/b.*", "~/ab?", "~/x|/a", "~/a{2}", "~.*/1"]);
    let method = proptest::sample::select(vec!["GET", "POST"]);
    (
        proptest::collection::vec(host, 0..3),
        proptest::collection::vec(path, 0..3),
        proptest::collection::vec(method, 0..2),
        proptest::option::of(proptest::sample::select(vec!["v1", "v2"])),
        0i64..3,
        0i64..4,
    )
        .prop_map(|(hosts, paths, methods, header, regex_priority, created_at)| RouteSpec {
            hosts: hosts.into_iter().map(String::from).collect(),
            paths: paths.into_iter().map(String::from).collect(),
            methods: methods.into_iter().map(String::from).collect(),
            headers: header.map(|v| BTreeMap::from([("x-v".to_string(), vec![v.to_string()])])).unwrap_or_default(),
            regex_priority,
            created_at,
            id: String::new(),
        })
}

proptest! {
    #[test]
    fn indexed_lookup_equals_a_scan_in_priority_order(
        mut specs in proptest::collection::vec(spec_strategy(), 0..25),
        reqs in proptest::collection::vec((
            proptest::sample::select(vec!["GET", "POST", "PUT"]),
            proptest::sample::select(vec!["a.com", "b.com", "x.a.com", "a.org", "c.net"]),
            proptest::sample::select(vec!["/", "/a", "/a/1", "/a/b/c", "/ab", "/b/x", "/c", "/aa", "/x"]),
            proptest::option::of(proptest::sample::select(vec!["v1", "v2"])),
        ), 1..20),
    ) {
        for (i, s) in specs.iter_mut().enumerate() {
            s.id = format!("{i:03}");
        }
        let router = Router::build(&specs).unwrap();
        for (method, host, path, header) in reqs {
            let mut h = HeaderMap::new();
            if let Some(v) = header {
                h.insert("x-v", v.parse().unwrap());
            }
            let req = RequestView { method, host, port: 8000, path, headers: &h };
            prop_assert_eq!(router.find(&req), router.find_linear(&req));
        }
    }
}

#[test]
fn regex_literal_prefixes_are_conservative() {
    assert_eq!(literal_prefix(r"/users/\d+"), "/users/");
    assert_eq!(literal_prefix("/users?"), "/user");
    assert_eq!(literal_prefix("/a{2}"), "/");
    assert_eq!(literal_prefix("/é*"), "/");
    assert_eq!(literal_prefix("/x|/a"), "");
    assert_eq!(literal_prefix("(?i)/abc"), "");
    assert_eq!(literal_prefix("/plain"), "/plain");
}

#[test]
fn the_regex_cache_reuses_and_forgets_patterns() {
    let cache = RegexCache::default();
    let specs = vec![RouteSpec { paths: vec![r"~/a/\d+".into()], ..route("1") }];
    Router::build_with(&specs, &cache).unwrap();
    assert_eq!(cache.compiled.lock().unwrap().len(), 1);
    Router::build_with(&[], &cache).unwrap();
    assert!(cache.compiled.lock().unwrap().is_empty());
}
