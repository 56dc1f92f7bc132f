//! The Prometheus registry: proxy traffic and latencies (Kong's metric shapes under the
//! `gatehouse_` prefix), and cluster gauges refreshed when `/metrics` is scraped.

use std::sync::{Mutex, OnceLock, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Kong's kong_latency buckets (ms), used for the time spent in the gateway.
const PROXY_BUCKETS: [f64; 17] = [1., 2., 5., 7., 10., 15., 20., 30., 50., 75., 100., 200., 500., 750., 1000., 3000., 6000.];
/// Kong's upstream/request latency buckets (ms).
const UPSTREAM_BUCKETS: [f64; 13] = [25., 50., 80., 100., 250., 400., 700., 1000., 2000., 5000., 10000., 30000., 60000.];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub service: String,
    pub route: String,
    pub code: u16,
    /// "service" when the upstream answered, "gatehouse" when the gateway did.
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub service: String,
    pub route: String,
}

/// One route's series, found in the families on the route's first request and then
/// kept with its route table entry, so that a request does not hash label strings.
#[derive(Debug, Default)]
pub struct RouteSeries {
    /// proxy, upstream and request latency.
    latencies: OnceLock<[Histogram; 3]>,
    /// Requests the upstream answered, by status code: a route sees few distinct codes.
    by_code: Mutex<Vec<(u16, Counter)>>,
}

impl RouteSeries {
    /// Records one request the upstream answered with `code`; latencies in ms.
    pub fn record(&self, metrics: &Metrics, labels: &RouteLabels, code: u16, proxy_ms: f64, upstream_ms: f64, request_ms: f64) {
        let [proxy, upstream, request] = self.latencies.get_or_init(|| {
            [
                metrics.proxy_latency.get_or_create(labels).clone(),
                metrics.upstream_latency.get_or_create(labels).clone(),
                metrics.request_latency.get_or_create(labels).clone(),
            ]
        });
        proxy.observe(proxy_ms);
        upstream.observe(upstream_ms);
        request.observe(request_ms);
        let mut by_code = self.by_code.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = by_code.iter().find(|(c, _)| *c == code) {
            counter.inc();
            return;
        }
        let request_labels = RequestLabels { service: labels.service.clone(), route: labels.route.clone(), code, source: "service" };
        let counter = metrics.requests.get_or_create(&request_labels).clone();
        counter.inc();
        by_code.push((code, counter));
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub proxy_latency: Family<RouteLabels, Histogram>,
    pub upstream_latency: Family<RouteLabels, Histogram>,
    pub request_latency: Family<RouteLabels, Histogram>,
    pub raft_term: Gauge,
    pub raft_leader: Gauge,
    pub raft_is_leader: Gauge,
    pub raft_last_log_index: Gauge,
    pub raft_applied_index: Gauge,
    pub raft_elections: Counter,
    pub config_revision: Gauge,
    pub datastore_reachable: Gauge,
    pub gossip_members: Family<StateLabels, Gauge>,
    pub ratelimit_degraded: Gauge,
    pub ratelimit_degraded_admissions: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::<RequestLabels, Counter>::default();
        let proxy_latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(PROXY_BUCKETS.into_iter()));
        let upstream_latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(UPSTREAM_BUCKETS.into_iter()));
        let request_latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(UPSTREAM_BUCKETS.into_iter()));
        registry.register("http_requests", "Proxied requests by service, route and status", requests.clone());
        registry.register("proxy_latency_ms", "Time spent in the gateway before proxying, ms", proxy_latency.clone());
        registry.register("upstream_latency_ms", "Time waiting for the upstream's response headers, ms", upstream_latency.clone());
        registry.register("request_latency_ms", "Whole request time as the client saw it, ms", request_latency.clone());
        let m = Metrics {
            requests,
            proxy_latency,
            upstream_latency,
            request_latency,
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_last_log_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_elections: Counter::default(),
            config_revision: Gauge::default(),
            datastore_reachable: Gauge::default(),
            gossip_members: Family::default(),
            ratelimit_degraded: Gauge::default(),
            ratelimit_degraded_admissions: Counter::default(),
            registry,
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register("raft_term", "Current Raft term", m.raft_term.clone());
        r.register("raft_leader_id", "Node id of the leader this node hears from within the lease (0: none)", m.raft_leader.clone());
        r.register("raft_is_leader", "1 when this node leads", m.raft_is_leader.clone());
        r.register("raft_last_log_index", "Last index in this node's log", m.raft_last_log_index.clone());
        r.register("raft_applied_index", "Last index applied on this node", m.raft_applied_index.clone());
        r.register("raft_elections", "Term changes seen by this node", m.raft_elections.clone());
        r.register("config_revision", "Revision of the applied replicated map", m.config_revision.clone());
        r.register("datastore_reachable", "1 while a write through this node could commit (Kong's kong_datastore_reachable)", m.datastore_reachable.clone());
        r.register("gossip_members", "Members gossip knows, by state", m.gossip_members.clone());
        r.register("ratelimit_degraded", "1 while rate limits run on the local fallback share (no quorum)", m.ratelimit_degraded.clone());
        r.register(
            "ratelimit_degraded_admissions",
            "Requests admitted from the local fallback share",
            m.ratelimit_degraded_admissions.clone(),
        );
        m
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_requests_and_latency_with_kong_buckets() {
        let m = Metrics::new();
        let labels = RequestLabels { service: "s".into(), route: "r".into(), code: 200, source: "service" };
        m.requests.get_or_create(&labels).inc();
        m.upstream_latency.get_or_create(&RouteLabels { service: "s".into(), route: "r".into() }).observe(30.0);
        m.raft_term.set(4);
        let text = m.encode();
        assert!(text.contains(r#"gatehouse_http_requests_total{service="s",route="r",code="200",source="service"} 1"#), "{text}");
        assert!(text.contains(r#"gatehouse_upstream_latency_ms_bucket{le="50.0",service="s",route="r"} 1"#), "{text}");
        assert!(text.contains("gatehouse_raft_term 4"), "{text}");
    }

    #[test]
    fn route_series_count_by_code_and_observe_latencies() {
        let metrics = Metrics::new();
        let labels = RouteLabels { service: "s".into(), route: "r".into() };
        let series = RouteSeries::default();
        series.record(&metrics, &labels, 200, 1.0, 30.0, 31.0);
        series.record(&metrics, &labels, 200, 1.0, 30.0, 31.0);
        series.record(&metrics, &labels, 404, 1.0, 30.0, 31.0);
        let text = metrics.encode();
        assert!(text.contains(r#"gatehouse_http_requests_total{service="s",route="r",code="200",source="service"} 2"#), "{text}");
        assert!(text.contains(r#"gatehouse_http_requests_total{service="s",route="r",code="404",source="service"} 1"#), "{text}");
        assert!(text.contains(r#"gatehouse_upstream_latency_ms_count{service="s",route="r"} 3"#), "{text}");
        // A second entry for the same route (after a table rebuild) adds to the same series.
        RouteSeries::default().record(&metrics, &labels, 200, 1.0, 30.0, 31.0);
        assert!(metrics.encode().contains(r#"code="200",source="service"} 3"#));
    }
}
