//! Tests of routes: defaults, matching attributes, hosts, headers, paths, subschemas.

use super::*;
use crate::model::entity::{create, patch};

fn mk(v: Value) -> Result<Route, KongError> {
    create::<Route>(&v, 1_700_000_000.0)
}
fn msg(v: Value) -> String {
    mk(v).unwrap_err().message
}

#[test]
fn defaults() {
    let r = mk(json!({"paths": ["/a"]})).unwrap();
    assert_eq!(r.protocols, vec!["http", "https"]);
    assert_eq!(r.https_redirect_status_code, 426);
    assert!(r.strip_path && !r.preserve_host && r.request_buffering && r.response_buffering);
    assert_eq!((r.regex_priority, r.path_handling.as_str()), (0, "v0"));
    assert_eq!(r.service, None);
    assert_eq!(serde_json::to_value(&r).unwrap()["service"], Value::Null);
}

#[test]
fn needs_a_matching_attribute() {
    assert_eq!(
        msg(json!({})),
        "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https')"
    );
    assert_eq!(
        msg(json!({"protocols": ["http"]})),
        "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http')"
    );
    assert_eq!(
        mk(json!({"protocols": ["http"]})).unwrap_err().fields,
        json!({"@entity": ["must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"]})
    );
    assert!(mk(json!({"methods": ["GET"]})).is_ok());
    assert!(mk(json!({"headers": {"x-a": ["1"]}})).is_ok());
    assert!(mk(json!({"hosts": ["a.org"]})).is_ok());
}

#[test]
fn hosts_rules() {
    assert!(mk(json!({"hosts": ["*.example.com", "example.*", "a.org:8080"]})).is_ok());
    assert_eq!(
        msg(json!({"hosts": ["*.example.*"]})),
        "schema violation (hosts.1: invalid wildcard: must have at most one wildcard)"
    );
    assert_eq!(
        msg(json!({"hosts": ["a.org", "ex*mple.com"]})),
        "schema violation (hosts.2: invalid wildcard: must be placed at leftmost or rightmost label)"
    );
    assert_eq!(
        mk(json!({"hosts": ["a.org", "ex*mple.com"]}))
            .unwrap_err()
            .fields,
        json!({"hosts": [null, "invalid wildcard: must be placed at leftmost or rightmost label"]})
    );
}

#[test]
fn headers_rules() {
    assert_eq!(
        msg(json!({"headers": {"Host": ["a.org"]}})),
        "schema violation (headers: cannot contain 'host' header, which must be specified in the 'hosts' attribute)"
    );
    assert_eq!(
        msg(json!({"headers": {"x-a": "1"}})),
        "schema violation (headers: expected an array)"
    );
    // `~*` makes a value a regex, which must compile on every node.
    assert!(mk(json!({"headers": {"x-v": ["~*^v[0-9]+$", "plain"]}})).is_ok());
    let bad = msg(json!({"headers": {"x-v": ["~*(v"]}}));
    assert!(bad.contains("invalid regex: '(v'"), "{bad}");
}

#[test]
fn paths_rules() {
    assert!(mk(json!({"paths": ["/", "~/users/\\d+$"]})).is_ok());
    assert_eq!(
        msg(json!({"paths": ["users"]})),
        "schema violation (paths.1: should start with: / (fixed path) or ~/ (regex path))"
    );
    assert_eq!(
        msg(json!({"paths": ["/a//b"]})),
        "schema violation (paths.1: must not have empty segments)"
    );
    assert!(msg(json!({"paths": ["~/(a"]}))
        .starts_with("schema violation (paths.1: invalid regex: '/(a' ("));
    assert_eq!(
        msg(json!({"paths": "/a"})),
        "schema violation (paths: expected an array)"
    );
}

#[test]
fn methods_and_protocols() {
    // Sets keep each value once, in the order first given (Kong's make_set); arrays keep all.
    let r = mk(json!({"methods": ["GET", "POST", "GET"], "protocols": ["https", "http", "https"], "tags": ["a", "b", "a"], "paths": ["/x", "/x"]})).unwrap();
    assert_eq!(r.methods, Some(vec!["GET".to_owned(), "POST".to_owned()]));
    assert_eq!(r.protocols, vec!["https", "http"]);
    assert_eq!(r.tags, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(r.paths, Some(vec!["/x".to_owned(), "/x".to_owned()]));
    assert_eq!(
        msg(json!({"methods": ["get"]})),
        "schema violation (methods.1: invalid value: get)"
    );
    assert_eq!(
        msg(json!({"protocols": ["http", "grpc"], "paths": ["/"]})),
        "schema violation (protocols: these sets are mutually exclusive: ('http', 'https'), ('grpc', 'grpcs'))"
    );
    assert_eq!(
        msg(json!({"protocols": ["ftp"], "paths": ["/"]})),
        "schema violation (protocols.1: expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp)"
    );
    assert_eq!(
        msg(json!({"protocols": [], "paths": ["/"]})),
        "schema violation (protocols: length must be at least 1)"
    );
    assert_eq!(
        msg(json!({"https_redirect_status_code": 300, "paths": ["/"]})),
        "schema violation (https_redirect_status_code: expected one of: 426, 301, 302, 307, 308)"
    );
}

#[test]
fn grpc_and_stream_subschemas() {
    // Kong's checks come first; a route they accept is then refused as one the proxy
    // would never serve.
    assert_eq!(
        msg(json!({"protocols": ["grpc"], "paths": ["/"]})),
        "schema violation (protocols: gatehouse proxies 'http' and 'https' routes only, not 'grpc')"
    );
    assert_eq!(
        msg(json!({"protocols": ["grpc"], "paths": ["/"], "strip_path": true})),
        "schema violation (strip_path: cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs')"
    );
    assert_eq!(
        msg(json!({"protocols": ["tcp"], "paths": ["/"], "sources": [{"ip": "10.0.0.0/8"}]})),
        "schema violation (paths: cannot set 'paths' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp')"
    );
    assert_eq!(
        msg(json!({"protocols": ["tcp"], "destinations": [{"port": 80}]})),
        "schema violation (protocols: gatehouse proxies 'http' and 'https' routes only, not 'tcp')"
    );
    assert_eq!(
        msg(json!({"paths": ["/"], "sources": [{"ip": "10.0.0.1"}]})),
        "schema violation (sources: cannot set 'sources' when 'protocols' is 'http' or 'https')"
    );
    assert_eq!(
        msg(json!({"protocols": ["http"], "paths": ["/"], "snis": ["a.org"]})),
        "2 schema violations ('snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'; snis: length must be 0)"
    );
}

#[test]
fn foreign_service() {
    let id = Uuid::new_v4();
    let r = mk(json!({"paths": ["/"], "service": {"id": id.to_string()}})).unwrap();
    assert_eq!(r.service, Some(ForeignKey::new(id)));
    assert_eq!(
        msg(json!({"paths": ["/"], "service": {"id": "x"}})),
        "schema violation (service.id: expected a valid UUID)"
    );
}

#[test]
fn patch_keeps_other_fields() {
    let r = mk(json!({"name": "r", "paths": ["/a"], "methods": ["GET"]})).unwrap();
    let p = patch(&r, &json!({"paths": ["/b"]}), 1_800_000_000.0).unwrap();
    assert_eq!(p.paths, Some(vec!["/b".to_string()]));
    assert_eq!(p.methods, Some(vec!["GET".to_string()]));
    let e = patch(&r, &json!({"paths": null, "methods": null}), 1.0).unwrap_err();
    assert!(e.message.contains("must set one of"));
}
