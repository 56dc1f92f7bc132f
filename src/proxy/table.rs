//! The proxy's immutable view of the configuration: the compiled router and, per route,
//! the service to forward to (a direct host or an upstream's balancer) and the plugins
//! that apply. Rebuilt off the request path whenever the applied config changes, then
//! swapped in atomically; balancers whose targets did not change are carried over, so
//! their health and rotation survive unrelated config changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderValue;
use imbl::ordmap::DiffItem;
use uuid::Uuid;

use super::balancer::{Algorithm, Balancer};
use super::forward::Timeouts;
use super::health;
use super::target_dns;
use super::tls::TlsTarget;
use super::request_body::Buffering;
use super::router::{RegexCache, RouteSpec, Router, RouterError};
use crate::applied::AppliedConfig;
use crate::metrics::{RouteLabels, RouteSeries};
use crate::model::plugins::key_auth::KeyAuthConfig;
use crate::model::plugins::rate_limiting::RateLimitingConfig;
use crate::plugins::rate_limiting::RateLimitPlugin;
use crate::model::plugin_scopes::PluginScopes;
use crate::model::storage::entity_key;
use crate::model::{ConfigSnapshot, EntityType, Plugin, Route, Service, Upstream};

pub struct UpstreamEntry {
    pub id: Uuid,
    pub name: String,
    pub balancer: Arc<Balancer>,
    pub hash_on: String,
    pub hash_on_header: Option<String>,
    pub host_header: Option<String>,
    /// Passive health thresholds (all zero: passive checks off).
    pub passive: health::Thresholds,
    pub upstream: Upstream,
    /// What the balancer was built from, to know when it can be reused.
    signature: Vec<(String, u32)>,
}

pub struct ServiceEntry {
    pub id: Uuid,
    /// The metrics label: the name, else the host (as Kong's Prometheus plugin).
    pub label: String,
    /// `host:port`, where a service without an upstream connects.
    pub addr: String,
    /// The Host header the upstream gets unless the route preserves the client's: the
    /// upstream's host_header if set, else the service's host (and port unless 80).
    /// None only for a host no header can carry (validation rejects those).
    pub host_header: Option<HeaderValue>,
    pub path: Option<String>,
    pub timeouts: Timeouts,
    pub retries: u16,
    pub upstream: Option<Arc<UpstreamEntry>>,
    /// For protocol https: how its connections are secured, named by `host_header` (a
    /// route that preserves the client's Host names them by that instead).
    pub tls: Option<TlsTarget>,
}

pub struct RouteEntry {
    pub id: Uuid,
    /// The metrics label: the name, else the id.
    pub label: String,
    /// The route's metric labels, built once per table rather than per request.
    pub labels: RouteLabels,
    pub series: RouteSeries,
    pub strip_path: bool,
    pub preserve_host: bool,
    pub service: Option<Arc<ServiceEntry>>,
    /// Plugins for (route, service, no consumer), in priority order, configs parsed once.
    pub plugins: Vec<ActivePlugin>,
    /// Which request bodies are read whole before forwarding.
    pub buffering: Buffering,
    /// For a route that does not take plain HTTP (protocols without "http"): its
    /// https_redirect_status_code, Kong's answer to a request that arrives in the clear.
    pub https_only: Option<u16>,
}

/// A plugin instance ready to run.
#[derive(Debug, Clone)]
pub enum ActivePlugin {
    KeyAuth(KeyAuthConfig),
    RateLimiting(RateLimitPlugin),
}

impl ActivePlugin {
    /// None for plugins this data plane does not run (or an unreadable config, which
    /// validation prevents).
    /// `config` is where `p` was read, for the store revision of its configuration.
    pub fn from_plugin(p: &Plugin, config: &AppliedConfig) -> Option<ActivePlugin> {
        match p.name.as_str() {
            "key-auth" => KeyAuthConfig::from_value(&p.config).ok().map(ActivePlugin::KeyAuth),
            "rate-limiting" => RateLimitingConfig::from_value(&p.config).ok().map(|limits| {
                let revision = config.mod_revision(&entity_key(Plugin::TABLE, p.id));
                ActivePlugin::RateLimiting(RateLimitPlugin::new(p.id, limits).at_revision(revision))
            }),
            _ => None,
        }
    }
}

pub struct ProxyTable {
    /// With `routes` and `plugin_scopes`, shared with the next table when a write changes
    /// nothing routing reads (see `routing_unchanged`).
    pub router: Arc<Router>,
    /// Every upstream's balancer by upstream id (health endpoints, reuse on rebuild).
    pub upstreams: HashMap<Uuid, Arc<UpstreamEntry>>,
    pub routes: Arc<Vec<RouteEntry>>,
    /// Consumers and credentials for key-auth, consumer-scoped plugins.
    pub config: Arc<AppliedConfig>,
    /// Which plugins apply where, in `config`'s snapshot: a request authenticated as a
    /// consumer looks its plugins up here when any are consumer-scoped.
    pub plugin_scopes: Arc<PluginScopes>,
    /// Every enabled plugin this data plane runs, ready to run, by id; only while some
    /// plugin is consumer-scoped (a request's set then depends on its consumer, and
    /// parsing a plugin's config per request would cost more than the plugin).
    pub prepared_plugins: Arc<HashMap<Uuid, ActivePlugin>>,
}

impl ProxyTable {
    pub fn empty() -> ProxyTable {
        ProxyTable {
            router: Arc::default(),
            upstreams: HashMap::new(),
            routes: Arc::default(),
            config: Arc::default(),
            plugin_scopes: Arc::default(),
            prepared_plugins: Arc::default(),
        }
    }

    /// `previous` with `config` in it, when the change leaves routing alone (see
    /// `routing_unchanged`): microseconds, unlike a rebuild, so the caller need not move
    /// it off the async workers.
    pub fn reuse(config: &Arc<AppliedConfig>, previous: &ProxyTable) -> Option<ProxyTable> {
        routing_unchanged(&previous.config.snapshot, &config.snapshot).then(|| ProxyTable {
            router: Arc::clone(&previous.router),
            upstreams: previous.upstreams.clone(),
            routes: Arc::clone(&previous.routes),
            config: Arc::clone(config),
            plugin_scopes: Arc::clone(&previous.plugin_scopes),
            prepared_plugins: Arc::clone(&previous.prepared_plugins),
        })
    }

    /// Compiles the table for `config`, keeping only `previous`'s upstream balancers (and
    /// their health) where unchanged; callers try `reuse` first. Fails only on a route
    /// the router cannot compile (validation rejects those before they are stored); the
    /// caller then keeps serving the previous table.
    pub fn build(
        config: Arc<AppliedConfig>,
        previous: Option<&ProxyTable>,
        regexes: &RegexCache,
    ) -> Result<ProxyTable, RouterError> {
        let snap = &config.snapshot;
        let old_upstreams: HashMap<Uuid, &Arc<UpstreamEntry>> = previous.map(|p| p.upstreams.iter().map(|(id, u)| (*id, u)).collect()).unwrap_or_default();
        let mut upstreams: HashMap<String, Arc<UpstreamEntry>> = HashMap::new();
        for u in snap.upstreams.values() {
            let mut signature: Vec<(String, u32)> =
                snap.targets_of(u.id).into_iter().map(|t| (t.target.clone(), u32::from(t.weight))).collect();
            signature.sort();
            let entry = match old_upstreams.get(&u.id) {
                Some(old)
                    if old.signature == signature
                        && old.upstream.algorithm == u.algorithm
                        && old.upstream.healthchecks == u.healthchecks =>
                {
                    Arc::clone(old)
                }
                before => Arc::new(UpstreamEntry {
                    id: u.id,
                    name: u.name.clone(),
                    balancer: {
                        let algorithm = Algorithm::from_kong(&u.algorithm);
                        // Targets added or removed: the others keep their health. New
                        // checks (as a new healthchecker in Kong) start from healthy.
                        let balancer = match before.filter(|old| old.upstream.healthchecks == u.healthchecks) {
                            Some(old) => {
                                let (balancer, unresolved) = Balancer::succeeding(algorithm, &signature, &old.balancer);
                                for target in &unresolved {
                                    target_dns::failed(target, target_dns::RETRY_EVERY);
                                }
                                balancer
                            }
                            None => Balancer::new(algorithm, &signature),
                        };
                        let balancer = Arc::new(balancer);
                        health::spawn_active(&balancer, u.healthchecks.clone());
                        balancer
                    },
                    passive: health::Thresholds::passive(&u.healthchecks),
                    hash_on: u.hash_on.clone(),
                    hash_on_header: u.hash_on_header.clone(),
                    host_header: u.host_header.clone(),
                    upstream: u.clone(),
                    signature,
                }),
            };
            upstreams.insert(u.name.to_ascii_lowercase(), entry);
        }
        let services: HashMap<Uuid, Arc<ServiceEntry>> =
            snap.services.values().filter(|s| s.enabled).map(|s| (s.id, Arc::new(service_entry(s, &upstreams)))).collect();

        let mut routes: Vec<&Route> = snap.routes.values().filter(|r| r.protocols.iter().any(|p| p == "http" || p == "https")).collect();
        routes.sort_by_key(|r| r.id);
        let plugin_scopes = PluginScopes::new(snap);
        let mut specs = Vec::with_capacity(routes.len());
        let mut entries = Vec::with_capacity(routes.len());
        for r in routes {
            let service = r.service.and_then(|s| services.get(&s.id).cloned());
            // A route whose service is disabled does not route (Kong ignores it too).
            if r.service.is_some() && service.is_none() {
                continue;
            }
            specs.push(RouteSpec {
                created_at: r.created_at,
                id: r.id.to_string(),
                hosts: r.hosts.clone().unwrap_or_default(),
                paths: r.paths.clone().unwrap_or_default(),
                methods: r.methods.clone().unwrap_or_default(),
                headers: r.headers.clone().unwrap_or_default(),
                regex_priority: r.regex_priority,
            });
            let plugins: Vec<ActivePlugin> = plugin_scopes.plugins_for(snap, Some(r.id), r.service.map(|s| s.id), None).into_iter().filter_map(|p| ActivePlugin::from_plugin(p, &config)).collect();
            let reads_body = plugins.iter().any(|p| matches!(p, ActivePlugin::KeyAuth(k) if k.key_in_body));
            let buffering = match (reads_body, r.request_buffering) {
                (true, _) => Buffering::Always,
                (false, true) => Buffering::Unsized,
                (false, false) => Buffering::Never,
            };
            let label = r.name.clone().unwrap_or_else(|| r.id.to_string());
            let service_label = service.as_ref().map_or_else(String::new, |s| s.label.clone());
            entries.push(RouteEntry {
                id: r.id,
                labels: RouteLabels { service: service_label, route: label.clone() },
                series: RouteSeries::default(),
                label,
                strip_path: r.strip_path,
                preserve_host: r.preserve_host,
                service,
                plugins,
                buffering,
                https_only: (!r.protocols.iter().any(|p| p == "http")).then_some(r.https_redirect_status_code),
            });
        }
        let router = Arc::new(Router::build_with(&specs, regexes)?);
        let upstreams = upstreams.into_values().map(|u| (u.id, u)).collect();
        let prepared_plugins = match plugin_scopes.any_consumer_scoped() {
            true => snap.plugins.values().filter(|p| p.enabled).filter_map(|p| Some((p.id, ActivePlugin::from_plugin(p, &config)?))).collect(),
            false => HashMap::new(),
        };
        Ok(ProxyTable {
            router,
            upstreams,
            routes: Arc::new(entries),
            config,
            plugin_scopes: Arc::new(plugin_scopes),
            prepared_plugins: Arc::new(prepared_plugins),
        })
    }
}

/// Whether a table built from `new` would route exactly as the one built from `old`:
/// the maps routing reads are the same ones (persistent maps: unchanged ones compare by
/// pointer), and no service that changed has a route. Then a write that adds or edits
/// an unreferenced service, a consumer or a credential (key-auth reads those from
/// `config` per request) rebuilds nothing: with a few hundred routes, rebuilding on
/// every write was most of the CPU the write cost each node. The services that changed
/// come from the maps' diff, which skips the subtrees they share, so the check costs
/// the change, not the routes (looking up every route's service took about 1 ms a
/// write with 10,000 routes).
fn routing_unchanged(old: &ConfigSnapshot, new: &ConfigSnapshot) -> bool {
    old.routes.ptr_eq(&new.routes)
        && old.plugins.ptr_eq(&new.plugins)
        && old.upstreams.ptr_eq(&new.upstreams)
        && old.targets.ptr_eq(&new.targets)
        // The diff names only services whose value differs (an equal rewrite is skipped).
        && old.services.diff(&new.services).all(|change| match change {
            DiffItem::Add(id, _) | DiffItem::Remove(id, _) | DiffItem::Update { new: (id, _), .. } => !new.service_has_routes(*id),
        })
}

fn service_entry(s: &Service, upstreams: &HashMap<String, Arc<UpstreamEntry>>) -> ServiceEntry {
    // A service whose host names an upstream is balanced over its targets (Kong's rule).
    let upstream = upstreams.get(&s.host.to_ascii_lowercase()).cloned();
    let https = s.protocol == "https";
    let default_port = if https { 443 } else { 80 };
    let authority = if s.port == default_port { s.host.clone() } else { format!("{}:{}", s.host, s.port) };
    let host_header = upstream.as_ref().and_then(|u| u.host_header.clone()).unwrap_or(authority);
    // Kong's default leaves the certificate unchecked unless tls_verify says so.
    let tls = https.then(|| TlsTarget::for_host(&host_header, s.tls_verify == Some(true)));
    ServiceEntry {
        id: s.id,
        label: s.name.clone().unwrap_or_else(|| s.host.clone()),
        addr: format!("{}:{}", s.host, s.port),
        host_header: HeaderValue::from_str(&host_header).ok(),
        path: s.path.clone(),
        timeouts: Timeouts {
            connect: Duration::from_millis(u64::from(s.connect_timeout)),
            read: Duration::from_millis(u64::from(s.read_timeout)),
            write: Duration::from_millis(u64::from(s.write_timeout)),
        },
        retries: s.retries,
        upstream,
        tls,
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
