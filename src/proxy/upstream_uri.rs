//! The path sent upstream, by Kong's v0 rules: with strip_path the matched part of the
//! request path is removed, and what remains is appended to the service's path.

/// `matched` is the part of the request path the route matched (prefix or regex).
pub fn upstream_path(service_path: Option<&str>, request_path: &str, matched: Option<&str>, strip_path: bool) -> String {
    let mut rest = match (strip_path, matched) {
        (true, Some(m)) => request_path.strip_prefix(m).unwrap_or(request_path).to_owned(),
        _ => request_path.to_owned(),
    };
    if !rest.starts_with('/') {
        rest.insert(0, '/');
    }
    let base = service_path.unwrap_or("/");
    if base == "/" {
        return rest;
    }
    if rest == "/" {
        return base.to_owned();
    }
    if base.ends_with('/') {
        format!("{base}{}", &rest[1..])
    } else {
        format!("{base}{rest}")
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

    #[test]
    fn kong_v0_cases() {
        let cases = [
            // (service path, request, matched, strip) -> upstream
            (None, "/bar/baz", Some("/bar"), true, "/baz"),
            (None, "/bar/baz", Some("/bar"), false, "/bar/baz"),
            (Some("/foo"), "/bar/baz", Some("/bar"), true, "/foo/baz"),
            (Some("/foo"), "/bar/baz", Some("/bar"), false, "/foo/bar/baz"),
            (Some("/foo"), "/bar", Some("/bar"), true, "/foo"),
            (Some("/foo/"), "/bar", Some("/bar"), true, "/foo/"),
            (Some("/foo/"), "/bar/baz", Some("/bar"), true, "/foo/baz"),
            (Some("/"), "/bar/", Some("/bar"), true, "/"),
            (None, "/bar", Some("/ba"), true, "/r"),
            (None, "/users/42/x", Some("/users/42"), true, "/x"),
            (Some("/api"), "/", None, true, "/api"),
        ];
        for (svc, req, matched, strip, want) in cases {
            assert_eq!(upstream_path(svc, req, matched, strip), want, "{svc:?} {req} {matched:?} strip={strip}");
        }
    }

    #[test]
    fn query_strings_pass_through() {
        assert_eq!(upstream_target("/a", Some("x=1&y=2")), "/a?x=1&y=2");
        assert_eq!(upstream_target("/a", Some("")), "/a");
        assert_eq!(upstream_target("/a", None), "/a");
    }
}
