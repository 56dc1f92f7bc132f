//! Which methods each Admin API path takes, as Kong's router lists them: the `Allow`
//! answer to OPTIONS (Kong adds HEAD wherever GET is served, and OPTIONS everywhere).
//! `server::route` answers 405 to a method left out of its path's list before any
//! handler runs, as Kong's router does; a black-box test
//! (`cluster-tests/tests/admin_methods.rs`) checks that the handlers serve the rest.

use hyper::header::{HeaderValue, ALLOW};
use hyper::{HeaderMap, Response, StatusCode};

use crate::http::{empty, Body};

/// A collection: list and create.
const COLLECTION: &str = "GET, HEAD, OPTIONS, POST";
/// One entity, or the entity another refers to (whose DELETE Kong answers with 405).
const ENTITY: &str = "DELETE, GET, HEAD, OPTIONS, PATCH, PUT";
const READ: &str = "GET, HEAD, OPTIONS";
/// An operator's verdict on a target: PUT as Kong 3 takes it, POST as Kong 2 did.
const VERDICT: &str = "OPTIONS, POST, PUT";
/// An action (leaving the cluster, a validation).
const ACTION: &str = "OPTIONS, POST";

/// Kong's sorted list of the methods `segs` takes, or `None` when no endpoint is there.
/// HEAD is served as GET, so the list names it wherever it names GET.
pub fn allowed(segs: &[&str]) -> Option<&'static str> {
    let list = match segs {
        [] | ["status"] | ["cluster"] | ["cluster", "members"] | ["metrics"] => READ,
        ["cluster", "leave"] => ACTION,
        ["cluster", "members", _] => "DELETE, OPTIONS",
        ["config"] => COLLECTION,
        ["tags"] | ["tags", _] => READ,
        ["schemas", _, "validate"] => ACTION,
        ["schemas", _] | ["schemas", "plugins", _] => READ,

        ["services" | "routes" | "upstreams" | "consumers" | "plugins" | "key-auths"] => COLLECTION,
        ["plugins", "enabled"] | ["plugins", "schema", _] => READ,
        ["services" | "routes" | "upstreams" | "consumers" | "plugins" | "key-auths", _] => ENTITY,
        ["services", _, "routes" | "plugins"] | ["routes", _, "plugins"] | ["upstreams", _, "targets"] | ["consumers", _, "key-auth" | "plugins"] => COLLECTION,
        ["services", _, "routes" | "plugins", _] | ["routes", _, "plugins", _] | ["consumers", _, "key-auth" | "plugins", _] => ENTITY,
        ["upstreams", _, "targets", "all"] => READ,
        ["upstreams", _, "targets", _] => ENTITY,
        ["routes", _, "service"] | ["plugins", _, "route" | "service" | "consumer"] | ["key-auths", _, "consumer"] => ENTITY,
        ["upstreams", _, "health"] => READ,
        ["upstreams", _, "targets", _, "healthy" | "unhealthy"] | ["upstreams", _, "targets", _, _, "healthy" | "unhealthy"] => VERDICT,
        _ => return None,
    };
    Some(list)
}

/// Whether `method` is in `list`.
pub fn lists(list: &str, method: &hyper::Method) -> bool {
    list.split(", ").any(|m| m == method.as_str())
}

/// Kong's answer to OPTIONS on an endpoint: 204, the methods it takes, and the request
/// fields a browser may send (those it asked for, else Content-Type).
pub fn options(list: &'static str, request: &HeaderMap) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let headers = resp.headers_mut();
    headers.insert(ALLOW, HeaderValue::from_static(list));
    headers.insert("access-control-allow-methods", HeaderValue::from_static(list));
    let asked = request.get("access-control-request-headers").cloned();
    headers.insert("access-control-allow-headers", asked.unwrap_or(HeaderValue::from_static("Content-Type")));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_path_has_kongs_list() {
        assert_eq!(allowed(&["services"]), Some(COLLECTION));
        assert_eq!(allowed(&["services", "s"]), Some(ENTITY));
        assert_eq!(allowed(&["services", "s", "routes", "r"]), Some(ENTITY));
        assert_eq!(allowed(&["upstreams", "u", "targets", "all"]), Some(READ));
        assert_eq!(allowed(&["upstreams", "u", "targets", "t", "10.0.0.1:80", "healthy"]), Some(VERDICT));
        assert_eq!(allowed(&["key-auths"]), Some(COLLECTION));
        assert_eq!(allowed(&["targets"]), None);
        assert_eq!(allowed(&["services", "s", "nope"]), None);
    }

    #[test]
    fn options_echoes_the_fields_asked_for() {
        let mut asked = HeaderMap::new();
        asked.insert("access-control-request-headers", HeaderValue::from_static("Content-Type, Kong-Admin-Token"));
        let resp = options(READ, &asked);
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(resp.headers()[ALLOW], READ);
        assert_eq!(resp.headers()["access-control-allow-headers"], "Content-Type, Kong-Admin-Token");
        assert_eq!(options(READ, &HeaderMap::new()).headers()["access-control-allow-headers"], "Content-Type");
    }
}
