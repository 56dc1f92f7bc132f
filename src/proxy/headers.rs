//! Header rules of the proxy, as Kong applies them: hop-by-hop headers never cross, and
//! the gateway's own fields replace an upstream's of the same names. (The fields a
//! request carries upstream are written by `upstream_headers`, those the gateway adds to
//! a response by `response_fields`.)

use std::net::IpAddr;

use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, SERVER as SERVER_FIELD, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE, VIA,
};
use smallvec::SmallVec;

use crate::plugins::rate_limit_fields::RateLimitFields;

pub const VIA_TOKEN: &str = concat!("1.1 gatehouse/", env!("CARGO_PKG_VERSION"));

// Names set on every response, parsed once: parsing them per request showed in profiles.
pub const SERVER: &str = concat!("gatehouse/", env!("CARGO_PKG_VERSION"));
pub static UPSTREAM_LATENCY: HeaderName = HeaderName::from_static("x-gatehouse-upstream-latency");
pub static PROXY_LATENCY: HeaderName = HeaderName::from_static("x-gatehouse-proxy-latency");
pub static RESPONSE_LATENCY: HeaderName = HeaderName::from_static("x-gatehouse-response-latency");
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-gatehouse-request-id");

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// RFC 9110 §7.6.1 plus the de-facto ones proxies drop. Parsed names, not strings: a
/// lookup by string parses the name on every call (twice per proxied request each).
static HOP_BY_HOP: [&HeaderName; 9] = [
    &CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &PROXY_AUTHENTICATE,
    &PROXY_AUTHORIZATION,
    &TE,
    &TRAILER,
    &TRANSFER_ENCODING,
    &UPGRADE,
];

pub(super) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// Header names a message's Connection field lists, hop-by-hop by RFC 9110 §7.6.1. The
/// usual tokens, `close` and `keep-alive`, name no other field: no allocation for them.
pub(super) fn named_by_connection(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut named = Vec::new();
    for value in headers.get_all(CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if token.is_empty() || token.eq_ignore_ascii_case(b"close") || token.eq_ignore_ascii_case(b"keep-alive") {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token) {
                named.push(name);
            }
        }
    }
    named
}

/// What an upstream's response carried of the fields the gateway adds itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamSent {
    pub via: bool,
    pub server: bool,
}

/// Fields of a proxied response the gateway writes itself: an upstream's are replaced.
static GATEWAY_FIELDS: [&HeaderName; 3] = [&UPSTREAM_LATENCY, &PROXY_LATENCY, &REQUEST_ID];

/// Readies an upstream response's fields for the client in one pass over their names
/// (a hashed removal of each name that might be there costs more): hop-by-hop fields
/// go, with any the Connection field names, and so do those the gateway writes itself
/// (its latencies and request id, and the rate limit's), which replace them. An upstream's
/// Via gets our token appended here; the caller adds Via and Server where none came.
pub fn filter_response(headers: &mut HeaderMap, rate_limit: Option<&RateLimitFields>) -> UpstreamSent {
    let mut sent = UpstreamSent::default();
    let mut hop_by_hop = [false; HOP_BY_HOP.len()];
    let mut replaced: SmallVec<[HeaderName; 2]> = SmallVec::new();
    for name in headers.keys() {
        if *name == VIA {
            sent.via = true;
        } else if *name == SERVER_FIELD {
            sent.server = true;
        } else if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == name) {
            hop_by_hop[i] = true;
        } else if GATEWAY_FIELDS.contains(&name) || rate_limit.is_some_and(|fields| fields.includes(name)) {
            replaced.push(name.clone());
        }
    }
    if hop_by_hop[0] {
        for name in named_by_connection(headers) {
            headers.remove(name);
        }
    }
    for (name, present) in HOP_BY_HOP.iter().zip(hop_by_hop) {
        if present {
            headers.remove(*name);
        }
    }
    for name in replaced {
        headers.remove(name);
    }
    if sent.via {
        append_via(headers);
    }
    sent
}

/// The client's address as a header value: made once, it goes into two headers. The last
/// one is kept per thread, since a connection's requests all come from one address and
/// formatting it showed in profiles.
pub(crate) fn ip_value(ip: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((cached, value)) if *cached == ip => value.clone(),
        _ => {
            // From the String itself: no second copy of the bytes.
            let value = HeaderValue::try_from(ip.to_string()).expect("an IP address is a valid header value");
            *last = Some((ip, value.clone()));
            value
        }
    })
}

/// Appends our token to the response's Via.
pub fn append_via(headers: &mut HeaderMap) {
    let via = match headers.get(&VIA).and_then(|v| v.to_str().ok()) {
        Some(prev) => HeaderValue::from_str(&format!("{prev}, {VIA_TOKEN}")).ok(),
        None => Some(HeaderValue::from_static(VIA_TOKEN)),
    };
    if let Some(via) = via {
        headers.insert(VIA, via);
    }
}

/// A header map from name/value pairs, for tests.
#[cfg(test)]
pub(super) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut h = map(&[("connection", "keep-alive, x-secret"), ("x-secret", "1"), ("te", "trailers"), ("x-keep", "1")]);
        assert_eq!(filter_response(&mut h, None), UpstreamSent::default());
        assert!(h.get("x-secret").is_none() && h.get("te").is_none() && h.get("connection").is_none());
        assert_eq!(h.get("x-keep").unwrap(), "1");
    }

    #[test]
    fn fields_the_gateway_writes_are_dropped_from_the_upstreams_and_its_via_and_server_are_reported() {
        use crate::plugins::rate_limit_fields::PeriodOutcome;
        use crate::ratelimit::window::Period;
        let limited = RateLimitFields::new([PeriodOutcome { period: Period::Minute, limit: 5, remaining: 4, reset: 1 }].into_iter().collect());
        let mut h = map(&[
            ("x-gatehouse-request-id", "forged"),
            ("X-Gatehouse-Upstream-Latency", "1"),
            ("x-gatehouse-proxy-latency", "1"),
            ("x-gatehouse-proxy-latency", "2"),
            ("RateLimit-Limit", "100"),
            ("x-ratelimit-remaining-minute", "7"),
            ("x-ratelimit-remaining-second", "8"),
            ("server", "upstream/1"),
            ("via", "1.0 cache"),
        ]);
        assert_eq!(filter_response(&mut h, Some(&limited)), UpstreamSent { via: true, server: true });
        let mut left: Vec<(String, String)> = h.iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned())).collect();
        left.sort();
        let via = format!("1.0 cache, {VIA_TOKEN}");
        let expected = [("server", "upstream/1"), ("via", via.as_str()), ("x-ratelimit-remaining-second", "8")];
        assert_eq!(left, expected.map(|(n, v)| (n.to_owned(), v.to_owned())));
    }
}
