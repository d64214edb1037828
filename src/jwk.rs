//! Verification keys: JSON Web Keys (RFC 7517) and PEM public keys, turned
//! once into OpenSSL keys so that the request path only verifies.
//!
//! A key carries what it may verify: a JWK's `alg` pins one algorithm, a JWK
//! without `alg` allows the RSA family, a PEM key (which has no `alg`) allows
//! RS256 only, as Clerk's SDKs do. Keys with `use` other than `sig`, RSA
//! moduli under 2048 bits and bad exponents are refused at load time.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::bn::BigNum;
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::Verifier;
use serde::Deserialize;
use serde_json::Value;

use crate::algorithms::Algorithm;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: u32 = 2048;
/// The largest RSA modulus accepted, in bits (bounds verification cost).
pub const MAX_RSA_BITS: u32 = 8192;
/// The longest `kid` accepted, in bytes.
pub const MAX_KID_BYTES: usize = 256;

/// A public key ready to verify signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    /// `Some(alg)`: only this algorithm; `None`: any RSA algorithm.
    pinned_alg: Option<Algorithm>,
    pkey: PKey<Public>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("pinned_alg", &self.pinned_alg)
            .field("bits", &self.pkey.bits())
            .finish()
    }
}

impl VerifyingKey {
    /// Parses a PEM `PUBLIC KEY` (SPKI). Accepts the body without armor and
    /// literal `\n` sequences, as the key is often pasted into env files.
    pub fn from_pem(text: &str) -> Result<VerifyingKey, String> {
        let pem = normalize_pem(text);
        let pkey = PKey::public_key_from_pem(pem.as_bytes()).map_err(|_| {
            "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)".to_string()
        })?;
        let rsa = pkey
            .rsa()
            .map_err(|_| "the PEM key is not an RSA key".to_string())?;
        check_rsa(&rsa)?;
        Ok(VerifyingKey {
            kid: None,
            pinned_alg: Some(Algorithm::RS256),
            pkey,
        })
    }

    /// Parses one JWK object.
    pub fn from_jwk(value: &Value) -> Result<VerifyingKey, String> {
        let jwk = Jwk::deserialize(value).map_err(|e| format!("not a JWK: {e}"))?;
        if let Some(kid) = &jwk.kid {
            if kid.len() > MAX_KID_BYTES {
                return Err(format!("kid is over {MAX_KID_BYTES} bytes"));
            }
        }
        if let Some(u) = &jwk.key_use {
            if u != "sig" {
                return Err(format!("use is {u:?}, not \"sig\""));
            }
        }
        if jwk.kty != "RSA" {
            return Err(format!("kty {:?} is not supported", jwk.kty));
        }
        let pinned_alg = match &jwk.alg {
            None => None,
            Some(name) => Some(
                Algorithm::from_name(name)
                    .ok_or_else(|| format!("alg {name:?} is not supported for an RSA key"))?,
            ),
        };
        let n = decode_component("n", jwk.n.as_deref())?;
        let e = decode_component("e", jwk.e.as_deref())?;
        let rsa = Rsa::from_public_components(n, e).map_err(|e| format!("bad RSA key: {e}"))?;
        check_rsa(&rsa)?;
        let pkey = PKey::from_rsa(rsa).map_err(|e| format!("bad RSA key: {e}"))?;
        Ok(VerifyingKey {
            kid: jwk.kid,
            pinned_alg,
            pkey,
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn bits(&self) -> u32 {
        self.pkey.bits()
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        match self.pinned_alg {
            Some(pinned) => pinned == alg,
            None => self.pkey.id() == Id::RSA,
        }
    }

    /// Checks `signature` over `signing_input` with OpenSSL. Callers check
    /// [`VerifyingKey::allows`] first; this refuses a disallowed `alg` too.
    pub fn verify_signature(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        if !self.allows(alg) || signature.len() != self.pkey.size() {
            return false;
        }
        let Ok(mut verifier) = Verifier::new(alg.digest(), &self.pkey) else {
            return false;
        };
        if verifier.set_rsa_padding(Padding::PKCS1).is_err() {
            return false;
        }
        verifier
            .verify_oneshot(signature, signing_input)
            .unwrap_or(false)
    }
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

fn decode_component(name: &str, value: Option<&str>) -> Result<BigNum, String> {
    let text = value.ok_or_else(|| format!("RSA key has no {name:?}"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("RSA {name:?} is not base64url"))?;
    BigNum::from_slice(&bytes).map_err(|e| format!("RSA {name:?}: {e}"))
}

fn check_rsa(rsa: &Rsa<Public>) -> Result<(), String> {
    let bits = rsa.n().num_bits() as u32;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!(
            "RSA modulus is {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"
        ));
    }
    let e = rsa.e();
    if !e.is_bit_set(0) || e.num_bits() < 2 || e.num_bits() > 64 {
        return Err("RSA exponent must be odd, at least 3 and at most 64 bits".to_string());
    }
    Ok(())
}

fn normalize_pem(text: &str) -> String {
    let text = text.trim().replace("\\n", "\n");
    if text.starts_with("-----BEGIN") {
        return text;
    }
    let body: String = text.split_whitespace().collect();
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// A parsed key set: the usable keys, and one line for each key refused.
#[derive(Debug, Default)]
pub struct KeySetParse {
    pub keys: Vec<VerifyingKey>,
    pub refused: Vec<String>,
}

/// Parses a JWKS document (`{"keys":[...]}`). Bad keys are refused one by
/// one, named by kid; a kid that appears twice is refused entirely, since
/// either copy could be the wrong one.
pub fn parse_jwks(body: &[u8]) -> Result<KeySetParse, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Value>,
    }
    let jwks: Jwks =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut parsed = KeySetParse::default();
    let mut kid_count: HashMap<String, usize> = HashMap::new();
    for value in &jwks.keys {
        if let Some(kid) = value.get("kid").and_then(Value::as_str) {
            *kid_count.entry(kid.to_string()).or_default() += 1;
        }
    }
    for value in &jwks.keys {
        let name = value
            .get("kid")
            .and_then(Value::as_str)
            .unwrap_or("<no kid>")
            .chars()
            .take(64)
            .collect::<String>();
        match VerifyingKey::from_jwk(value) {
            Ok(key) if key.kid().is_none() => {
                parsed.refused.push(format!("key {name}: no kid"));
            }
            Ok(key) if kid_count.get(key.kid().unwrap_or_default()) > Some(&1) => {
                parsed.refused.push(format!("key {name}: duplicate kid"));
            }
            Ok(key) => parsed.keys.push(key),
            Err(why) => parsed.refused.push(format!("key {name}: {why}")),
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::rsa::Rsa;

    fn rsa_jwk(bits: u32, kid: &str, extra: &[(&str, &str)]) -> Value {
        let rsa = Rsa::generate(bits).unwrap();
        let mut jwk = serde_json::json!({
            "kty": "RSA",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        });
        for (k, v) in extra {
            jwk[*k] = Value::String(v.to_string());
        }
        jwk
    }

    #[test]
    fn jwk_alg_pins_the_algorithm() {
        let key = VerifyingKey::from_jwk(&rsa_jwk(2048, "a", &[("alg", "RS256")])).unwrap();
        assert!(key.allows(Algorithm::RS256));
        assert!(!key.allows(Algorithm::RS384));
        let open = VerifyingKey::from_jwk(&rsa_jwk(2048, "b", &[])).unwrap();
        assert!(open.allows(Algorithm::RS384) && open.allows(Algorithm::RS512));
    }

    #[test]
    fn weak_or_wrong_keys_are_refused() {
        let small = VerifyingKey::from_jwk(&rsa_jwk(1024, "s", &[])).unwrap_err();
        assert!(small.contains("1024 bits"), "{small}");
        let enc = VerifyingKey::from_jwk(&rsa_jwk(2048, "e", &[("use", "enc")])).unwrap_err();
        assert!(enc.contains("use"), "{enc}");
        let hs = VerifyingKey::from_jwk(&rsa_jwk(2048, "h", &[("alg", "HS256")])).unwrap_err();
        assert!(hs.contains("HS256"), "{hs}");
        let oct = serde_json::json!({"kty": "oct", "kid": "o", "k": "c2VjcmV0"});
        assert!(VerifyingKey::from_jwk(&oct).unwrap_err().contains("oct"));
        let mut e1 = rsa_jwk(2048, "x", &[]);
        e1["e"] = Value::String("AQ".into());
        assert!(VerifyingKey::from_jwk(&e1)
            .unwrap_err()
            .contains("exponent"));
    }

    #[test]
    fn jwks_refuses_duplicate_kids_and_keeps_the_rest() {
        let doc = serde_json::json!({"keys": [
            rsa_jwk(2048, "dup", &[]),
            rsa_jwk(2048, "dup", &[]),
            rsa_jwk(2048, "good", &[("alg", "RS256"), ("use", "sig")]),
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        ]});
        let parsed = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = parsed.keys.iter().map(|k| k.kid().unwrap()).collect();
        assert_eq!(kids, ["good"]);
        assert_eq!(parsed.refused.len(), 3, "{:?}", parsed.refused);
        assert!(parsed.refused.iter().any(|r| r.contains("broken")));
        assert!(parse_jwks(b"{\"nokeys\":1}").is_err());
    }

    #[test]
    fn pem_with_escaped_newlines_or_without_armor_parses() {
        let rsa = Rsa::generate(2048).unwrap();
        let pem = String::from_utf8(rsa.public_key_to_pem().unwrap()).unwrap();
        assert!(VerifyingKey::from_pem(&pem).is_ok());
        assert!(VerifyingKey::from_pem(&pem.replace('\n', "\\n")).is_ok());
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let key = VerifyingKey::from_pem(&body).unwrap();
        assert!(key.allows(Algorithm::RS256) && !key.allows(Algorithm::RS512));
        assert!(VerifyingKey::from_pem("not a key").is_err());
    }
}
