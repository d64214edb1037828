//! The HTTP interface of the running daemon, row by row: a real binary, a
//! real JWKS server on loopback, real RSA keys.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn daemon_with(key: &Key) -> (KeyServer, Daemon) {
    let server = KeyServer::start(jwks(&[key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    (server, daemon)
}

#[test]
fn valid_token_gets_200_with_user_headers_and_empty_body() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = daemon_with(&key);
    let r = daemon.bearer(&key.sign(&claims("user_1")));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-user-id"), Some("user_1"));
    assert_eq!(r.header("x-session-id"), Some("sess_user_1"));
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("x-org-id"), None, "no org claims, no org headers");
    assert_eq!(r.body, "");
}

#[test]
fn org_and_actor_claims_become_headers() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = daemon_with(&key);
    let mut c = claims("user_2");
    c["fea"] = json!("o:dashboard,o:teams");
    c["o"] =
        json!({"id": "org_1", "slg": "acme", "rol": "admin", "per": "manage,read", "fpm": "3,2"});
    c["act"] = json!({"sub": "user_support", "iss": "https://dashboard.clerk.com"});
    let r = daemon.bearer(&key.sign(&c));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-org-id"), Some("org_1"));
    assert_eq!(r.header("x-org-slug"), Some("acme"));
    assert_eq!(r.header("x-org-role"), Some("org:admin"));
    assert_eq!(
        r.header("x-org-permissions"),
        Some("org:dashboard:manage,org:dashboard:read,org:teams:read")
    );
    assert_eq!(r.header("x-actor-id"), Some("user_support"));
    let mut v1 = claims("user_3");
    v1.as_object_mut().unwrap().remove("v");
    v1["org_id"] = json!("org_9");
    v1["org_role"] = json!("org:member");
    v1["org_permissions"] = json!(["org:x:read"]);
    let r = daemon.bearer(&key.sign(&v1));
    assert_eq!(r.header("x-org-role"), Some("org:member"));
    assert_eq!(r.header("x-org-permissions"), Some("org:x:read"));
}

#[test]
fn token_sources_cookie_and_header_precedence() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = daemon_with(&key);
    let good = key.sign(&claims("cookie_user"));
    let r = daemon.auth(&[&format!("Cookie: theme=dark; __session={good}; x=1")]);
    assert_eq!(
        (r.status, r.header("x-user-id")),
        (200, Some("cookie_user"))
    );
    let r = daemon.auth(&[&format!("Cookie: __session_Ab12Cd34={good}")]);
    assert_eq!(
        (r.status, r.header("x-user-id")),
        (200, Some("cookie_user")),
        "suffixed cookie"
    );
    let r = daemon.auth(&[&format!("authorization: bearer {good}")]);
    assert_eq!(r.status, 200, "scheme is case-insensitive");
    // The header decides when both are present, as in Clerk's SDK.
    let r = daemon.auth(&[
        &format!("Cookie: __session={good}"),
        "Authorization: Bearer not.a.jwt",
    ]);
    assert_eq!((r.status, r.reason()), (401, Some("token-invalid")));
    // A Basic header is not ours: the cookie is used.
    let r = daemon.auth(&[
        "Authorization: Basic dTpw",
        &format!("Cookie: __session={good}"),
    ]);
    assert_eq!(r.status, 200);
}

#[test]
fn missing_and_bad_tokens_get_401_with_the_right_challenge() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = daemon_with(&key);
    let r = daemon.auth(&[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.header("content-length"), Some("0"));
    let r = daemon.bearer("abc.def.ghi");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\", error_description=\"token-invalid\"")
    );
    let good = key.sign(&claims("u"));
    let r = daemon.auth(&[
        &format!("Authorization: Bearer {good}"),
        &format!("Authorization: Bearer {good}"),
    ]);
    assert_eq!(
        (r.status, r.reason()),
        (401, Some("token-ambiguous-authorization"))
    );
    let log = daemon.log_text();
    assert!(
        log.contains("deny reason=token-invalid carrier=header"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

/// Every rule of the verification, over HTTP, each with its own reason.
#[test]
fn each_rule_refuses_with_its_reason() {
    let key = Key::rsa("ins_1", 2048);
    let other = Key::rsa("ins_1", 2048); // same kid, other key: a forgery
    let (server, daemon) = daemon_with(&key);
    let t = now();
    let with = |k: &str, v: serde_json::Value| {
        let mut c = claims("user_r");
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v;
        }
        key.sign(&c)
    };
    let hdr = |h: serde_json::Value| key.sign_with(&h, &claims("user_r"));
    let pubkey_hs256 = {
        // HS256 "signed" with the public key bytes: the classic confusion.
        use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
        let input = format!(
            "{}.{}",
            b64(r#"{"alg":"HS256","kid":"ins_1"}"#),
            b64(&claims("x").to_string())
        );
        let mac_key = PKey::hmac(key.public_pem().as_bytes()).unwrap();
        let mut s = Signer::new(MessageDigest::sha256(), &mac_key).unwrap();
        let mac = s.sign_oneshot_to_vec(input.as_bytes()).unwrap();
        format!(
            "{input}.{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, mac)
        )
    };
    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","kid":"ins_1"}"#),
        b64(&claims("x").to_string())
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", with("exp", json!(t - 6)), "token-expired"),
        ("exp missing", with("exp", json!(null)), "token-invalid-exp"),
        (
            "exp string",
            with("exp", json!("9999999999")),
            "token-invalid-exp",
        ),
        (
            "nbf future",
            with("nbf", json!(t + 60)),
            "token-not-active-yet",
        ),
        (
            "iat future",
            with("iat", json!(t + 60)),
            "token-iat-in-the-future",
        ),
        (
            "wrong issuer",
            with("iss", json!("https://clerk.other.com")),
            "token-invalid-issuer",
        ),
        (
            "wrong azp",
            with("azp", json!("https://evil.example.com")),
            "token-invalid-authorized-parties",
        ),
        (
            "no azp",
            with("azp", json!(null)),
            "token-invalid-authorized-parties",
        ),
        ("empty sub", with("sub", json!("")), "token-invalid-sub"),
        ("pending", with("sts", json!("pending")), "session-pending"),
        (
            "sid not string",
            with("sid", json!(5)),
            "token-invalid-claim",
        ),
        (
            "CRLF in sub",
            with("sub", json!("u\r\nX-Admin: 1")),
            "token-unsafe-claim-value",
        ),
        (
            "forged",
            other.sign(&claims("user_r")),
            "token-invalid-signature",
        ),
        ("alg none", unsigned, "token-invalid-algorithm"),
        (
            "HS256 with public key",
            pubkey_hs256,
            "token-invalid-algorithm",
        ),
        (
            "RS512 on RS256 key",
            hdr(json!({"alg": "RS512", "kid": "ins_1"})),
            "token-invalid-algorithm",
        ),
        (
            "typ",
            hdr(json!({"alg": "RS256", "kid": "ins_1", "typ": "at+jwt"})),
            "token-invalid-type",
        ),
        (
            "crit",
            hdr(json!({"alg": "RS256", "kid": "ins_1", "crit": ["exp"]})),
            "token-unsupported-crit",
        ),
        (
            "m2m cat",
            hdr(json!({"alg": "RS256", "kid": "ins_1", "cat": "cl_B7d4PD333AAA"})),
            "token-type-mismatch",
        ),
        (
            "kid number",
            hdr(json!({"alg": "RS256", "kid": 1})),
            "token-invalid-kid",
        ),
        ("no kid", hdr(json!({"alg": "RS256"})), "jwk-kid-mismatch"),
        (
            "padding",
            format!("{}=", key.sign(&claims("u"))),
            "token-invalid",
        ),
        ("too large", "a".repeat(16 * 1024 + 1), "token-too-large"),
    ];
    for (name, token, reason) in cases {
        let r = daemon.bearer(&token);
        assert_eq!((r.status, r.reason()), (401, Some(reason)), "{name}: {r:?}");
        assert_eq!(r.header("x-user-id"), None, "{name}");
    }
    // jku/x5u/jwk headers are ignored: a good token still passes, and the
    // URL is never contacted (the only server is ours, whose count is bounded).
    let before = server.fetches();
    let r = daemon.bearer(&hdr(json!({"alg": "RS256", "kid": "ins_1", "typ": "JWT",
        "jku": format!("http://{}/evil", server.addr), "x5u": "http://127.0.0.1:1/x"})));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.fetches(), before);
    assert!(
        daemon.metric("jwtgate_decisions_total{outcome=\"deny\",reason=\"token-expired\"}") >= 1.0
    );
}

#[test]
fn pipelined_requests_for_different_users_get_their_own_headers() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = daemon_with(&key);
    let users: Vec<String> = (0..24)
        .map(|i| format!("user_{i:02}_{}", "x".repeat(i * 7)))
        .collect();
    let mut raw = String::new();
    for (i, user) in users.iter().enumerate() {
        if i % 5 == 4 {
            raw.push_str(
                "GET /auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer bad.token.here\r\n\r\n",
            );
        } else {
            let token = key.sign(&claims(user));
            raw.push_str(&format!(
                "GET /auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n"
            ));
        }
    }
    let mut stream = TcpStream::connect(daemon.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    for (i, user) in users.iter().enumerate() {
        let r = read_response(&mut reader).unwrap();
        if i % 5 == 4 {
            assert_eq!((r.status, r.header("x-user-id")), (401, None), "#{i}");
            assert_eq!(r.header_count("www-authenticate"), 1);
        } else {
            assert_eq!(r.status, 200, "#{i}");
            assert_eq!(r.header("x-user-id"), Some(user.as_str()), "#{i}");
            assert_eq!(
                r.header("x-session-id"),
                Some(format!("sess_{user}").as_str()),
                "#{i}"
            );
            assert_eq!(r.header_count("x-user-id"), 1);
        }
    }
}

#[test]
fn announced_body_is_never_waited_for() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = daemon_with(&key);
    let token = key.sign(&claims("user_b"));
    let raw = format!("POST /auth HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nAuthorization: Bearer {token}\r\n\r\n");
    let started = Instant::now();
    let r = request(daemon.addr, &raw).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered without waiting for the body"
    );
    assert_eq!(r.header("connection"), Some("close"));
    // The daemon is fine afterwards.
    assert_eq!(daemon.bearer(&token).status, 200);
}

#[test]
fn health_readiness_metrics_and_404() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = daemon_with(&key);
    assert_eq!(daemon.get("/healthz").status, 200);
    assert_eq!(daemon.get("/readyz").status, 200);
    assert_eq!(daemon.get("/nope").status, 404);
    assert_eq!(daemon.get("/auth/extra").status, 404);
    daemon.bearer(&key.sign(&claims("m")));
    daemon.auth(&[]);
    let m = daemon.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(daemon.metric("jwtgate_decisions_total{outcome=\"allow\",reason=\"ok\"}") >= 1.0);
    assert!(
        daemon.metric("jwtgate_decisions_total{outcome=\"deny\",reason=\"token-missing\"}") >= 1.0
    );
    assert_eq!(daemon.metric("jwtgate_keys_loaded"), 1.0);
    assert!(daemon.metric("jwtgate_key_fetches_total{outcome=\"ok\"}") >= 1.0);
    assert!(daemon.metric("jwtgate_last_good_key_fetch_timestamp_seconds") > (now() - 60) as f64);
    assert!(daemon.metric("jwtgate_auth_duration_seconds_count") >= 2.0);
    assert!(m
        .body
        .contains("jwtgate_auth_duration_seconds_bucket{le=\"+Inf\"}"));
}

#[test]
fn key_server_down_since_start_gives_503_not_401_and_recovers() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    server.set_down(true);
    let daemon = Daemon::start(&jwks_config(&server, ""));
    let token = key.sign(&claims("user_o"));
    daemon.wait_until(|_| server.fetches() >= 1, "first fetch");
    assert_eq!(daemon.get("/readyz").status, 503);
    assert_eq!(daemon.bearer(&token).status, 503);
    assert_eq!(daemon.get("/healthz").status, 200, "alive while not ready");
    server.set_down(false);
    // The refresher retries with backoff (1 s, 2 s, ...).
    daemon.wait_ready();
    assert_eq!(daemon.bearer(&token).status, 200);
}

#[test]
fn forward_route_answers_as_auth_does_for_api_clients() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = daemon_with(&key);
    let token = key.sign(&claims("user_fwd"));
    for path in ["/forward", "/forward/some/original/path?q=1"] {
        let raw =
            format!("GET {path} HTTP/1.1\r\nHost: j\r\nAuthorization: Bearer {token}\r\n\r\n");
        let r = request(daemon.addr, &raw).unwrap();
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.header("x-user-id"), Some("user_fwd"));
        let raw = format!("GET {path} HTTP/1.1\r\nHost: j\r\n\r\n");
        let r = request(daemon.addr, &raw).unwrap();
        assert_eq!(r.status, 401, "{path}: {r:?}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let r = request(daemon.addr, "GET /forwardx HTTP/1.1\r\nHost: j\r\n\r\n").unwrap();
    assert_eq!(r.status, 404, "only /forward and below");
}
