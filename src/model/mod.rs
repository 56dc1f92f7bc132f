//! The gateway's configuration model: entities, validation with Kong's messages, the
//! store key layout, the read-only snapshot and Kong's declarative format. Pure code.
//!
//! How the Admin API uses it, for a POST:
//! 1. body → input object ([`input::json_body`], or [`input::form_to_json`] then
//!    [`coerce_form`]), nested foreign keys resolved with
//!    [`ConfigSnapshot::resolve_foreign_names`];
//! 2. [`create`] (or [`replace`] / [`patch`]) validates and fills defaults;
//! 3. [`ConfigSnapshot::missing_references`] and [`ConfigSnapshot::unique_conflict`]
//!    against the current snapshot;
//! 4. one store transaction: the entity at [`Entity::storage_key`] and each of
//!    [`Entity::unique_keys`] (`config/index/...` → id) with "absent" preconditions, so a
//!    concurrent write of the same name fails as a 409.
//!
//! On DELETE: [`ConfigSnapshot::referenced_by`] (a service with routes is refused), then
//! the entity, its index keys and [`ConfigSnapshot::cascade_of`] in one transaction.

pub mod any;
pub mod consumer;
pub mod declarative;
pub mod diff;
pub mod entity;
pub mod error;
pub mod input;
pub mod plugin;
pub mod plugin_scopes;
pub mod plugins;
#[cfg(test)]
mod proptests;
pub mod route;
pub mod schema;
pub mod schema_json;
pub mod service;
pub mod snapshot;
pub mod storage;
pub mod target;
pub mod upstream;
pub mod validators;

pub use any::Entity;
pub use consumer::{hash_key, Consumer, KeyAuthCredential};
pub use declarative::{export_declarative, parse_declarative, parse_declarative_with};
pub use diff::{diff, ConfigDiff};
pub use entity::{
    coerce_form, coerce_patch_form, create, patch, replace, unix_now, EntityType, ForeignKey, Num, PutKey,
};
pub use error::KongError;
pub use plugin::Plugin;
pub use route::Route;
pub use service::Service;
pub use snapshot::ConfigSnapshot;
pub use target::Target;
pub use upstream::Upstream;
