//! The request pipeline's plugins: key-auth (authentication) and rate-limiting.

pub mod key_auth;
pub mod rate_limiting;
