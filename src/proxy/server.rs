//! The proxy listener's state: the current route table (swapped whole when the config
//! changes, read without a lock), the rate limiters and the metrics; and the task that
//! rebuilds the table from the applied configuration.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::header::HeaderValue;
use hyper::{Request, Response};

use super::pipeline;
use super::response_fields::GatewayFields;
use super::router::RegexCache;
use super::table::ProxyTable;
use crate::applied::Applied;
use crate::http::{Body, Handler, RequestBody};
use crate::metrics::Metrics;
use crate::plugins::rate_limiting::Limiters;
use crate::shutdown::Shutdown;

pub struct Proxy {
    /// Swapped atomically by `follow_config`; requests never wait for a rebuild.
    pub table: ArcSwap<ProxyTable>,
    pub limiters: Limiters,
    pub metrics: Arc<Metrics>,
    /// Reported upstream as X-Forwarded-Port (made once: it goes on every request).
    pub listen_port: HeaderValue,
    /// Compiled regex paths, reused by every rebuild.
    pub regexes: Arc<RegexCache>,
}

pub struct ProxyHandler(pub Arc<Proxy>);

impl Handler for ProxyHandler {
    type Reply = (Response<Body>, GatewayFields);

    fn handle(&self, req: Request<RequestBody>, peer: SocketAddr) -> impl Future<Output = Self::Reply> + Send + use<> {
        pipeline::handle(self.0.clone(), req, peer)
    }
}

/// Rebuilds the route table whenever the applied configuration changes, until shutdown.
/// A burst of changes coalesces: each rebuild starts from the newest view.
pub async fn follow_config(proxy: Arc<Proxy>, applied: Applied, mut shutdown: Shutdown) {
    let mut changes = applied.subscribe();
    loop {
        let config = applied.get();
        let previous = proxy.table.load_full();
        let regexes = proxy.regexes.clone();
        // Compiling 10,000 routes takes milliseconds of CPU: keep it off the async workers.
        let built = tokio::task::spawn_blocking(move || ProxyTable::build(config, Some(&previous), &regexes)).await;
        match built {
            Ok(Ok(table)) => proxy.table.store(Arc::new(table)),
            Ok(Err(e)) => tracing::error!(error = %e, "route table rebuild failed; still serving the previous one"),
            Err(e) => tracing::error!(error = %e, "route table rebuild panicked; still serving the previous one"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}
