//! The reference checks Kong's DAO makes on a write, against a snapshot: foreign keys that
//! must exist, unique keys that must be free, references that restrict a delete, the
//! entities a delete cascades to, and foreign keys given by name.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::model::any::Entity;
use crate::model::entity::ForeignKey;
use crate::model::error::KongError;
use crate::model::plugin::Plugin;
use super::ConfigSnapshot;

impl ConfigSnapshot {
    /// A foreign key violation (code 4) if the entity references something missing.
    pub fn missing_references(&self, e: &Entity) -> Result<(), KongError> {
        let check = |field: &str, fk: &Option<ForeignKey>, table: &str, exists: bool| match fk {
            Some(f) if !exists => Err(KongError::foreign_key_violation(
                field,
                json!({"id": f.id}),
                table,
            )),
            _ => Ok(()),
        };
        match e {
            Entity::Service(s) => check(
                "client_certificate",
                &s.client_certificate,
                "certificates",
                false,
            ),
            Entity::Upstream(u) => check(
                "client_certificate",
                &u.client_certificate,
                "certificates",
                false,
            ),
            Entity::Route(r) => check(
                "service",
                &r.service,
                "services",
                r.service.is_some_and(|f| self.services.contains_key(&f.id)),
            ),
            Entity::Target(t) => {
                let fk = Some(t.upstream);
                check(
                    "upstream",
                    &fk,
                    "upstreams",
                    self.upstreams.contains_key(&t.upstream.id),
                )
            }
            Entity::KeyAuthCredential(c) => {
                let fk = Some(c.consumer);
                check(
                    "consumer",
                    &fk,
                    "consumers",
                    self.consumers.contains_key(&c.consumer.id),
                )
            }
            Entity::Consumer(_) => Ok(()),
            Entity::Plugin(p) => {
                check(
                    "route",
                    &p.route,
                    "routes",
                    p.route.is_some_and(|f| self.routes.contains_key(&f.id)),
                )?;
                check(
                    "service",
                    &p.service,
                    "services",
                    p.service.is_some_and(|f| self.services.contains_key(&f.id)),
                )?;
                check(
                    "consumer",
                    &p.consumer,
                    "consumers",
                    p.consumer
                        .is_some_and(|f| self.consumers.contains_key(&f.id)),
                )
            }
        }
    }

    /// A unique violation (code 5, HTTP 409) if another entity holds one of the
    /// entity's unique keys.
    pub fn unique_conflict(&self, e: &Entity) -> Result<(), KongError> {
        for (k, fields) in e.unique_fields() {
            if let Some(owner) = self.unique_owner(&k) {
                if owner != e.id() {
                    return Err(KongError::unique_violation(fields));
                }
            }
        }
        Ok(())
    }

    /// Whether deleting `e` is refused because others still reference it: a service
    /// used by routes gives Kong's `an existing 'routes' entity references this
    /// 'services' entity` (code 4, HTTP 400). Everything else cascades.
    pub fn referenced_by(&self, e: &Entity) -> Result<(), KongError> {
        if let Entity::Service(s) = e {
            if !self.routes_of_service(s.id).is_empty() {
                return Err(KongError::foreign_key_restricted("services", "routes"));
            }
        }
        Ok(())
    }

    /// What deleting `e` deletes with it (Kong's `on_delete = "cascade"`): plugins of a
    /// route, service or consumer, a consumer's credentials, an upstream's targets.
    pub fn cascade_of(&self, e: &Entity) -> Vec<Entity> {
        let id = e.id();
        let mut out: Vec<Entity> = Vec::new();
        let plugins_where = |f: fn(&Plugin) -> Option<Uuid>| -> Vec<Entity> {
            self.plugins
                .values()
                .filter(|p| f(p) == Some(id))
                .cloned()
                .map(Entity::from)
                .collect()
        };
        match e {
            Entity::Service(_) => out.extend(plugins_where(|p| ForeignKey::id_of(&p.service))),
            Entity::Route(_) => out.extend(plugins_where(|p| ForeignKey::id_of(&p.route))),
            Entity::Consumer(_) => {
                out.extend(
                    self.credentials_of(id)
                        .into_iter()
                        .cloned()
                        .map(Entity::from),
                );
                out.extend(plugins_where(|p| ForeignKey::id_of(&p.consumer)));
            }
            Entity::Upstream(_) => {
                out.extend(self.targets_of(id).into_iter().cloned().map(Entity::from))
            }
            _ => {}
        }
        out
    }

    /// Resolves foreign references by a unique field in an input (`service.name=x`,
    /// `consumer.custom_id=y` in a form) to `{"id": ..}`, trying the unique fields in
    /// Kong's order; a value that names nothing is Kong's "foreign key unresolved" (code 13).
    pub fn resolve_foreign_names(&self, input: &mut Map<String, Value>) -> Result<(), KongError> {
        let specs: [(&str, &str, &[&str]); 4] = [
            ("service", "services", &["name"]),
            ("route", "routes", &["name"]),
            ("upstream", "upstreams", &["name"]),
            ("consumer", "consumers", &["username", "custom_id"]),
        ];
        for (field, table, keys) in specs {
            let Some(Value::Object(fk)) = input.get_mut(field) else {
                continue;
            };
            if fk.get("id").is_some_and(|v| !v.is_null()) {
                continue;
            }
            let mut unresolved = None;
            let mut found = None;
            for key in keys {
                let Some(value) = fk.get(*key).and_then(Value::as_str) else { continue };
                match self.by_key(table, key, value) {
                    Some(id) => {
                        found = Some(id);
                        break;
                    }
                    None => unresolved = unresolved.or(Some((*key, value.to_owned()))),
                }
            }
            match (found, unresolved) {
                (Some(id), _) => {
                    *fk = Map::new();
                    fk.insert("id".into(), Value::String(id.to_string()));
                }
                (None, Some((key, value))) => return Err(KongError::foreign_key_unresolved(field, key, &value, table)),
                (None, None) => {}
            }
        }
        Ok(())
    }
}
