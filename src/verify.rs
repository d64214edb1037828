//! The whole verification of one token, in the order that matters:
//! size, structure, header, key, **signature**, then claims. Claims are
//! never looked at before the signature is known good, so a forged token
//! learns nothing from the reason it is refused.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::claims::{Claims, Validation};
use crate::errors::TokenError;
use crate::identity::Identity;
use crate::keystore::{KeyStore, Lookup};
use crate::token::decode;

/// A token that passed every check.
#[derive(Debug)]
pub struct Verified {
    pub identity: Identity,
    /// The identity as HTTP header lines (CRLF-separated), checked safe.
    pub headers: String,
    pub claims: Claims,
    /// The payload JSON as the issuer wrote it.
    pub payload: Vec<u8>,
}

/// Verifies tokens against a key store and a claim policy.
pub struct Verifier {
    pub keys: Arc<KeyStore>,
    pub validation: Validation,
    pub max_token_bytes: usize,
}

impl Verifier {
    /// Verifies `token` at the current time.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        self.verify_at(token, now_ms())
    }

    /// Verifies `token` as of `now_ms` (Unix milliseconds).
    pub fn verify_at(&self, token: &str, now_ms: i64) -> Result<Verified, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        let decoded = decode(token)?;
        let key = match self.keys.lookup_or_refetch(decoded.header.kid.as_deref()) {
            Lookup::Found(key) => key,
            Lookup::UnknownKid => return Err(TokenError::UnknownKid),
            Lookup::Unavailable => return Err(TokenError::KeysUnavailable),
        };
        if !key.allows(decoded.header.alg) {
            return Err(TokenError::InvalidAlgorithm);
        }
        if !key.verify_signature(
            decoded.header.alg,
            decoded.signing_input,
            &decoded.signature,
        ) {
            return Err(TokenError::InvalidSignature);
        }
        self.validation.validate(&decoded.claims, now_ms)?;
        let identity = Identity::from_claims(&decoded.claims)?;
        let mut headers = String::with_capacity(128);
        identity.render_headers(&mut headers)?;
        Ok(Verified {
            identity,
            headers,
            claims: decoded.claims,
            payload: decoded.payload,
        })
    }
}

/// The Unix time in milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
