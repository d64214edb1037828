//! jwtgate verifies Clerk session tokens for nginx `auth_request`.
//!
//! nginx asks `GET /auth` before each request; jwtgate finds the token
//! (`Authorization: Bearer`, else the `__session` cookie), verifies its
//! signature with OpenSSL against keys held in memory, checks its claims and
//! answers 200 with `X-User-Id` and friends, or 401.
//!
//! # Layout
//!
//! Four layers; each imports only from the ones above it in this list:
//!
//! - [`token`]: the token alone, no I/O: decoding, the JOSE header,
//!   algorithms, claims and their validation, the identity they carry, and
//!   [`TokenError`], the one enum of reasons a token fails.
//! - [`keys`]: OpenSSL verifying keys (JWK, PEM), the [`KeyStore`] that
//!   holds them by kid with their age and the unknown-kid refetch bound, key
//!   sources (the JWKS fetch), the state file that keeps them across
//!   restarts, and the refresher thread.
//! - [`verify`]: one token against the keys and a [`Policy`]: signature
//!   before claims.
//! - [`gate`]: from request headers to a [`Decision`]: token extraction,
//!   the grant a verified token earns, the verified-token cache, the HTTP
//!   service and the metrics.
//!
//! On top, the daemon and its command line:
//!
//! - [`config`]: TOML + environment, checked, with errors that name the
//!   key; resolved into the values the layers above take.
//! - [`daemon`]: threads, the HTTP server's life (listen, wait for keys,
//!   drain), reload and stop ([`Control`]).
//! - [`key_threads`]: one key store and refresher thread per issuer, and
//!   the verifier that routes tokens between them.
//! - [`systemd`]: `Type=notify` readiness and reload outcomes, socket
//!   activation.
//! - [`cli`], [`demo`]: the command line, `check`, `verify`, `demo`.
//!
//! Between `verify` and `gate`, what the gate consults besides the token:
//! - [`browser`]: browser sign-in, Clerk's handshake.
//! - [`rules`]: per-location requirements (`?role=...`), Clerk's `has()`.
//!
//! `sync` holds the one lock helper every layer uses.

pub mod browser;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod gate;
pub mod key_threads;
pub mod keys;
pub mod rules;
mod sync;
pub mod systemd;
pub mod token;
pub mod verify;

pub use config::Config;
pub use daemon::Control;
pub use gate::{Decision, Gate, GateOptions};
pub use keys::jwk::VerifyingKey;
pub use keys::store::KeyStore;
pub use token::errors::TokenError;
pub use verify::{Policy, Verified, Verifier};
