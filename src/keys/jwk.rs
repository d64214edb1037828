//! Verification keys: JSON Web Keys (RFC 7517) and PEM public keys, turned
//! once into OpenSSL keys so that the request path only verifies.
//!
//! A key carries what it may verify: its type binds the algorithm family
//! (RSA: RS*/PS*, EC: the ES* of its curve, OKP Ed25519: EdDSA), a JWK's
//! `alg` pins one algorithm, and a PEM key (which has no `alg`) allows RS256
//! only, as Clerk's SDKs do. Refused at load time: `use` other than `sig`,
//! `key_ops` without `verify`, symmetric (`oct`) keys, RSA moduli outside
//! 2048..=8192 bits, exponent 1 or even, ROCA-weak moduli, EC points off
//! their curve or with short coordinates, and unknown curves.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use foreign_types::ForeignType;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Verifier};
use serde::Deserialize;
use serde_json::Value;

use crate::token::algorithms::{Algorithm, Family};
use crate::token::header::MAX_KID_BYTES;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: u32 = 2048;
/// The largest RSA modulus accepted, in bits (bounds verification cost).
pub const MAX_RSA_BITS: u32 = 8192;

/// A public key ready to verify signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    family: Family,
    /// `Some(alg)`: only this algorithm; `None`: any of the family.
    pinned_alg: Option<Algorithm>,
    pkey: PKey<Public>,
    /// The RSA key itself, for the PKCS#1 v1.5 fast path.
    rsa: Option<Rsa<Public>>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("pinned_alg", &self.pinned_alg)
            .field("bits", &self.pkey.bits())
            .finish()
    }
}

impl VerifyingKey {
    /// Parses a PEM `PUBLIC KEY` (SPKI) holding an RSA key, Clerk's
    /// networkless key. Accepts the body without armor and literal `\n`
    /// sequences, as the key is often pasted into env files.
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
            family: Family::Rsa,
            pinned_alg: Some(Algorithm::RS256),
            pkey,
            rsa: Some(rsa),
        })
    }

    /// Parses one JWK object.
    pub fn from_jwk(value: &Value) -> Result<VerifyingKey, String> {
        let jwk = Jwk::deserialize(value).map_err(|e| format!("not a JWK: {e}"))?;
        jwk.check_purpose()?;
        let (family, pkey) = match jwk.kty.as_str() {
            "RSA" => (Family::Rsa, jwk.rsa_key()?),
            "EC" => jwk.ec_key()?,
            "OKP" => (Family::Ed25519, jwk.ed25519_key()?),
            "oct" => return Err("kty \"oct\": symmetric keys are not accepted".into()),
            other => return Err(format!("kty {other:?} is not supported")),
        };
        let pinned_alg = match &jwk.alg {
            None => None,
            Some(name) => match Algorithm::from_name(name) {
                Some(alg) if alg.family() == family => Some(alg),
                _ => return Err(format!("alg {name:?} does not fit a {} key", jwk.kty)),
            },
        };
        let rsa = pkey.rsa().ok();
        Ok(VerifyingKey {
            kid: jwk.kid,
            family,
            pinned_alg,
            pkey,
            rsa,
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether `other` verifies exactly what this key verifies: the same
    /// kid, algorithm binding and public key material.
    pub fn same_key(&self, other: &VerifyingKey) -> bool {
        self.kid == other.kid
            && self.family == other.family
            && self.pinned_alg == other.pinned_alg
            && self.pkey.public_eq(&other.pkey)
    }

    pub fn bits(&self) -> u32 {
        self.pkey.bits()
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        alg.family() == self.family && self.pinned_alg.is_none_or(|pinned| pinned == alg)
    }

    /// Checks `signature` over `signing_input` with OpenSSL. Refuses an
    /// `alg` the key does not allow, and signatures of the wrong length.
    pub fn verify_signature(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        if !self.allows(alg) {
            return false;
        }
        let result = match self.family {
            Family::Rsa => self.verify_rsa(alg, signing_input, signature),
            Family::Ec(_) => self.verify_ecdsa(alg, signing_input, signature),
            Family::Ed25519 => self.verify_ed25519(signing_input, signature),
        };
        result.unwrap_or(false)
    }

    fn verify_rsa(
        &self,
        alg: Algorithm,
        input: &[u8],
        sig: &[u8],
    ) -> Result<bool, openssl::error::ErrorStack> {
        let digest = alg.digest().expect("RSA algorithms hash");
        if sig.len() != self.pkey.size() {
            return Ok(false);
        }
        if let (false, Some(rsa)) = (alg.is_pss(), &self.rsa) {
            return Ok(verify_pkcs1(rsa, alg, input, sig));
        }
        let mut verifier = Verifier::new(digest, &self.pkey)?;
        verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
        verifier.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
        verifier.set_rsa_mgf1_md(digest)?;
        verifier.verify_oneshot(sig, input)
    }

    /// JWS carries ECDSA signatures as fixed-width `r || s` (RFC 7518
    /// §3.4); OpenSSL wants DER.
    fn verify_ecdsa(
        &self,
        alg: Algorithm,
        input: &[u8],
        sig: &[u8],
    ) -> Result<bool, openssl::error::ErrorStack> {
        let digest = alg.digest().expect("ECDSA algorithms hash");
        let width = coordinate_bytes(self.pkey.bits());
        if sig.len() != 2 * width {
            return Ok(false);
        }
        let r = BigNum::from_slice(&sig[..width])?;
        let s = BigNum::from_slice(&sig[width..])?;
        let der = EcdsaSig::from_private_components(r, s)?.to_der()?;
        Verifier::new(digest, &self.pkey)?.verify_oneshot(&der, input)
    }

    fn verify_ed25519(&self, input: &[u8], sig: &[u8]) -> Result<bool, openssl::error::ErrorStack> {
        if sig.len() != 64 {
            return Ok(false);
        }
        Verifier::new_without_digest(&self.pkey)?.verify_oneshot(sig, input)
    }
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl Jwk {
    /// `use`, `key_ops` and `kid` must allow signature verification.
    fn check_purpose(&self) -> Result<(), String> {
        if self
            .kid
            .as_ref()
            .is_some_and(|kid| kid.len() > MAX_KID_BYTES)
        {
            return Err(format!("kid is over {MAX_KID_BYTES} bytes"));
        }
        if let Some(u) = &self.key_use {
            if u != "sig" {
                return Err(format!("use is {u:?}, not \"sig\""));
            }
        }
        if let Some(ops) = &self.key_ops {
            if !ops.iter().any(|op| op == "verify") {
                return Err(format!("key_ops {ops:?} does not include \"verify\""));
            }
        }
        Ok(())
    }

    fn rsa_key(&self) -> Result<PKey<Public>, String> {
        let n = BigNum::from_slice(&decode_component("n", self.n.as_deref())?)
            .map_err(|e| format!("RSA n: {e}"))?;
        let e = BigNum::from_slice(&decode_component("e", self.e.as_deref())?)
            .map_err(|e| format!("RSA e: {e}"))?;
        let rsa = Rsa::from_public_components(n, e).map_err(|e| format!("bad RSA key: {e}"))?;
        check_rsa(&rsa)?;
        PKey::from_rsa(rsa).map_err(|e| format!("bad RSA key: {e}"))
    }

    fn ec_key(&self) -> Result<(Family, PKey<Public>), String> {
        let (family, nid) = match self.crv.as_deref() {
            Some("P-256") => (Family::Ec("P-256"), Nid::X9_62_PRIME256V1),
            Some("P-384") => (Family::Ec("P-384"), Nid::SECP384R1),
            Some("P-521") => (Family::Ec("P-521"), Nid::SECP521R1),
            other => return Err(format!("EC curve {other:?} is not supported")),
        };
        let group = EcGroup::from_curve_name(nid).map_err(|e| e.to_string())?;
        let width = coordinate_bytes(group.degree());
        let x = decode_component("x", self.x.as_deref())?;
        let y = decode_component("y", self.y.as_deref())?;
        if x.len() != width || y.len() != width {
            return Err(format!("EC coordinates must be {width} bytes each"));
        }
        let to_bn = |b: &[u8]| BigNum::from_slice(b).map_err(|e| e.to_string());
        let (x, y) = (to_bn(&x)?, to_bn(&y)?);
        let key = EcKey::from_public_key_affine_coordinates(&group, &x, &y)
            .map_err(|_| "EC point is not on the curve".to_string())?;
        key.check_key()
            .map_err(|_| "EC point is not a valid public key".to_string())?;
        let pkey = PKey::from_ec_key(key).map_err(|e| e.to_string())?;
        Ok((family, pkey))
    }

    fn ed25519_key(&self) -> Result<PKey<Public>, String> {
        if self.crv.as_deref() != Some("Ed25519") {
            return Err(format!("OKP curve {:?} is not supported", self.crv));
        }
        let x = decode_component("x", self.x.as_deref())?;
        if x.len() != 32 {
            return Err("Ed25519 x must be 32 bytes".into());
        }
        PKey::public_key_from_raw_bytes(&x, openssl::pkey::Id::ED25519)
            .map_err(|e| format!("bad Ed25519 key: {e}"))
    }
}

/// RS256/384/512: OpenSSL's `RSA_verify`, which checks PKCS#1 v1.5 the
/// strict way (it encodes the expected DigestInfo and compares bytes), as
/// its EVP interface does, but without the provider lookup that interface
/// repeats on every call: 13.3 instead of 15.9 µs per RSA-2048 verify here.
fn verify_pkcs1(rsa: &Rsa<Public>, alg: Algorithm, input: &[u8], sig: &[u8]) -> bool {
    let check = |nid: Nid, digest: &[u8]| {
        let (Ok(digest_len), Ok(sig_len)) = (u32::try_from(digest.len()), u32::try_from(sig.len()))
        else {
            return false;
        };
        // SAFETY: `digest` and `sig` are live slices of the lengths passed,
        // `rsa` is a valid RSA public key owned by the caller for the whole
        // call, and RSA_verify only reads all three.
        let verified = unsafe {
            openssl_sys::RSA_verify(
                nid.as_raw(),
                digest.as_ptr(),
                digest_len,
                sig.as_ptr(),
                sig_len,
                rsa.as_ptr(),
            )
        };
        // RSA_verify leaves its reason for a bad signature on OpenSSL's
        // thread-local error queue: drop it, so it is not reported later.
        drop(openssl::error::ErrorStack::get());
        verified == 1
    };
    match alg {
        Algorithm::RS256 => check(Nid::SHA256, &openssl::sha::sha256(input)),
        Algorithm::RS384 => check(Nid::SHA384, &openssl::sha::sha384(input)),
        Algorithm::RS512 => check(Nid::SHA512, &openssl::sha::sha512(input)),
        _ => false,
    }
}

/// Bytes in one coordinate (and one half of an ECDSA signature).
fn coordinate_bytes(bits: u32) -> usize {
    bits.div_ceil(8) as usize
}

fn decode_component(name: &str, value: Option<&str>) -> Result<Vec<u8>, String> {
    let text = value.ok_or_else(|| format!("key has no {name:?}"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("{name:?} is not base64url"))
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
    if is_roca_weak(rsa.n()) {
        return Err("RSA modulus has the ROCA weakness (CVE-2017-15361)".to_string());
    }
    Ok(())
}

/// The ROCA fingerprint (Nemec et al., CCS 2017): moduli made by the weak
/// Infineon generator are, modulo each of these small primes, a power of
/// 65537. A random modulus passes all of them with negligible probability.
fn is_roca_weak(n: &openssl::bn::BigNumRef) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let Ok(residue) = n.mod_word(p) else {
            return false;
        };
        let generator = 65537 % p as u64;
        let mut power = 1u64;
        for _ in 0..p {
            if power == residue {
                return true;
            }
            power = power * generator % p as u64;
        }
        false
    })
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
            .flat_map(char::escape_debug) // a kid must not forge log lines
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
        let es = VerifyingKey::from_jwk(&rsa_jwk(2048, "h", &[("alg", "ES256")])).unwrap_err();
        assert!(es.contains("ES256"), "{es}");
        let oct = serde_json::json!({"kty": "oct", "kid": "o", "k": "c2VjcmV0"});
        assert!(VerifyingKey::from_jwk(&oct).unwrap_err().contains("oct"));
        let mut ops = rsa_jwk(2048, "o", &[]);
        ops["key_ops"] = serde_json::json!(["encrypt"]);
        assert!(VerifyingKey::from_jwk(&ops)
            .unwrap_err()
            .contains("key_ops"));
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
        let forged = br#"{"keys":[{"kty":"oct","kid":"a\nWARN forged"}]}"#;
        let refused = parse_jwks(forged).unwrap().refused;
        assert!(refused.iter().all(|r| !r.contains('\n')), "{refused:?}");
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
