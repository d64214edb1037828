//! The whole verification of one token, in the order that matters:
//! size, structure, header, key, **signature**, then claims. Claims are
//! never looked at before the signature is known good, so a forged token
//! learns nothing from the reason it is refused.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::algorithms::AlgorithmSet;
use crate::cache::{Entry, TokenCache};
use crate::claims::{Claims, Validation};
use crate::config::Config;
use crate::errors::TokenError;
use crate::identity::Identity;
use crate::jwk::VerifyingKey;
use crate::keystore::{KeyStore, Lookup};
use crate::token::{decode, Decoded, Jws};

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
    /// Algorithms allowed at all (Clerk mode: the RS family).
    pub algorithms: AlgorithmSet,
    pub validation: Validation,
    pub max_token_bytes: usize,
    /// Verified tokens; `None` when caching is off.
    pub cache: Option<TokenCache>,
    /// How long a decision may be reused (here and, through
    /// `X-Accel-Expires`, by nginx), at most until the token's exp.
    pub decision_ttl: Duration,
}

/// How `authorize` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A live cache entry: no signature work.
    Cache,
    /// A full verification.
    Verified,
}

impl Verifier {
    /// A verifier with the config's policy over `keys`; `cache_tokens` 0
    /// means no cache (`jwtgate verify` verifies once).
    pub fn from_config(config: &Config, keys: Arc<KeyStore>, cache_tokens: usize) -> Verifier {
        Verifier {
            keys,
            algorithms: config.algorithms,
            validation: config.validation.clone(),
            max_token_bytes: config.max_token_bytes,
            cache: TokenCache::new(cache_tokens),
            decision_ttl: config.decision_ttl,
        }
    }

    /// The `/auth` decision: on success appends the response header lines
    /// (identity headers and `X-Accel-Expires: @<exp>`) to `out`. A cache
    /// hit allocates nothing and does no signature work.
    pub fn authorize(
        &self,
        token: &str,
        now_ms: i64,
        out: &mut String,
    ) -> Result<Source, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        let Some(cache) = &self.cache else {
            out.push_str(&self.verify_and_render(token, now_ms)?.0);
            return Ok(Source::Verified);
        };
        let key = cache.key(token);
        let generation = self.keys.generation();
        if cache
            .get(key, now_ms, generation, |e| out.push_str(&e.headers))
            .is_some()
        {
            return Ok(Source::Cache);
        }
        let (headers, expires_ms) = self.verify_and_render(token, now_ms)?;
        out.push_str(&headers);
        if now_ms < expires_ms {
            let headers = headers.into_boxed_str();
            cache.insert(
                key,
                Entry {
                    headers,
                    expires_ms,
                    generation,
                },
            );
        }
        Ok(Source::Verified)
    }

    /// Full verification; the header block, and until when the decision
    /// may be reused (Unix ms): the token's exp, capped at `decision_ttl`.
    /// nginx is told the same, one second early, because it keeps an
    /// `X-Accel-Expires: @T` entry through the whole second T.
    fn verify_and_render(&self, token: &str, now_ms: i64) -> Result<(String, i64), TokenError> {
        let verified = self.verify_at(token, now_ms)?;
        let exp_secs = verified
            .claims
            .expiry_secs()
            .ok_or(TokenError::InvalidExpiry)?;
        let ttl_ms = self.decision_ttl.as_millis() as i64;
        let reuse_until_ms = exp_secs
            .saturating_mul(1000)
            .min(now_ms.saturating_add(ttl_ms));
        let mut headers = verified.headers;
        let _ = write!(
            headers,
            "\r\nX-Accel-Expires: @{}",
            reuse_until_ms.div_euclid(1000) - 1
        );
        Ok((headers, reuse_until_ms))
    }

    /// Verifies `token` at the current time.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        self.verify_at(token, now_ms())
    }

    /// Verifies `token` as of `now_ms` (Unix milliseconds).
    pub fn verify_at(&self, token: &str, now_ms: i64) -> Result<Verified, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        let Decoded { jws, claims } = decode(token)?;
        if !self.algorithms.contains(jws.header.alg) {
            return Err(TokenError::InvalidAlgorithm);
        }
        let key = match self.keys.lookup_or_refetch(jws.header.kid.as_deref()) {
            Lookup::Found(key) => key,
            Lookup::UnknownKid => return Err(TokenError::UnknownKid),
            Lookup::Unavailable => return Err(TokenError::KeysUnavailable),
        };
        check_signature(&jws, &key)?;
        self.validation.validate(&claims, now_ms)?;
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
