//! The data plane: listener, routing, balancing, forwarding, and the request pipeline.

pub mod consumer_fields;
pub mod context;
pub mod errors;
pub mod error_format;
pub mod forward;
pub mod h1;
pub mod pool;
pub mod response_fields;
pub mod headers;
pub mod router;
pub mod balancer;
pub mod upstream_headers;
pub mod upstream_uri;
pub mod request_body;
pub mod request_path;
pub mod table;
pub mod pipeline;
pub mod server;
pub mod health;
pub mod target_dns;
pub mod tls;
pub mod workers;
