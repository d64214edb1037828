//! The hot path allocates nothing: a cache hit through `App::decide` (the
//! whole `/auth` decision: token lookup, cache, header block, metrics) is
//! run under a counting global allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use jwtgate::config::{settings_from_toml, Config};
use jwtgate::gate::metrics::Metrics;
use jwtgate::gate::Call;
use jwtgate::keys::jwk::VerifyingKey;
use jwtgate::keys::store::KeyStore;
use jwtgate::verify::{now_ms, Verifier};
use jwtgate::{Gate, GateOptions};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn a_cache_hit_allocates_nothing() {
    let key = Key::rsa("ins_1", 2048);
    let toml = format!(
        "[keys]\njwt_key = \"\"\"{}\"\"\"\n[verify]\nissuer = \"{ISSUER}\"\n",
        key.public_pem()
    );
    let config = Config::from_settings(settings_from_toml(&toml).unwrap()).unwrap();
    let store = Arc::new(KeyStore::new(
        4,
        Duration::from_secs(10),
        Duration::from_millis(100),
    ));
    store.install_pem(VerifyingKey::from_pem(&key.public_pem()).unwrap());
    let options = GateOptions {
        cache_tokens: 1000,
        ..config.gate.clone()
    };
    let gate = Gate::new(
        Verifier::new(store, config.policy.clone()),
        options,
        Arc::new(Metrics::default()),
    );
    let mut hot = claims("user_hot");
    hot["fea"] = serde_json::json!("o:billing");
    hot["o"] = serde_json::json!({"id": "org_1", "slg": "acme", "rol": "admin", "per": "manage", "fpm": "1"});
    let token = key.sign(&hot);
    let authorization = format!("Bearer {token}");
    let cookie = String::from("theme=dark; other=1");
    let headers = [
        ("Host", "jwtgate".as_bytes()),
        ("Authorization", authorization.as_bytes()),
        ("Cookie", cookie.as_bytes()),
        ("X-Original-URI", b"/dashboard".as_slice()),
    ];
    let mut out = String::with_capacity(512);
    // The first request verifies and fills the cache (allocations allowed).
    let first = gate.decide(&Call::auth("/auth"), headers.iter().copied(), now_ms());
    assert_eq!(first.status(), 200);
    drop(first);
    // With or without location rules: a rule that holds costs no allocation.
    let calls = [
        Call::auth("/auth"),
        Call::auth("/auth?role=org:admin&permission=org:billing:manage&org=required"),
        Call::auth("/auth?optional=1"),
    ];
    for i in 0..1200 {
        out.clear();
        let now = now_ms();
        let call = &calls[i % calls.len()];
        let before = allocations();
        let decision = gate.decide(call, headers.iter().copied(), now);
        let status = decision.status();
        decision.render_headers(&mut out);
        drop(decision);
        let allocated = allocations() - before;
        assert_eq!(status, 200);
        assert_eq!(
            allocated, 0,
            "a cache hit for {call:?} allocated {allocated} times"
        );
    }
    assert!(out.starts_with("X-User-Id: user_hot\r\n"), "{out}");
}
