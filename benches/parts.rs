//! Micro-benchmarks of the `/auth` path, part by part:
//!
//! ```sh
//! cargo bench --bench parts              # all of them
//! cargo bench --bench parts -- authorize # one group
//! cargo bench --bench parts -- issuers   # several issuers: routing, mapped headers
//! ```
//!
//! One Clerk-shaped RS256 session token (v2 org claims, 2048-bit key) goes
//! through what `Gate::authorize` does: `decode` (split, base64url,
//! header and claims JSON), the RS256 signature check, the claim checks,
//! the identity headers, and the whole decision on a cache hit and on a
//! miss. `bench/run.sh` measures the same path over
//! HTTP; these numbers say where its time goes.
//!
//! `decide` is the whole `/auth` decision of a signed-in browser (a cache
//! hit on its `__session` cookie, headers as nginx sends them) with browser
//! sign-in off and on: what Clerk's handshake decision adds per request.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jwtgate::browser::{ExchangeSettings, NonceExchanger};
use jwtgate::config::{Config, Settings};
use jwtgate::gate::metrics::Metrics;
use jwtgate::gate::{Browser, Call, Decision, Gate, GateOptions, Source};
use jwtgate::keys::jwk::VerifyingKey;
use jwtgate::token::decode;
use jwtgate::token::identity::Identity;
use jwtgate::verify::Verifier;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde_json::json;

const ISSUER: &str = "https://clerk.bench.jwtgate.invalid";
const AZP: &str = "https://app.bench.jwtgate.invalid";

/// What every benchmark shares: a token, its key, and a daemon-like gate.
struct Fixture {
    token: String,
    key: VerifyingKey,
    /// Another key: installing it and then `key` again changes the key set.
    other_key: VerifyingKey,
    /// `key` as PEM text.
    pem: String,
    gate: Gate,
    now_ms: i64,
}

fn fixture() -> Fixture {
    fixture_with(false)
}

/// The fixture; with `browser`, browser sign-in on (a publishable key for
/// the issuer's host, a secret key, a Backend API nobody is asked).
fn fixture_with(browser: bool) -> Fixture {
    let private = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let pem = String::from_utf8(private.public_key_to_pem().unwrap()).unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let now = now_ms / 1000;
    // The shape of the tokens bench/run.sh mints (examples/mint_tokens.rs).
    let claims = json!({
        "sub": "user_00000001", "sid": "sess_00000001", "iss": ISSUER, "azp": AZP,
        "iat": now, "nbf": now - 10, "exp": now + 3600, "v": 2, "fea": "o:dashboard",
        "o": {"id": "org_bench", "slg": "bench", "rol": "admin", "per": "read,manage", "fpm": "3"},
    });
    let token = jwtgate::demo::mint_rs256(&private, "bench", &claims).unwrap();

    // The daemon's configuration path, with the PEM key (as in bench/run.sh).
    let mut settings = Settings::default();
    settings.keys.jwt_key = Some(pem.clone());
    settings.verify.issuer = Some(ISSUER.into());
    settings.verify.authorized_parties = vec![AZP.into()];
    if browser {
        let host = ISSUER.trim_start_matches("https://");
        settings.keys.publishable_key = Some(format!(
            "pk_live_{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("{host}$"))
        ));
        settings.keys.secret_key = Some("sk_live_bench".into());
        settings.keys.api_url = Some("http://127.0.0.1:9".into());
    }
    let config = Config::from_settings(settings).unwrap();
    let key = VerifyingKey::from_pem(&pem).unwrap();
    let store = config.key_store();
    store.install_pem(key.clone());
    // Built as the daemon builds it, with a cache of 100,000 tokens.
    let verifier = Verifier::new(Arc::new(store), config.policy.clone());
    let options = GateOptions {
        cache_tokens: 100_000,
        ..config.gate.clone()
    };
    let mut gate = Gate::new(verifier, options, Arc::new(Metrics::default()));
    if let Some(b) = &config.browser {
        let exchanger = NonceExchanger::start(ExchangeSettings {
            api_url: b.instance.api_url().into(),
            secret_key: b.secret_key.clone(),
            timeout: b.fetch_timeout,
            threads: 1,
            queue: 1,
        })
        .unwrap();
        gate = gate.with_browser(Browser {
            instance: b.instance.clone(),
            exchanger,
        });
    }
    gate.authorize(&token, now_ms)
        .expect("the fixture token verifies");
    let other = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let other_key =
        VerifyingKey::from_pem(&String::from_utf8(other.public_key_to_pem().unwrap()).unwrap())
            .unwrap();
    Fixture {
        token,
        key,
        other_key,
        pem,
        gate,
        now_ms,
    }
}

fn parts(c: &mut Criterion) {
    let f = fixture();
    let decoded = decode(&f.token).unwrap();
    let jws = &decoded.jws;

    c.bench_function("decode", |b| {
        b.iter(|| decode(black_box(&f.token)).unwrap())
    });

    c.bench_function("verify_signature/RS256-2048", |b| {
        b.iter(|| {
            assert!(f.key.verify_signature(
                black_box(jws.header.alg),
                black_box(jws.signing_input),
                black_box(&jws.signature),
            ))
        })
    });

    c.bench_function("validate", |b| {
        b.iter(|| {
            f.gate
                .verifier()
                .policy()
                .validation
                .validate(black_box(&decoded.claims), black_box(f.now_ms))
                .unwrap()
        })
    });

    let identity = Identity::from_claims(&decoded.claims).unwrap();
    let mut out = String::with_capacity(512);
    c.bench_function("render_headers", |b| {
        b.iter(|| {
            out.clear();
            black_box(&identity).render_headers(&mut out).unwrap();
        })
    });
}

fn authorize(c: &mut Criterion) {
    let f = fixture();
    let mut out = String::with_capacity(512);
    let mut group = c.benchmark_group("authorize");
    group.bench_function("hit", |b| {
        b.iter(|| {
            out.clear();
            let (grant, _) = f.gate.authorize(black_box(&f.token), f.now_ms).unwrap();
            Decision::allow(grant, Source::Cache).render_headers(&mut out);
        })
    });
    // A miss: installing another key and then the key again changes the
    // key set twice, which bumps the generation and makes the cached entry
    // stale (re-installing the same key alone would not), so the timed call
    // does the whole verification (and drops the stale entry and inserts
    // the new one).
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("miss", |b| {
        b.iter_batched(
            || {
                let keys = f.gate.verifier().keys();
                keys.install_pem(f.other_key.clone());
                keys.install_pem(f.key.clone());
            },
            |()| {
                out.clear();
                let (grant, _) = f.gate.authorize(black_box(&f.token), f.now_ms).unwrap();
                Decision::allow(grant, Source::Cache).render_headers(&mut out);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for browser in [false, true] {
        let f = fixture_with(browser);
        let cookie = format!(
            "theme=dark; __session={}; __client_uat={}",
            f.token,
            f.now_ms / 1000 - 60
        );
        let headers = [
            ("Host", "jwtgate"),
            ("Cookie", cookie.as_str()),
            ("X-Original-URI", "/dashboard?tab=1"),
            ("X-Original-Method", "GET"),
            ("X-Forwarded-Host", "app.bench.jwtgate.invalid"),
            ("X-Forwarded-Proto", "https"),
            ("Accept", "text/html,application/xhtml+xml"),
            ("Sec-Fetch-Dest", "document"),
            ("Referer", "https://app.bench.jwtgate.invalid/"),
        ];
        let pairs = || headers.iter().map(|(n, v)| (*n, v.as_bytes()));
        let call = Call::auth("/auth");
        assert_eq!(f.gate.decide(&call, pairs(), f.now_ms).status(), 200);
        let mut out = String::with_capacity(512);
        let name = if browser {
            "cookie hit, browser on"
        } else {
            "cookie hit, browser off"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let d = f.gate.decide(&call, black_box(pairs()), f.now_ms);
                d.render_headers(&mut out);
            })
        });
    }
    group.finish();
}

/// A token of an issuer with a JWKS (`[[issuers]]`), decided alone, next
/// to two other issuers, and next to them with two claims mapped to
/// headers: what routing and the mapping cost on a hit and a miss
/// (compare `authorize/hit` and `authorize/miss`, the PEM key's path).
fn issuers(c: &mut Criterion) {
    let f = fixture();
    let private = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let jwk = |kid: &str| {
        let rsa = private.rsa().unwrap();
        let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        VerifyingKey::from_jwk(&json!({
            "kty": "RSA", "kid": kid, "n": b64(rsa.n().to_vec()), "e": b64(rsa.e().to_vec()),
        }))
        .unwrap()
    };
    // Made once: a key's first verify also sets up OpenSSL's Montgomery
    // context, which a real key set pays once, not per token.
    let (p1, p2, o1) = (jwk("p1"), jwk("p2"), jwk("o1"));
    let now = f.now_ms / 1000;
    let partner = "https://partner.bench.jwtgate.invalid";
    let claims = json!({
        "sub": "user_00000001", "iss": partner, "aud": "api", "iat": now, "exp": now + 3600,
        "email": "user@partner.example", "groups": ["admins", "dev-ops", "readers"],
    });
    let token = jwtgate::demo::mint_rs256(&private, "p1", &claims).unwrap();
    let top = format!(
        "[keys]\njwt_key = \"\"\"{}\"\"\"\n[verify]\nissuer = \"{ISSUER}\"\n\
         [[issuers]]\nname = \"other\"\nissuer = \"https://other.bench.jwtgate.invalid\"\n\
         jwks_url = \"https://other.bench.jwtgate.invalid/keys\"\naudience = \"api\"\n",
        f.pem
    );
    let entry = format!(
        "[[issuers]]\nname = \"partner\"\nissuer = \"{partner}\"\n\
         jwks_url = \"https://partner.bench.jwtgate.invalid/keys\"\naudience = \"api\"\n"
    );
    let headers = "headers = { \"X-Email\" = \"email\", \"X-Groups\" = \"groups\" }\n";
    let gate = |toml: &str| {
        let settings = jwtgate::config::settings_from_toml(toml).unwrap();
        let config = Config::from_settings(settings).unwrap();
        let issuers = config
            .issuers
            .iter()
            .map(|i| {
                let store = config.key_store();
                match i.name.as_str() {
                    "partner" => store.install_jwks(vec![p1.clone()]),
                    "other" => store.install_jwks(vec![o1.clone()]),
                    _ => store.install_pem(f.key.clone()).held,
                };
                jwtgate::verify::Issuer {
                    name: i.name.clone(),
                    keys: Arc::new(store),
                    policy: i.policy.clone(),
                    headers: i.headers.clone(),
                    clerk_facts: i.clerk_facts,
                }
            })
            .collect();
        let options = GateOptions {
            cache_tokens: 100_000,
            ..config.gate.clone()
        };
        let verifier = Verifier::with_issuers(issuers).unwrap();
        Gate::new(verifier, options, Arc::new(Metrics::default()))
    };
    let cases = [
        ("one", gate(&entry)),
        ("three", gate(&format!("{top}{entry}"))),
        ("three-headers", gate(&format!("{top}{entry}{headers}"))),
    ];
    let mut out = String::with_capacity(512);
    let mut group = c.benchmark_group("issuers");
    for (name, gate) in &cases {
        let (grant, _) = gate.authorize(&token, f.now_ms).unwrap();
        Decision::allow(grant, Source::Cache).render_headers(&mut out);
        assert_eq!(
            out.contains("X-Groups: admins,dev-ops,readers"),
            *name == "three-headers"
        );
        group.bench_function(format!("{name}/hit"), |b| {
            b.iter(|| {
                out.clear();
                let (grant, _) = gate.authorize(black_box(&token), f.now_ms).unwrap();
                Decision::allow(grant, Source::Cache).render_headers(&mut out);
            })
        });
        let keys = gate
            .verifier()
            .issuers()
            .iter()
            .find(|i| i.name == "partner")
            .map(|i| i.keys.clone())
            .unwrap();
        group.bench_function(format!("{name}/miss"), |b| {
            b.iter_batched(
                || {
                    keys.install_jwks(vec![p2.clone()]);
                    keys.install_jwks(vec![p1.clone()]);
                },
                |()| {
                    out.clear();
                    let (grant, _) = gate.authorize(black_box(&token), f.now_ms).unwrap();
                    Decision::allow(grant, Source::Cache).render_headers(&mut out);
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, parts, authorize, decide, issuers);
criterion_main!(benches);
