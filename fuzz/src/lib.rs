//! Shared parts of the jwtgate fuzz targets: fixed keys (so a crash input
//! replays the same way on every machine), token signing, the verifiers the
//! targets run, and the invariants they assert.
//!
//! Every key here is a test key made for fuzzing only.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwtgate::gate::metrics::Metrics;
use jwtgate::gate::{Decision, Gate, GateOptions, Source};
use jwtgate::keys::jwk::{parse_jwks, VerifyingKey};
use jwtgate::keys::store::KeyStore;
use jwtgate::token::algorithms::AlgorithmSet;
use jwtgate::token::claims::Validation;
use jwtgate::token::errors::TokenError;
use jwtgate::verify::{Policy, Verifier};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

/// The fixed "now" of every target: 2023-11-14T22:13:20Z, in Unix ms.
pub const NOW_MS: i64 = 1_700_000_000_000;
pub const NOW_S: i64 = NOW_MS / 1000;
pub const ISSUER: &str = "https://clerk.example.com";
pub const AZP: &str = "https://app.example.com";
/// The publishable key whose cookie suffix the cookie app uses.
pub const PUBLISHABLE_KEY: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";

/// RSA-2048, generated once with `openssl genpkey` for fuzzing only.
const RSA_PEM: &str = include_str!("../keys/fuzz-only-rsa2048.pem");

/// The signing keys behind the verifiers.
pub struct Keys {
    pub rsa: PKey<Private>,
    pub ec: PKey<Private>,
    pub ed: PKey<Private>,
}

/// Which key and algorithm a token is signed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    /// RS256 with the RSA key, kid `rsa-1` (also accepted by the PEM verifier).
    Rs256,
    /// RS384 with the RSA key, kid `rsa-any` (an unpinned JWK).
    Rs384,
    /// PS256 with the RSA key, kid `rsa-any`.
    Ps256,
    /// ES256 with the P-256 key, kid `ec-1`.
    Es256,
    /// EdDSA with the Ed25519 key, kid `ed-1` (the fast one).
    EdDsa,
}

impl Signing {
    pub const ALL: [Signing; 5] = [
        Signing::Rs256,
        Signing::Rs384,
        Signing::Ps256,
        Signing::Es256,
        Signing::EdDsa,
    ];

    pub fn alg(self) -> &'static str {
        match self {
            Signing::Rs256 => "RS256",
            Signing::Rs384 => "RS384",
            Signing::Ps256 => "PS256",
            Signing::Es256 => "ES256",
            Signing::EdDsa => "EdDSA",
        }
    }

    pub fn kid(self) -> &'static str {
        match self {
            Signing::Rs256 => "rsa-1",
            Signing::Rs384 | Signing::Ps256 => "rsa-any",
            Signing::Es256 => "ec-1",
            Signing::EdDsa => "ed-1",
        }
    }

    /// The Clerk-shaped header for this key.
    pub fn header(self) -> String {
        json!({"alg": self.alg(), "kid": self.kid(), "typ": "JWT"}).to_string()
    }
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = PKey::private_key_from_pem(RSA_PEM.as_bytes()).expect("fuzz RSA key");
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let d = BigNum::from_slice(&openssl::sha::sha256(b"jwtgate fuzz P-256 key")).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let mut point = EcPoint::new(&group).unwrap();
        point.mul_generator2(&group, &d, &mut ctx).unwrap();
        let ec =
            PKey::from_ec_key(EcKey::from_private_components(&group, &d, &point).unwrap()).unwrap();
        let seed = openssl::sha::sha256(b"jwtgate fuzz Ed25519 key");
        let ed = PKey::private_key_from_raw_bytes(&seed, Id::ED25519).unwrap();
        Keys { rsa, ec, ed }
    })
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `base64url(header) "." base64url(payload)` as `how` does.
pub fn sign_raw(how: Signing, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let k = keys();
    let sig = match how {
        Signing::Rs256 | Signing::Rs384 | Signing::Ps256 => {
            let digest = if how == Signing::Rs384 {
                MessageDigest::sha384()
            } else {
                MessageDigest::sha256()
            };
            let mut signer = Signer::new(digest, &k.rsa).unwrap();
            if how == Signing::Ps256 {
                signer.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                signer
                    .set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                    .unwrap();
                signer.set_rsa_mgf1_md(digest).unwrap();
            }
            signer.sign_oneshot_to_vec(input.as_bytes()).unwrap()
        }
        Signing::Es256 => {
            let der = Signer::new(MessageDigest::sha256(), &k.ec)
                .unwrap()
                .sign_oneshot_to_vec(input.as_bytes())
                .unwrap();
            let sig = EcdsaSig::from_der(&der).unwrap();
            let mut raw = sig.r().to_vec_padded(32).unwrap();
            raw.extend(sig.s().to_vec_padded(32).unwrap());
            raw
        }
        Signing::EdDsa => Signer::new_without_digest(&k.ed)
            .unwrap()
            .sign_oneshot_to_vec(input.as_bytes())
            .unwrap(),
    };
    format!("{input}.{}", b64(sig))
}

/// Signs `claims` (any bytes) under the usual header for `how`.
pub fn sign_claims(how: Signing, claims: &[u8]) -> String {
    sign_raw(how, how.header().as_bytes(), claims)
}

/// Claims that pass every check of the strict verifiers at [`NOW_MS`].
pub fn good_claims(user: &str) -> Value {
    json!({
        "sub": user, "sid": format!("sess_{user}"), "iss": ISSUER, "azp": AZP,
        "iat": NOW_S - 10, "nbf": NOW_S - 10, "exp": NOW_S + 60, "v": 2,
        "fea": "o:dashboard", "o": {"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3"},
    })
}

/// Valid tokens, one per signing key, made once (ECDSA signatures are
/// randomized, so the set is fixed for the life of the process).
pub fn valid_tokens() -> &'static [(Signing, String)] {
    static TOKENS: OnceLock<Vec<(Signing, String)>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        Signing::ALL
            .iter()
            .map(|&how| {
                let claims = good_claims(&format!("user_{}", how.kid()));
                (how, sign_claims(how, claims.to_string().as_bytes()))
            })
            .collect()
    })
}

pub fn rsa_public_pem() -> String {
    String::from_utf8(keys().rsa.public_key_to_pem().unwrap()).unwrap()
}

/// The JWKS the JWKS verifiers hold: RSA pinned to RS256 (`rsa-1`), the
/// same RSA key unpinned (`rsa-any`), P-256 (`ec-1`) and Ed25519 (`ed-1`).
pub fn jwks_document() -> Value {
    let k = keys();
    let rsa = k.rsa.rsa().unwrap();
    let (n, e) = (b64(rsa.n().to_vec()), b64(rsa.e().to_vec()));
    let ec = k.ec.ec_key().unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    ec.public_key()
        .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
        .unwrap();
    json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": n, "e": e},
        {"kty": "RSA", "kid": "rsa-any", "n": n, "e": e},
        {"kty": "EC", "kid": "ec-1", "crv": "P-256", "alg": "ES256",
         "x": b64(x.to_vec_padded(32).unwrap()), "y": b64(y.to_vec_padded(32).unwrap())},
        {"kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": b64(k.ed.raw_public_key().unwrap())},
    ]})
}

/// The claim policy of the strict verifiers: issuer, azp, 5 s leeway.
pub fn strict_validation() -> Validation {
    Validation {
        issuer: Some(ISSUER.into()),
        authorized_parties: vec![AZP.into()],
        audience: vec![],
        leeway_ms: 5000,
        allow_pending: false,
    }
}

/// No issuer or azp, no leeway, pending sessions allowed.
pub fn open_validation() -> Validation {
    Validation {
        issuer: None,
        authorized_parties: vec![],
        audience: vec![],
        leeway_ms: 0,
        allow_pending: true,
    }
}

fn store() -> KeyStore {
    KeyStore::new(16, Duration::from_secs(3600), Duration::from_millis(1))
}

/// A gate as the daemon builds one: 16 KiB tokens at most, decisions
/// reusable for 60 s, `cache_tokens` cached (0: no cache).
pub fn verifier(
    keys: Arc<KeyStore>,
    algorithms: AlgorithmSet,
    validation: Validation,
    cache_tokens: usize,
    cookie_suffix: Option<String>,
) -> Gate {
    let policy = Policy {
        algorithms,
        validation,
        max_token_bytes: 16 * 1024,
    };
    let options = GateOptions {
        cache_tokens,
        decision_ttl: Duration::from_secs(60),
        cookie_suffix,
    };
    Gate::new(
        Verifier::new(keys, policy),
        options,
        Arc::new(Metrics::default()),
    )
}

/// The verifiers the targets compare.
pub struct Verifiers {
    /// Clerk mode: the PEM key (any kid), RS family, strict, no cache.
    pub pem: Gate,
    /// The JWKS, every algorithm, strict, with a token cache.
    pub jwks_cached: Gate,
    /// The same keys, every algorithm, open policy, no cache.
    pub jwks_open: Gate,
    pem_keys: Arc<KeyStore>,
    jwks_keys: Arc<KeyStore>,
}

impl Verifiers {
    pub fn all(&self) -> [&Gate; 3] {
        [&self.pem, &self.jwks_cached, &self.jwks_open]
    }
}

pub fn verifiers() -> &'static Verifiers {
    static V: OnceLock<Verifiers> = OnceLock::new();
    V.get_or_init(|| {
        let pem = Arc::new(store());
        pem.install_pem(VerifyingKey::from_pem(&rsa_public_pem()).unwrap());
        let jwks = Arc::new(store());
        let parsed = parse_jwks(jwks_document().to_string().as_bytes()).unwrap();
        assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
        assert_eq!(jwks.install_jwks(parsed.keys), 4);
        Verifiers {
            pem: verifier(
                pem.clone(),
                AlgorithmSet::CLERK,
                strict_validation(),
                0,
                None,
            ),
            jwks_cached: verifier(
                jwks.clone(),
                AlgorithmSet::ALL,
                strict_validation(),
                256,
                None,
            ),
            jwks_open: verifier(jwks.clone(), AlgorithmSet::ALL, open_validation(), 0, None),
            pem_keys: pem,
            jwks_keys: jwks,
        }
    })
}

/// The apps `request_decide` drives.
pub struct Apps {
    /// JWKS keys, strict, token cache, Clerk cookie suffix.
    pub jwks: Gate,
    /// The PEM key, strict, no cache, no cookie suffix.
    pub pem: Gate,
    /// No key ever loaded: every token is a 503.
    pub empty: Gate,
}

pub fn apps() -> &'static Apps {
    static A: OnceLock<Apps> = OnceLock::new();
    A.get_or_init(|| {
        let v = verifiers();
        Apps {
            jwks: verifier(
                v.jwks_keys.clone(),
                AlgorithmSet::ALL,
                strict_validation(),
                256,
                Some(jwtgate::config::cookie_suffix(PUBLISHABLE_KEY)),
            ),
            pem: verifier(
                v.pem_keys.clone(),
                AlgorithmSet::CLERK,
                strict_validation(),
                0,
                None,
            ),
            empty: verifier(
                Arc::new(store()),
                AlgorithmSet::CLERK,
                strict_validation(),
                16,
                None,
            ),
        }
    })
}

/// A response header block must be `Name: value` lines joined by CRLF:
/// no empty line (it would end the header section), no CR or LF inside a
/// line, no other control character, no CRLF at either end.
pub fn check_header_block(block: &str) -> Result<(), String> {
    if block.is_empty() {
        return Err("empty header block".into());
    }
    for line in block.split("\r\n") {
        let Some((name, value)) = line.split_once(": ") else {
            return Err(format!("line without \": \": {line:?} in {block:?}"));
        };
        let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token_char) {
            return Err(format!("bad header name {name:?} in {block:?}"));
        }
        if value.chars().any(char::is_control) {
            return Err(format!("control character in {line:?}"));
        }
    }
    Ok(())
}

/// The values of `name` in a header block.
pub fn header_values<'a>(block: &'a str, name: &str) -> Vec<&'a str> {
    block
        .split("\r\n")
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
        .collect()
}

/// The gate's decision for a found token; its header block goes to `out`.
pub fn authorize(gate: &Gate, token: &str, out: &mut String) -> Result<Source, TokenError> {
    let (grant, source) = gate.authorize(token, NOW_MS)?;
    Decision::allow(grant, source).render_headers(out);
    Ok(source)
}

/// The `/auth` checks on one token: `verify_at` and `authorize` agree,
/// a success renders a safe block whose `X-User-Id` is the `sub` claim, a
/// failure writes nothing, and a cached verifier answers a repeat the same.
/// Returns the verdict (the same from every path).
pub fn check_token(gate: &Gate, token: &str) -> Result<(), TokenError> {
    let verified = gate.verifier().verify_at(token, NOW_MS);
    let mut out = String::new();
    let authorized = authorize(gate, token, &mut out);
    match (&verified, &authorized) {
        (Ok(v), Ok(_)) => {
            check_header_block(&v.headers).unwrap();
            check_header_block(&out).unwrap();
            let sub = v.claims.sub.as_ref().and_then(|s| s.as_str());
            assert_eq!(header_values(&v.headers, "X-User-Id"), [sub.unwrap()]);
            assert!(out.starts_with(&v.headers), "{out:?}");
            assert_eq!(header_values(&out, "X-Accel-Expires").len(), 1, "{out:?}");
        }
        (Err(a), Err(b)) => {
            // The cache is only consulted after verification succeeded once,
            // so both paths must fail for the same reason.
            assert_eq!(a, b, "verify_at and authorize disagree on {token:?}");
            assert!(
                out.is_empty(),
                "authorize wrote {out:?} for a refused token"
            );
        }
        _ => panic!("verify_at {verified:?} but authorize {authorized:?} for {token:?}"),
    }
    if gate.caches() {
        let mut again = String::new();
        let second = authorize(gate, token, &mut again);
        assert_eq!(second.is_ok(), authorized.is_ok(), "{token:?}");
        if let (Ok(source), Ok(v)) = (second, &verified) {
            // Tokens still inside `exp` are cached; those only alive thanks
            // to the leeway are verified again.
            let live = v.claims.expiry_secs().unwrap() * 1000 > NOW_MS;
            assert_eq!(source == Source::Cache, live, "{token:?}");
            assert_eq!(again, out, "a repeat renders the same headers");
        }
    }
    verified.map(|_| ())
}

/// Whether `claims` (a JSON payload) must be accepted by a verifier with
/// `policy` at [`NOW_MS`], from the documented rules and written apart from
/// jwtgate's code: `Some(false)` must be refused, `Some(true)` must be
/// accepted, `None` is beyond this oracle (org claims, which only shape
/// headers, or JSON that serde cannot hold in a map).
pub fn claims_oracle(payload: &[u8], policy: &Validation) -> Option<bool> {
    let Ok(map) = serde_json::from_slice::<Map<String, Value>>(payload) else {
        return None;
    };
    let known = jwtgate::token::claims::CLAIM_NAMES;
    if let Ok(KeyList(keys)) = serde_json::from_slice::<KeyList>(payload) {
        for name in known {
            if keys.iter().filter(|k| *k == name).count() > 1 {
                return Some(false); // a repeated claim is ambiguous
            }
        }
    }
    let leeway = policy.leeway_ms as i128;
    let now = NOW_MS as i128;
    let time = |name: &str| -> Result<Option<i128>, ()> {
        match map.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let secs = n.as_f64().ok_or(())?;
                if secs.abs() <= 8.64e12 {
                    Ok(Some(secs.trunc() as i128 * 1000))
                } else {
                    Err(())
                }
            }
            Some(_) => Err(()),
        }
    };
    let sub = match map.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Some(false),
    };
    if !safe_header_value(sub) {
        return Some(false);
    }
    if let Some(want) = &policy.issuer {
        if map.get("iss").and_then(Value::as_str) != Some(want) {
            return Some(false);
        }
    }
    if !policy.authorized_parties.is_empty() {
        let azp = map.get("azp").and_then(Value::as_str);
        if !policy
            .authorized_parties
            .iter()
            .any(|p| Some(p.as_str()) == azp)
        {
            return Some(false);
        }
    }
    match time("exp") {
        Ok(Some(exp)) if exp > now - leeway => {}
        _ => return Some(false),
    }
    for name in ["nbf", "iat"] {
        match time(name) {
            Ok(None) => {}
            Ok(Some(t)) if t <= now + leeway => {}
            _ => return Some(false),
        }
    }
    if !policy.allow_pending && map.get("sts").and_then(Value::as_str) == Some("pending") {
        return Some(false);
    }
    match map.get("sid") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() || safe_header_value(s) => {}
        Some(_) => return Some(false),
    }
    let shapes_headers = [
        "v",
        "o",
        "fea",
        "org_id",
        "org_slug",
        "org_role",
        "org_permissions",
        "act",
    ];
    if shapes_headers.iter().any(|k| map.contains_key(*k)) {
        return None;
    }
    Some(true)
}

/// A header value jwtgate may write: at most 1024 bytes, no control
/// character, no leading or trailing whitespace.
pub fn safe_header_value(v: &str) -> bool {
    v.len() <= 1024
        && !v.chars().any(char::is_control)
        && !v.starts_with(char::is_whitespace)
        && !v.ends_with(char::is_whitespace)
}

/// The keys of a JSON object in document order, repeats included.
struct KeyList(Vec<String>);

impl<'de> Deserialize<'de> for KeyList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyList, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = KeyList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyList, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(KeyList(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// A logger that formats every record at debug level and asserts the line
/// is one line: a request must not be able to forge log lines.
struct OneLineLogger;

impl log::Log for OneLineLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = record.args().to_string();
        assert!(
            !line.contains(['\n', '\r']),
            "log line with a line break: {line:?}"
        );
    }
    fn flush(&self) {}
}

/// Installs [`OneLineLogger`] at debug level (once per process).
pub fn install_logger() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = log::set_logger(&OneLineLogger);
        log::set_max_level(log::LevelFilter::Debug);
    });
}
