//! Known JWT attacks against the running daemon, each a 401 with its own
//! reason, and nothing an attacker sends makes jwtgate contact a URL of
//! their choosing or fetch keys beyond its bound.

mod common;

use std::sync::atomic::Ordering;
use std::time::Instant;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde_json::{json, Value};

/// A daemon in Clerk mode (secret key: RS only) over a JWKS with `keys`.
fn clerk_daemon(keys: &[&Key]) -> (KeyServer, Daemon) {
    let server = KeyServer::start(jwks(keys));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    (server, daemon)
}

/// A daemon for another issuer: a public JWKS, every algorithm allowed,
/// any audience (the test tokens carry none).
fn generic_daemon(keys: &[&Key]) -> (KeyServer, Daemon) {
    let server = KeyServer::start(jwks(keys));
    server.public.store(true, Ordering::SeqCst);
    let config = format!(
        "[keys]\njwks_url = \"{}\"\nmin_refetch_secs = 2\n\
         [verify]\nissuer = \"{ISSUER}\"\nallow_any_audience = true\n",
        server.url()
    );
    let daemon = Daemon::start(&config);
    daemon.wait_ready();
    (server, daemon)
}

fn raw_token(header: &str, payload: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header),
        b64(payload),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn hmac_token(alg: &str, kid: &str, secret: &[u8], digest: MessageDigest) -> String {
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": alg, "kid": kid}).to_string()),
        b64(&claims("admin").to_string())
    );
    let key = PKey::hmac(secret).unwrap();
    let mac = Signer::new(digest, &key)
        .unwrap()
        .sign_oneshot_to_vec(input.as_bytes())
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

fn expect_all(daemon: &Daemon, cases: &[(String, String, &str)]) {
    for (name, token, reason) in cases {
        let r = daemon.bearer(token);
        assert_eq!(
            (r.status, r.reason()),
            (401, Some(*reason)),
            "{name}: {r:?}"
        );
        assert!(r.header("x-user-id").is_none(), "{name}");
    }
    assert!(!daemon.log_text().contains("panicked"));
}

#[test]
fn alg_none_and_hmac_with_the_public_key_are_refused_by_name() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = clerk_daemon(&[&key]);
    let payload = claims("admin").to_string();
    let mut cases = vec![];
    for alg in ["none", "None", "NONE", "nOnE", "none ", ""] {
        let header = json!({"alg": alg, "kid": "ins_1", "typ": "JWT"}).to_string();
        cases.push((
            format!("alg {alg:?}, empty sig"),
            format!("{}.{}.", b64(&header), b64(&payload)),
            "token-invalid-algorithm",
        ));
        cases.push((
            format!("alg {alg:?}, junk sig"),
            raw_token(&header, &payload, b"junk"),
            "token-invalid-algorithm",
        ));
    }
    let pem = key.public_pem().into_bytes();
    let der = key.private.public_key_to_der().unwrap();
    for (alg, digest) in [
        ("HS256", MessageDigest::sha256()),
        ("HS384", MessageDigest::sha384()),
        ("HS512", MessageDigest::sha512()),
    ] {
        for (form, secret) in [("PEM", &pem), ("DER", &der)] {
            cases.push((
                format!("{alg} keyed with the {form} public key"),
                hmac_token(alg, "ins_1", secret, digest),
                "token-invalid-algorithm",
            ));
        }
    }
    expect_all(&daemon, &cases);
}

#[test]
fn algorithm_and_key_type_must_match() {
    let rsa = Key::rsa("rsa_1", 2048);
    let ec = Key::ec_p256("ec_1");
    // Clerk mode: only RS*, refused before any key lookup.
    let (_s, clerk) = clerk_daemon(&[&rsa]);
    let es_on_clerk = ec.sign_with(&json!({"alg": "ES256", "kid": "rsa_1"}), &claims("x"));
    let ps_on_clerk = rsa.sign_with(&json!({"alg": "PS256", "kid": "rsa_1"}), &claims("x"));
    expect_all(
        &clerk,
        &[
            (
                "ES256 in Clerk mode".into(),
                es_on_clerk,
                "token-invalid-algorithm",
            ),
            (
                "PS256 in Clerk mode".into(),
                ps_on_clerk,
                "token-invalid-algorithm",
            ),
        ],
    );
    // Another issuer: ES256 and RS256 both fine, each only with its key type.
    let (_g, generic) = generic_daemon(&[&rsa, &ec]);
    let mut good_ec = claims("ec_user");
    good_ec.as_object_mut().unwrap().remove("azp");
    let r = generic.bearer(&ec.sign_with(&json!({"alg": "ES256", "kid": "ec_1"}), &good_ec));
    assert_eq!(
        (r.status, r.header("x-user-id")),
        (200, Some("ec_user")),
        "{r:?}"
    );
    assert_eq!(generic.bearer(&rsa.sign(&good_ec)).status, 200);
    expect_all(
        &generic,
        &[
            (
                "ES256 naming the RSA key".into(),
                ec.sign_with(&json!({"alg": "ES256", "kid": "rsa_1"}), &good_ec),
                "token-invalid-algorithm",
            ),
            (
                "RS256 naming the EC key".into(),
                rsa.sign_with(&json!({"alg": "RS256", "kid": "ec_1"}), &good_ec),
                "token-invalid-algorithm",
            ),
            (
                "RS384 on an RS256-pinned JWK".into(),
                rsa.sign_with(&json!({"alg": "RS384", "kid": "rsa_1"}), &good_ec),
                "token-invalid-algorithm",
            ),
            (
                "EdDSA naming the EC key".into(),
                ec.sign_with(&json!({"alg": "EdDSA", "kid": "ec_1"}), &good_ec),
                "token-invalid-algorithm",
            ),
        ],
    );
}

#[test]
fn kid_injection_is_only_ever_a_lookup_key() {
    let key = Key::rsa("ins_1", 2048);
    let (server, daemon) = clerk_daemon(&[&key]);
    let started = Instant::now();
    let sign_kid = |kid: Value| key.sign_with(&json!({"alg": "RS256", "kid": kid}), &claims("x"));
    let mut cases = vec![];
    for kid in [
        "../../../../etc/passwd",
        "/dev/zero",
        "' OR '1'='1' --",
        "ins_1\u{0}",
        "ins_1 ",
        "INS_1",
        "file:///etc/shadow",
        "http://127.0.0.1:1/jwks",
        "%2e%2e%2f",
    ] {
        cases.push((
            format!("kid {kid:?}"),
            sign_kid(json!(kid)),
            "jwk-kid-mismatch",
        ));
    }
    for kid in [
        json!(1),
        json!(null),
        json!(["ins_1"]),
        json!({"kid": "ins_1"}),
        json!(true),
        json!("k".repeat(10_000)),
    ] {
        cases.push((
            format!("kid {}", &kid.to_string()[..kid.to_string().len().min(20)]),
            sign_kid(kid),
            "token-invalid-kid",
        ));
    }
    expect_all(&daemon, &cases);
    let bound = 2 + (started.elapsed().as_secs_f64() / 2.0).ceil() as usize;
    assert!(
        server.fetches() <= bound,
        "{} fetches (bound {bound})",
        server.fetches()
    );
}

#[test]
fn key_carrying_headers_never_make_a_request() {
    let key = Key::rsa("ins_1", 2048);
    let attacker = Key::rsa("attacker", 2048);
    let (_server, daemon) = clerk_daemon(&[&key]);
    // The attacker's own JWKS server, with the attacker's key in it.
    let evil = KeyServer::start(jwks(&[&attacker]));
    evil.public.store(true, Ordering::SeqCst);
    let evil_url = evil.url();
    let attacker_jwk = attacker.jwk();
    let cert = STANDARD.encode(attacker.private.public_key_to_der().unwrap());
    let forged = |kid: &str, extra: Value| {
        let mut header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
        header
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        attacker.sign_with(&header, &claims("admin"))
    };
    expect_all(
        &daemon,
        &[
            (
                "jku, attacker kid".into(),
                forged("attacker", json!({"jku": evil_url})),
                "jwk-kid-mismatch",
            ),
            (
                "jku, real kid".into(),
                forged("ins_1", json!({"jku": evil_url})),
                "token-invalid-signature",
            ),
            (
                "x5u".into(),
                forged("ins_1", json!({"x5u": evil_url})),
                "token-invalid-signature",
            ),
            (
                "embedded jwk".into(),
                forged("ins_1", json!({"jwk": attacker_jwk})),
                "token-invalid-signature",
            ),
            (
                "x5c".into(),
                forged("ins_1", json!({"x5c": [cert]})),
                "token-invalid-signature",
            ),
        ],
    );
    // The same headers on a correctly signed token are simply ignored.
    let honest = key.sign_with(&json!({"alg": "RS256", "kid": "ins_1", "jku": evil_url, "x5u": evil_url, "jwk": attacker_jwk}), &claims("user_h"));
    assert_eq!(daemon.bearer(&honest).status, 200);
    assert_eq!(
        evil.fetches(),
        0,
        "no request may reach the attacker's server"
    );
}

#[test]
fn structural_attacks_each_have_their_reason() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = clerk_daemon(&[&key]);
    let good = key.sign(&claims("user_s"));
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let signed_text = |header: &str, payload: &str| {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut signer = Signer::new(MessageDigest::sha256(), &key.private).unwrap();
        let sig = signer.sign_oneshot_to_vec(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    let claims_text = claims("user_s").to_string();
    let with_claim = |name: &str, value: Value| {
        let mut c = claims("user_s");
        c[name] = value;
        key.sign(&c)
    };
    // Nested inside a claim jwtgate reads (`act`), and inside one it skips.
    let nested = |claim: &str, depth: usize| {
        let mut c = claims("user_s").to_string();
        c.pop();
        format!(
            "{c},\"{claim}\":{}1{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    let non_utf8_header = format!(
        "{}.{p}.{s}",
        URL_SAFE_NO_PAD.encode(b"{\"alg\":\"RS256\",\"kid\":\"\xff\xfe\"}")
    );
    let cases: Vec<(String, String, &str)> = vec![
        (
            "crit".into(),
            key.sign_with(
                &json!({"alg": "RS256", "kid": "ins_1", "crit": ["b64"], "b64": false}),
                &claims("x"),
            ),
            "token-unsupported-crit",
        ),
        (
            "duplicate alg".into(),
            signed_text(
                r#"{"alg":"RS256","kid":"ins_1","alg":"none"}"#,
                &claims_text,
            ),
            "token-invalid",
        ),
        (
            "duplicate sub".into(),
            signed_text(
                r#"{"alg":"RS256","kid":"ins_1"}"#,
                &claims_text.replacen('{', "{\"sub\":\"admin\",", 1),
            ),
            "token-invalid",
        ),
        (
            "act nested 3000 deep".into(),
            signed_text(r#"{"alg":"RS256","kid":"ins_1"}"#, &nested("act", 3000)),
            "token-invalid-claim",
        ),
        (
            "sub nested 3000 deep".into(),
            signed_text(r#"{"alg":"RS256","kid":"ins_1"}"#, &nested("sub", 3000)),
            "token-invalid",
        ),
        (
            "alg nested 5000 deep, unsigned".into(),
            format!(
                "{}.{p}.{s}",
                b64(&format!(
                    "{{\"alg\":{}1{}}}",
                    "[".repeat(5000),
                    "]".repeat(5000)
                ))
            ),
            "token-invalid-algorithm",
        ),
        ("non-UTF-8 header".into(), non_utf8_header, "token-invalid"),
        ("padding".into(), format!("{h}.{p}.{s}=="), "token-invalid"),
        (
            "standard base64".into(),
            good.replace('-', "+").replace('_', "/"),
            if good.contains(['-', '_']) {
                "token-invalid"
            } else {
                "token-invalid-signature"
            },
        ),
        (
            "extra segment".into(),
            format!("{good}.{s}"),
            "token-invalid",
        ),
        (
            "missing segment".into(),
            format!("{h}.{p}"),
            "token-invalid",
        ),
        (
            "inner whitespace".into(),
            format!("{h}. {p}.{s}"),
            "token-invalid",
        ),
        (
            "JWS JSON serialization".into(),
            json!({"payload": p, "protected": h, "signature": s}).to_string(),
            "token-invalid",
        ),
        (
            "exp as string".into(),
            with_claim("exp", json!((now() + 60).to_string())),
            "token-invalid-exp",
        ),
        (
            "exp null".into(),
            with_claim("exp", json!(null)),
            "token-invalid-exp",
        ),
        (
            "nbf as string".into(),
            with_claim("nbf", json!("0")),
            "token-invalid-nbf",
        ),
        (
            "iat null".into(),
            with_claim("iat", json!(null)),
            "token-invalid-iat",
        ),
        (
            "exp 1e20".into(),
            with_claim("exp", json!(1e20)),
            "token-invalid-exp",
        ),
        (
            "exp negative".into(),
            with_claim("exp", json!(-1)),
            "token-expired",
        ),
        (
            "over the size cap".into(),
            format!("{h}.{}.{s}", "A".repeat(16 * 1024)),
            "token-too-large",
        ),
    ];
    expect_all(&daemon, &cases);
    // Deep nesting in a claim jwtgate does not read is skipped without
    // recursion: harmless, so the token stands or falls on the rest.
    let skipped = signed_text(r#"{"alg":"RS256","kid":"ins_1"}"#, &nested("x", 3000));
    assert_eq!(daemon.bearer(&skipped).status, 200);
    // Floats are numbers: a fractional future exp is fine, as in Clerk.
    assert_eq!(
        daemon
            .bearer(&with_claim("exp", json!(now() as f64 + 60.5)))
            .status,
        200
    );
    assert_eq!(daemon.bearer(&good).status, 200, "still serving");
}

#[test]
fn tokens_of_another_clerk_instance_are_refused() {
    let ours = Key::rsa("ins_ours", 2048);
    let theirs = Key::rsa("ins_theirs", 2048);
    let theirs_same_kid = Key::rsa("ins_ours", 2048);
    let (_server, daemon) = clerk_daemon(&[&ours]);
    let mut their_claims = claims("user_elsewhere");
    their_claims["iss"] = json!("https://clerk.other-app.com");
    let mut our_key_their_iss = claims("user_elsewhere");
    our_key_their_iss["iss"] = json!("https://clerk.other-app.com");
    expect_all(
        &daemon,
        &[
            (
                "their key and kid".into(),
                theirs.sign(&their_claims),
                "jwk-kid-mismatch",
            ),
            (
                "their key, our kid".into(),
                theirs_same_kid.sign(&their_claims),
                "token-invalid-signature",
            ),
            (
                "their issuer".into(),
                ours.sign(&our_key_their_iss),
                "token-invalid-issuer",
            ),
        ],
    );
}

#[test]
fn credential_carriers_are_unambiguous() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = clerk_daemon(&[&key]);
    let alice = key.sign(&claims("alice"));
    let mallory = key.sign(&claims("mallory"));
    let r = daemon.auth(&[
        &format!("Authorization: Bearer {alice}"),
        &format!("Authorization: Bearer {mallory}"),
    ]);
    assert_eq!(
        (r.status, r.reason()),
        (401, Some("token-ambiguous-authorization"))
    );
    let r = daemon.auth(&[
        &format!("Cookie: __session={mallory}"),
        &format!("Authorization: Bearer {alice}"),
    ]);
    assert_eq!(
        (r.status, r.header("x-user-id")),
        (200, Some("alice")),
        "the header decides"
    );
}
