//! The hot path allocates nothing, under a counting global allocator: a
//! cache hit through `Gate::decide` (the whole `/auth` decision: token
//! lookup, cache, location rules, header block, metrics), and a rule on its
//! own: parsing the query, evaluating it against a token's facts (kept with
//! the cached verification), and writing the 403 headers into the response
//! buffer. (The count is per thread, so the tests may run in parallel.)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use jwtgate::config::{settings_from_toml, Config};
use jwtgate::gate::metrics::Metrics;
use jwtgate::gate::Call;
use jwtgate::keys::jwk::VerifyingKey;
use jwtgate::keys::store::KeyStore;
use jwtgate::rules::{evaluate, OwnedFacts, RuleSet, Verdict};
use jwtgate::verify::{now_ms, Verifier};
use jwtgate::{Gate, GateOptions};
use serde_json::json;

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
    hot["fea"] = json!("o:billing");
    hot["o"] = json!({"id": "org_1", "slg": "acme", "rol": "admin", "per": "manage", "fpm": "1"});
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

#[test]
fn parsing_and_evaluating_rules_allocates_nothing() {
    let v1 = OwnedFacts::from_payload(
        json!({"sub": "u", "org_id": "org_1", "org_role": "org:admin",
               "org_permissions": ["org:billing:manage"], "fea": "o:teams", "pla": "u:pro",
               "fva": [3, 30]})
        .to_string()
        .as_bytes(),
    );
    let v2 = OwnedFacts::from_payload(
        json!({"sub": "u", "v": 2, "fea": "o:dashboard,o:teams",
               "o": {"id": "org_1", "rol": "admin", "per": "manage,read", "fpm": "3,2"},
               "fva": [3, 30]})
        .to_string()
        .as_bytes(),
    );
    let queries = [
        "",
        "optional=1",
        "role=org:admin",
        "role=org%3Amember",
        "permission=org:billing:manage&org=required",
        "permission=org:teams:read&feature=o:teams&plan=pro",
        "reverify=strict",
        "reverify=first_factor:10&role=admin",
        "reverify=multi_factor:60",
        "feature=user:nothing",
        "role=", // an operator error is no allocation either
    ];
    let mut out = String::with_capacity(1024);
    let before = allocations();
    let mut outcomes = [0usize; 3];
    for _ in 0..100 {
        for query in queries {
            for facts in [&v1.facts(), &v2.facts()] {
                out.clear();
                match RuleSet::parse(black_box(query)) {
                    Ok(rules) => match rules.evaluate(facts) {
                        Verdict::Allow => outcomes[0] += 1,
                        Verdict::Forbidden(forbidden) => {
                            forbidden.write_headers(&mut out);
                            outcomes[1] += 1;
                        }
                    },
                    Err(_) => outcomes[2] += 1,
                }
                black_box(&out);
                // The one-pass path for a valid token.
                if let Ok(Verdict::Forbidden(forbidden)) = evaluate(black_box(query), facts) {
                    forbidden.write_headers(&mut out);
                }
                black_box(&out);
            }
        }
    }
    assert_eq!(allocations() - before, 0, "rules allocated");
    assert!(outcomes.iter().all(|n| *n > 0), "{outcomes:?}");
}
