//! A client's response's fields beside its status: those the upstream sent, as they came
//! (`RawFields`, readied by `headers::filter_response`), then those the gateway adds, as
//! Kong does: Via and Server, the latencies, the request id, and the rate limit's. All are
//! written straight into the response's head (`TailFields`) on the server's own path:
//! put in a HeaderMap, they would cost a hashed insert each on every request.

use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName, HeaderValue, SERVER, VIA};

use super::context::RequestContext;
use super::h1::RawFields;
use super::headers::{UpstreamSent, PROXY_LATENCY, REQUEST_ID, RESPONSE_LATENCY, SERVER as SERVER_TOKEN, UPSTREAM_LATENCY, VIA_TOKEN};
use crate::http::fields::write_field;
use crate::http::TailFields;
use crate::plugins::rate_limit_fields::RateLimitFields;

pub struct GatewayFields {
    /// The upstream's fields; none for a response the gateway made.
    upstream: RawFields,
    /// Whether the upstream's fields include a Date.
    upstream_date: bool,
    request_id: HeaderValue,
    /// Ours alone: an upstream's Via has our token appended in its own field instead.
    via: bool,
    /// Only where the upstream sent none: a proxied response keeps the upstream's Server.
    server: bool,
    upstream_latency_ms: Option<u64>,
    proxy_latency_ms: Option<u64>,
    response_latency_ms: Option<u64>,
    rate_limit: Option<RateLimitFields>,
}

impl GatewayFields {
    /// For a response passed on from the upstream, whose fields `filter_response` readied
    /// (`sent` is what it found).
    pub fn proxied(ctx: &mut RequestContext, upstream: RawFields, sent: UpstreamSent, upstream_latency: Duration, proxy_latency: Duration) -> Self {
        GatewayFields {
            upstream,
            upstream_date: sent.date,
            request_id: ctx.request_id_header.clone(),
            via: !sent.via,
            server: !sent.server,
            upstream_latency_ms: Some(millis(upstream_latency)),
            proxy_latency_ms: Some(millis(proxy_latency)),
            response_latency_ms: None,
            rate_limit: ctx.rate_limit_fields.take(),
        }
    }

    /// For a response the gateway made itself (404, 401, 429, 502...): Server and the
    /// response latency instead of Via and the other two, as Kong's. The rate limit's
    /// fields are left out if the response has its own (a refusal's).
    pub fn generated(ctx: &mut RequestContext, response: &HeaderMap) -> Self {
        let rate_limit = ctx.rate_limit_fields.take().filter(|fields| !fields.any_in(response));
        GatewayFields {
            upstream: RawFields::default(),
            upstream_date: false,
            request_id: ctx.request_id_header.clone(),
            via: false,
            server: !response.contains_key(SERVER),
            upstream_latency_ms: None,
            proxy_latency_ms: None,
            response_latency_ms: Some(millis(ctx.started().elapsed())),
            rate_limit,
        }
    }

    fn latencies(&self) -> [(&'static HeaderName, Option<u64>); 3] {
        [(&UPSTREAM_LATENCY, self.upstream_latency_ms), (&PROXY_LATENCY, self.proxy_latency_ms), (&RESPONSE_LATENCY, self.response_latency_ms)]
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl TailFields for GatewayFields {
    fn write_into(&self, head: &mut Vec<u8>) {
        self.upstream.write_into(head);
        if self.via {
            write_field(head, VIA.as_str().as_bytes(), VIA_TOKEN.as_bytes());
        }
        if self.server {
            write_field(head, SERVER.as_str().as_bytes(), SERVER_TOKEN.as_bytes());
        }
        for (name, ms) in self.latencies() {
            if let Some(ms) = ms {
                write_field(head, name.as_str().as_bytes(), itoa::Buffer::new().format(ms).as_bytes());
            }
        }
        write_field(head, REQUEST_ID.as_str().as_bytes(), self.request_id.as_bytes());
        if let Some(fields) = &self.rate_limit {
            fields.write_into(head);
        }
    }

    fn add_to(self, headers: &mut HeaderMap) {
        self.upstream.append_to(headers);
        if self.via {
            headers.insert(VIA, HeaderValue::from_static(VIA_TOKEN));
        }
        if self.server {
            headers.insert(SERVER, HeaderValue::from_static(SERVER_TOKEN));
        }
        for (name, ms) in self.latencies() {
            if let Some(ms) = ms {
                headers.insert(name.clone(), HeaderValue::from(ms));
            }
        }
        headers.insert(REQUEST_ID.clone(), self.request_id);
        if let Some(fields) = &self.rate_limit {
            fields.add_to(headers);
        }
    }

    fn has_date(&self) -> bool {
        self.upstream_date
    }
}

#[cfg(test)]
#[path = "response_fields_tests.rs"]
mod tests;
