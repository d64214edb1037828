//! Tokens through `decode`, `verify_at` and `authorize`.
//!
//! The first byte picks a mode; the rest is the mode's input:
//! - 0: the bytes are the token (any text).
//! - 1: the bytes replace a valid token's payload (re-encoded): refused
//!   unless they are the original payload.
//! - 2: the bytes are a script of edits to a valid token (bit flips,
//!   inserts, deletes, segment swaps, re-encodings, segment replacement):
//!   refused unless the result is the original token.
//! - 3: the bytes are claims JSON, signed with a real key: accepted exactly
//!   when the claim rules hold (see `claims_oracle`).
//! - 4: the bytes are `header JSON \n claims JSON`, signed with a real key.
#![no_main]

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jwtgate::gate::Gate;
use jwtgate::token::decode;
use jwtgate_fuzz::{
    b64, check_token, claims_oracle, header_values, sign_claims, sign_raw, valid_tokens, verifiers,
    Signing,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => raw(rest),
        1 => splice_payload(rest),
        2 => edit_script(rest),
        3 => signed_claims(rest),
        _ => signed_header_and_claims(rest),
    }
});

fn raw(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let _ = decode(&text);
    for v in verifiers().all() {
        let _ = check_token(v, &text);
    }
}

/// The base token an input edits: its second byte's choice of key.
fn base(selector: u8) -> (Signing, &'static str) {
    let tokens = valid_tokens();
    let (how, token) = &tokens[selector as usize % tokens.len()];
    (*how, token)
}

/// The verifiers that accept tokens signed with `how`.
fn accepting(how: Signing) -> Vec<&'static Gate> {
    let v = verifiers();
    match how {
        Signing::Rs256 => vec![&v.pem, &v.jwks_cached, &v.jwks_open],
        _ => vec![&v.jwks_cached, &v.jwks_open],
    }
}

fn must_refuse(token: &str, original: &str, how: Signing) {
    for v in verifiers().all() {
        let verdict = check_token(v, token);
        if token == original {
            if accepting(how).iter().any(|a| std::ptr::eq(*a, v)) {
                assert_eq!(verdict, Ok(()), "the original token must pass");
            }
        } else {
            assert!(
                verdict.is_err(),
                "altered token accepted: {token:?} (from {original:?})"
            );
        }
    }
}

fn splice_payload(bytes: &[u8]) {
    let Some((&selector, payload)) = bytes.split_first() else {
        return;
    };
    let (how, original) = base(selector);
    let mut parts = original.split('.');
    let (h, _, s) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    let token = format!("{h}.{}.{s}", b64(payload));
    must_refuse(&token, original, how);
}

fn segments(token: &[u8]) -> Vec<Vec<u8>> {
    token.split(|b| *b == b'.').map(<[u8]>::to_vec).collect()
}

fn join(segments: &[Vec<u8>]) -> Vec<u8> {
    segments.join(&b'.')
}

/// Reads a little script: each edit is an op byte and its arguments.
struct Script<'a> {
    bytes: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn index(&mut self, len: usize) -> Option<usize> {
        let hi = self.byte()? as usize;
        let lo = self.byte()? as usize;
        Some(((hi << 8) | lo) % len.max(1))
    }

    fn chunk(&mut self) -> Option<&[u8]> {
        let n = (self.byte()? as usize).min(self.bytes.len());
        let (chunk, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(chunk)
    }
}

fn edit_script(bytes: &[u8]) {
    let Some((&selector, script)) = bytes.split_first() else {
        return;
    };
    let (how, original) = base(selector);
    let mut token = original.as_bytes().to_vec();
    let mut script = Script { bytes: script };
    for _ in 0..16 {
        if apply_edit(&mut token, &mut script).is_none() {
            break;
        }
    }
    let text = String::from_utf8_lossy(&token);
    must_refuse(&text, original, how);
}

fn apply_edit(token: &mut Vec<u8>, s: &mut Script) -> Option<()> {
    match s.byte()? % 9 {
        0 => {
            let i = s.index(token.len())?;
            let bit = s.byte()? % 8;
            if let Some(b) = token.get_mut(i) {
                *b ^= 1 << bit;
            }
        }
        1 => {
            let i = s.index(token.len())?;
            let value = s.byte()?;
            if let Some(b) = token.get_mut(i) {
                *b = value;
            }
        }
        2 => {
            let i = s.index(token.len() + 1)?;
            let value = s.byte()?;
            token.insert(i.min(token.len()), value);
        }
        3 => {
            let i = s.index(token.len())?;
            let n = (s.byte()? as usize % 8) + 1;
            let end = (i + n).min(token.len());
            token.drain(i.min(end)..end);
        }
        4 => {
            let mut parts = segments(token);
            let a = s.byte()? as usize % parts.len();
            let b = s.byte()? as usize % parts.len();
            parts.swap(a, b);
            *token = join(&parts);
        }
        5 => {
            // Flip a bit of a decoded segment and encode it again.
            let mut parts = segments(token);
            let k = s.byte()? as usize % parts.len();
            let mut raw = URL_SAFE_NO_PAD.decode(&parts[k]).ok()?;
            if raw.is_empty() {
                return Some(());
            }
            let i = s.index(raw.len())?;
            raw[i] ^= 1 << (s.byte()? % 8);
            parts[k] = URL_SAFE_NO_PAD.encode(raw).into_bytes();
            *token = join(&parts);
        }
        6 => {
            // The same bytes, encoded differently.
            let mut parts = segments(token);
            let k = s.byte()? as usize % parts.len();
            let raw = URL_SAFE_NO_PAD.decode(&parts[k]).ok()?;
            parts[k] = match s.byte()? % 4 {
                0 => STANDARD.encode(&raw),
                1 => URL_SAFE.encode(&raw),
                2 => format!(" {}", URL_SAFE_NO_PAD.encode(&raw)),
                _ => format!("{}\n", URL_SAFE_NO_PAD.encode(&raw)),
            }
            .into_bytes();
            *token = join(&parts);
        }
        7 => {
            let mut parts = segments(token);
            let k = s.byte()? as usize % parts.len();
            parts[k] = b64(s.chunk()?).into_bytes();
            *token = join(&parts);
        }
        _ => {
            // Replace the header JSON, keeping payload and signature.
            let mut parts = segments(token);
            parts[0] = b64(s.chunk()?).into_bytes();
            *token = join(&parts);
        }
    }
    Some(())
}

fn signing_for(selector: u8) -> Signing {
    // Mostly EdDSA: an RSA signature costs a millisecond, EdDSA microseconds.
    match selector % 8 {
        0 => Signing::Rs256,
        1 => Signing::Es256,
        2 => Signing::Ps256,
        _ => Signing::EdDsa,
    }
}

fn signed_claims(bytes: &[u8]) {
    let Some((&selector, claims)) = bytes.split_first() else {
        return;
    };
    let how = signing_for(selector);
    let token = sign_claims(how, claims);
    for v in accepting(how) {
        let verdict = check_token(v, &token);
        if let Some(expected) = claims_oracle(claims, &v.verifier().policy().validation) {
            assert_eq!(
                verdict.is_ok(),
                expected,
                "claims {:?}: jwtgate says {verdict:?}",
                String::from_utf8_lossy(claims)
            );
        }
        if verdict.is_ok() {
            let mut out = String::new();
            jwtgate_fuzz::authorize(v, &token, &mut out).unwrap();
            // serde_json's own reading of the claims, where it has one (an
            // ignored claim may hold a lone surrogate escape, which jwtgate
            // skips and serde_json's Value refuses).
            if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(claims) {
                assert_eq!(
                    header_values(&out, "X-User-Id"),
                    [claims["sub"].as_str().unwrap()]
                );
            }
        }
    }
}

fn signed_header_and_claims(bytes: &[u8]) {
    let Some((&selector, rest)) = bytes.split_first() else {
        return;
    };
    let (header, claims) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"{}"[..]),
    };
    let how = signing_for(selector);
    let token = sign_raw(how, header, claims);
    let _ = decode(&token);
    for v in verifiers().all() {
        let _ = check_token(v, &token);
    }
}
