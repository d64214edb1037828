//! The whole `/auth` decision, `Gate::decide`, on fuzzed request headers.
//!
//! The first byte picks the app (JWKS keys with a token cache and a Clerk
//! cookie suffix; the PEM key; no keys at all). The rest is header lines
//! split on `\n`, each `name:value` (one space after the colon is dropped).
//! Two kinds of line stand for a freshly signed token, so that the fuzzer
//! reaches the success path with claims of its own:
//! - `\x01<claims JSON>`: `Authorization: Bearer <token>`,
//! - `\x02<cookie name>=<claims JSON>`: `Cookie: <cookie name>=<token>`.
//!
//! Checked: the status is 200, 401 or 503; the appended block is
//! `Name: value` lines joined by CRLF with no other CR, LF or control
//! character; a 200 carries one `X-User-Id` and one `X-Accel-Expires`, a
//! 401 one `WWW-Authenticate`; the same request decides the same again;
//! the debug log line (a logger is installed) is a single line.
#![no_main]

use jwtgate::gate::{Call, Gate};
use jwtgate_fuzz::{
    apps, check_header_block, header_values, install_logger, sign_claims, Signing, NOW_MS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    install_logger();
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let apps = apps();
    let (app, how): (&Gate, Signing) = match pick % 4 {
        0 | 1 => (&apps.jwks, Signing::EdDsa),
        2 => (&apps.pem, Signing::Rs256),
        _ => (&apps.empty, Signing::Rs256),
    };
    let headers = headers(rest, how);
    let first = decide(app, &headers);
    let second = decide(app, &headers);
    assert_eq!(first, second, "the same request decided twice differently");
});

fn headers(bytes: &[u8], how: Signing) -> Vec<(String, Vec<u8>)> {
    let mut headers = Vec::new();
    for line in bytes.split(|b| *b == b'\n').take(64) {
        match line.split_first() {
            Some((&1, claims)) => {
                let token = sign_claims(how, claims);
                headers.push(("Authorization".into(), format!("Bearer {token}").into()));
            }
            Some((&2, cookie)) => {
                let (name, claims) = match cookie.iter().position(|b| *b == b'=') {
                    Some(i) => (&cookie[..i], &cookie[i + 1..]),
                    None => (&b"__session"[..], cookie),
                };
                let token = sign_claims(how, claims);
                let mut value = name.to_vec();
                value.push(b'=');
                value.extend_from_slice(token.as_bytes());
                headers.push(("Cookie".into(), value));
            }
            _ => {
                let (name, value) = match line.iter().position(|b| *b == b':') {
                    Some(i) => (&line[..i], &line[i + 1..]),
                    None => (line, &b""[..]),
                };
                let value = value.strip_prefix(b" ").unwrap_or(value);
                headers.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
            }
        }
    }
    headers
}

fn decide(app: &Gate, headers: &[(String, Vec<u8>)]) -> (u16, String) {
    let mut out = String::new();
    let pairs = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
    let decision = app.decide(&Call::auth("/auth"), pairs, NOW_MS);
    decision.render_headers(&mut out);
    let status = decision.status();
    if let Err(why) = check_header_block(&out) {
        panic!("status {status}: {why}");
    }
    match status {
        200 => {
            assert_eq!(header_values(&out, "X-User-Id").len(), 1, "{out:?}");
            assert_eq!(header_values(&out, "X-Accel-Expires").len(), 1, "{out:?}");
            assert!(
                header_values(&out, "WWW-Authenticate").is_empty(),
                "{out:?}"
            );
        }
        401 => {
            assert_eq!(header_values(&out, "WWW-Authenticate").len(), 1, "{out:?}");
            assert!(header_values(&out, "X-User-Id").is_empty(), "{out:?}");
        }
        503 => assert_eq!(out, "Retry-After: 5"),
        other => panic!("status {other}"),
    }
    (status, out)
}
