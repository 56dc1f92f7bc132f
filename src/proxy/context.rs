//! What one proxied request carries through the pipeline's phases.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::HeaderValue;
use uuid::Uuid;

use super::consumer_fields::ConsumerFields;
use crate::plugins::rate_limit_fields::RateLimitFields;

/// The consumer a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub id: Uuid,
    pub username: Option<String>,
    pub custom_id: Option<String>,
}

impl From<&crate::model::Consumer> for ConsumerInfo {
    fn from(consumer: &crate::model::Consumer) -> Self {
        ConsumerInfo { id: consumer.id, username: consumer.username.clone(), custom_id: consumer.custom_id.clone() }
    }
}

pub struct RequestContext {
    /// 32 hex characters, as Kong's request id; sent both ways and in error bodies. Kept
    /// as a header value: it goes into two headers, and cloning one copies no bytes.
    pub request_id_header: HeaderValue,
    pub client: SocketAddr,
    /// When the pipeline began to spend time on the request: read at the first moment
    /// that can matter (before plugins that may wait, or before the upstream exchange),
    /// since until then the request's handling is unbroken CPU work of microseconds.
    /// A clock read per request less on routes without plugins.
    started: Option<Instant>,
    pub route_id: Option<Uuid>,
    pub service_id: Option<Uuid>,
    pub consumer: Option<Arc<ConsumerInfo>>,
    pub credential_id: Option<Uuid>,
    /// Set with `consumer` by an auth plugin: what the upstream is told of the consumer.
    pub consumer_fields: Option<ConsumerFields>,
    /// The rate limit's fields for the client's response (one plugin of a name runs per
    /// request), unless it hides them.
    pub rate_limit_fields: Option<RateLimitFields>,
    /// The request path's normal form (`request_path::normalize`) where it is not the
    /// raw path: routing, the upstream path and plugins go by it.
    pub normalized_path: Option<String>,
}

impl RequestContext {
    pub fn new(client: SocketAddr) -> Self {
        RequestContext {
            request_id_header: new_request_id(),
            client,
            started: None,
            route_id: None,
            service_id: None,
            consumer: None,
            credential_id: None,
            consumer_fields: None,
            rate_limit_fields: None,
            normalized_path: None,
        }
    }

    /// Normalizes the request path once (see `request_path`), for `path`.
    pub fn normalize_path(&mut self, uri: &hyper::Uri) -> Result<(), super::request_path::MalformedEscape> {
        if let std::borrow::Cow::Owned(normal) = super::request_path::normalize(uri.path())? {
            self.normalized_path = Some(normal);
        }
        Ok(())
    }

    /// The request path as the gateway routes it: normalized (`normalize_path`).
    pub fn path<'a>(&'a self, uri: &'a hyper::Uri) -> &'a str {
        self.normalized_path.as_deref().unwrap_or_else(|| uri.path())
    }

    /// The request's field `name` (any case) as the upstream will get it: the client's
    /// first value, unless an auth plugin has set the consumer fields.
    pub fn request_field<'a>(&'a self, headers: &'a hyper::HeaderMap, name: &str) -> Option<&'a [u8]> {
        match self.consumer_fields.as_ref().and_then(|c| c.value(name)) {
            Some(ours) => ours,
            None => headers.get(name).map(HeaderValue::as_bytes),
        }
    }

    /// When the request's handling began, reading the clock now if nothing has yet.
    pub fn started(&mut self) -> Instant {
        *self.started.get_or_insert_with(Instant::now)
    }

    /// `started`, given the clock as just read (`now`) if it has not been read before.
    pub fn started_by(&mut self, now: Instant) -> Instant {
        *self.started.get_or_insert(now)
    }

    pub fn request_id(&self) -> &str {
        // Always ASCII hex: see `new_request_id`.
        self.request_id_header.to_str().unwrap_or_default()
    }
}

fn new_request_id() -> HeaderValue {
    let mut id = [0u8; 32];
    hex::encode_to_slice(rand::random::<u128>().to_be_bytes(), &mut id).expect("16 bytes are 32 hex digits");
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(&id)).expect("hex digits are a valid header value")
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_32_lowercase_hex_digits_and_differ() {
        let a = super::new_request_id();
        let b = super::new_request_id();
        for id in [&a, &b] {
            let id = id.to_str().unwrap();
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{id}");
        }
        assert_ne!(a, b);
    }
}
