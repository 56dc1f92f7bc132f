//! Which plugins apply to a (route, service, consumer) scope, by Kong's precedence: for
//! each plugin name the most specific enabled instance. Indexed once per configuration
//! view, so resolving every route of a table costs lookups by id, not a cache-key string
//! built and escaped for every plugin name and scope (that made each admin write's table
//! rebuild grow with routes times known plugin names).

use std::collections::HashMap;

use uuid::Uuid;

use super::plugin::Plugin;
use super::snapshot::ConfigSnapshot;

/// `(name, route, service, consumer)`, the name as its index in `names`: Kong's plugin
/// cache key, unique per configuration.
type Scope = (usize, Option<Uuid>, Option<Uuid>, Option<Uuid>);

/// Owns nothing of the snapshot it indexes (plugin ids, not references), so a route table
/// keeps it beside that snapshot and resolves a request's consumer-scoped plugins with
/// lookups alone.
#[derive(Debug, Default)]
pub struct PluginScopes {
    /// The enabled plugin of each scope, by id in the indexed snapshot.
    enabled: HashMap<Scope, Uuid>,
    /// Names with at least one enabled instance, each once.
    names: Vec<String>,
    consumer_scoped: bool,
}

/// Kong's order, most specific first: (consumer, route, service).
const PRECEDENCE: [(bool, bool, bool); 8] = [
    (true, true, true),
    (true, true, false),
    (true, false, true),
    (false, true, true),
    (true, false, false),
    (false, true, false),
    (false, false, true),
    (false, false, false),
];

impl PluginScopes {
    pub fn new(snap: &ConfigSnapshot) -> Self {
        let mut scopes = PluginScopes::default();
        for p in snap.plugins.values().filter(|p| p.enabled) {
            let name = match scopes.names.iter().position(|n| *n == p.name) {
                Some(i) => i,
                None => {
                    scopes.names.push(p.name.clone());
                    scopes.names.len() - 1
                }
            };
            scopes.enabled.insert((name, p.route.map(|f| f.id), p.service.map(|f| f.id), p.consumer.map(|f| f.id)), p.id);
            scopes.consumer_scoped |= p.consumer.is_some();
        }
        scopes
    }

    /// Whether any enabled plugin is scoped to a consumer: only then does a request's set
    /// of plugins depend on who it authenticated as.
    pub fn any_consumer_scoped(&self) -> bool {
        self.consumer_scoped
    }

    /// The plugins of `snap` (the snapshot this index was built from) for a request
    /// matched to `route`/`service` and authenticated as `consumer`, sorted by priority,
    /// highest first (then by name). Protocol filtering is left to the caller.
    pub fn plugins_for<'s>(&self, snap: &'s ConfigSnapshot, route: Option<Uuid>, service: Option<Uuid>, consumer: Option<Uuid>) -> Vec<&'s Plugin> {
        let mut out: Vec<&Plugin> = Vec::new();
        for name in 0..self.names.len() {
            for (c, r, s) in PRECEDENCE {
                if (c && consumer.is_none()) || (r && route.is_none()) || (s && service.is_none()) {
                    continue;
                }
                let pick = |b: bool, v: Option<Uuid>| if b { v } else { None };
                if let Some(p) = self.enabled.get(&(name, pick(r, route), pick(s, service), pick(c, consumer))).and_then(|id| snap.plugins.get(id)) {
                    out.push(p);
                    break;
                }
            }
        }
        out.sort_by(|a, b| b.priority().cmp(&a.priority()).then(a.name.cmp(&b.name)));
        out
    }
}
