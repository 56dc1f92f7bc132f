//! Tests of the string validators, with Kong's messages.
use super::*;

#[test]
fn normalize_ip_kinds() {
    assert_eq!(normalize_ip("1.2.3.4").unwrap().kind, HostKind::Ipv4);
    assert_eq!(normalize_ip("1.2.3.4:80").unwrap().port, Some(80));
    assert_eq!(
        normalize_ip("::1").unwrap().host,
        "0000:0000:0000:0000:0000:0000:0000:0001"
    );
    assert_eq!(normalize_ip("[::1]:8080").unwrap().port, Some(8080));
    assert_eq!(
        normalize_ip("example.com:99999").unwrap_err(),
        "invalid port number"
    );
    assert_eq!(normalize_ip("a b").unwrap_err(), "invalid hostname: a b");
    assert_eq!(
        normalize_ip("300.1.1.1").unwrap_err(),
        "invalid ipv4 address: 300.1.1.1"
    );
    assert!(normalize_ip("foo-.bar").is_err());
    assert!(normalize_ip("foo.bar.").is_ok());
    assert!(normalize_ip("foo..bar").is_err());
}

#[test]
fn format_host_default_port() {
    assert_eq!(
        format_host(&normalize_ip("example.com").unwrap(), Some(8000)),
        "example.com:8000"
    );
    assert_eq!(
        format_host(&normalize_ip("::1").unwrap(), Some(8000)),
        "[0000:0000:0000:0000:0000:0000:0000:0001]:8000"
    );
    assert_eq!(
        format_host(&normalize_ip("10.0.0.1:99").unwrap(), Some(8000)),
        "10.0.0.1:99"
    );
}

#[test]
fn host_validation() {
    assert!(validate_host("example.com").is_ok());
    assert_eq!(
        validate_host("example.com:80").unwrap_err(),
        "must not have a port"
    );
    assert_eq!(
        validate_host("exa mple").unwrap_err(),
        "invalid value: exa mple"
    );
}

#[test]
fn route_hosts() {
    assert!(validate_route_host("*.example.com").is_ok());
    assert!(validate_route_host("example.*").is_ok());
    assert!(validate_route_host("example.com:8080").is_ok());
    assert_eq!(
        validate_route_host("*.example.*").unwrap_err(),
        "invalid wildcard: must have at most one wildcard"
    );
    assert_eq!(
        validate_route_host("ex*ample.com").unwrap_err(),
        "invalid wildcard: must be placed at leftmost or rightmost label"
    );
}

#[test]
fn paths() {
    assert!(validate_path("/a/b").is_ok());
    assert_eq!(validate_path("a").unwrap_err(), "should start with: /");
    assert_eq!(
        validate_path("/a//b").unwrap_err(),
        "must not have empty segments"
    );
    assert_eq!(
        validate_path("/a b").unwrap_err(),
        "invalid path: '/a b' (characters outside of the reserved list of RFC 3986 found)"
    );
    assert_eq!(
        validate_path("/a%zz").unwrap_err(),
        "invalid url-encoded value: '%zz'"
    );
    assert_eq!(
        validate_path("/a%2").unwrap_err(),
        "invalid url-encoded value: '%2'"
    );
}

#[test]
fn router_paths() {
    assert!(validate_router_path("/").is_ok());
    assert!(validate_router_path("~/users/\\d+$").is_ok());
    assert_eq!(
        validate_router_path("users").unwrap_err(),
        "should start with: / (fixed path) or ~/ (regex path)"
    );
    assert_eq!(
        validate_router_path("/a//b").unwrap_err(),
        "must not have empty segments"
    );
    assert!(validate_router_path("~/a(")
        .unwrap_err()
        .starts_with("invalid regex: '/a(' ("));
    assert_eq!(
        validate_router_path("/a/../b").unwrap_err(),
        "non-normalized path, consider use '/b' instead"
    );
    assert_eq!(
        validate_router_path("/%7euser").unwrap_err(),
        "non-normalized path, consider use '/~user' instead"
    );
    // Escapes of characters outside the unreserved set are decoded too, as requests are.
    assert_eq!(validate_router_path("/a%20b").unwrap_err(), "non-normalized path, consider use '/a b' instead");
    assert_eq!(validate_router_path("/caf%C3%A9").unwrap_err(), "non-normalized path, consider use '/café' instead");
    assert!(validate_router_path("/a b").is_ok() && validate_router_path("/café").is_ok() && validate_router_path("/a%2Fb").is_ok());
}

#[test]
fn names_tags_headers() {
    assert!(validate_utf8_name("my-service_1.v2~x").is_ok());
    assert!(validate_utf8_name("café").is_ok());
    assert_eq!(
        validate_utf8_name("a b").unwrap_err(),
        "invalid value 'a b': the only accepted ascii characters are alphanumerics or ., -, _, and ~"
    );
    assert!(validate_tag("env:prod").is_ok());
    assert!(validate_tag("a,b").is_err());
    assert!(validate_header_name("X-Foo_1").is_ok());
    assert_eq!(
        validate_header_name("x foo").unwrap_err(),
        "bad header name 'x foo', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
    );
}

#[test]
fn cidr() {
    assert!(validate_ip_or_cidr("10.0.0.0/8").is_ok());
    assert!(validate_ip_or_cidr("10.0.0.1").is_ok());
    assert!(validate_ip_or_cidr("::1/128").is_ok());
    assert!(validate_ip_or_cidr("10.0.0.0/33").is_err());
    assert!(validate_ip_or_cidr("foo").is_err());
}
