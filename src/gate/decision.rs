//! The `/auth` decision as a type, and the one place it becomes HTTP.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::token::errors::TokenError;
use crate::token::identity::Identity;

/// An allowed identity, shared by every cache hit of its token.
#[derive(Debug)]
pub struct Grant {
    pub identity: Identity,
    /// The response header lines (identity headers and `X-Accel-Expires`),
    /// CRLF-separated, rendered once when the token was verified.
    pub headers: Box<str>,
    /// Until when the decision may be reused (Unix ms): the token's `exp`,
    /// capped at the configured decision TTL.
    pub reuse_until_ms: i64,
}

/// How an allow was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A live cache entry: no signature work.
    Cache,
    /// A full verification.
    Verified,
}

/// What `/auth` answers.
#[derive(Debug)]
pub enum Decision {
    /// 200 with the identity headers.
    Allow { grant: Arc<Grant>, source: Source },
    /// 401 with an RFC 6750 challenge naming the reason.
    Deny(TokenError),
    /// 503: no key was ever loaded, so nobody can be verified.
    Unavailable,
}

impl Decision {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Decision::Allow { .. } => 200,
            Decision::Deny(_) => 401,
            Decision::Unavailable => 503,
        }
    }

    /// Appends the response header lines (CRLF-separated, none at the
    /// end) to `out`. Allocates nothing when `out` has room.
    pub fn render_headers(&self, out: &mut String) {
        match self {
            Decision::Allow { grant, .. } => out.push_str(&grant.headers),
            Decision::Unavailable => out.push_str("Retry-After: 5"),
            Decision::Deny(TokenError::Missing) => out.push_str("WWW-Authenticate: Bearer"),
            Decision::Deny(e) => {
                let _ = write!(
                    out,
                    "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"{}\"",
                    e.reason()
                );
            }
        }
    }

    /// The reason word for logs and metrics (`ok` for an allow).
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Allow { .. } => "ok",
            Decision::Deny(e) => e.reason(),
            Decision::Unavailable => TokenError::KeysUnavailable.reason(),
        }
    }
}
