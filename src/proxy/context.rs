//! What one proxied request carries through the pipeline's phases.

use std::net::SocketAddr;
use std::time::Instant;

use hyper::HeaderMap;
use uuid::Uuid;

/// The consumer a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub id: Uuid,
    pub username: Option<String>,
    pub custom_id: Option<String>,
}

pub struct RequestContext {
    /// 32 hex characters, as Kong's request id; sent both ways and in error bodies.
    pub request_id: String,
    pub client: SocketAddr,
    pub started: Instant,
    pub route_id: Option<Uuid>,
    pub service_id: Option<Uuid>,
    pub consumer: Option<ConsumerInfo>,
    pub credential_id: Option<Uuid>,
    /// Headers plugins add to the client's response (rate-limit headers).
    pub response_headers: HeaderMap,
}

impl RequestContext {
    pub fn new(client: SocketAddr) -> Self {
        RequestContext {
            request_id: format!("{:032x}", rand::random::<u128>()),
            client,
            started: Instant::now(),
            route_id: None,
            service_id: None,
            consumer: None,
            credential_id: None,
            response_headers: HeaderMap::new(),
        }
    }
}
