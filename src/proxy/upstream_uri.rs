//! The path sent upstream, by Kong's v0 rules (`path_handling` "v0", Kong's default): with
//! strip_path the matched part of the request path is removed, and what remains is
//! appended to the service's path with one slash between them; a request for exactly
//! the matched part gets the service path without its trailing slash.

/// `matched` is the part of the request path the route matched (prefix or regex); a
/// route without paths matches "/".
pub fn upstream_path(service_path: Option<&str>, request_path: &str, matched: Option<&str>, strip_path: bool) -> String {
    let service = service_path.unwrap_or("/");
    // The service path without one trailing slash ("" for the root): a remainder that
    // starts with a slash follows it directly.
    let joint = service.strip_suffix('/').unwrap_or(service);
    if !strip_path {
        // Kong keeps the service path as written for a request of "/" alone.
        return if request_path == "/" { service.to_owned() } else { format!("{joint}{request_path}") };
    }
    let rest = sanitize_remainder(request_path.strip_prefix(matched.unwrap_or("/")).unwrap_or(request_path));
    if rest.is_empty() {
        return if joint.is_empty() { "/".to_owned() } else { joint.to_owned() };
    }
    if rest.starts_with('/') {
        format!("{joint}{rest}")
    } else {
        format!("{joint}/{rest}")
    }
}

/// The normalized path has no dot segment, but a prefix can end inside one (`/foo`
/// matches `/foo../x`): as Kong does, a remainder that begins with one loses it, so
/// that joined to the service path it cannot climb out of it.
fn sanitize_remainder(rest: &str) -> &str {
    match rest {
        "." | ".." => "",
        _ => rest.strip_prefix("./").or_else(|| rest.strip_prefix("../")).unwrap_or(rest),
    }
}

/// The upstream request target: the path plus the original query string.
pub fn upstream_target(path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kong's own expectations for path_handling v0 (its router path-handling fixture),
    /// every combination of its service paths, route paths and strip_path, plus the
    /// cases this module had before (a regex match, a prefix inside a segment).
    #[test]
    fn kong_v0_cases() {
        let cases = [
            // (service path, route path, strip, request) -> upstream
            ("/", Some("/"), false, "/", "/"),
            ("/", Some("/"), true, "/", "/"),
            ("/", Some("/"), true, "/route", "/route"),
            ("/", Some("/"), true, "/route/", "/route/"),
            ("/", Some("/"), false, "/route/req", "/route/req"),
            ("/", Some("/route"), false, "/routereq", "/routereq"),
            ("/", Some("/route"), true, "/route", "/"),
            ("/", Some("/route"), true, "/route/", "/"),
            ("/", Some("/route"), true, "/routereq", "/req"),
            ("/", Some("/route/"), true, "/route/", "/"),
            ("/", Some("/route/"), true, "/route/req", "/req"),
            ("/srv", Some("/rou"), false, "/roureq", "/srv/roureq"),
            ("/srv", Some("/rou"), true, "/roureq", "/srv/req"),
            ("/srv/", Some("/rou"), false, "/rou", "/srv/rou"),
            ("/srv/", Some("/rou"), true, "/rou", "/srv"),
            ("/service", Some("/"), false, "/", "/service"),
            ("/service", Some("/"), true, "/", "/service"),
            ("/service", Some("/"), true, "/route", "/service/route"),
            ("/service", Some("/"), false, "/route/", "/service/route/"),
            ("/service", Some("/"), true, "/routereq", "/service/routereq"),
            ("/service", Some("/route"), false, "/route", "/service/route"),
            ("/service", Some("/route"), false, "/route/", "/service/route/"),
            ("/service", Some("/route"), true, "/route", "/service"),
            ("/service", Some("/route"), true, "/route/", "/service/"),
            ("/service", Some("/route"), true, "/routereq", "/service/req"),
            ("/service", Some("/route/"), false, "/route/req", "/service/route/req"),
            ("/service", Some("/route/"), true, "/route/", "/service"),
            ("/service", Some("/route/"), true, "/route/req", "/service/req"),
            ("/service/", Some("/"), false, "/", "/service/"),
            ("/service/", Some("/"), true, "/", "/service"),
            ("/service/", Some("/"), true, "/route/", "/service/route/"),
            ("/service/", Some("/"), false, "/routereq", "/service/routereq"),
            ("/service/", Some("/"), true, "/route/req", "/service/route/req"),
            ("/service/", Some("/route"), false, "/route", "/service/route"),
            ("/service/", Some("/route"), true, "/route", "/service"),
            ("/service/", Some("/route"), true, "/route/", "/service/"),
            ("/service/", Some("/route"), true, "/routereq", "/service/req"),
            ("/service/", Some("/route/"), false, "/route/req", "/service/route/req"),
            ("/service/", Some("/route/"), true, "/route/", "/service"),
            ("/service/", Some("/route/"), true, "/route/req", "/service/req"),
            // Routes by host only.
            ("/", None, true, "/", "/"),
            ("/", None, false, "/route/", "/route/"),
            ("/", None, true, "/route", "/route"),
            ("/service", None, false, "/", "/service"),
            ("/service", None, true, "/", "/service"),
            ("/service", None, true, "/route/", "/service/route/"),
            ("/service/", None, false, "/", "/service/"),
            ("/service/", None, true, "/", "/service"),
            ("/service/", None, false, "/route", "/service/route"),
            ("/service/", None, true, "/route/", "/service/route/"),
            // A regex route's match.
            ("/", Some("/users/42"), true, "/users/42/x", "/x"),
            ("/base/", Some("/re/123"), true, "/re/123", "/base"),
        ];
        for (svc, matched, strip, req, want) in cases {
            assert_eq!(upstream_path(Some(svc), req, matched, strip), want, "{svc} {matched:?} strip={strip} {req}");
        }
        assert_eq!(upstream_path(None, "/bar/baz", Some("/bar"), true), "/baz", "no service path is the root");
    }

    /// A prefix that ends inside a dot segment leaves no climb: Kong's sanitize_uri_postfix.
    #[test]
    fn a_remainder_that_begins_with_a_dot_segment_loses_it() {
        assert_eq!(upstream_path(Some("/echo"), "/foo../x", Some("/foo"), true), "/echo/x");
        assert_eq!(upstream_path(Some("/echo/"), "/foo./x", Some("/foo"), true), "/echo/x");
        assert_eq!(upstream_path(Some("/echo"), "/foo..", Some("/foo"), true), "/echo");
        assert_eq!(upstream_path(Some("/echo"), "/foo.", Some("/foo"), true), "/echo");
        assert_eq!(upstream_path(Some("/echo"), "/foo..x", Some("/foo"), true), "/echo/..x");
    }

    #[test]
    fn query_strings_pass_through() {
        assert_eq!(upstream_target("/a", Some("x=1&y=2")), "/a?x=1&y=2");
        assert_eq!(upstream_target("/a", Some("")), "/a");
        assert_eq!(upstream_target("/a", None), "/a");
    }
}
