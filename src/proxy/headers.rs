//! Header rules of the proxy, as Kong applies them: hop-by-hop headers never cross,
//! X-Forwarded-* and Via are added for the upstream, latency headers for the client.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

pub const VIA_TOKEN: &str = concat!("1.1 gatehouse/", env!("CARGO_PKG_VERSION"));

// Names set on every request, parsed once: parsing them per request showed in profiles.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PATH: HeaderName = HeaderName::from_static("x-forwarded-path");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
static VIA: HeaderName = HeaderName::from_static("via");
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
        let named: Vec<HeaderName> = headers
            .get_all(&CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            // The usual tokens name no other header (keep-alive goes below anyway).
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(*name);
        }
    }
}

/// What the upstream learns about the original request.
pub struct Forwarded<'a> {
    pub client: SocketAddr,
    /// The Host the client asked for (with its port, if any).
    pub host: Option<&'a str>,
    pub proxy_port: &'a HeaderValue,
    pub path: &'a str,
    /// The matched prefix, when the route stripped one (Kong's X-Forwarded-Prefix).
    pub prefix: Option<&'a str>,
}

/// Sets X-Forwarded-*, X-Real-IP and Via. Incoming X-Forwarded-Proto/Host/Port are not
/// trusted (no trusted_ips yet): ours replace them, as Kong does for untrusted clients.
pub fn add_forwarding(headers: &mut HeaderMap, f: &Forwarded<'_>) {
    let ip = ip_value(f.client.ip());
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => HeaderValue::from_str(&format!("{prev}, {}", f.client.ip())).ok(),
        _ => Some(ip.clone()),
    };
    if let Some(xff) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), xff);
    }
    headers.insert(X_REAL_IP.clone(), ip);
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(host) = f.host {
        set(headers, &X_FORWARDED_HOST, host.rsplit_once(':').map_or(host, |(h, p)| if p.parse::<u16>().is_ok() { h } else { host }));
    }
    headers.insert(X_FORWARDED_PORT.clone(), f.proxy_port.clone());
    set(headers, &X_FORWARDED_PATH, f.path);
    match f.prefix.filter(|p| *p != "/" && !p.is_empty()) {
        Some(prefix) => set(headers, &X_FORWARDED_PREFIX, prefix),
        None => {
            headers.remove(&X_FORWARDED_PREFIX);
        }
    }
    append_via(headers);
}

/// The client's address as a header value: made once, it goes into two headers. The last
/// one is kept per thread, since a connection's requests all come from one address and
/// formatting it showed in profiles.
fn ip_value(ip: IpAddr) -> HeaderValue {
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

/// Appends our token to Via (request or response).
pub fn append_via(headers: &mut HeaderMap) {
    match headers.get(&VIA).and_then(|v| v.to_str().ok()) {
        Some(prev) => {
            let via = format!("{prev}, {VIA_TOKEN}");
            set(headers, &VIA, &via);
        }
        None => {
            headers.insert(VIA.clone(), HeaderValue::from_static(VIA_TOKEN));
        }
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

/// Points Host at the upstream unless the route preserves the client's Host.
pub fn set_upstream_host(headers: &mut HeaderMap, upstream_host: &HeaderValue, preserve_host: bool) {
    if !preserve_host || !headers.contains_key(HOST) {
        headers.insert(HOST, upstream_host.clone());
    }
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut h = map(&[("connection", "keep-alive, x-secret"), ("x-secret", "1"), ("te", "trailers"), ("x-keep", "1")]);
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none() && h.get("te").is_none() && h.get("connection").is_none());
        assert_eq!(h.get("x-keep").unwrap(), "1");
    }

    #[test]
    fn forwarding_headers_extend_xff_and_replace_the_rest() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1"), ("x-forwarded-proto", "https"), ("via", "1.1 lb")]);
        let f = Forwarded { client: "127.0.0.9:5555".parse().unwrap(), host: Some("api.test:8000"), proxy_port: &HeaderValue::from_static("8000"), path: "/a/b", prefix: Some("/a") };
        add_forwarding(&mut h, &f);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.9");
        assert_eq!(h.get("x-real-ip").unwrap(), "127.0.0.9");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "api.test");
        assert_eq!(h.get("x-forwarded-port").unwrap(), "8000");
        assert_eq!(h.get("x-forwarded-path").unwrap(), "/a/b");
        assert_eq!(h.get("x-forwarded-prefix").unwrap(), "/a");
        assert_eq!(h.get("via").unwrap(), &format!("1.1 lb, {VIA_TOKEN}"));
    }

    #[test]
    fn host_goes_to_the_upstream_unless_preserved() {
        let mut h = map(&[("host", "client.test")]);
        set_upstream_host(&mut h, &HeaderValue::from_static("10.0.0.5:9000"), false);
        assert_eq!(h.get("host").unwrap(), "10.0.0.5:9000");
        let mut h = map(&[("host", "client.test")]);
        set_upstream_host(&mut h, &HeaderValue::from_static("10.0.0.5:9000"), true);
        assert_eq!(h.get("host").unwrap(), "client.test");
    }

    #[test]
    fn milliseconds_print_as_integers() {
        use std::time::Duration;
        for (d, text) in [(Duration::ZERO, "0"), (Duration::from_micros(9_999), "9"), (Duration::from_millis(10), "10"), (Duration::from_secs(61), "61000")] {
            assert_eq!(millis_value(d), text);
        }
    }
}
