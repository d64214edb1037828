//! Why a token is refused.
//!
//! One enum, one variant per reason. The reason string is what the 401's
//! `error_description`, the debug log line, `jwtgate verify` and the
//! `/metrics` counters all show, so an operator sees the same word everywhere.
//! Where Clerk's `@clerk/backend` has a name for the same failure we use it.

use std::fmt;

/// Every way a request can fail to authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenError {
    /// No `Authorization: Bearer` header and no `__session` cookie.
    Missing,
    /// More than one `Authorization` header: ambiguous, so refused.
    AmbiguousAuthorization,
    /// Over `verify.max_token_bytes`; refused before any parsing.
    TooLarge,
    /// Not three unpadded base64url segments holding JSON objects.
    Malformed,
    /// `typ` present and not `JWT`.
    InvalidType,
    /// A `crit` header: jwtgate understands no JWS extension.
    UnsupportedCrit,
    /// `cat` marks an M2M, template or unknown token category.
    WrongCategory,
    /// Several issuers are configured and the token's `iss` (read before
    /// the signature, for routing only) names none of them.
    UnknownIssuer,
    /// `alg` is not one the key (or jwtgate) allows.
    InvalidAlgorithm,
    /// `kid` is not a string or is over 256 bytes.
    InvalidKid,
    /// No key with this `kid`, even after the bounded refetch.
    UnknownKid,
    /// The signature does not verify.
    InvalidSignature,
    /// `sub` missing, empty or not a string.
    InvalidSubject,
    /// `exp` missing, not a number, or out of range.
    InvalidExpiry,
    /// `nbf` present and not a number.
    InvalidNotBefore,
    /// `iat` present and not a number.
    InvalidIssuedAt,
    /// A claim has the wrong JSON type (e.g. `sid` not a string).
    InvalidClaim,
    /// `exp <= now - leeway`.
    Expired,
    /// `nbf > now + leeway`.
    NotActiveYet,
    /// `iat > now + leeway`.
    IssuedInTheFuture,
    /// `iss` differs from the configured issuer.
    InvalidIssuer,
    /// `azp` missing or not in `verify.authorized_parties`.
    InvalidAuthorizedParty,
    /// `verify.audience` set and `aud` missing or naming none of it.
    InvalidAudience,
    /// `sts: "pending"` and pending sessions are not allowed.
    SessionPending,
    /// A claim that would become a header holds a control character or is too long.
    UnsafeHeaderValue,
    /// No key was ever loaded (key server down since start): an outage, not
    /// a bad token, so `/auth` answers 503.
    KeysUnavailable,
}

impl TokenError {
    /// All variants, in a fixed order (used to index metric counters).
    pub const ALL: [TokenError; 26] = [
        TokenError::Missing,
        TokenError::AmbiguousAuthorization,
        TokenError::TooLarge,
        TokenError::Malformed,
        TokenError::InvalidType,
        TokenError::UnsupportedCrit,
        TokenError::WrongCategory,
        TokenError::UnknownIssuer,
        TokenError::InvalidAlgorithm,
        TokenError::InvalidKid,
        TokenError::UnknownKid,
        TokenError::InvalidSignature,
        TokenError::InvalidSubject,
        TokenError::InvalidExpiry,
        TokenError::InvalidNotBefore,
        TokenError::InvalidIssuedAt,
        TokenError::InvalidClaim,
        TokenError::Expired,
        TokenError::NotActiveYet,
        TokenError::IssuedInTheFuture,
        TokenError::InvalidIssuer,
        TokenError::InvalidAuthorizedParty,
        TokenError::InvalidAudience,
        TokenError::SessionPending,
        TokenError::UnsafeHeaderValue,
        TokenError::KeysUnavailable,
    ];

    /// The short, stable reason string.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Missing => "token-missing",
            TokenError::AmbiguousAuthorization => "token-ambiguous-authorization",
            TokenError::TooLarge => "token-too-large",
            TokenError::Malformed => "token-invalid",
            TokenError::InvalidType => "token-invalid-type",
            TokenError::UnsupportedCrit => "token-unsupported-crit",
            TokenError::WrongCategory => "token-type-mismatch",
            TokenError::UnknownIssuer => "token-unknown-issuer",
            TokenError::InvalidAlgorithm => "token-invalid-algorithm",
            TokenError::InvalidKid => "token-invalid-kid",
            TokenError::UnknownKid => "jwk-kid-mismatch",
            TokenError::InvalidSignature => "token-invalid-signature",
            TokenError::InvalidSubject => "token-invalid-sub",
            TokenError::InvalidExpiry => "token-invalid-exp",
            TokenError::InvalidNotBefore => "token-invalid-nbf",
            TokenError::InvalidIssuedAt => "token-invalid-iat",
            TokenError::InvalidClaim => "token-invalid-claim",
            TokenError::Expired => "token-expired",
            TokenError::NotActiveYet => "token-not-active-yet",
            TokenError::IssuedInTheFuture => "token-iat-in-the-future",
            TokenError::InvalidIssuer => "token-invalid-issuer",
            TokenError::InvalidAuthorizedParty => "token-invalid-authorized-parties",
            TokenError::InvalidAudience => "token-invalid-audience",
            TokenError::SessionPending => "session-pending",
            TokenError::UnsafeHeaderValue => "token-unsafe-claim-value",
            TokenError::KeysUnavailable => "jwk-remote-failed-to-load",
        }
    }

    /// Position in [`TokenError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TokenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order_and_reasons_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (i, e) in TokenError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i, "{e:?} is out of place in ALL");
            assert!(seen.insert(e.reason()), "duplicate reason {}", e.reason());
            assert!(e
                .reason()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-'));
        }
    }
}
