//! Another issuer (a plain `jwks_url`): `verify.issuer` and
//! `verify.audience` are required, and the token's `aud` (a string or an
//! array of strings) must name a configured audience.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use serde_json::{json, Value};

#[test]
fn the_audience_must_be_named_by_the_token() {
    let key = Key::rsa("other_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    server.public.store(true, Ordering::SeqCst);
    let config = format!(
        "[keys]\njwks_url = \"{}\"\n[verify]\nissuer = \"{ISSUER}\"\n\
         audience = [\"api://orders\", \"api://billing\"]\n",
        server.url()
    );
    let daemon = Daemon::start(&config);
    daemon.wait_ready();
    let with_aud = |aud: Value| {
        let mut c = claims("user_aud");
        if aud == json!("<absent>") {
            c.as_object_mut().unwrap().remove("aud");
        } else {
            c["aud"] = aud;
        }
        daemon.bearer(&key.sign(&c))
    };
    for good in [
        json!("api://orders"),
        json!(["api://billing"]),
        json!(["https://other.example", "api://orders"]),
    ] {
        let r = with_aud(good.clone());
        assert_eq!(
            (r.status, r.header("x-user-id")),
            (200, Some("user_aud")),
            "{good}"
        );
    }
    for bad in [
        json!("<absent>"),
        json!("api://other"),
        json!(["api://other"]),
        json!([]),
        json!(["api://orders", 1]),
        json!(5),
    ] {
        let r = with_aud(bad.clone());
        assert_eq!(
            (r.status, r.reason()),
            (401, Some("token-invalid-audience")),
            "{bad}"
        );
    }
    assert_eq!(
        daemon
            .metric("jwtgate_decisions_total{outcome=\"deny\",reason=\"token-invalid-audience\"}"),
        6.0
    );
}

#[test]
fn a_plain_jwks_url_without_issuer_or_audience_does_not_start() {
    let dir = TempDir::new("aud-cfg");
    let path = dir.path("jwtgate.toml");
    for (toml, named) in [
        ("[keys]\njwks_url = \"https://idp.example/jwks\"\n", "verify.issuer"),
        (
            "[keys]\njwks_url = \"https://idp.example/jwks\"\n[verify]\nissuer = \"https://idp.example\"\n",
            "verify.audience: required",
        ),
        (
            "[keys]\njwks_url = \"https://idp.example/jwks\"\n[verify]\nissuer = \"https://idp.example\"\naudience = []\n",
            "verify.audience: must not be empty",
        ),
    ] {
        std::fs::write(&path, toml).unwrap();
        let out = jwtgate_command()
            .args(["--config", path.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {err}");
        assert!(err.contains(named), "want {named:?}: {err}");
    }
    // The explicit opt-out starts (and serves tokens without aud).
    let key = Key::rsa("other_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    server.public.store(true, Ordering::SeqCst);
    let daemon = Daemon::start(&format!(
        "[keys]\njwks_url = \"{}\"\n[verify]\nissuer = \"{ISSUER}\"\nallow_any_audience = true\n",
        server.url()
    ));
    daemon.wait_ready();
    assert_eq!(daemon.bearer(&key.sign(&claims("u"))).status, 200);
}
