//! Header rules of the proxy, as Kong applies them: hop-by-hop headers never cross, and
//! the gateway's own fields replace an upstream's of the same names. (The fields a
//! request carries upstream are written by `upstream_headers`, those the gateway adds to
//! a response by `response_fields`.)

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};

use super::h1::RawFields;
use crate::plugins::rate_limit_fields::RateLimitFields;

/// Our Via token, for `VIA_TOKEN` and `VIA_SUFFIX` both.
macro_rules! via_token {
    () => {
        concat!("1.1 gatehouse/", env!("CARGO_PKG_VERSION"))
    };
}

pub const VIA_TOKEN: &str = via_token!();

// Names set on every response, parsed once: parsing them per request showed in profiles.
pub const SERVER: &str = concat!("gatehouse/", env!("CARGO_PKG_VERSION"));
pub static UPSTREAM_LATENCY: HeaderName = HeaderName::from_static("x-kong-upstream-latency");
pub static PROXY_LATENCY: HeaderName = HeaderName::from_static("x-kong-proxy-latency");
pub static RESPONSE_LATENCY: HeaderName = HeaderName::from_static("x-kong-response-latency");
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-kong-request-id");

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

/// The field names in one Connection value: its tokens but the usual `close` and
/// `keep-alive`, which name no other field.
fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive"))
}

/// Header names a message's Connection field lists, hop-by-hop by RFC 9110 §7.6.1. The
/// usual tokens name no other field: no allocation for them.
pub(super) fn named_by_connection(headers: &HeaderMap) -> Vec<HeaderName> {
    headers.get_all(CONNECTION).iter().flat_map(|v| connection_tokens(v.as_bytes())).filter_map(|t| HeaderName::from_bytes(t).ok()).collect()
}

/// What an upstream's response carried of the fields the gateway adds itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamSent {
    pub via: bool,
    pub server: bool,
    pub date: bool,
}

/// Our Via token as it follows an upstream's Via.
const VIA_SUFFIX: &str = concat!(", ", via_token!());

/// Fields of an upstream's response never passed on beside the hop-by-hop ones: framing
/// (the client's head is framed anew), and the gateway's own, which replace them.
static ALSO_NOT_PASSED_ON: [&HeaderName; 4] = [&CONTENT_LENGTH, &UPSTREAM_LATENCY, &PROXY_LATENCY, &REQUEST_ID];

/// Readies an upstream response's fields for the client in one pass: hop-by-hop ones and
/// those in `ALSO_NOT_PASSED_ON`, any the Connection field names, and the rate limit's (which replace
/// them) go. An upstream's Via gets our token appended; the caller adds Via, Server and
/// Date where none came.
pub fn filter_response(fields: &mut RawFields, rate_limit: Option<&RateLimitFields>) -> UpstreamSent {
    // Owned, since the fields change below; nothing allocated for the usual tokens.
    let named: Vec<Vec<u8>> = fields.values("connection").flat_map(connection_tokens).map(<[u8]>::to_vec).collect();
    let mut sent = UpstreamSent::default();
    fields.retain(|name, _| {
        let is = |lower: &str| name.eq_ignore_ascii_case(lower.as_bytes());
        if is("via") {
            sent.via = true;
        } else if is("server") {
            sent.server = true;
        } else if is("date") {
            sent.date = true;
        } else if HOP_BY_HOP.iter().chain(&ALSO_NOT_PASSED_ON).any(|n| is(n.as_str())) || rate_limit.is_some_and(|r| r.includes(name)) || named.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return false;
        }
        true
    });
    if sent.via {
        fields.suffix_last("via", VIA_SUFFIX);
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
    fn hop_by_hop_and_framing_fields_and_those_connection_names_are_dropped() {
        let mut fields = RawFields::of_head("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nx-secret: 1\r\nTE: trailers\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nKeep-Alive: 5\r\nX-Keep: 1\r\n\r\n");
        assert_eq!(filter_response(&mut fields, None), UpstreamSent::default());
        assert_eq!(fields.written(), "X-Keep: 1\r\n");
    }

    #[test]
    fn fields_the_gateway_writes_are_dropped_from_the_upstreams_and_its_via_server_and_date_are_reported() {
        use crate::plugins::rate_limit_fields::PeriodOutcome;
        use crate::ratelimit::window::Period;
        let limited = RateLimitFields::new([PeriodOutcome { period: Period::Minute, limit: 5, remaining: 4, reset: 1 }].into_iter().collect());
        let head = "HTTP/1.1 200 OK\r\nx-kong-request-id: forged\r\nX-Kong-Upstream-Latency: 1\r\nx-kong-proxy-latency: 1\r\n\
                    RateLimit-Limit: 100\r\nx-ratelimit-remaining-minute: 7\r\nx-ratelimit-remaining-second: 8\r\nServer: upstream/1\r\n\
                    Via: 1.0 cache\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
        let mut fields = RawFields::of_head(head);
        assert_eq!(filter_response(&mut fields, Some(&limited)), UpstreamSent { via: true, server: true, date: true });
        let expected = format!("x-ratelimit-remaining-second: 8\r\nServer: upstream/1\r\nVia: 1.0 cache, {VIA_TOKEN}\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
        assert_eq!(fields.written(), expected);
        // Without a rate limit on the route, an upstream's rate-limit fields pass.
        let mut fields = RawFields::of_head(head);
        filter_response(&mut fields, None);
        assert!(fields.written().starts_with("RateLimit-Limit: 100\r\n"));
    }
}
