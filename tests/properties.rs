//! Property tests: what holds for *every* input, checked on generated ones.
//!
//! - Any string as a token is refused, without a panic.
//! - A valid token changed in any way (bit flips in any segment, segment
//!   swaps, re-encodings, header or claim rewrites) is refused, unless the
//!   change gave back the original text.
//! - `parse_jwks` and `settings_from_toml` never panic.
//! - `App::decide` never panics, answers 200, 401 or 503, and appends a
//!   header block that cannot break the response.
//! - A token signed over arbitrary claims is accepted exactly when the
//!   claims satisfy the documented rules, and its `X-User-Id` is its `sub`.
//!   The rules are restated here as a small oracle, written from the
//!   documentation (src/claims.rs, src/identity.rs), not from the code.
//!
//! Each property is sized to run in a second or two in a debug build; set
//! `PROPTEST_CASES` to run every property with more cases.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jwtgate::config::{settings_from_toml, Config};
use jwtgate::gate::metrics::Metrics;
use jwtgate::gate::{Call, Decision, Gate, GateOptions, Source};
use jwtgate::keys::jwk::{parse_jwks, VerifyingKey};
use jwtgate::keys::source::KeySource;
use jwtgate::keys::store::KeyStore;
use jwtgate::token::algorithms::AlgorithmSet;
use jwtgate::token::claims::Validation;
use jwtgate::token::decode;
use jwtgate::verify::{Policy, Verifier};
use jwtgate::TokenError;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::json;

/// 2023-11-14T22:13:20Z: the fixed "now" of every property, in Unix ms.
const NOW_MS: i64 = 1_700_000_000_000;
const NOW_S: i64 = NOW_MS / 1000;
const ISSUER: &str = "https://clerk.example.com";
const AZP: &str = "https://app.example.com";

/// `n` cases, unless `PROPTEST_CASES` asks for another number.
fn cases(n: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = n;
    }
    config
}

// ---------------------------------------------------------------- keys --

struct Keys {
    rsa: PKey<Private>,
    ed: PKey<Private>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        ed: PKey::generate_ed25519().unwrap(),
    })
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Clone, Copy, Debug)]
enum Alg {
    /// RS256 with the RSA key (kid `rsa`; the PEM verifier ignores kids).
    Rs256,
    /// EdDSA with the Ed25519 key (kid `ed`).
    EdDsa,
}

/// Signs `header` and `payload` (any bytes) with the key of `alg`.
fn sign_raw(alg: Alg, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let k = keys();
    let mut signer = match alg {
        Alg::Rs256 => Signer::new(MessageDigest::sha256(), &k.rsa).unwrap(),
        Alg::EdDsa => Signer::new_without_digest(&k.ed).unwrap(),
    };
    let sig = signer.sign_oneshot_to_vec(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(sig))
}

fn sign(alg: Alg, payload: &[u8]) -> String {
    let header = match alg {
        Alg::Rs256 => json!({"alg": "RS256", "kid": "rsa", "typ": "JWT"}),
        Alg::EdDsa => json!({"alg": "EdDSA", "kid": "ed", "typ": "JWT"}),
    };
    sign_raw(alg, header.to_string().as_bytes(), payload)
}

fn good_claims(user: &str) -> String {
    json!({"sub": user, "sid": "sess_1", "iss": ISSUER, "azp": AZP,
           "iat": NOW_S - 10, "nbf": NOW_S - 10, "exp": NOW_S + 60})
    .to_string()
}

/// A valid token for each key, signed once.
fn valid_tokens() -> &'static [(Alg, String); 2] {
    static TOKENS: OnceLock<[(Alg, String); 2]> = OnceLock::new();
    TOKENS.get_or_init(|| {
        [
            (
                Alg::Rs256,
                sign(Alg::Rs256, good_claims("user_rs").as_bytes()),
            ),
            (
                Alg::EdDsa,
                sign(Alg::EdDsa, good_claims("user_ed").as_bytes()),
            ),
        ]
    })
}

// ----------------------------------------------------------- verifiers --

fn strict() -> Validation {
    Validation {
        issuer: Some(ISSUER.into()),
        authorized_parties: vec![AZP.into()],
        audience: vec![],
        leeway_ms: 5000,
        allow_pending: false,
    }
}

fn store() -> KeyStore {
    KeyStore::new(16, Duration::from_secs(3600), Duration::from_millis(1))
}

fn pem_store() -> Arc<KeyStore> {
    let pem = keys().rsa.public_key_to_pem().unwrap();
    let store = store();
    store.install_pem(VerifyingKey::from_pem(std::str::from_utf8(&pem).unwrap()).unwrap());
    Arc::new(store)
}

fn jwks_store() -> Arc<KeyStore> {
    let k = keys();
    let rsa = k.rsa.rsa().unwrap();
    let doc = json!({"keys": [
        {"kty": "RSA", "kid": "rsa", "alg": "RS256", "n": b64(rsa.n().to_vec()), "e": b64(rsa.e().to_vec())},
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(k.ed.raw_public_key().unwrap())},
    ]});
    let parsed = parse_jwks(doc.to_string().as_bytes()).unwrap();
    let store = store();
    assert_eq!(store.install_jwks(parsed.keys), 2);
    Arc::new(store)
}

/// A gate over `keys` with a policy and a token cache of `cache_tokens`
/// (0: none).
fn verifier(
    keys: Arc<KeyStore>,
    algorithms: AlgorithmSet,
    validation: Validation,
    cache_tokens: usize,
) -> Gate {
    gate(keys, algorithms, validation, cache_tokens, None)
}

fn gate(
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

/// The gate's decision for a found token, its header block in `out`.
fn authorize(g: &Gate, token: &str, out: &mut String) -> Result<(), TokenError> {
    let (grant, _) = g.authorize(token, NOW_MS)?;
    Decision::allow(grant, Source::Verified).render_headers(out);
    Ok(())
}

/// Clerk mode over the PEM key: RS family, strict claims, no cache.
fn pem_verifier() -> &'static Gate {
    static V: OnceLock<Gate> = OnceLock::new();
    V.get_or_init(|| verifier(pem_store(), AlgorithmSet::CLERK, strict(), 0))
}

/// The JWKS (RSA and Ed25519), every algorithm, strict claims, a cache
/// that has already seen every valid token.
fn jwks_verifier() -> &'static Gate {
    static V: OnceLock<Gate> = OnceLock::new();
    V.get_or_init(|| {
        let v = verifier(jwks_store(), AlgorithmSet::ALL, strict(), 1024);
        for (_, token) in valid_tokens() {
            authorize(&v, token, &mut String::new()).unwrap();
        }
        v
    })
}

/// Whether `token` is accepted, checking on the way that `verify_at` and
/// `authorize` agree and that an accepted token renders a safe block whose
/// `X-User-Id` is its `sub`.
fn accepted(v: &Gate, token: &str) -> bool {
    let verified = v.verifier().verify_at(token, NOW_MS);
    let mut out = String::new();
    let authorized = authorize(v, token, &mut out);
    assert_eq!(
        verified.as_ref().err(),
        authorized.as_ref().err(),
        "verify_at and authorize disagree on {token:?}"
    );
    match verified {
        Ok(verified) => {
            check_block(&out);
            let sub = verified.claims.sub.as_ref().and_then(|s| s.as_str());
            assert_eq!(header_values(&out, "X-User-Id"), [sub.unwrap()]);
            true
        }
        Err(_) => {
            assert_eq!(out, "", "a refused token wrote headers");
            false
        }
    }
}

// -------------------------------------------------------- header block --

/// `Name: value` lines joined by CRLF; no empty line, no CR or LF inside a
/// line, no other control character.
fn check_block(block: &str) {
    assert!(!block.is_empty(), "empty header block");
    for line in block.split("\r\n") {
        let (name, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("line without \": \": {line:?} in {block:?}"));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "bad header name {name:?} in {block:?}"
        );
        assert!(
            !value.chars().any(char::is_control),
            "control character in {line:?}"
        );
    }
}

fn header_values<'a>(block: &'a str, name: &str) -> Vec<&'a str> {
    block
        .split("\r\n")
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
        .collect()
}

// ------------------------------------------------- 1. arbitrary tokens --

/// Strings of any characters, control characters included (proptest's
/// `any::<String>()` leaves those out).
fn any_chars(max: usize) -> BoxedStrategy<String> {
    prop::collection::vec(any::<char>(), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
        .boxed()
}

/// Token-shaped text: three base64url-ish segments, sometimes with the
/// valid header, sometimes with characters a strict decoder must refuse.
fn token_like() -> impl Strategy<Value = String> {
    let segment = "[A-Za-z0-9_=+/ -]{0,64}";
    let header = prop_oneof![
        Just(b64(r#"{"alg":"RS256","kid":"rsa","typ":"JWT"}"#)),
        Just(b64(r#"{"alg":"EdDSA","kid":"ed"}"#)),
        "[A-Za-z0-9_-]{0,48}".prop_map(String::from),
    ];
    let payload = prop_oneof![
        Just(b64(good_claims("user_x"))),
        segment.prop_map(String::from),
    ];
    (header, payload, segment, "[.]{0,2}")
        .prop_map(|(h, p, s, extra)| format!("{h}.{p}.{s}{extra}"))
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn arbitrary_strings_are_refused(token in prop_oneof![any::<String>(), any_chars(200), token_like()]) {
        let _ = decode(&token);
        prop_assert!(!accepted(pem_verifier(), &token), "{token:?}");
        prop_assert!(!accepted(jwks_verifier(), &token), "{token:?}");
    }
}

// --------------------------------------------------- 2. mutated tokens --

#[derive(Clone, Debug)]
enum Mutation {
    /// Flip one bit of the token text.
    FlipText {
        at: prop::sample::Index,
        bit: u8,
    },
    /// Flip one bit of a decoded segment and encode it again.
    FlipDecoded {
        segment: usize,
        at: prop::sample::Index,
        bit: u8,
    },
    SwapSegments(usize, usize),
    DropSegment(usize),
    DuplicateSegment(usize),
    /// The same bytes in another encoding.
    Reencode {
        segment: usize,
        style: u8,
    },
    /// Another `alg` in the header; payload and signature kept.
    SetAlg(&'static str),
    /// Another claim value in the payload; header and signature kept.
    SetClaim(&'static str, serde_json::Value),
    /// The signature of the other valid token.
    OtherSignature,
    /// Text added at either end.
    Affix {
        front: bool,
        text: String,
    },
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let seg = 0usize..3;
    prop_oneof![
        3 => (any::<prop::sample::Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipText { at, bit }),
        3 => (seg.clone(), any::<prop::sample::Index>(), 0u8..8)
            .prop_map(|(segment, at, bit)| Mutation::FlipDecoded { segment, at, bit }),
        1 => (seg.clone(), seg.clone()).prop_map(|(a, b)| Mutation::SwapSegments(a, b)),
        1 => seg.clone().prop_map(Mutation::DropSegment),
        1 => seg.clone().prop_map(Mutation::DuplicateSegment),
        2 => (seg, 0u8..5).prop_map(|(segment, style)| Mutation::Reencode { segment, style }),
        1 => prop::sample::select(vec!["none", "None", "HS256", "RS384", "RS512", "PS256", "ES256", "EdDSA", "RS256", "rs256", ""])
            .prop_map(Mutation::SetAlg),
        1 => (
            prop::sample::select(vec!["sub", "exp", "iss", "azp", "sid"]),
            prop_oneof![
                Just(json!("admin")),
                Just(json!(NOW_S + 3600)),
                Just(json!(null)),
                Just(json!("https://evil.example")),
            ],
        ).prop_map(|(k, v)| Mutation::SetClaim(k, v)),
        1 => Just(Mutation::OtherSignature),
        1 => (any::<bool>(), "[ .=\n\t,;A-Za-z0-9]{1,3}").prop_map(|(front, text)| Mutation::Affix { front, text }),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(token: &str, m: &Mutation, other: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let n = parts.len();
    let decoded = |s: &str| URL_SAFE_NO_PAD.decode(s).ok();
    match m {
        Mutation::FlipText { at, bit } => {
            if token.is_empty() {
                return String::new();
            }
            let mut bytes = token.as_bytes().to_vec();
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        Mutation::FlipDecoded { segment, at, bit } => {
            let k = segment % n;
            if let Some(mut raw) = decoded(&parts[k]).filter(|r| !r.is_empty()) {
                let i = at.index(raw.len());
                raw[i] ^= 1 << bit;
                parts[k] = b64(raw);
            }
        }
        Mutation::SwapSegments(a, b) => parts.swap(a % n, b % n),
        Mutation::DropSegment(k) => {
            parts.remove(k % n);
        }
        Mutation::DuplicateSegment(k) => {
            let copy = parts[k % n].clone();
            parts.insert(k % n, copy);
        }
        Mutation::Reencode { segment, style } => {
            let k = segment % n;
            if let Some(raw) = decoded(&parts[k]) {
                parts[k] = match style {
                    0 => STANDARD.encode(&raw),
                    1 => URL_SAFE.encode(&raw),
                    2 => format!("{}=", b64(&raw)),
                    3 => format!(" {}", b64(&raw)),
                    _ => format!("{}\n", b64(&raw)),
                };
            }
        }
        Mutation::SetAlg(alg) => {
            if let Some(header) = decoded(&parts[0]) {
                if let Ok(mut h) = serde_json::from_slice::<serde_json::Value>(&header) {
                    h["alg"] = json!(alg);
                    parts[0] = b64(h.to_string());
                }
            }
        }
        Mutation::SetClaim(key, value) => {
            if let Some(payload) = parts.get(1).and_then(|p| decoded(p)) {
                if let Ok(mut c) = serde_json::from_slice::<serde_json::Value>(&payload) {
                    c[*key] = value.clone();
                    parts[1] = b64(c.to_string());
                }
            }
        }
        Mutation::OtherSignature => {
            let sig = other.rsplit('.').next().unwrap();
            let last = parts.len() - 1;
            parts[last] = sig.to_string();
        }
        Mutation::Affix { front, text } => {
            return if *front {
                format!("{text}{token}")
            } else {
                format!("{token}{text}")
            };
        }
        Mutation::Truncate(at) => {
            let cut = at.index(token.len().max(1));
            return token.get(..cut).unwrap_or(token).to_string();
        }
    }
    parts.join(".")
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn mutated_tokens_are_refused(
        which in 0usize..2,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let tokens = valid_tokens();
        let (alg, original) = &tokens[which];
        let other = &tokens[1 - which].1;
        let mut token = original.clone();
        for m in &mutations {
            token = apply(&token, m, other);
        }
        let rs = matches!(alg, Alg::Rs256);
        if token == *original {
            prop_assert!(accepted(jwks_verifier(), &token));
            prop_assert_eq!(accepted(pem_verifier(), &token), rs);
        } else {
            // The JWKS verifier's cache holds the original: a changed token
            // must not ride on it.
            prop_assert!(!accepted(jwks_verifier(), &token), "{:?} accepted", token);
            prop_assert!(!accepted(pem_verifier(), &token), "{:?} accepted", token);
        }
    }
}

// ----------------------------------------------------------- 3. JWKS --

/// The public JWKs of the test keys (RSA, Ed25519), without kid or alg.
fn real_jwks() -> &'static [serde_json::Value; 2] {
    static JWKS: OnceLock<[serde_json::Value; 2]> = OnceLock::new();
    JWKS.get_or_init(|| {
        let k = keys();
        let rsa = k.rsa.rsa().unwrap();
        [
            json!({"kty": "RSA", "n": b64(rsa.n().to_vec()), "e": b64(rsa.e().to_vec())}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.ed.raw_public_key().unwrap())}),
        ]
    })
}

/// A JWK: mostly a real key with its metadata varied (kid, alg, use,
/// key_ops), sometimes one field of key material replaced, sometimes
/// random fields throughout.
fn jwk_value() -> impl Strategy<Value = serde_json::Value> {
    let b64_bytes = |max: usize| prop::collection::vec(any::<u8>(), 0..max).prop_map(b64);
    let text = prop_oneof![
        Just(String::new()),
        "[ -~]{0,12}".prop_map(String::from),
        any_chars(12),
        (255usize..259).prop_map(|n| "k".repeat(n)),
    ];
    let kid = prop_oneof![
        12 => prop::sample::select(vec!["a", "b", "c"]).prop_map(|k| Some(json!(k))),
        1 => Just(None),
        1 => text.clone().prop_map(|t| Some(json!(t))),
        1 => Just(Some(json!(7))),
    ];
    let alg = prop_oneof![
        4 => Just(None),
        2 => prop::sample::select(vec![
            "RS256", "RS384", "PS512", "ES256", "ES512", "EdDSA", "HS256", "none", "rs256",
        ])
        .prop_map(|a| Some(json!(a))),
    ];
    let usage = prop_oneof![
        8 => Just(None),
        1 => Just(Some(("use", json!("sig")))),
        1 => Just(Some(("use", json!("enc")))),
        1 => Just(Some(("key_ops", json!(["verify"])))),
        1 => Just(Some(("key_ops", json!(["sign", "encrypt"])))),
        1 => Just(Some(("use", json!(1)))),
    ];
    let material = prop_oneof![
        12 => Just(None),
        1 => (prop::sample::select(vec!["n", "e", "x", "y", "crv", "kty"]), b64_bytes(300))
            .prop_map(|(field, v)| Some((field, json!(v)))),
        1 => (prop::sample::select(vec!["n", "e", "x", "crv", "kty"]), text)
            .prop_map(|(field, v)| Some((field, json!(v)))),
    ];
    let random = (
        prop::sample::select(vec!["RSA", "EC", "OKP", "oct", ""]),
        prop::sample::select(vec!["P-256", "P-384", "P-521", "Ed25519", "X25519"]),
        b64_bytes(300),
        b64_bytes(70),
        b64_bytes(70),
    )
        .prop_map(|(kty, crv, n, x, y)| {
            json!({"kty": kty, "crv": crv, "n": n, "e": "AQAB", "x": x, "y": y})
        });
    let base = prop_oneof![
        8 => (0usize..2).prop_map(|i| real_jwks()[i].clone()),
        1 => random,
    ];
    (base, kid, alg, usage, material).prop_map(|(mut jwk, kid, alg, usage, material)| {
        if let Some(kid) = kid {
            jwk["kid"] = kid;
        }
        if let Some(alg) = alg {
            jwk["alg"] = alg;
        }
        for (field, value) in [usage, material].into_iter().flatten() {
            jwk[field] = value;
        }
        jwk
    })
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn parse_jwks_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_jwks(&bytes);
    }

    #[test]
    fn parse_jwks_keeps_only_sound_keys(jwks in prop::collection::vec(jwk_value(), 0..4)) {
        let doc = json!({ "keys": jwks }).to_string();
        let parsed = parse_jwks(doc.as_bytes()).unwrap();
        prop_assert_eq!(parsed.keys.len() + parsed.refused.len(), jwks.len());
        let mut kids: Vec<&str> = parsed.keys.iter().map(|k| k.kid().expect("kept keys have a kid")).collect();
        kids.sort_unstable();
        let n = kids.len();
        kids.dedup();
        prop_assert_eq!(n, kids.len(), "duplicate kid kept");
        for key in &parsed.keys {
            let kid = key.kid().unwrap();
            prop_assert!(kid.len() <= 256);
            // The document's entry for this kid: a kept key honours its
            // `use`, `key_ops` and `alg`.
            let jwk = jwks.iter().find(|j| j["kid"].as_str() == Some(kid)).unwrap();
            prop_assert!(jwk.get("use").is_none_or(|u| u == "sig"));
            prop_assert!(jwk.get("key_ops").is_none_or(|ops| ops.as_array().unwrap().contains(&json!("verify"))));
            if let Some(alg) = jwk["alg"].as_str() {
                let alg = jwtgate::token::algorithms::Algorithm::from_name(alg).unwrap();
                prop_assert!(key.allows(alg));
                for other in jwtgate::token::algorithms::Algorithm::ALL {
                    prop_assert_eq!(key.allows(other), other == alg);
                }
            }
            prop_assert!(jwk["kty"] != "oct");
        }
    }
}

// ------------------------------------------------------------ 4. TOML --

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Values for a setting: mostly of its type and near its limits, sometimes
/// of another type or arbitrary text.
fn toml_value(key: &'static str) -> BoxedStrategy<String> {
    // The first item (a valid value) most of the time.
    let quoted = |items: Vec<&'static str>| {
        prop_oneof![3 => Just(items[0]), 2 => prop::sample::select(items)]
            .prop_map(toml_string)
            .boxed()
    };
    let number = |edges: Vec<u64>| {
        prop_oneof![
            3 => prop::sample::select(edges).prop_map(|n| n.to_string()),
            1 => any::<i64>().prop_map(|n| n.to_string()),
        ]
        .boxed()
    };
    let typed = match key {
        "listen" => quoted(vec!["127.0.0.1:7070", "[::1]:80", "0.0.0.0:0", "localhost:80", ""]),
        "workers" => number(vec![0, 1, 256, 257]),
        "pin_workers" | "verify.allow_pending" | "verify.allow_any_audience" => {
            any::<bool>().prop_map(|b| b.to_string()).boxed()
        }
        "keys.jwks_url" => quoted(vec![
            "https://issuer.example/jwks",
            "http://127.0.0.1:1/jwks",
            "http://[::1]/jwks",
            "http://issuer.example/jwks",
            "ftp://issuer.example/jwks",
            " https://issuer.example/jwks",
            "not a url",
        ]),
        "keys.secret_key" => quoted(vec!["sk_test_x", "", "sk live", "sk_\u{7f}"]),
        "keys.jwt_key" => prop_oneof![
            3 => Just(toml_string(&String::from_utf8(keys().rsa.public_key_to_pem().unwrap()).unwrap())),
            1 => Just(toml_string("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")),
        ]
        .boxed(),
        "keys.jwt_key_file" => quoted(vec!["/etc/jwtgate/clerk.pem", "", "/dev/zero"]),
        "keys.publishable_key" => quoted(vec![
            "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k",
            "pk_test_Y2xlcmsuZXhhbXBsZS5jb20",
            "pk_live_",
            "sk_live_Y2xlcmsuZXhhbXBsZS5jb20k",
        ]),
        "keys.cache_capacity" => number(vec![0, 1, 10_000, 10_001]),
        "keys.refresh_secs" => number(vec![9, 10, 604_800, 604_801]),
        "keys.min_refetch_secs" => number(vec![0, 1, 3600, 3601]),
        "keys.fetch_timeout_ms" => number(vec![99, 100, 60_000, 60_001]),
        "keys.max_stale_secs" => number(vec![59, 60, 3600, 3601, 604_800, 31_536_000, 31_536_001]),
        "verify.audience" => prop_oneof![
            Just("\"api://app\"".to_string()),
            Just("[\"api://app\", \"b\"]".to_string()),
            Just("[]".to_string()),
            Just("[\"\"]".to_string()),
            Just("\"\"".to_string()),
        ]
        .boxed(),
        "verify.leeway_secs" => number(vec![0, 5, 300, 301]),
        "verify.max_token_bytes" => number(vec![511, 512, 65_536, 65_537]),
        "cache.tokens" => number(vec![0, 10_000_000, 10_000_001]),
        "verify.algorithms" => prop::collection::vec(
            prop::sample::select(vec!["RS256", "RS512", "PS256", "ES256", "EdDSA", "HS256", ""]),
            0..3,
        )
        .prop_map(|names| {
            let items: Vec<String> = names.into_iter().map(toml_string).collect();
            format!("[{}]", items.join(", "))
        })
        .boxed(),
        "verify.issuer" => quoted(vec!["https://clerk.example.com", ""]),
        "verify.authorized_parties" => prop_oneof![
            Just("[\"https://app.example.com\"]".to_string()),
            Just("[]".to_string()),
            Just("[\"\"]".to_string()),
        ]
        .boxed(),
        _ => Just("1".to_string()).boxed(),
    };
    prop_oneof![
        8 => typed,
        1 => any_chars(16).prop_map(|s| toml_string(&s)),
        1 => prop::sample::select(vec!["1e400", "-1", "true", "\"5\"", "{ a = 1 }", "[1, \"a\"]", "18446744073709551616"])
            .prop_map(String::from),
    ]
    .boxed()
}

const TOML_KEYS: [&str; 23] = [
    "listen",
    "workers",
    "pin_workers",
    "keys.jwks_url",
    "keys.secret_key",
    "keys.jwt_key",
    "keys.jwt_key_file",
    "keys.publishable_key",
    "keys.cache_capacity",
    "keys.refresh_secs",
    "keys.min_refetch_secs",
    "keys.fetch_timeout_ms",
    "keys.max_stale_secs",
    "verify.algorithms",
    "verify.issuer",
    "verify.authorized_parties",
    "verify.audience",
    "verify.allow_any_audience",
    "verify.leeway_secs",
    "verify.allow_pending",
    "verify.max_token_bytes",
    "cache.tokens",
    "keys.bogus",
];

/// A config file: a key source most of the time, a few other settings,
/// written as dotted keys (`keys.jwks_url = ...`), each key at most once.
fn toml_document() -> impl Strategy<Value = String> {
    let source = prop::sample::select(vec![
        "keys.jwks_url",
        "keys.secret_key",
        "keys.jwt_key",
        "keys.publishable_key",
    ]);
    let source = prop_oneof![4 => source.prop_map(Some), 1 => Just(None)];
    let others = prop::collection::btree_set(prop::sample::select(TOML_KEYS.to_vec()), 0..5);
    (source, others)
        .prop_flat_map(|(source, others)| {
            let mut keys: Vec<&'static str> = others.into_iter().collect();
            if let Some(source) = source {
                if !keys.contains(&source) {
                    keys.push(source);
                }
            }
            keys.into_iter()
                .map(|k| toml_value(k).prop_map(move |v| format!("{k} = {v}\n")))
                .collect::<Vec<_>>()
        })
        .prop_map(|lines| lines.concat())
}

fn check_config(text: &str) -> Option<Config> {
    let mut settings = settings_from_toml(text).ok()?;
    // Never read a file the input names (it could be /dev/zero or a FIFO).
    if settings.keys.jwt_key_file.is_some() {
        settings.keys.jwt_key_file = Some("/nonexistent/jwtgate-properties/key.pem".into());
    }
    let clerk_mode = settings.keys.secret_key.is_some()
        || settings.keys.jwt_key.is_some()
        || settings.keys.jwt_key_file.is_some()
        || settings.keys.publishable_key.is_some();
    let allow_any_audience = settings.verify.allow_any_audience;
    let secret = settings.keys.secret_key.is_some();
    let config = Config::from_settings(settings).ok()?;
    // Keys never go stale between two refreshes.
    assert!(config.max_stale > config.refresh_every);
    // Another issuer: an issuer, and an audience unless explicitly any.
    if !clerk_mode {
        assert!(config.policy.validation.issuer.is_some());
        assert!(!config.policy.validation.audience.is_empty() || allow_any_audience);
    }
    assert!(config
        .policy
        .validation
        .audience
        .iter()
        .all(|a| !a.is_empty()));
    // The secret travels over https or to loopback only.
    if let (true, KeySource::Jwks(j)) = (secret, &config.key_source) {
        assert!(
            j.url.starts_with("https://")
                || ["http://127.", "http://[::1]", "http://localhost"]
                    .iter()
                    .any(|p| j.url.starts_with(p)),
            "{}",
            j.url
        );
    }
    assert!((0..=300_000).contains(&config.policy.validation.leeway_ms));
    assert!((512..=65536).contains(&config.policy.max_token_bytes));
    assert!((1..=10_000).contains(&config.cache_capacity));
    assert!(config.workers <= 256);
    assert_ne!(config.policy.algorithms, AlgorithmSet::EMPTY);
    assert!(config
        .policy
        .validation
        .issuer
        .as_ref()
        .is_none_or(|i| !i.is_empty()));
    Some(config)
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn settings_from_toml_never_panics(text in prop_oneof![any::<String>(), any_chars(100)]) {
        check_config(&text);
    }

    #[test]
    fn configs_are_accepted_only_within_their_limits(text in toml_document()) {
        check_config(&text);
    }
}

// ------------------------------------------------------ 5. App::decide --

struct Apps {
    jwks: Gate,
    pem: Gate,
    empty: Gate,
}

fn apps() -> &'static Apps {
    static APPS: OnceLock<Apps> = OnceLock::new();
    APPS.get_or_init(|| {
        install_logger();
        Apps {
            jwks: gate(
                jwks_store(),
                AlgorithmSet::ALL,
                strict(),
                256,
                Some(jwtgate::config::cookie_suffix(
                    "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k",
                )),
            ),
            pem: verifier(pem_store(), AlgorithmSet::CLERK, strict(), 0),
            empty: verifier(Arc::new(store()), AlgorithmSet::CLERK, strict(), 0),
        }
    })
}

/// Formats every log record and checks it is one line: a request must not
/// be able to forge log lines through `decide`'s debug line.
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

fn install_logger() {
    if log::set_logger(&OneLineLogger).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["Authorization", "authorization", "AUTHORIZATION", "Cookie", "cookie"]).prop_map(String::from),
        1 => prop::sample::select(vec!["X-Original-URI", "X-Original-Method", "Host", "Content-Length"]).prop_map(String::from),
        1 => any::<String>(),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        4 => (0usize..2).prop_map(|i| valid_tokens()[i].1.clone()),
        1 => token_like(),
        1 => any_chars(40),
    ];
    prop_oneof![
        2 => (prop::sample::select(vec!["Bearer ", "bearer\t", "Basic ", "Bearer", " Bearer  "]), token.clone())
            .prop_map(|(scheme, t)| format!("{scheme}{t}").into_bytes()),
        2 => (prop::sample::select(vec!["__session", "__session_naoXFJnI", "__session_other", "a"]), token, "[;= \"]{0,2}")
            .prop_map(|(name, t, tail)| format!("x=1; {name}={t}{tail}").into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// A request's headers: often a valid token where jwtgate looks for one,
/// among other headers, any of which may be hostile.
fn request_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let good = (0usize..2, any::<bool>()).prop_map(|(i, bearer)| {
        let token = &valid_tokens()[i].1;
        if bearer {
            (
                "Authorization".to_string(),
                format!("Bearer {token}").into_bytes(),
            )
        } else {
            (
                "Cookie".to_string(),
                format!("__session={token}").into_bytes(),
            )
        }
    });
    (
        prop::option::weighted(0.6, good),
        prop::collection::vec((header_name(), header_value()), 0..4),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(good, mut others, at)| {
            if let Some(good) = good {
                others.insert(at.index(others.len() + 1), good);
            }
            others
        })
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn decide_answers_200_401_or_503_with_a_safe_block(
        app in 0usize..3,
        headers in request_headers(),
    ) {
        let apps = apps();
        let app = [&apps.jwks, &apps.pem, &apps.empty][app];
        let mut out = String::new();
        let decision = app.decide(
            &Call::auth("/auth"),
            headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
            NOW_MS,
        );
        decision.render_headers(&mut out);
        let status = decision.status();
        check_block(&out);
        match status {
            200 => {
                prop_assert_eq!(header_values(&out, "X-User-Id").len(), 1);
                prop_assert_eq!(header_values(&out, "X-Accel-Expires").len(), 1);
            }
            401 => prop_assert_eq!(header_values(&out, "WWW-Authenticate").len(), 1),
            503 => prop_assert_eq!(out.as_str(), "Retry-After: 5"),
            other => prop_assert!(false, "status {}", other),
        }
    }
}

// ------------------------------------------------------ 6. the claims --

/// A JSON value for a claim, as text (numbers as the literal written).
#[derive(Clone, Debug)]
enum Claim {
    Absent,
    Null,
    Bool(bool),
    Text(String),
    /// A JSON number literal.
    Number(String),
    Array,
}

impl Claim {
    fn json(&self) -> Option<String> {
        match self {
            Claim::Absent => None,
            Claim::Null => Some("null".into()),
            Claim::Bool(b) => Some(b.to_string()),
            Claim::Text(s) => Some(serde_json::to_string(s).unwrap()),
            Claim::Number(n) => Some(n.clone()),
            Claim::Array => Some("[1]".into()),
        }
    }
}

/// Strings with any characters: control characters, edge whitespace,
/// non-ASCII, and lengths around the 1024-byte header limit.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "user_[a-zA-Z0-9]{1,12}".prop_map(String::from),
        2 => any::<String>(),
        2 => any_chars(8),
        2 => "[a-z \t\r\n\u{0}\u{1b}\u{7f}\u{85}\u{a0}\u{2028}\u{feff}é]{0,6}".prop_map(String::from),
        1 => (1015usize..1030).prop_map(|n| "x".repeat(n)),
        1 => (340usize..345).prop_map(|n| "€".repeat(n)),
    ]
}

/// Number literals: near now (with and without fractions), at the ±8.64e12
/// range limit, huge, tiny, negative, exponent forms and out-of-range ones.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-400i64..400).prop_map(|d| (NOW_S + d).to_string()),
        2 => (-400i64..400, prop::sample::select(vec![".0", ".5", ".25", ".999", ".001"]))
            .prop_map(|(d, f)| format!("{}{f}", NOW_S + d)),
        1 => (-400i64..400).prop_map(|d| format!("-{}", NOW_S + d)),
        // Long fractions, rounding to the next second or not: the parser
        // must round them as exactly as the oracle's `str::parse` does.
        1 => (-6i64..6, 1usize..24, prop::sample::select(vec!["9", "0", "4", "5"]), 0u8..10)
            .prop_map(|(d, n, digit, last)| format!("{}.{}{last}", NOW_S + d, digit.repeat(n))),
        1 => prop::sample::select(vec![
            "8640000000000", "8640000000001", "-8640000000000", "-8640000000001", "8.64e12",
            "8.640000000001e12", "1e400", "-1e400", "0", "-0", "0.0", "1.7e9", "17E8", "1e-7",
            "18446744073709551615", "18446744073709551616", "-9223372036854775808",
            "123456789012345678901234567890",
        ]).prop_map(String::from),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:?}")),
    ]
}

/// The claims of one token; each may be absent.
#[derive(Clone, Debug)]
struct Claims {
    sub: Claim,
    sid: Claim,
    exp: Claim,
    nbf: Claim,
    iat: Claim,
    iss: Claim,
    azp: Claim,
    sts: Claim,
    /// A claim jwtgate does not read.
    extra: Claim,
}

impl Claims {
    fn to_json(&self) -> String {
        let fields = [
            ("sub", &self.sub),
            ("sid", &self.sid),
            ("exp", &self.exp),
            ("nbf", &self.nbf),
            ("iat", &self.iat),
            ("iss", &self.iss),
            ("azp", &self.azp),
            ("sts", &self.sts),
            ("jti", &self.extra),
        ];
        let members: Vec<String> = fields
            .iter()
            .filter_map(|(k, v)| Some(format!("\"{k}\":{}", v.json()?)))
            .collect();
        format!("{{{}}}", members.join(","))
    }
}

/// A claim that is usually fine (`good`), else anything from `other`.
fn mostly(good: BoxedStrategy<Claim>, other: BoxedStrategy<Claim>) -> BoxedStrategy<Claim> {
    prop_oneof![6 => good, 1 => other].boxed()
}

/// Any JSON value a time claim could hold.
fn any_time() -> BoxedStrategy<Claim> {
    prop_oneof![
        1 => Just(Claim::Absent),
        8 => number().prop_map(Claim::Number),
        1 => Just(Claim::Null),
        1 => (-400i64..400).prop_map(|d| Claim::Text((NOW_S + d).to_string())),
        1 => any::<bool>().prop_map(Claim::Bool),
        1 => Just(Claim::Array),
    ]
    .boxed()
}

/// Any JSON value a string claim could hold.
fn any_string_claim() -> BoxedStrategy<Claim> {
    prop_oneof![
        6 => any_text().prop_map(Claim::Text),
        1 => Just(Claim::Absent),
        1 => Just(Claim::Null),
        1 => Just(Claim::Number("7".into())),
        1 => any::<bool>().prop_map(Claim::Bool),
        1 => Just(Claim::Array),
    ]
    .boxed()
}

/// `exact`, or a near miss, or anything.
fn exact_or_not(exact: &'static str) -> BoxedStrategy<Claim> {
    let near = prop::sample::select(vec![
        format!("{exact}/"),
        exact.to_uppercase(),
        format!(" {exact}"),
        String::new(),
    ])
    .prop_map(Claim::Text);
    mostly(
        Just(Claim::Text(exact.into())).boxed(),
        prop_oneof![near, any_string_claim()].boxed(),
    )
}

fn past() -> BoxedStrategy<Claim> {
    prop_oneof![
        Just(Claim::Absent),
        (0i64..3600).prop_map(|d| Claim::Number((NOW_S - d).to_string())),
    ]
    .boxed()
}

fn claims() -> impl Strategy<Value = Claims> {
    let user = "user_[a-zA-Z0-9]{1,12}".prop_map(Claim::Text).boxed();
    let future = (1i64..3600)
        .prop_map(|d| Claim::Number((NOW_S + d).to_string()))
        .boxed();
    let sid = prop_oneof![Just(Claim::Absent), Just(Claim::Text("sess_1".into()))].boxed();
    let sts = prop_oneof![
        Just(Claim::Absent),
        Just(Claim::Text("active".into())),
        Just(Claim::Text("pending".into())),
        Just(Claim::Number("1".into())),
    ];
    (
        mostly(user, any_string_claim()),
        mostly(sid, any_string_claim()),
        mostly(future, any_time()),
        mostly(past(), any_time()),
        mostly(past(), any_time()),
        exact_or_not(ISSUER),
        exact_or_not(AZP),
        sts,
        any_string_claim(),
    )
        .prop_map(|(sub, sid, exp, nbf, iat, iss, azp, sts, extra)| Claims {
            sub,
            sid,
            exp,
            nbf,
            iat,
            iss,
            azp,
            sts,
            extra,
        })
}

fn policy() -> impl Strategy<Value = Validation> {
    (
        any::<bool>(),
        prop::sample::select(vec![0i64, 5000, 300_000]),
        any::<bool>(),
    )
        .prop_map(|(strict, leeway_ms, allow_pending)| Validation {
            issuer: strict.then(|| ISSUER.to_string()),
            authorized_parties: if strict {
                vec![AZP.to_string()]
            } else {
                vec![]
            },
            audience: vec![],
            leeway_ms,
            allow_pending,
        })
}

/// The documented rules, restated:
/// - `sub` a non-empty string, at most 1024 bytes, no control character,
///   no leading or trailing whitespace (it becomes `X-User-Id`);
/// - `sid` absent, null or a string (written, and so checked like `sub`,
///   when non-empty);
/// - `exp` required, `nbf` and `iat` optional: JSON numbers of seconds,
///   finite and within ±8.64e12, compared after truncating the fraction:
///   `exp*1000 > now - leeway`, `nbf*1000 <= now + leeway`,
///   `iat*1000 <= now + leeway`;
/// - `iss` equal to the issuer and `azp` one of the parties when those are
///   configured;
/// - `sts` not `"pending"` unless pending sessions are allowed;
/// - claims jwtgate does not read are ignored.
fn oracle(c: &Claims, policy: &Validation) -> bool {
    let header_safe = |s: &str| {
        s.len() <= 1024
            && !s.chars().any(char::is_control)
            && !s.starts_with(char::is_whitespace)
            && !s.ends_with(char::is_whitespace)
    };
    let sub_ok = matches!(&c.sub, Claim::Text(s) if !s.is_empty() && header_safe(s));
    let sid_ok = match &c.sid {
        Claim::Absent | Claim::Null => true,
        Claim::Text(s) => s.is_empty() || header_safe(s),
        _ => false,
    };
    // Milliseconds, or None when the claim is not a usable number.
    let millis = |claim: &Claim| -> Option<Option<i128>> {
        match claim {
            Claim::Absent => Some(None),
            Claim::Number(literal) => {
                let secs: f64 = literal.parse().ok()?;
                (secs.is_finite() && secs.abs() <= 8.64e12)
                    .then(|| Some(secs.trunc() as i128 * 1000))
            }
            _ => None,
        }
    };
    let now = NOW_MS as i128;
    let leeway = policy.leeway_ms as i128;
    let exp_ok = matches!(millis(&c.exp), Some(Some(exp)) if exp > now - leeway);
    let not_after_now = |claim: &Claim| match millis(claim) {
        Some(None) => true,
        Some(Some(t)) => t <= now + leeway,
        None => false,
    };
    let string_is = |claim: &Claim, want: &str| matches!(claim, Claim::Text(s) if s == want);
    let iss_ok = policy
        .issuer
        .as_deref()
        .is_none_or(|want| string_is(&c.iss, want));
    let azp_ok = policy.authorized_parties.is_empty()
        || policy
            .authorized_parties
            .iter()
            .any(|p| string_is(&c.azp, p));
    let sts_ok = policy.allow_pending || !string_is(&c.sts, "pending");
    sub_ok
        && sid_ok
        && exp_ok
        && not_after_now(&c.nbf)
        && not_after_now(&c.iat)
        && iss_ok
        && azp_ok
        && sts_ok
}

fn pem_verifier_with(policy: &Validation) -> Gate {
    static STORE: OnceLock<Arc<KeyStore>> = OnceLock::new();
    let keys = STORE.get_or_init(pem_store).clone();
    verifier(keys, AlgorithmSet::CLERK, policy.clone(), 0)
}

proptest! {
    #![proptest_config(cases(2048))]

    #[test]
    fn signed_claims_are_accepted_exactly_when_the_rules_hold(
        claims in claims(),
        policy in policy(),
    ) {
        let json = claims.to_json();
        let token = sign(Alg::Rs256, json.as_bytes());
        let v = pem_verifier_with(&policy);
        let verdict = v.verifier().verify_at(&token, NOW_MS).map(|_| ());
        prop_assert_eq!(
            verdict.is_ok(),
            oracle(&claims, &policy),
            "claims {} under {:?}: jwtgate says {:?}",
            json,
            policy,
            verdict
        );
        if verdict.is_ok() {
            // accepted() checks the block and that X-User-Id is the sub
            // jwtgate read; this checks it is the sub that was signed.
            prop_assert!(accepted(&v, &token));
            let mut out = String::new();
            authorize(&v, &token, &mut out).unwrap();
            let Claim::Text(sub) = &claims.sub else { unreachable!() };
            prop_assert_eq!(header_values(&out, "X-User-Id"), vec![sub.as_str()]);
        }
    }
}
