//! jwtgate verifies Clerk session tokens for nginx `auth_request`.
//!
//! nginx asks `GET /auth` before each request; jwtgate finds the token
//! (`Authorization: Bearer`, else the `__session` cookie), verifies its
//! signature with OpenSSL against keys held in memory, checks its claims and
//! answers 200 with `X-User-Id` and friends, or 401.
//!
//! # Layout
//!
//! The token, in the order it is checked:
//! - [`extract`]: find the token in the request headers.
//! - [`token`]: split and base64url-decode the three segments.
//! - [`header`]: the JOSE header: `alg`, `kid`, `typ`, `crit`, `cat`.
//! - [`algorithms`]: the accepted `alg` values and their digests.
//! - [`jwk`]: keys (JWK and PEM) as OpenSSL keys; `verify_signature`.
//! - [`claims`]: the claims and their validation (`exp`, `iss`, `azp`, ...).
//! - [`identity`]: claims to `X-User-Id`, `X-Org-*`, ... headers.
//! - [`verify`]: the whole pipeline, signature before claims.
//! - [`cache`]: verified tokens by keyed hash, so a repeat costs no RSA.
//! - [`errors`]: the one enum of reasons a token fails.
//!
//! The keys:
//! - [`keystore`]: the LRU of keys by kid and the unknown-kid refetch bound.
//! - [`fetch`]: key sources, the JWKS fetch and the refresher thread.
//!
//! The daemon:
//! - [`config`]: TOML + environment, checked, with errors that name the key.
//! - [`server`]: may_minihttp service: `/auth`, `/healthz`, `/readyz`, `/metrics`.
//! - [`metrics`]: Prometheus counters and the latency histogram.
//! - [`daemon`]: threads, signals (SIGHUP reload, SIGTERM exit).
//! - [`systemd`]: `Type=notify` readiness.
//! - [`cli`], [`demo`]: the command line, `check`, `verify`, `demo`.

pub mod algorithms;
pub mod cache;
pub mod claims;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod errors;
pub mod extract;
pub mod fetch;
pub mod header;
pub mod identity;
mod json;
pub mod jwk;
pub mod keystore;
pub mod metrics;
pub mod server;
pub mod systemd;
pub mod token;
pub mod verify;
