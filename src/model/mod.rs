//! The gateway's configuration model: entities, validation with Kong's messages, the
//! store key layout, the read-only snapshot and Kong's declarative format. Pure code.

pub mod entity;
pub mod error;
pub mod input;
pub mod schema;
pub mod service;
pub mod storage;
pub mod validators;

pub use entity::{coerce_form, create, patch, replace, unix_now, Entity, ForeignKey, Num, PutKey};
pub use error::KongError;
pub use service::Service;
