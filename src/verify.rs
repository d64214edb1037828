//! Verification: one token against the keys and a policy, in the order
//! that matters: size, structure, header, key, **signature**, then claims.
//! Claims are never looked at before the signature is known good, so a
//! forged token learns nothing from the reason it is refused.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::keys::jwk::VerifyingKey;
use crate::keys::store::{KeyStore, Lookup};
use crate::token::algorithms::AlgorithmSet;
use crate::token::claims::{Claims, Validation};
use crate::token::errors::TokenError;
use crate::token::identity::Identity;
use crate::token::{decode, Decoded, Jws};

/// What a token must satisfy besides its signature.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Algorithms allowed at all (Clerk mode: the RS family).
    pub algorithms: AlgorithmSet,
    pub validation: Validation,
    /// Larger tokens are refused before any parsing or hashing.
    pub max_token_bytes: usize,
}

impl Policy {
    /// The size bound, checked first everywhere a token arrives.
    pub fn check_size(&self, token: &str) -> Result<(), TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        Ok(())
    }
}

/// A token that passed every check.
#[derive(Debug)]
pub struct Verified {
    pub identity: Identity,
    /// The identity as HTTP header lines (CRLF-separated), checked safe:
    /// a claim that could break a header refuses the token.
    pub headers: String,
    pub claims: Claims,
    /// The payload JSON as the issuer wrote it.
    pub payload: Vec<u8>,
}

/// Verifies tokens against a key store and a policy.
pub struct Verifier {
    keys: Arc<KeyStore>,
    policy: Policy,
}

impl Verifier {
    pub fn new(keys: Arc<KeyStore>, policy: Policy) -> Verifier {
        Verifier { keys, policy }
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Verifies `token` at the current time.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        self.verify_at(token, now_ms())
    }

    /// Verifies `token` as of `now_ms` (Unix milliseconds).
    pub fn verify_at(&self, token: &str, now_ms: i64) -> Result<Verified, TokenError> {
        self.policy.check_size(token)?;
        let Decoded { jws, claims } = decode(token)?;
        self.check_jws(&jws)?;
        self.policy.validation.validate(&claims, now_ms)?;
        let identity = Identity::from_claims(&claims)?;
        let mut headers = String::with_capacity(128);
        identity.render_headers(&mut headers)?;
        Ok(Verified {
            identity,
            headers,
            claims,
            payload: jws.payload,
        })
    }
}

impl Verifier {
    /// The checks of a decoded JWS before its claims: the policy allows its
    /// `alg`, its `kid` names a key we hold, and that key verifies it.
    pub fn check_jws(&self, jws: &Jws) -> Result<(), TokenError> {
        if !self.policy.algorithms.contains(jws.header.alg) {
            return Err(TokenError::InvalidAlgorithm);
        }
        let key = match self.keys.lookup_or_refetch(jws.header.kid.as_deref()) {
            Lookup::Found(key) => key,
            Lookup::UnknownKid => return Err(TokenError::UnknownKid),
            Lookup::Unavailable => return Err(TokenError::KeysUnavailable),
        };
        check_signature(jws, &key)
    }
}

/// Checks a JWS's signature with `key`, which must allow its `alg`.
pub fn check_signature(jws: &Jws, key: &VerifyingKey) -> Result<(), TokenError> {
    if !key.allows(jws.header.alg) {
        return Err(TokenError::InvalidAlgorithm);
    }
    if !key.verify_signature(jws.header.alg, jws.signing_input, &jws.signature) {
        return Err(TokenError::InvalidSignature);
    }
    Ok(())
}

/// The Unix time in milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
