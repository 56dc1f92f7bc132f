//! The proxy listener's state: the current route table (swapped whole when the config
//! changes, read without a lock), the rate limiters and the metrics; and the task that
//! rebuilds the table from the applied configuration.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use tokio::sync::watch;

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
    /// The listener's port: a request whose Host names none is routed as if to it.
    pub port: u16,
    /// Compiled regex paths, reused by every rebuild.
    pub regexes: Arc<RegexCache>,
    /// The configuration revision `table` was last built from (or failed to build from:
    /// the old table then stays, and waiting longer would not bring a newer one).
    pub serving: watch::Sender<u64>,
}

impl Proxy {
    /// Waits until the table in service reflects configuration `revision`, so that an
    /// acknowledged admin write is already routed by this node's proxy.
    pub async fn serving_at_least(&self, revision: u64) {
        let mut rx = self.serving.subscribe();
        let _ = rx.wait_for(|r| *r >= revision).await;
    }
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
        let revision = config.revision;
        let previous = proxy.table.load_full();
        let built = match ProxyTable::reuse(&config, &previous) {
            // Most writes (services without routes, consumers, credentials) end here, with
            // nothing to compile: no hop to the blocking pool, which an admin write's answer
            // would wait for (a few microseconds of its 0.35 ms, measured by hand).
            Some(table) => Ok(Ok(table)),
            None => {
                let regexes = proxy.regexes.clone();
                // Compiling 10,000 routes takes milliseconds of CPU: keep it off the async workers.
                tokio::task::spawn_blocking(move || ProxyTable::build(config, Some(&previous), &regexes)).await
            }
        };
        match built {
            Ok(Ok(table)) => proxy.table.store(Arc::new(table)),
            Ok(Err(e)) => tracing::error!(error = %e, "route table rebuild failed; still serving the previous one"),
            Err(e) => tracing::error!(error = %e, "route table rebuild panicked; still serving the previous one"),
        }
        proxy.serving.send_replace(revision);
        tokio::select! {
            _ = shutdown.wait() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}
