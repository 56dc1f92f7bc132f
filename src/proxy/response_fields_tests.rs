use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::http::TailFields;
use crate::plugins::rate_limit_fields::PeriodOutcome;
use crate::ratelimit::window::Period;

fn context() -> RequestContext {
    let mut ctx = RequestContext::new(SocketAddr::from(([127, 0, 0, 1], 5000)));
    ctx.started_by(Instant::now() - Duration::from_millis(1500));
    let minute = PeriodOutcome { period: Period::Minute, limit: 5, remaining: 4, reset: 30 };
    ctx.rate_limit_fields = Some(RateLimitFields::new([minute].into_iter().collect()));
    ctx
}

/// The fields as the own path writes them, in order.
fn written(fields: &GatewayFields) -> Vec<(String, String)> {
    let mut head = Vec::new();
    fields.write_into(&mut head);
    let text = String::from_utf8(head).unwrap();
    assert!(text.ends_with("\r\n"), "{text:?}");
    text.split_terminator("\r\n").map(|line| line.split_once(": ").map(|(n, v)| (n.to_owned(), v.to_owned())).expect(line)).collect()
}

/// The fields as hyper's path puts them in the map, sorted.
fn added(fields: GatewayFields) -> Vec<(String, String)> {
    let mut map = HeaderMap::new();
    fields.add_to(&mut map);
    let mut pairs: Vec<(String, String)> = map.iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned())).collect();
    pairs.sort();
    pairs
}

fn sorted(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort();
    pairs
}

#[test]
fn a_proxied_response_gets_via_server_both_latencies_the_request_id_and_the_rate_limits_fields() {
    let mut ctx = context();
    let id = ctx.request_id().to_owned();
    let fields = GatewayFields::proxied(&mut ctx, RawFields::default(), UpstreamSent::default(), Duration::from_micros(12_999), Duration::from_millis(3));
    assert!(!fields.has_date());
    assert!(ctx.rate_limit_fields.is_none(), "the rate limit's fields move into the response");
    let expected = [
        ("via", VIA_TOKEN),
        ("server", SERVER_TOKEN),
        ("x-kong-upstream-latency", "12"),
        ("x-kong-proxy-latency", "3"),
        ("x-kong-request-id", id.as_str()),
        ("x-ratelimit-limit-minute", "5"),
        ("x-ratelimit-remaining-minute", "4"),
        ("ratelimit-limit", "5"),
        ("ratelimit-remaining", "4"),
        ("ratelimit-reset", "30"),
    ]
    .map(|(n, v)| (n.to_owned(), v.to_owned()));
    assert_eq!(written(&fields), expected);
    assert_eq!(added(fields), sorted(expected.to_vec()));
}

#[test]
fn the_upstreams_fields_come_first_and_its_via_server_and_date_are_not_written_again() {
    let head = "HTTP/1.1 200 OK\r\nServer: up\r\nVia: 1.0 cache\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nX-A: 1\r\n\r\n";
    let mut upstream = RawFields::of_head(head);
    let sent = crate::proxy::headers::filter_response(&mut upstream, None);
    let mut ctx = context();
    let fields = GatewayFields::proxied(&mut ctx, upstream, sent, Duration::ZERO, Duration::ZERO);
    assert!(fields.has_date());
    let pairs = written(&fields);
    let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..7], ["Server", "Via", "Date", "X-A", "x-kong-upstream-latency", "x-kong-proxy-latency", "x-kong-request-id"]);
    assert_eq!(pairs[1].1, format!("1.0 cache, {VIA_TOKEN}"));
    assert_eq!(names.len(), 12, "and the rate limit's five");
    let mut from_head: Vec<(String, String)> = pairs.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).collect();
    from_head.sort();
    assert_eq!(added(fields), from_head, "hyper's side gets the same fields");
}

#[test]
fn a_generated_response_gets_server_its_latency_and_the_rate_limits_fields_unless_it_has_its_own() {
    let mut ctx = context();
    let mut refusal = HeaderMap::new();
    refusal.insert("ratelimit-remaining", HeaderValue::from_static("0"));
    let with_own = GatewayFields::generated(&mut context(), &refusal);
    assert_eq!(written(&with_own).len(), 3, "a refusal's own rate-limit fields are not written again");
    let fields = GatewayFields::generated(&mut ctx, &HeaderMap::new());
    let pairs = written(&fields);
    let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["server", "x-kong-response-latency", "x-kong-request-id"]);
    assert_eq!(names.len(), 8, "an upstream failure after the rate limit admitted the request carries its fields");
    let latency: u64 = pairs[1].1.parse().unwrap();
    assert!((1500..60_000).contains(&latency), "{latency}");
    assert_eq!(added(fields), sorted(pairs));
}
