//! Header rules of the proxy, as Kong applies them: hop-by-hop headers never cross, and
//! the client's response gets Via and the latency headers. (The fields a request carries
//! upstream are written by `upstream_headers`.)

use std::net::IpAddr;

use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, VIA,
};

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

/// Drops hop-by-hop headers, including any the Connection header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none, or just Connection: one pass over the names present
    // costs less than a hashed removal of each of the nine.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == name) {
            present[i] = true;
            any = true;
        }
    }
    if !any {
        return;
    }
    if present[0] {
        for name in named_by_connection(headers) {
            headers.remove(name);
        }
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(*name);
        }
    }
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

/// A duration in whole milliseconds as a header value; the usual few come from a table,
/// without the allocation formatting one takes.
pub fn millis_value(d: std::time::Duration) -> HeaderValue {
    static SMALL: [HeaderValue; 10] = [
        HeaderValue::from_static("0"),
        HeaderValue::from_static("1"),
        HeaderValue::from_static("2"),
        HeaderValue::from_static("3"),
        HeaderValue::from_static("4"),
        HeaderValue::from_static("5"),
        HeaderValue::from_static("6"),
        HeaderValue::from_static("7"),
        HeaderValue::from_static("8"),
        HeaderValue::from_static("9"),
    ];
    let ms = d.as_millis();
    match usize::try_from(ms).ok().and_then(|i| SMALL.get(i)) {
        Some(v) => v.clone(),
        None => HeaderValue::from(u64::try_from(ms).unwrap_or(u64::MAX)),
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
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none() && h.get("te").is_none() && h.get("connection").is_none());
        assert_eq!(h.get("x-keep").unwrap(), "1");
    }

    #[test]
    fn milliseconds_print_as_integers() {
        use std::time::Duration;
        for (d, text) in [(Duration::ZERO, "0"), (Duration::from_micros(9_999), "9"), (Duration::from_millis(10), "10"), (Duration::from_secs(61), "61000")] {
            assert_eq!(millis_value(d), text);
        }
    }
}
