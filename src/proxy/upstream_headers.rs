//! The header fields a proxied request carries upstream, as Kong sets them: the client's
//! fields minus hop-by-hop ones and those the gateway owns, then the gateway's own (Host,
//! X-Forwarded-*, X-Real-IP, Via, the request id). They are written straight onto the
//! upstream connection: composing them in the request's header map first cost a hashed
//! insert or removal per field on every request.

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, HOST, VIA};

use super::consumer_fields::{self, ConsumerFields};
use super::h1::{write_field, HeadFields};
use super::headers::{ip_value, is_hop_by_hop, named_by_connection, REQUEST_ID, VIA_TOKEN};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PATH: HeaderName = HeaderName::from_static("x-forwarded-path");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Fields the gateway sets itself: a client's are dropped (X-Forwarded-For and Via are
/// extended instead). Incoming X-Forwarded-Proto/Host/Port are not trusted (no
/// trusted_ips yet): ours replace them, as Kong does for untrusted clients.
static OWNED: [&HeaderName; 8] = [&HOST, &X_REAL_IP, &X_FORWARDED_PROTO, &X_FORWARDED_HOST, &X_FORWARDED_PORT, &X_FORWARDED_PATH, &X_FORWARDED_PREFIX, &REQUEST_ID];

/// What the upstream learns about the original request.
pub struct UpstreamHeaders<'a> {
    /// The client's fields, after the plugins (key-auth may have hidden the credential).
    pub client: &'a HeaderMap,
    pub client_addr: std::net::SocketAddr,
    /// The service's Host, unless the route preserves the client's.
    pub upstream_host: Option<&'a HeaderValue>,
    pub preserve_host: bool,
    pub proxy_port: &'a HeaderValue,
    /// The path the client asked for.
    pub path: &'a str,
    /// The matched prefix, when the route stripped one (Kong's X-Forwarded-Prefix).
    pub prefix: Option<&'a str>,
    pub request_id: &'a HeaderValue,
    /// The consumer an auth plugin found: its fields replace any the client sent.
    pub consumer: Option<&'a ConsumerFields>,
}

impl HeadFields for UpstreamHeaders<'_> {
    fn write_fields(&self, out: &mut Vec<u8>) {
        let named_by_connection = named_by_connection(self.client);
        // Every line of each, in order: a nearer proxy appends a line of its own.
        let (mut forwarded_for, mut via) = (Vec::new(), Vec::new());
        // Content-Length is left out with the hop-by-hop fields: the encoder writes the
        // body's framing from the body itself (see `h1::encode::BodyFraming`).
        for (name, value) in self.client {
            if name == X_FORWARDED_FOR {
                forwarded_for.push(value);
            } else if name == VIA {
                via.push(value);
            } else if !(is_hop_by_hop(name)
                || name == CONTENT_LENGTH
                || OWNED.contains(&name)
                || named_by_connection.contains(name)
                || (self.consumer.is_some() && consumer_fields::is_consumer_field(name)))
            {
                write_field(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        let client_host = self.client.get(HOST);
        let host = match (client_host, self.upstream_host) {
            (Some(client), _) if self.preserve_host => Some(client),
            (client, upstream) => upstream.or(client),
        };
        if let Some(host) = host {
            write_field(out, b"host", host.as_bytes());
        }
        let ip = ip_value(self.client_addr.ip());
        write_appended(out, b"x-forwarded-for", &forwarded_for, ip.as_bytes());
        write_field(out, b"x-real-ip", ip.as_bytes());
        write_field(out, b"x-forwarded-proto", b"http");
        if let Some(host) = client_host.map(HeaderValue::as_bytes) {
            write_field(out, b"x-forwarded-host", without_port(host));
        }
        write_field(out, b"x-forwarded-port", self.proxy_port.as_bytes());
        write_field(out, b"x-forwarded-path", self.path.as_bytes());
        if let Some(prefix) = self.prefix.filter(|p| *p != "/" && !p.is_empty()) {
            write_field(out, b"x-forwarded-prefix", prefix.as_bytes());
        }
        write_appended(out, b"via", &via, VIA_TOKEN.as_bytes());
        write_field(out, REQUEST_ID.as_str().as_bytes(), self.request_id.as_bytes());
        if let Some(consumer) = self.consumer {
            consumer.write(out);
        }
    }

    fn has_content_length(&self) -> bool {
        self.client.contains_key(CONTENT_LENGTH)
    }
}

/// `name: earlier, lines, ours`: the client's lines of a list field, then our entry.
fn write_appended(out: &mut Vec<u8>, name: &[u8], earlier: &[&HeaderValue], ours: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for line in earlier.iter().map(|v| v.as_bytes().trim_ascii()).filter(|v| !v.is_empty()) {
        out.extend_from_slice(line);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(ours);
    out.extend_from_slice(b"\r\n");
}

/// A Host value without its port (`[v6]:port` keeps its brackets).
fn without_port(host: &[u8]) -> &[u8] {
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) if std::str::from_utf8(&host[colon + 1..]).is_ok_and(|port| port.parse::<u16>().is_ok()) => &host[..colon],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::headers::map;

    fn upstream_headers<'a>(client: &'a HeaderMap, upstream_host: Option<&'a HeaderValue>, preserve_host: bool) -> UpstreamHeaders<'a> {
        static PORT: HeaderValue = HeaderValue::from_static("8000");
        static ID: HeaderValue = HeaderValue::from_static("0123abcd");
        UpstreamHeaders { client, client_addr: "127.0.0.9:5555".parse().unwrap(), upstream_host, preserve_host, proxy_port: &PORT, path: "/a/b", prefix: Some("/a"), request_id: &ID, consumer: None }
    }

    /// The fields as written, in order, as (name, value) pairs.
    fn written(fields: &UpstreamHeaders<'_>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        fields.write_fields(&mut out);
        String::from_utf8(out)
            .unwrap()
            .split_terminator("\r\n")
            .map(|line| {
                let (name, value) = line.split_once(": ").unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect()
    }

    fn values<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        fields.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_stay_behind() {
        let client = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("x-keep", "1"),
        ]);
        let fields = written(&upstream_headers(&client, None, false));
        // The body's framing is written by the encoder, from the body (h1::encode).
        for gone in ["connection", "x-secret", "te", "keep-alive", "transfer-encoding", "content-length"] {
            assert!(values(&fields, gone).is_empty(), "{gone} was forwarded: {fields:?}");
        }
        assert_eq!(values(&fields, "x-keep"), ["1"]);
    }

    #[test]
    fn forwarding_fields_extend_xff_and_via_and_replace_the_rest() {
        let client = map(&[
            ("host", "api.test:8000"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-prefix", "/spoofed"),
            ("x-real-ip", "6.6.6.6"),
            ("x-kong-request-id", "spoofed"),
            ("via", "1.1 lb"),
        ]);
        let fields = written(&upstream_headers(&client, None, false));
        assert_eq!(values(&fields, "x-forwarded-for"), ["10.0.0.1, 10.0.0.2, 127.0.0.9"], "every earlier line, in order");
        assert_eq!(values(&fields, "x-real-ip"), ["127.0.0.9"]);
        assert_eq!(values(&fields, "x-forwarded-proto"), ["http"]);
        assert_eq!(values(&fields, "x-forwarded-host"), ["api.test"]);
        assert_eq!(values(&fields, "x-forwarded-port"), ["8000"]);
        assert_eq!(values(&fields, "x-forwarded-path"), ["/a/b"]);
        assert_eq!(values(&fields, "x-forwarded-prefix"), ["/a"]);
        assert_eq!(values(&fields, "via"), [format!("1.1 lb, {VIA_TOKEN}").as_str()]);
        assert_eq!(values(&fields, "x-kong-request-id"), ["0123abcd"]);
        assert_eq!(values(&fields, "host"), ["api.test:8000"], "no service host: the client's goes on");
    }

    #[test]
    fn a_consumer_found_replaces_every_consumer_field_the_client_sent() {
        use crate::model::{create, Consumer};
        use crate::proxy::consumer_fields::{ConsumerFields, ConsumerValues};
        let client = map(&[
            ("x-consumer-id", "forged"),
            ("x-consumer-custom-id", "forged"),
            ("x-anonymous-consumer", "true"),
            // Read as X-Consumer-Username by CGI-style upstreams.
            ("X-Consumer_Username", "forged"),
            ("x_credential_identifier", "forged"),
            ("x-keep", "1"),
            ("x_keep", "1"),
        ]);
        let consumer: Consumer = create(&serde_json::json!({"username": "alice"}), 1.0).unwrap();
        let found = ConsumerFields { values: std::sync::Arc::new(ConsumerValues::new(&consumer, None)), anonymous: false };
        let mut fields = upstream_headers(&client, None, false);
        fields.consumer = Some(&found);
        let fields = written(&fields);
        assert_eq!(values(&fields, "x-consumer-id"), [consumer.id.to_string().as_str()]);
        assert_eq!(values(&fields, "x-consumer-username"), ["alice"]);
        for gone in ["x-consumer-custom-id", "x-anonymous-consumer", "x-credential-identifier", "x-consumer_username", "x_credential_identifier"] {
            assert!(values(&fields, gone).is_empty(), "{gone}: {fields:?}");
        }
        assert_eq!(values(&fields, "x-keep"), ["1"]);
        assert_eq!(values(&fields, "x_keep"), ["1"], "other names with underscores pass");
        // Without an auth plugin, the client's fields pass as any others.
        let fields = written(&upstream_headers(&client, None, false));
        assert_eq!(values(&fields, "x-consumer-id"), ["forged"]);
    }

    #[test]
    fn a_first_hop_gets_fresh_forwarding_fields() {
        let fields = written(&upstream_headers(&HeaderMap::new(), None, false));
        assert_eq!(values(&fields, "x-forwarded-for"), ["127.0.0.9"]);
        assert_eq!(values(&fields, "via"), [VIA_TOKEN]);
        assert!(values(&fields, "x-forwarded-host").is_empty());
        assert!(values(&fields, "host").is_empty());
    }

    #[test]
    fn host_goes_to_the_upstream_unless_preserved() {
        let client = map(&[("host", "client.test")]);
        let service = HeaderValue::from_static("10.0.0.5:9000");
        assert_eq!(values(&written(&upstream_headers(&client, Some(&service), false)), "host"), ["10.0.0.5:9000"]);
        assert_eq!(values(&written(&upstream_headers(&client, Some(&service), true)), "host"), ["client.test"]);
        // Preserving a Host the client did not send falls back to the service's.
        assert_eq!(values(&written(&upstream_headers(&HeaderMap::new(), Some(&service), true)), "host"), ["10.0.0.5:9000"]);
    }

    #[test]
    fn ports_come_off_forwarded_hosts_but_not_ipv6_addresses() {
        assert_eq!(without_port(b"api.test:8000"), b"api.test");
        assert_eq!(without_port(b"api.test"), b"api.test");
        assert_eq!(without_port(b"[::1]:8000"), b"[::1]");
        assert_eq!(without_port(b"[::1]"), b"[::1]");
        assert_eq!(without_port(b"api.test:"), b"api.test:");
    }
}
