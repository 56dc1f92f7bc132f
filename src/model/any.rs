//! `Entity`: any one configuration entity, for code that handles all tables alike
//! (snapshots, declarative files, diffs, store writes).

use serde_json::Value;
use uuid::Uuid;

use super::consumer::{Consumer, KeyAuthCredential};
use super::entity::EntityType;
use super::error::KongError;
use super::plugin::Plugin;
use super::route::Route;
use super::service::Service;
use super::storage;
use super::target::Target;
use super::upstream::Upstream;

/// One entity of any table. An upstream is boxed: with its health-check settings it is
/// twice the size of a route, and every entity would take its size (a load of 10,000
/// routes carries each in a list of changes, then in the store's decoded copy).
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Service(Service),
    Route(Route),
    Upstream(Box<Upstream>),
    Target(Target),
    Consumer(Consumer),
    KeyAuthCredential(KeyAuthCredential),
    Plugin(Plugin),
}

macro_rules! each {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            Entity::Service($e) => $body,
            Entity::Route($e) => $body,
            Entity::Upstream(boxed) => {
                let $e: &Upstream = boxed;
                $body
            }
            Entity::Target($e) => $body,
            Entity::Consumer($e) => $body,
            Entity::KeyAuthCredential($e) => $body,
            Entity::Plugin($e) => $body,
        }
    };
}

macro_rules! from_impl {
    ($($t:ident),*) => {
        $(impl From<$t> for Entity {
            fn from(e: $t) -> Self {
                Entity::$t(e)
            }
        })*
    };
}
from_impl!(
    Service,
    Route,
    Target,
    Consumer,
    KeyAuthCredential,
    Plugin
);

impl From<Upstream> for Entity {
    fn from(e: Upstream) -> Self {
        Entity::Upstream(Box::new(e))
    }
}

fn table_of<E: EntityType>(_: &E) -> &'static str {
    E::TABLE
}

impl Entity {
    /// Kong's table name (`services`, ..., `keyauth_credentials`, `plugins`).
    pub fn table(&self) -> &'static str {
        each!(self, e => table_of(e))
    }
    /// The position of the table in [`storage::TABLES`] (dependency order).
    pub fn table_rank(&self) -> usize {
        storage::TABLES
            .iter()
            .position(|t| *t == self.table())
            .unwrap_or(usize::MAX)
    }
    pub fn id(&self) -> Uuid {
        each!(self, e => e.id())
    }
    /// `config/<table>/<uuid>`.
    pub fn storage_key(&self) -> String {
        each!(self, e => e.storage_key())
    }
    /// Unique index keys with the 409 description (`{name="x"}`).
    pub fn unique_keys(&self) -> Vec<(String, String)> {
        each!(self, e => e.unique_keys())
    }
    /// Unique index keys with the key as the 409's `fields`.
    pub fn unique_fields(&self) -> Vec<(String, Value)> {
        each!(self, e => e.unique_fields())
    }
    /// The endpoint key's value (name, username, target, ...), if any.
    pub fn endpoint_key_value(&self) -> Option<String> {
        each!(self, e => e.endpoint_key_value())
    }
    /// The stored bytes (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        each!(self, e => e.to_bytes())
    }
    /// The entity as Kong's JSON.
    pub fn to_json(&self) -> Value {
        each!(self, e => serde_json::to_value(e).unwrap_or(Value::Null))
    }
    /// The entity's JSON without `created_at`/`updated_at`: what a diff compares.
    pub fn content(&self) -> Value {
        let mut v = self.to_json();
        if let Value::Object(m) = &mut v {
            m.remove("created_at");
            m.remove("updated_at");
        }
        v
    }
    /// Decodes the stored bytes of an entity of `table`.
    pub fn from_bytes(table: &str, bytes: &[u8]) -> Result<Entity, KongError> {
        Ok(match table {
            "services" => Service::from_bytes(bytes)?.into(),
            "routes" => Route::from_bytes(bytes)?.into(),
            "upstreams" => Upstream::from_bytes(bytes)?.into(),
            "targets" => Target::from_bytes(bytes)?.into(),
            "consumers" => Consumer::from_bytes(bytes)?.into(),
            "keyauth_credentials" => KeyAuthCredential::from_bytes(bytes)?.into(),
            "plugins" => Plugin::from_bytes(bytes)?.into(),
            other => {
                return Err(KongError::database_error(format!(
                    "unknown table '{other}'"
                )))
            }
        })
    }
    /// Decodes a store entry: `None` for keys that are not entities (indexes, others).
    pub fn from_store(key: &str, bytes: &[u8]) -> Option<Result<Entity, KongError>> {
        let (table, id) = storage::parse_entity_key(key)?;
        Some(Entity::from_bytes(table, bytes).and_then(|e| {
            if e.id() == id {
                Ok(e)
            } else {
                Err(KongError::database_error(format!(
                    "entry {key} holds entity {}",
                    e.id()
                )))
            }
        }))
    }
    /// Copies `created_at` (and for updates keeps the given `updated_at`) from `old`.
    pub fn keep_created_at(&mut self, old: &Entity) {
        match (self, old) {
            (Entity::Service(a), Entity::Service(b)) => a.created_at = b.created_at,
            (Entity::Route(a), Entity::Route(b)) => a.created_at = b.created_at,
            (Entity::Upstream(a), Entity::Upstream(b)) => a.created_at = b.created_at,
            (Entity::Target(a), Entity::Target(b)) => a.created_at = b.created_at,
            (Entity::Consumer(a), Entity::Consumer(b)) => a.created_at = b.created_at,
            (Entity::KeyAuthCredential(a), Entity::KeyAuthCredential(b)) => {
                a.created_at = b.created_at
            }
            (Entity::Plugin(a), Entity::Plugin(b)) => a.created_at = b.created_at,
            _ => {}
        }
    }
}
