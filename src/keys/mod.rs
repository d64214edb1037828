//! The keys: OpenSSL verifying keys, the store that holds them, where they
//! come from, where they are kept across restarts, and the thread that
//! keeps them fresh.
//!
//! - [`jwk`]: JWK and PEM keys as OpenSSL keys; `verify_signature`.
//! - [`store`]: the keys in memory by kid, their age, and the unknown-kid
//!   refetch bound.
//! - [`source`]: key sources (PEM, JWKS URL, OpenID Connect issuer) and
//!   the JWKS fetch.
//! - [`discovery`]: OpenID Connect discovery: an issuer's `jwks_uri`.
//! - [`state`]: the last good JWKS on disk, for restarts during an outage.
//! - [`refresher`]: the background thread: refresh, refetch, reload.

pub mod discovery;
pub mod jwk;
pub mod refresher;
pub mod source;
pub mod state;
pub mod store;
