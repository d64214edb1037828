//! `parse_jwks` on arbitrary bytes, and on real keys with one field
//! replaced by the fuzz input.
//!
//! The first byte picks a mode:
//! - 0: the bytes are the JWKS document.
//! - 1: a real JWK (RSA, EC or Ed25519) with one field set to the input,
//!   as a JSON string (or base64url of it, for key material).
//! - 2: a real JWK with one field set to the input as raw JSON text.
//!
//! Checked: no panic; every key is either kept or refused; kept keys have
//! a kid of at most 256 bytes, distinct kids and an RSA size in
//! 2048..=8192 bits; a kept key still verifies what its private key signed
//! when only its metadata (kid, alg, use, key_ops) was changed; any key
//! verifies arbitrary signatures without panicking.
#![no_main]

use jwtgate::keys::jwk::{parse_jwks, KeySetParse};
use jwtgate::token::algorithms::Algorithm;
use jwtgate_fuzz::{b64, jwks_document, sign_raw, Signing};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const FIELDS: [&str; 12] = [
    "kty", "kid", "alg", "use", "key_ops", "crv", "n", "e", "x", "y", "d", "keys",
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let expected = serde_json::from_slice::<Value>(rest)
                .ok()
                .and_then(|v| v.get("keys")?.as_array().map(Vec::len));
            if let Ok(parsed) = parse_jwks(rest) {
                check(&parsed, expected);
            }
        }
        1 | 2 => {
            let Some((&pick, input)) = rest.split_first() else {
                return;
            };
            let template = jwks_document()["keys"][pick as usize % 4].clone();
            let field = FIELDS[(pick as usize / 4) % FIELDS.len()];
            let value = if mode % 3 == 2 {
                let Ok(text) = std::str::from_utf8(input) else {
                    return;
                };
                let Ok(value) = serde_json::from_str::<Value>(text) else {
                    return;
                };
                value
            } else if matches!(field, "n" | "e" | "x" | "y" | "d") {
                Value::String(b64(input))
            } else if field == "key_ops" {
                let text = String::from_utf8_lossy(input);
                Value::Array(text.split(',').map(|s| Value::String(s.into())).collect())
            } else {
                Value::String(String::from_utf8_lossy(input).into_owned())
            };
            let mut jwk = template.clone();
            jwk[field] = value;
            let doc = serde_json::json!({ "keys": [jwk] }).to_string();
            let parsed = parse_jwks(doc.as_bytes()).expect("a JWKS document");
            check(&parsed, Some(1));
            if matches!(field, "kid" | "alg" | "use" | "key_ops") {
                still_verifies(&parsed, &template);
            }
        }
        _ => unreachable!(),
    }
});

fn check(parsed: &KeySetParse, keys_in_document: Option<usize>) {
    if let Some(n) = keys_in_document {
        assert_eq!(parsed.keys.len() + parsed.refused.len(), n);
    }
    let mut kids: Vec<&str> = parsed.keys.iter().map(|k| k.kid().unwrap()).collect();
    for kid in &kids {
        assert!(kid.len() <= 256, "kid of {} bytes kept", kid.len());
    }
    kids.sort_unstable();
    let before = kids.len();
    kids.dedup();
    assert_eq!(before, kids.len(), "a duplicate kid was kept");
    for key in &parsed.keys {
        let rsa = Algorithm::ALL[..6].iter().any(|a| key.allows(*a));
        if rsa {
            assert!((2048..=8192).contains(&key.bits()), "{key:?}");
        }
        for alg in Algorithm::ALL {
            let _ = key.verify_signature(alg, b"a.b", &[0u8; 64]);
            let _ =
                key.verify_signature(alg, b"a.b", &vec![1u8; (key.bits() as usize).div_ceil(8)]);
        }
    }
}

/// A key whose metadata changed is still the same key: if kept and it
/// allows the algorithm of the original, it verifies a real signature.
fn still_verifies(parsed: &KeySetParse, template: &Value) {
    let Some(key) = parsed.keys.first() else {
        return;
    };
    let how = match template["kid"].as_str() {
        Some("rsa-1") | Some("rsa-any") => Signing::Rs256,
        Some("ec-1") => Signing::Es256,
        _ => Signing::EdDsa,
    };
    let alg = Algorithm::from_name(how.alg()).unwrap();
    if !key.allows(alg) {
        return;
    }
    let token = sign_raw(how, b"{}", b"{}");
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
    assert!(key.verify_signature(alg, input.as_bytes(), &sig), "{key:?}");
}
