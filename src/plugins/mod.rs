//! The request pipeline's plugins: key-auth (authentication) and rate-limiting.

pub mod key_auth;
mod key_auth_cache;
pub mod rate_limit_fields;
pub mod rate_limiting;
