//! Which plugins apply to a (route, service, consumer) scope, by Kong's precedence: for
//! each plugin name the most specific enabled instance. Indexed once per configuration
//! view, so resolving every route of a table costs lookups by id, not a cache-key string
//! built and escaped for every plugin name and scope (that made each admin write's table
//! rebuild grow with routes times known plugin names).

use std::collections::HashMap;

use uuid::Uuid;

use super::plugin::Plugin;
use super::snapshot::ConfigSnapshot;

/// `(name, route, service, consumer)`: Kong's plugin cache key, unique per configuration.
type Scope<'a> = (&'a str, Option<Uuid>, Option<Uuid>, Option<Uuid>);

pub struct PluginScopes<'a> {
    enabled: HashMap<Scope<'a>, &'a Plugin>,
    /// Names with at least one enabled instance, each once.
    names: Vec<&'a str>,
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

impl<'a> PluginScopes<'a> {
    pub fn new(snap: &'a ConfigSnapshot) -> Self {
        let mut enabled = HashMap::new();
        let mut names: Vec<&str> = Vec::new();
        for p in snap.plugins.values().filter(|p| p.enabled) {
            let scope = (p.name.as_str(), p.route.map(|f| f.id), p.service.map(|f| f.id), p.consumer.map(|f| f.id));
            enabled.insert(scope, p);
            if !names.contains(&p.name.as_str()) {
                names.push(&p.name);
            }
        }
        PluginScopes { enabled, names }
    }

    /// The plugins for a request matched to `route`/`service` and authenticated as
    /// `consumer`, sorted by priority, highest first (then by name). Protocol filtering
    /// is left to the caller.
    pub fn plugins_for(&self, route: Option<Uuid>, service: Option<Uuid>, consumer: Option<Uuid>) -> Vec<&'a Plugin> {
        let mut out: Vec<&Plugin> = Vec::new();
        for &name in &self.names {
            for (c, r, s) in PRECEDENCE {
                if (c && consumer.is_none()) || (r && route.is_none()) || (s && service.is_none()) {
                    continue;
                }
                let pick = |b: bool, v: Option<Uuid>| if b { v } else { None };
                if let Some(p) = self.enabled.get(&(name, pick(r, route), pick(s, service), pick(c, consumer))) {
                    out.push(p);
                    break;
                }
            }
        }
        out.sort_by(|a, b| b.priority().cmp(&a.priority()).then(a.name.cmp(&b.name)));
        out
    }
}
