//! `ConfigSnapshot`: an immutable view of the whole configuration, built from the store's
//! `config/` entries, with the lookups the Admin API and the proxy need and the
//! reference checks Kong's DAO makes (foreign keys, restrict, cascade).

/// Persistent collections: a changed copy shares all it did not change, so publishing a
/// new view after one admin write costs O(log n), not a copy of the whole configuration.
type Table<V> = imbl::OrdMap<Uuid, V>;
type IdSet = imbl::OrdSet<Uuid>;

use uuid::Uuid;

use super::any::Entity;
use super::consumer::{hash_key, Consumer, KeyAuthCredential};
use super::entity::ForeignKey;
use super::error::KongError;
use super::plugin::Plugin;
use super::plugin_scopes::PluginScopes;
use super::route::Route;
use super::service::Service;
use super::storage::index_key;
use super::target::{normalize_target, Target};
use super::upstream::Upstream;

/// All entities by id, plus indexes. Cheap to query; rebuild or [`insert`](Self::insert)
/// to change.
#[derive(Debug, Clone, Default)]
pub struct ConfigSnapshot {
    pub services: Table<Service>,
    pub routes: Table<Route>,
    pub upstreams: Table<Upstream>,
    pub targets: Table<Target>,
    pub consumers: Table<Consumer>,
    pub keyauth_credentials: Table<KeyAuthCredential>,
    pub plugins: Table<Plugin>,
    /// The same unique index keys the store holds (`config/index/...`) → owner id.
    unique: imbl::HashMap<String, Uuid>,
    routes_by_service: imbl::HashMap<Uuid, IdSet>,
    targets_by_upstream: imbl::HashMap<Uuid, IdSet>,
}

impl ConfigSnapshot {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a snapshot from the store's `(key, bytes)` pairs under `config/`; index
    /// entries and unknown keys are skipped, undecodable entities are an error.
    pub fn from_store<I, K, V>(pairs: I) -> Result<Self, KongError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let mut snap = Self::default();
        for (k, v) in pairs {
            if let Some(e) = Entity::from_store(k.as_ref(), v.as_ref()) {
                snap.insert(e?);
            }
        }
        Ok(snap)
    }

    pub fn from_entities(entities: impl IntoIterator<Item = Entity>) -> Self {
        let mut snap = Self::default();
        for e in entities {
            snap.insert(e);
        }
        snap
    }

    /// Adds or replaces (same id) an entity, keeping the indexes right.
    pub fn insert(&mut self, e: Entity) {
        self.remove(e.table(), e.id());
        for (k, _) in e.unique_fields() {
            self.unique.insert(k, e.id());
        }
        match e {
            Entity::Service(s) => {
                self.services.insert(s.id, s);
            }
            Entity::Route(r) => {
                if let Some(s) = ForeignKey::id_of(&r.service) {
                    self.routes_by_service.entry(s).or_default().insert(r.id);
                }
                self.routes.insert(r.id, r);
            }
            Entity::Upstream(u) => {
                self.upstreams.insert(u.id, *u);
            }
            Entity::Target(t) => {
                self.targets_by_upstream
                    .entry(t.upstream.id)
                    .or_default()
                    .insert(t.id);
                self.targets.insert(t.id, t);
            }
            Entity::Consumer(c) => {
                self.consumers.insert(c.id, c);
            }
            Entity::KeyAuthCredential(c) => {
                self.keyauth_credentials.insert(c.id, c);
            }
            Entity::Plugin(p) => {
                self.plugins.insert(p.id, p);
            }
        }
    }

    /// Removes an entity by table and id (no cascade), returning it.
    pub fn remove(&mut self, table: &str, id: Uuid) -> Option<Entity> {
        let old: Entity = match table {
            "services" => self.services.remove(&id)?.into(),
            "routes" => {
                let r = self.routes.remove(&id)?;
                if let Some(s) = ForeignKey::id_of(&r.service) {
                    if let Some(set) = self.routes_by_service.get_mut(&s) {
                        set.remove(&id);
                    }
                }
                r.into()
            }
            "upstreams" => self.upstreams.remove(&id)?.into(),
            "targets" => {
                let t = self.targets.remove(&id)?;
                if let Some(set) = self.targets_by_upstream.get_mut(&t.upstream.id) {
                    set.remove(&id);
                }
                t.into()
            }
            "consumers" => self.consumers.remove(&id)?.into(),
            "keyauth_credentials" => self.keyauth_credentials.remove(&id)?.into(),
            "plugins" => self.plugins.remove(&id)?.into(),
            _ => return None,
        };
        for (k, _) in old.unique_fields() {
            if self.unique.get(&k) == Some(&id) {
                self.unique.remove(&k);
            }
        }
        Some(old)
    }

    /// An entity by table and id.
    pub fn get(&self, table: &str, id: Uuid) -> Option<Entity> {
        match table {
            "services" => self.services.get(&id).cloned().map(Entity::from),
            "routes" => self.routes.get(&id).cloned().map(Entity::from),
            "upstreams" => self.upstreams.get(&id).cloned().map(Entity::from),
            "targets" => self.targets.get(&id).cloned().map(Entity::from),
            "consumers" => self.consumers.get(&id).cloned().map(Entity::from),
            "keyauth_credentials" => self.keyauth_credentials.get(&id).cloned().map(Entity::from),
            "plugins" => self.plugins.get(&id).cloned().map(Entity::from),
            _ => None,
        }
    }

    /// Every entity, tables in dependency order, ids ascending within a table.
    pub fn entities(&self) -> Vec<Entity> {
        let mut out: Vec<Entity> = Vec::new();
        out.extend(self.services.values().cloned().map(Entity::from));
        out.extend(self.routes.values().cloned().map(Entity::from));
        out.extend(self.upstreams.values().cloned().map(Entity::from));
        out.extend(self.targets.values().cloned().map(Entity::from));
        out.extend(self.consumers.values().cloned().map(Entity::from));
        out.extend(self.keyauth_credentials.values().cloned().map(Entity::from));
        out.extend(self.plugins.values().cloned().map(Entity::from));
        out
    }

    pub fn len(&self) -> usize {
        self.services.len()
            + self.routes.len()
            + self.upstreams.len()
            + self.targets.len()
            + self.consumers.len()
            + self.keyauth_credentials.len()
            + self.plugins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id owning a unique index key (`config/index/...`), if any.
    pub fn unique_owner(&self, index_key: &str) -> Option<Uuid> {
        self.unique.get(index_key).copied()
    }

    fn by_key(&self, table: &str, field: &str, value: &str) -> Option<Uuid> {
        self.unique_owner(&index_key(table, field, value))
    }

    fn id_or<'a, T>(
        map: &'a Table<T>,
        s: &str,
        by_key: impl FnOnce(&str) -> Option<Uuid>,
    ) -> Option<&'a T> {
        if let Ok(id) = Uuid::try_parse(s) {
            if let Some(e) = map.get(&id) {
                return Some(e);
            }
        }
        map.get(&by_key(s)?)
    }

    /// `/services/{id or name}`.
    pub fn service_by_id_or_name(&self, s: &str) -> Option<&Service> {
        Self::id_or(&self.services, s, |n| self.by_key("services", "name", n))
    }
    /// `/routes/{id or name}`.
    pub fn route_by_id_or_name(&self, s: &str) -> Option<&Route> {
        Self::id_or(&self.routes, s, |n| self.by_key("routes", "name", n))
    }
    /// `/upstreams/{id or name}`.
    pub fn upstream_by_id_or_name(&self, s: &str) -> Option<&Upstream> {
        Self::id_or(&self.upstreams, s, |n| self.by_key("upstreams", "name", n))
    }
    /// `/consumers/{id or username}`.
    pub fn consumer_by_id_or_username(&self, s: &str) -> Option<&Consumer> {
        Self::id_or(&self.consumers, s, |n| {
            self.by_key("consumers", "username", n)
        })
    }
    /// A consumer by `custom_id`.
    pub fn consumer_by_custom_id(&self, s: &str) -> Option<&Consumer> {
        self.consumers
            .get(&self.by_key("consumers", "custom_id", s)?)
    }
    /// `/plugins/{id or instance_name}`.
    pub fn plugin_by_id_or_instance_name(&self, s: &str) -> Option<&Plugin> {
        Self::id_or(&self.plugins, s, |n| {
            self.by_key("plugins", "instance_name", n)
        })
    }
    /// `/upstreams/{u}/targets/{id or target}` (the target is normalised first).
    pub fn target_by_id_or_target(&self, upstream: Uuid, s: &str) -> Option<&Target> {
        let t = Self::id_or(&self.targets, s, |t| {
            let n = normalize_target(t).ok()?;
            self.by_key("targets", "upstream_target", &format!("{upstream}:{n}"))
        })?;
        (t.upstream.id == upstream).then_some(t)
    }
    /// `/key-auths/{id or key}`: a key is looked up by its hash.
    pub fn credential_by_id_or_key(&self, s: &str) -> Option<&KeyAuthCredential> {
        Self::id_or(&self.keyauth_credentials, s, |k| {
            self.by_key("keyauth_credentials", "key_hash", &hash_key(k))
        })
    }

    /// Whether any route's `service` is `service`.
    pub fn service_has_routes(&self, service: Uuid) -> bool {
        self.routes_by_service.get(&service).is_some_and(|routes| !routes.is_empty())
    }

    /// Routes whose `service` is `service`, by id.
    pub fn routes_of_service(&self, service: Uuid) -> Vec<&Route> {
        self.routes_by_service
            .get(&service)
            .into_iter()
            .flatten()
            .filter_map(|id| self.routes.get(id))
            .collect()
    }
    /// Targets of an upstream, by id.
    pub fn targets_of(&self, upstream: Uuid) -> Vec<&Target> {
        self.targets_by_upstream
            .get(&upstream)
            .into_iter()
            .flatten()
            .filter_map(|id| self.targets.get(id))
            .collect()
    }
    /// Credentials of a consumer.
    pub fn credentials_of(&self, consumer: Uuid) -> Vec<&KeyAuthCredential> {
        self.keyauth_credentials
            .values()
            .filter(|c| c.consumer.id == consumer)
            .collect()
    }

    /// The credential with this key hash and its consumer.
    pub fn consumer_by_credential_hash(
        &self,
        hash: &str,
    ) -> Option<(&KeyAuthCredential, &Consumer)> {
        let cred = self.keyauth_credentials.get(&self.by_key(
            "keyauth_credentials",
            "key_hash",
            hash,
        )?)?;
        Some((cred, self.consumers.get(&cred.consumer.id)?))
    }

    /// The plugins that apply to a request matched to `route`/`service` and
    /// authenticated as `consumer`: for each plugin name the most specific enabled
    /// instance, in Kong's order (consumer+route+service, consumer+route,
    /// consumer+service, route+service, consumer, route, service, global). Sorted by
    /// priority, highest first. Protocol filtering is left to the caller. To resolve
    /// many scopes, build one [`PluginScopes`] and ask it.
    pub fn plugins_for(
        &self,
        route: Option<Uuid>,
        service: Option<Uuid>,
        consumer: Option<Uuid>,
    ) -> Vec<&Plugin> {
        PluginScopes::new(self).plugins_for(self, route, service, consumer)
    }
}

mod references;
#[cfg(test)]
mod tests;
