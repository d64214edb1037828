//! Verification: one token against the keys and a policy, in the order
//! that matters: size, structure, header, key, **signature**, then claims.
//! Claims are never trusted before the signature is known good, so a
//! forged token learns nothing from the reason it is refused.
//!
//! With several issuers (`[[issuers]]`) a token is first *routed*: its
//! `iss`, read from the decoded but not yet verified claims, must equal one
//! issuer's exactly, and only that issuer's keys and rules are used from
//! there on (`token-unknown-issuer` otherwise). `iss` picks which keys may
//! vouch for the token and nothing more: a token claiming issuer A is
//! checked with A's keys alone, so a kid of issuer B's is just unknown
//! there. With one issuer there is no routing, and nothing changes: its
//! rules check `iss` after the signature, as they always did.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::keys::jwk::VerifyingKey;
use crate::keys::store::{KeyStore, Lookup};
use crate::token::algorithms::AlgorithmSet;
use crate::token::claim_headers::{ClaimHeaders, MAX_MAPPED_HEADERS};
use crate::token::claims::{Claims, Validation};
use crate::token::errors::TokenError;
use crate::token::identity::Identity;
use crate::token::json::Json;
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
    /// Which issuer vouched for it: an index into [`Verifier::issuers`].
    pub issuer: usize,
    pub identity: Identity,
    /// The identity as HTTP header lines (CRLF-separated), checked safe:
    /// a claim that could break a header refuses the token. With several
    /// issuers also `X-Issuer: <name>`, and every header any issuer maps
    /// claims to (this issuer's values, empty for the others').
    pub headers: String,
    /// How many bytes at the start of `headers` are the identity's lines
    /// (the rest, each line led by CRLF, are `X-Issuer` and mapped claims).
    pub identity_len: usize,
    pub claims: Claims,
    /// The payload JSON as the issuer wrote it.
    pub payload: Vec<u8>,
}

/// Why a token was refused, and by which issuer (`None`: before routing:
/// too large, malformed, or an unknown issuer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub issuer: Option<usize>,
    pub error: TokenError,
}

/// One issuer the verifier knows: its name, keys, rules and mapped headers.
pub struct Issuer {
    /// For logs, metrics and `X-Issuer`.
    pub name: String,
    pub keys: Arc<KeyStore>,
    /// Its rules; with several issuers `validation.issuer` is set (it is
    /// what routes tokens here).
    pub policy: Policy,
    /// Claims it maps to response headers.
    pub headers: ClaimHeaders,
    /// Per-location rules read Clerk's claims (org, role, permissions,
    /// features, plans, `fva`) from its tokens. Off for the non-Clerk
    /// issuers of a several-issuer config: another issuer's `org_role`
    /// claim must not pass a rule written for a Clerk role.
    pub clerk_facts: bool,
}

/// Every header name any of `issuers` maps, each once (names compare
/// case-insensitively), in issuer order.
pub fn mapped_names(issuers: &[Issuer]) -> Vec<String> {
    let mut mapped: Vec<String> = Vec::new();
    for name in issuers.iter().flat_map(|i| i.headers.names()) {
        if !mapped.iter().any(|m| m.eq_ignore_ascii_case(name)) {
            mapped.push(name.to_string());
        }
    }
    mapped
}

/// The name of the issuer [`Verifier::new`] makes.
pub const DEFAULT_ISSUER: &str = "default";

/// Verifies tokens against the issuers' key stores and policies.
pub struct Verifier {
    /// At least one.
    issuers: Vec<Issuer>,
    /// Every header name any issuer maps, each once, in issuer order.
    mapped: Vec<String>,
}

impl Verifier {
    /// A verifier for one issuer, without mapped headers.
    pub fn new(keys: Arc<KeyStore>, policy: Policy) -> Verifier {
        Verifier {
            issuers: vec![Issuer {
                name: DEFAULT_ISSUER.to_string(),
                keys,
                policy,
                headers: ClaimHeaders::default(),
                clerk_facts: true,
            }],
            mapped: Vec::new(),
        }
    }

    /// A verifier for these issuers (at least one). With more than one,
    /// each must have an issuer (`policy.validation.issuer`), each a
    /// different one: the config checks both.
    pub fn with_issuers(issuers: Vec<Issuer>) -> Result<Verifier, String> {
        if issuers.is_empty() {
            return Err("no issuer".into());
        }
        if let Some(bad) = issuers.iter().find(|i| {
            i.name.is_empty()
                || !i
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }) {
            return Err(format!(
                "issuer name {:?}: letters, digits, '-', '_' and '.'",
                bad.name
            ));
        }
        if issuers.len() > 1 {
            for (i, issuer) in issuers.iter().enumerate() {
                let Some(iss) = &issuer.policy.validation.issuer else {
                    return Err(format!("issuer {}: no iss to route by", issuer.name));
                };
                if issuers[..i]
                    .iter()
                    .any(|other| other.policy.validation.issuer.as_ref() == Some(iss))
                {
                    return Err(format!("issuer {}: {iss} is listed twice", issuer.name));
                }
            }
        }
        let mapped = mapped_names(&issuers);
        if mapped.len() > MAX_MAPPED_HEADERS {
            return Err(format!(
                "{} header names mapped in all; at most {MAX_MAPPED_HEADERS}",
                mapped.len()
            ));
        }
        Ok(Verifier { issuers, mapped })
    }

    /// The issuers, in configuration order.
    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }

    /// Appends an empty line (`\r\n<name>: `) for every header a grant of
    /// these issuers may carry beyond the identity headers: `X-Issuer` with
    /// several issuers, and every mapped header. For a forward-style answer
    /// without identity (`optional=1`): Caddy 2.6 hands a header missing
    /// from the answer to the app as its placeholder text.
    pub fn push_blank_headers(&self, out: &mut String) {
        let issuer = (self.issuers.len() > 1).then_some("X-Issuer");
        for name in issuer
            .into_iter()
            .chain(self.mapped.iter().map(String::as_str))
        {
            out.push_str("\r\n");
            out.push_str(name);
            out.push_str(": ");
        }
    }

    /// The first issuer's keys (the only issuer's, usually; the browser
    /// flow's Clerk instance).
    pub fn keys(&self) -> &KeyStore {
        &self.issuers[0].keys
    }

    /// The first issuer's policy (`max_token_bytes` is everyone's).
    pub fn policy(&self) -> &Policy {
        &self.issuers[0].policy
    }

    /// Changes whenever any issuer's key set changes or goes stale: the
    /// sum of the stores' generations, each of which only grows.
    pub fn generation(&self) -> u64 {
        match &self.issuers[..] {
            [one] => one.keys.generation(),
            all => all
                .iter()
                .fold(0u64, |sum, i| sum.wrapping_add(i.keys.generation())),
        }
    }

    /// Every issuer holds keys that are not too old to use.
    pub fn is_usable(&self) -> bool {
        self.issuers.iter().all(|i| i.keys.is_usable())
    }

    /// The issuer a token goes to: the only one, or the one whose issuer
    /// equals the token's `iss` exactly. The claims are not trusted yet:
    /// `iss` only chooses whose keys must vouch for them.
    pub fn route(&self, claims: &Claims) -> Result<usize, TokenError> {
        if self.issuers.len() == 1 {
            return Ok(0);
        }
        let Some(Json::String(iss)) = &claims.iss else {
            return Err(TokenError::UnknownIssuer);
        };
        self.issuers
            .iter()
            .position(|i| i.policy.validation.issuer.as_deref() == Some(iss))
            .ok_or(TokenError::UnknownIssuer)
    }

    /// Verifies `token` at the current time.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        self.verify_at(token, now_ms())
    }

    /// Verifies `token` as of `now_ms` (Unix milliseconds).
    pub fn verify_at(&self, token: &str, now_ms: i64) -> Result<Verified, TokenError> {
        self.verify_routed_at(token, now_ms).map_err(|r| r.error)
    }

    /// [`Verifier::verify_at`], saying which issuer refused a token that
    /// was routed to one.
    pub fn verify_routed_at(&self, token: &str, now_ms: i64) -> Result<Verified, Refused> {
        let unrouted = |error| Refused {
            issuer: None,
            error,
        };
        self.policy().check_size(token).map_err(unrouted)?;
        let Decoded { jws, claims } = decode(token).map_err(unrouted)?;
        let index = self.route(&claims).map_err(unrouted)?;
        self.verify_with(index, jws, claims, now_ms)
            .map_err(|error| Refused {
                issuer: Some(index),
                error,
            })
    }

    /// Everything after routing, with issuer `index` alone.
    fn verify_with(
        &self,
        index: usize,
        jws: Jws<'_>,
        claims: Claims,
        now_ms: i64,
    ) -> Result<Verified, TokenError> {
        let issuer = &self.issuers[index];
        issuer.check_jws(&jws)?;
        issuer.policy.validation.validate(&claims, now_ms)?;
        let identity = Identity::from_claims(&claims)?;
        let mut headers = String::with_capacity(128);
        identity.render_headers(&mut headers)?;
        let identity_len = headers.len();
        if self.issuers.len() > 1 {
            headers.push_str("\r\nX-Issuer: ");
            headers.push_str(&issuer.name);
        }
        if !self.mapped.is_empty() {
            issuer
                .headers
                .render(&jws.payload, &self.mapped, &mut headers)?;
        }
        Ok(Verified {
            issuer: index,
            identity,
            headers,
            identity_len,
            claims,
            payload: jws.payload,
        })
    }

    /// [`Issuer::check_jws`] with the first issuer (the browser flow's
    /// Clerk instance: its handshake tokens).
    pub fn check_jws(&self, jws: &Jws) -> Result<(), TokenError> {
        self.issuers[0].check_jws(jws)
    }
}

impl Issuer {
    /// The checks of a decoded JWS before its claims: the policy allows its
    /// `alg`, its `kid` names a key this issuer holds, and that key
    /// verifies it.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::claim_headers::PathSpec;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;
    use serde_json::{json, Value};
    use std::time::Duration;

    const NOW: i64 = 1_700_000_000_000;

    fn rsa() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn jwk(key: &PKey<Private>, kid: &str) -> VerifyingKey {
        let rsa = key.rsa().unwrap();
        VerifyingKey::from_jwk(&json!({
            "kty": "RSA", "kid": kid, "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        }))
        .unwrap()
    }

    fn sign(key: &PKey<Private>, kid: &str, claims: Value) -> String {
        let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"}).to_string();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signer = Signer::new(MessageDigest::sha256(), key).unwrap();
        let sig = signer.sign_oneshot_to_vec(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn store() -> Arc<KeyStore> {
        Arc::new(KeyStore::new(
            4,
            Duration::from_secs(3600),
            Duration::from_millis(1),
        ))
    }

    fn policy(iss: &str, audience: &[&str]) -> Policy {
        Policy {
            algorithms: AlgorithmSet::ALL,
            validation: Validation {
                issuer: Some(iss.into()),
                audience: audience.iter().map(|a| a.to_string()).collect(),
                leeway_ms: 5000,
                ..Validation::default()
            },
            max_token_bytes: 16 * 1024,
        }
    }

    fn headers(entries: &[(&str, &str)]) -> ClaimHeaders {
        ClaimHeaders::new(
            entries
                .iter()
                .map(|(n, p)| (n.to_string(), PathSpec::Dotted(p.to_string()))),
        )
        .unwrap()
    }

    fn claims(iss: &str) -> Value {
        json!({"sub": "user_1", "iss": iss, "exp": NOW / 1000 + 60, "aud": "api"})
    }

    /// Issuer a (PEM), b (JWKS, kid b1), c (JWKS, kid c1, audience api).
    fn three() -> (Verifier, [PKey<Private>; 3]) {
        let keys = [rsa(), rsa(), rsa()];
        let (a, b, c) = (store(), store(), store());
        let pem = String::from_utf8(keys[0].public_key_to_pem().unwrap()).unwrap();
        a.install_pem(VerifyingKey::from_pem(&pem).unwrap());
        b.install_jwks(vec![jwk(&keys[1], "b1")]);
        c.install_jwks(vec![jwk(&keys[2], "c1")]);
        let issuer = |name: &str, keys, policy, headers| Issuer {
            name: name.into(),
            keys,
            policy,
            headers,
            clerk_facts: true,
        };
        let verifier = Verifier::with_issuers(vec![
            issuer("a", a, policy("https://a", &[]), ClaimHeaders::default()),
            issuer(
                "b",
                b,
                policy("https://b", &[]),
                headers(&[("X-Email", "email")]),
            ),
            issuer(
                "c",
                c,
                policy("https://c", &["api"]),
                headers(&[("X-Groups", "groups"), ("x-email", "mail")]),
            ),
        ])
        .unwrap();
        (verifier, keys)
    }

    #[test]
    fn tokens_go_to_the_issuer_their_iss_names_and_its_keys_alone() {
        let (v, keys) = three();
        let ok = |token: &str| v.verify_routed_at(token, NOW);
        let a = ok(&sign(&keys[0], "any", claims("https://a"))).unwrap();
        assert_eq!(a.issuer, 0);
        assert_eq!(
            a.headers,
            "X-User-Id: user_1\r\nX-Issuer: a\r\nX-Email: \r\nX-Groups: "
        );
        let mut b = claims("https://b");
        b["email"] = json!("u@b.example");
        b["groups"] = json!(["not", "b's"]);
        let b = ok(&sign(&keys[1], "b1", b)).unwrap();
        assert_eq!(b.issuer, 1);
        assert!(b
            .headers
            .ends_with("X-Issuer: b\r\nX-Email: u@b.example\r\nX-Groups: "));
        let mut c = claims("https://c");
        c["mail"] = json!("u@c.example");
        c["groups"] = json!(["g1", "g2"]);
        let c = ok(&sign(&keys[2], "c1", c)).unwrap();
        assert!(c
            .headers
            .ends_with("X-Issuer: c\r\nX-Email: u@c.example\r\nX-Groups: g1,g2"));
        // B's iss with C's kid and key: C's kid is not B's.
        let refused = |issuer, error| Err(Refused { issuer, error });
        let cross = sign(&keys[2], "c1", claims("https://b"));
        assert_eq!(
            ok(&cross).map(|v| v.issuer),
            refused(Some(1), TokenError::UnknownKid)
        );
        // A's iss (a PEM key: any kid) signed by B: A's key does not verify it.
        let cross = sign(&keys[1], "b1", claims("https://a"));
        assert_eq!(
            ok(&cross).map(|v| v.issuer),
            refused(Some(0), TokenError::InvalidSignature)
        );
        // C's rules: its audience.
        let mut wrong = claims("https://c");
        wrong["aud"] = json!("other");
        assert_eq!(
            ok(&sign(&keys[2], "c1", wrong)).map(|v| v.issuer),
            refused(Some(2), TokenError::InvalidAudience)
        );
        // No issuer of ours: refused before any key is looked at.
        for iss in [
            json!("https://d"),
            json!("https://a/"),
            json!(5),
            json!(null),
        ] {
            let mut other = claims("x");
            other["iss"] = iss.clone();
            assert_eq!(
                ok(&sign(&keys[0], "any", other)).map(|v| v.issuer),
                refused(None, TokenError::UnknownIssuer),
                "{iss}"
            );
        }
        let mut none = claims("x");
        none.as_object_mut().unwrap().remove("iss");
        assert_eq!(
            v.verify_at(&sign(&keys[0], "any", none), NOW)
                .map(|v| v.issuer),
            Err(TokenError::UnknownIssuer)
        );
    }

    #[test]
    fn the_generation_moves_with_any_issuers_keys_and_all_must_be_usable() {
        let (v, keys) = three();
        assert!(v.is_usable());
        let g = v.generation();
        v.issuers()[2].keys.install_jwks(vec![jwk(&keys[2], "c2")]);
        assert!(v.generation() > g);
        let empty = Verifier::with_issuers(vec![
            Issuer {
                name: "x".into(),
                keys: store(),
                policy: policy("https://x", &[]),
                headers: ClaimHeaders::default(),
                clerk_facts: true,
            },
            Issuer {
                name: "y".into(),
                keys: v.issuers()[1].keys.clone(),
                policy: policy("https://y", &[]),
                headers: ClaimHeaders::default(),
                clerk_facts: true,
            },
        ])
        .unwrap();
        assert!(!empty.is_usable(), "one issuer without keys");
    }

    #[test]
    fn one_issuer_is_not_routed_and_several_need_distinct_issuers() {
        let key = rsa();
        let keys = store();
        keys.install_jwks(vec![jwk(&key, "k")]);
        let open = Policy {
            validation: Validation::default(),
            ..policy("https://a", &[])
        };
        let v = Verifier::new(keys.clone(), open.clone());
        let mut c = claims("https://anyone");
        c.as_object_mut().unwrap().remove("iss");
        let verified = v.verify_at(&sign(&key, "k", c), NOW).unwrap();
        assert_eq!(verified.headers, "X-User-Id: user_1", "no X-Issuer");
        let issuer = |name: &str, policy: Policy| Issuer {
            name: name.into(),
            keys: keys.clone(),
            policy,
            headers: ClaimHeaders::default(),
            clerk_facts: true,
        };
        assert!(Verifier::with_issuers(vec![]).is_err());
        assert!(Verifier::with_issuers(vec![
            issuer("a", open.clone()),
            issuer("b", policy("https://b", &[]))
        ])
        .is_err());
        assert!(Verifier::with_issuers(vec![
            issuer("a", policy("https://b", &[])),
            issuer("b", policy("https://b", &[]))
        ])
        .is_err());
        assert!(Verifier::with_issuers(vec![issuer("a\r\nX: y", open)]).is_err());
    }
}
