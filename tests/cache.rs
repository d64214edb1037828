//! The verified-token cache, seen from outside: repeats are hits with the
//! same answer, an entry dies at the token's exp and with the key set, and
//! nothing but the exact token can use an entry.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const HITS: &str = "jwtgate_token_cache_total{result=\"hit\"}";
const MISSES: &str = "jwtgate_token_cache_total{result=\"miss\"}";

fn start(key: &Key, extra_verify: &str) -> (KeyServer, Daemon) {
    let server = KeyServer::start(jwks(&[key]));
    let daemon = Daemon::start(&format!("{}{extra_verify}", jwks_config(&server, "")));
    daemon.wait_ready();
    (server, daemon)
}

#[test]
fn a_repeated_token_is_a_hit_with_the_same_answer() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = start(&key, "");
    let c = claims("user_hit");
    let token = key.sign(&c);
    let first = daemon.bearer(&token);
    let second = daemon.bearer(&token);
    assert_eq!(first.status, 200);
    assert_eq!(
        first
            .headers
            .iter()
            .filter(|(n, _)| n.starts_with("X-"))
            .collect::<Vec<_>>(),
        second
            .headers
            .iter()
            .filter(|(n, _)| n.starts_with("X-"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        second.header("x-accel-expires"),
        Some(&*format!("@{}", c["exp"].as_i64().unwrap() - 1))
    );
    assert_eq!((daemon.metric(MISSES), daemon.metric(HITS)), (1.0, 1.0));
}

#[test]
fn nothing_but_the_exact_token_uses_an_entry() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = start(&key, "");
    let token = key.sign(&claims("user_real"));
    assert_eq!(daemon.bearer(&token).status, 200);
    // The cached token's signature on another payload: a forgery.
    let (_, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = token.split_once('.').unwrap();
    let forged = format!(
        "{header}.{}.{signature}",
        b64(&claims("user_admin").to_string())
    );
    let r = daemon.bearer(&forged);
    assert_eq!(
        (r.status, r.reason()),
        (401, Some("token-invalid-signature"))
    );
    assert_eq!(daemon.metric(HITS), 0.0);
}

#[test]
fn an_entry_dies_at_the_tokens_exp() {
    let key = Key::rsa("ins_1", 2048);
    let (_server, daemon) = start(&key, "leeway_secs = 0\n");
    let mut c = claims("user_short");
    let exp = now() + 2;
    c["exp"] = json!(exp);
    let token = key.sign(&c);
    assert_eq!(daemon.bearer(&token).status, 200);
    assert_eq!(daemon.bearer(&token).status, 200);
    assert_eq!(daemon.metric(HITS), 1.0);
    while now() < exp {
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = daemon.bearer(&token);
    assert_eq!((r.status, r.reason()), (401, Some("token-expired")));
}

#[test]
fn a_key_change_drops_every_entry() {
    let old = Key::rsa("ins_old", 2048);
    let new = Key::rsa("ins_new", 2048);
    let (server, daemon) = start(&old, "");
    let token = old.sign(&claims("user_rotated"));
    assert_eq!(daemon.bearer(&token).status, 200);
    assert_eq!(daemon.bearer(&token).status, 200);
    server.set_keys(&[&new]);
    daemon.signal("HUP");
    daemon.wait_until(
        |d| d.bearer(&new.sign(&claims("n"))).status == 200,
        "the new key",
    );
    let r = daemon.bearer(&token);
    assert_eq!(
        (r.status, r.reason()),
        (401, Some("jwk-kid-mismatch")),
        "not served from the cache"
    );
}

#[test]
fn cache_can_be_turned_off() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&format!(
        "[cache]\ntokens = 0\n{}",
        jwks_config(&server, "")
    ));
    daemon.wait_ready();
    let token = key.sign(&claims("user_nc"));
    for _ in 0..3 {
        let r = daemon.bearer(&token);
        assert_eq!(r.status, 200);
        assert!(r.header("x-accel-expires").is_some());
    }
    assert_eq!((daemon.metric(MISSES), daemon.metric(HITS)), (3.0, 0.0));
}

#[test]
fn reuse_is_capped_by_the_ttl_for_both_caches() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&format!(
        "[cache]\nttl_secs = 1\n{}",
        jwks_config(&server, "")
    ));
    daemon.wait_ready();
    let token = key.sign(&claims("user_ttl")); // exp is a minute away
    let first = daemon.bearer(&token);
    let until: i64 = first.header("x-accel-expires").unwrap()[1..]
        .parse()
        .unwrap();
    assert!(
        until <= now(),
        "nginx may keep it at most until the ttl: @{until}"
    );
    assert_eq!(daemon.bearer(&token).status, 200);
    assert_eq!((daemon.metric(MISSES), daemon.metric(HITS)), (1.0, 1.0));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(daemon.bearer(&token).status, 200);
    assert_eq!(daemon.metric(MISSES), 2.0, "verified again after the ttl");
}
