//! Differential test of the browser handshake against Clerk's SDK (issue 8,
//! test 1): `authenticateRequest` of `@clerk/backend` 3.25.0 (pinned in
//! `tests/clerk`, run by `tests/clerk/handshake.mjs`) and jwtgate's
//! `/forward` endpoint decide the same requests.
//!
//! The request shapes are those of `shared/docs/clerk-handshake.md` section
//! 7, items 1-21 and 24 with their variants (items 22-23, satellites and
//! organization sync, are out of jwtgate's scope): production and
//! development instances, suffixed cookies, every reason reachable without
//! satellites or org sync, the four return-leg transports (a nonce is
//! exchanged at the fake Backend API of `common/fake_clerk.rs`, which both
//! sides call). Each shape carries the outcome the spec records for it.
//!
//! - `oracle_reproduces_the_spec`: the SDK, through the oracle, gives every
//!   shape the status and reason the spec says, and the exact strings the
//!   spec quotes (shape 2's Location, the counter cookie, ...). This keeps
//!   the shapes and the oracle honest.
//! - `jwtgate_decides_as_clerk`: the same requests to jwtgate's `/forward`
//!   (X-Forwarded-* describing the original request); same HTTP status
//!   (307 when there is a Location), the
//!   same Location byte for byte, the same Set-Cookie set, Cache-Control
//!   no-store on redirects; except the deliberate deviations of
//!   [`Deviation`], each assigned from how a shape is made, never from the
//!   outcome.
//!
//! The clock: both sides run at the real time; tokens are minted around
//! `t0` (test start) with margins of 30 s or more, and the oracle freezes
//! `Date.now` at `t0` for each call.
//!
//! Needs Node >= 20 and `npm ci --prefix tests/clerk` (scripts/test does it).
//! `HANDSHAKE_DIFF_SHOW=1` prints every shape's oracle answer.

mod common;
#[path = "common/fake_clerk.rs"]
mod fake_clerk;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{now, repo_path, Daemon};
use fake_clerk::{cookie_suffix, FakeClerk, SECRET_KEY, SESSION_CAT, TEMPLATE_CAT};
use serde_json::{json, Value};

const DOC_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
const EPOCH: &str = "Expires=Thu, 01 Jan 1970 00:00:00 GMT";

// ---------------------------------------------------------------------------
// Setups: the instances
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Setup {
    /// `pk_live_` for clerk.example.com, the app at https://app.example.com.
    Prod,
    /// The same with `proxyUrl` = https://app.example.com/__clerk.
    ProdProxy,
    /// The same with a relative `proxyUrl` = /__clerk (oracle only).
    ProdRelativeProxy,
    /// `pk_test_` for happy-hippo-1.clerk.accounts.dev, the app at
    /// http://localhost:3000.
    Dev,
}

const SETUPS: [Setup; 3] = [Setup::Prod, Setup::ProdProxy, Setup::Dev];

impl Setup {
    fn fapi(self) -> &'static str {
        match self {
            Setup::Prod | Setup::ProdProxy | Setup::ProdRelativeProxy => "clerk.example.com",
            Setup::Dev => "happy-hippo-1.clerk.accounts.dev",
        }
    }

    fn publishable_key(self) -> String {
        fake_clerk::publishable_key(self != Setup::Dev, self.fapi())
    }

    fn app(self) -> &'static str {
        match self {
            Setup::Prod | Setup::ProdProxy | Setup::ProdRelativeProxy => "https://app.example.com",
            Setup::Dev => "http://localhost:3000",
        }
    }

    fn sign_in_url(self) -> &'static str {
        match self {
            Setup::Prod | Setup::ProdProxy | Setup::ProdRelativeProxy => {
                "https://accounts.example.com/sign-in"
            }
            Setup::Dev => "https://happy-hippo-1.accounts.dev/sign-in",
        }
    }

    fn proxy_url(self) -> Option<&'static str> {
        (self == Setup::ProdProxy).then_some("https://app.example.com/__clerk")
    }

    fn suffix(self) -> String {
        cookie_suffix(&self.publishable_key())
    }

    /// The options authenticateRequest gets.
    fn options(self) -> Value {
        let mut o = json!({
            "authorizedParties": [self.app()],
            "signInUrl": self.sign_in_url(),
        });
        if let Some(p) = self.proxy_url() {
            o["proxyUrl"] = json!(p);
        }
        if self == Setup::ProdRelativeProxy {
            o["proxyUrl"] = json!("/__clerk");
        }
        o
    }

    /// jwtgate's configuration for this instance (TOML without `listen`).
    fn jwtgate_config(self, fake: &FakeClerk) -> String {
        let mut c = format!(
            "[keys]\npublishable_key = \"{}\"\nsecret_key = \"{SECRET_KEY}\"\n\
             jwt_key = '''\n{}'''\napi_url = \"{}\"\nfetch_timeout_ms = 2000\n\
             [verify]\nauthorized_parties = [\"{}\"]\n\
             [browser]\nsign_in_url = \"{}\"\nhandshake = true\n",
            self.publishable_key(),
            fake.key().public_pem(),
            fake.api_url(),
            self.app(),
            self.sign_in_url(),
        );
        if let Some(p) = self.proxy_url() {
            c.push_str(&format!("proxy_url = \"{p}\"\n"));
        }
        c
    }
}

// ---------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Shape {
    id: String,
    setup: Setup,
    method: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    /// What the spec records: (status, reason).
    expect: (&'static str, String),
    /// Compared with the oracle only (jwtgate's answer is its own choice).
    oracle_only: bool,
    /// Other answers jwtgate may give, each a declared deviation.
    alts: Vec<Alt>,
}

/// An answer jwtgate may give instead of Clerk's, declared on the shape.
#[derive(Clone, Copy, Debug)]
enum Alt {
    /// What Clerk answers for shape `.1` (the same request minus what the
    /// deviation ignores), plus the clearing of handshake cookies.
    AsShape(Deviation, &'static str),
    /// Anything that lets nobody in (no 200, no 500, no session cookie).
    NobodyIn(Deviation),
}

impl Shape {
    fn new(id: &str, setup: Setup, path: &str) -> Shape {
        Shape {
            id: id.to_string(),
            setup,
            method: "GET",
            url: format!("{}{path}", setup.app()),
            headers: Vec::new(),
            expect: ("", String::new()),
            oracle_only: false,
            alts: Vec::new(),
        }
    }

    fn h(mut self, name: &str, value: &str) -> Shape {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn cookie(self, value: &str) -> Shape {
        self.h("cookie", value)
    }

    /// A top-level navigation, as Chromium sends it.
    fn doc(self) -> Shape {
        self.h("sec-fetch-dest", "document").h("accept", DOC_ACCEPT)
    }

    /// An API call (fetch/XHR from a page's script).
    fn api(self) -> Shape {
        self.h("sec-fetch-dest", "empty")
            .h("accept", "application/json")
    }

    fn method(mut self, m: &'static str) -> Shape {
        self.method = m;
        self
    }

    fn expect(mut self, status: &'static str, reason: &str) -> Shape {
        self.expect = (status, reason.to_string());
        self
    }

    fn oracle_only(mut self) -> Shape {
        self.oracle_only = true;
        self
    }

    fn or(mut self, alt: Alt) -> Shape {
        self.alts.push(alt);
        self
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn cookie_value(&self, name: &str) -> Option<String> {
        self.header("cookie")?
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }

    fn query_has(&self, name: &str) -> bool {
        self.url
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|p| p.split('=').next() == Some(name)))
    }
}

/// Tokens and payloads of one run, all around `t0`.
struct Mint<'a> {
    fake: &'a FakeClerk,
    t0: i64,
}

impl Mint<'_> {
    fn token_with(&self, setup: Setup, header: Value, edit: impl FnOnce(&mut Value)) -> String {
        let t = self.t0;
        let mut claims = json!({
            "azp": setup.app(), "exp": t + 55, "iat": t - 5, "nbf": t - 15,
            "iss": format!("https://{}", setup.fapi()), "sid": "sess_1", "sub": "user_1", "v": 2,
        });
        edit(&mut claims);
        self.fake.key().sign_with(&header, &claims)
    }

    fn header() -> Value {
        json!({"alg": "RS256", "kid": fake_clerk::KID, "typ": "JWT", "cat": SESSION_CAT})
    }

    fn token(&self, setup: Setup, edit: impl FnOnce(&mut Value)) -> String {
        self.token_with(setup, Mint::header(), edit)
    }

    fn valid(&self, setup: Setup) -> String {
        self.token(setup, |_| {})
    }

    fn expired(&self, setup: Setup) -> String {
        let t = self.t0;
        self.token(setup, |c| {
            c["iat"] = json!(t - 120);
            c["nbf"] = json!(t - 130);
            c["exp"] = json!(t - 60);
        })
    }

    /// A `__client_uat` older than every token's iat.
    fn uat(&self) -> i64 {
        self.t0 - 7200
    }

    /// The directives FAPI sends for a signed-in user (session last).
    fn payload(&self, setup: Setup, session: &str) -> Vec<String> {
        let domain = if setup == Setup::Dev {
            "localhost".to_string()
        } else {
            "example.com".to_string()
        };
        vec![
            format!("__clerk_handshake=; Path=/; Domain={domain}; {EPOCH}"),
            format!(
                "__client_uat={}; Path=/; Domain={domain}; Max-Age=315360000; Secure; SameSite=Lax",
                self.t0 - 1
            ),
            format!("__session={session}; Path=/; Secure; SameSite=Lax"),
        ]
    }
}

/// The (unverified) claims of a JWT.
fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// Every shape, with the outcome the spec records for it.
fn shapes(m: &Mint) -> Vec<Shape> {
    use Setup::*;
    let (p, d) = (Prod, Dev);
    let uat = m.uat();
    let v = m.valid(p);
    let e = m.expired(p);
    let sfx = p.suffix();
    let forger = common::Key::rsa(fake_clerk::KID, 2048);
    let forged_session = forger.sign_with(&Mint::header(), &claims_of(&v));
    let hs = "handshake";
    let out = "signed-out";
    let ok = "signed-in";
    let exp_doc = "session-token-expired-refresh-non-eligible-no-refresh-cookie";
    let exp_post = "session-token-expired-refresh-non-eligible-non-get";
    let mut s = vec![
        // 1. No cookies; __client_uat=0 counts as absent.
        Shape::new("1a", p, "/dash?x=1").doc().expect(out, "session-token-and-uat-missing"),
        Shape::new("1b", p, "/dash?x=1").doc().cookie("__client_uat=0").expect(out, "session-token-and-uat-missing"),
        // 2. Signed in on the AP: uat only.
        Shape::new("2", p, "/dash?x=1").doc().cookie(&format!("__client_uat={uat}")).expect(hs, "client-uat-but-no-session-token"),
        // 3. Eligibility.
        Shape::new("3a", p, "/dash").h("accept", "application/json").cookie(&format!("__client_uat={uat}")).expect(out, "client-uat-but-no-session-token"),
        Shape::new("3b", p, "/dash").h("accept", DOC_ACCEPT).cookie(&format!("__client_uat={uat}")).expect(hs, "client-uat-but-no-session-token"),
        Shape::new("3c", p, "/dash").h("sec-fetch-dest", "iframe").cookie(&format!("__client_uat={uat}")).expect(hs, "client-uat-but-no-session-token"),
        Shape::new("3d", p, "/dash").h("sec-fetch-dest", "empty").h("accept", "text/html").cookie(&format!("__client_uat={uat}")).expect(out, "client-uat-but-no-session-token"),
        Shape::new("3e", p, "/dash").doc().method("HEAD").cookie(&format!("__client_uat={uat}")).expect(out, "client-uat-but-no-session-token"),
        Shape::new("3f", p, "/dash").doc().method("POST").cookie(&format!("__client_uat={uat}")).expect(out, "client-uat-but-no-session-token"),
        Shape::new("3g", p, "/dash").h("accept", "*/*").cookie(&format!("__client_uat={uat}")).expect(out, "client-uat-but-no-session-token"),
        // 4. Signed in.
        Shape::new("4", p, "/dash").doc().cookie(&format!("__session={v}; __client_uat={uat}")).expect(ok, ""),
        Shape::new("4b", p, "/dash").api().cookie(&format!("theme=dark; __client_uat={uat}; __session={v}")).expect(ok, ""),
        // 5. A session without a uat: a handshake that carries the (valid) token.
        Shape::new("5a", p, "/dash").doc().cookie(&format!("__session={v}")).expect(hs, "session-token-but-no-client-uat"),
        Shape::new("5b", p, "/dash").doc().cookie(&format!("__session={v}; __client_uat=0")).expect(hs, "session-token-but-no-client-uat"),
        Shape::new("5c", p, "/dash").doc().cookie(&format!("__session={v}; __client_uat=abc")).expect(hs, "session-token-but-no-client-uat"),
        Shape::new("5d", p, "/dash").doc().cookie(&format!("__session={v}; __client_uat=12x")).expect(ok, ""),
        // 6-7. Expired token.
        Shape::new("6", p, "/dash?x=1").doc().cookie(&format!("__session={e}; __client_uat={uat}")).expect(hs, exp_doc),
        Shape::new("7a", p, "/dash").doc().method("POST").cookie(&format!("__session={e}; __client_uat={uat}")).expect(out, exp_post),
        Shape::new("7b", p, "/dash").doc().method("HEAD").cookie(&format!("__session={e}; __client_uat={uat}")).expect(out, exp_post),
        Shape::new("7c", p, "/api/x").api().cookie(&format!("__session={e}; __client_uat={uat}")).expect(out, exp_doc),
        // 8. The loop counter.
        Shape::new("8a", p, "/dash").doc().cookie(&format!("__session={e}; __client_uat={uat}; __clerk_redirect_count=2")).expect(hs, exp_doc),
        Shape::new("8b", p, "/dash").doc().cookie(&format!("__session={e}; __client_uat={uat}; __clerk_redirect_count=3")).expect(out, exp_doc),
        Shape::new("8c", p, "/dash").doc().cookie(&format!("__session={e}; __client_uat={uat}; __clerk_redirect_count=5")).expect(hs, exp_doc),
        Shape::new("8d", p, "/dash").doc().cookie(&format!("__session={e}; __client_uat={uat}; __clerk_redirect_count=abc")).expect(hs, exp_doc),
        // 9. Time rules.
        Shape::new("9a", p, "/dash").doc().cookie(&format!("__session={v}; __client_uat={}", m.t0)).expect(hs, "session-token-iat-before-client-uat"),
        Shape::new("9b", p, "/dash").doc().cookie(&format!("__session={}; __client_uat={uat}", m.token(p, |c| c["nbf"] = json!(m.t0 + 60)))).expect(hs, "session-token-nbf"),
        Shape::new("9c", p, "/dash").doc().cookie(&format!("__session={}; __client_uat={uat}", m.token(p, |c| c["iat"] = json!(m.t0 + 30)))).expect(hs, "session-token-iat-in-the-future"),
        // 10. Bad tokens: signed out, no handshake.
        Shape::new("10a", p, "/dash").doc().cookie(&format!("__session={}; __client_uat={uat}", forged_session)).expect(out, "token-invalid-signature"),
        Shape::new("10b", p, "/dash").doc().cookie(&format!("__session=notajwt; __client_uat={uat}")).expect(out, "token-invalid"),
        Shape::new("10c", p, "/dash").doc().cookie(&format!("__session={}; __client_uat={uat}", m.token_with(p, json!({"alg": "RS256", "kid": fake_clerk::KID, "typ": "JWT", "cat": TEMPLATE_CAT}), |_| {}))).expect(out, "token-type-mismatch"),
        Shape::new("10d", p, "/dash").doc().cookie(&format!("__session={}; __client_uat={uat}", m.token(p, |c| c["azp"] = json!("https://evil.example")))).expect(out, "token-invalid-authorized-parties"),
        // 11. A foreign Referer on a navigation with a valid token.
        Shape::new("11a", p, "/dash").doc().h("referer", "https://google.com/").cookie(&format!("__session={v}; __client_uat={uat}")).expect(hs, "primary-domain-cross-origin-sync"),
        Shape::new("11b", p, "/dash").doc().h("referer", "https://accounts.example.com/").cookie(&format!("__session={v}; __client_uat={uat}")).expect(ok, ""),
        Shape::new("11c", p, "/dash").doc().h("referer", "https://clerk.example.com/").cookie(&format!("__session={v}; __client_uat={uat}")).expect(ok, ""),
        Shape::new("11d", p, "/dash").doc().h("referer", "https://app.example.com/other").cookie(&format!("__session={v}; __client_uat={uat}")).expect(ok, ""),
        Shape::new("11e", p, "/dash").doc().h("referer", "https://google.com/").cookie(&format!("__session={v}; __client_uat={uat}; __clerk_redirect_count=1")).expect(ok, ""),
        // 12. Suffixed cookies.
        Shape::new("12a", p, "/dash").doc().cookie(&format!("__client_uat_{sfx}={uat}; __client_uat={uat}")).expect(hs, "client-uat-but-no-session-token"),
        Shape::new("12b", p, "/dash").doc().cookie(&format!("__client_uat_{sfx}={uat}; __session_{sfx}={v}; __client_uat={uat}; __session={v}")).expect(ok, ""),
        Shape::new("12c", p, "/dash").doc().cookie(&format!("__session={}; __client_uat={uat}", m.token(p, |c| c["iss"] = json!("https://clerk.other.com")))).expect(out, "session-token-and-uat-missing"),
        Shape::new("12d", p, "/dash").doc().cookie(&format!("__client_uat_{sfx}={uat}; __session_{sfx}={e}; __client_uat=0")).expect(hs, exp_doc),
        // 13. URL shaping.
        Shape::new("13a", p, "/dash?x=1").doc().h("x-forwarded-host", "a.example.com, b").h("x-forwarded-proto", "https,http").cookie(&format!("__client_uat={uat}")).expect(hs, "client-uat-but-no-session-token"),
        Shape { url: "http://app:8443/dash?x=1".into(), ..Shape::new("13b", p, "") }.doc().h("host", "app:8443").cookie(&format!("__client_uat={uat}")).expect(hs, "client-uat-but-no-session-token"),
        Shape::new("13c", p, "/a/../dash?a=%7e&b&c=d+e&e=f%20g&__clerk_db_jwt=x&__dev_session=y&z=%C3%A9").doc().cookie(&format!("__client_uat={uat}")).expect(hs, "client-uat-but-no-session-token"),
        Shape::new("13d", p, "/dash?").doc().cookie(&format!("__client_uat={uat}")).expect(hs, "client-uat-but-no-session-token"),
        // 14. Authorization header.
        Shape::new("14a", p, "/dash").doc().h("authorization", &format!("Bearer {e}")).expect(hs, exp_doc),
        Shape::new("14b", p, "/api/x").api().h("authorization", &format!("Bearer {e}")).expect(out, exp_doc),
        Shape::new("14c", p, "/dash").doc().h("authorization", "Basic dXNlcjpwYXNz").cookie(&format!("__session={v}; __client_uat={uat}")).expect(ok, ""),
        Shape::new("14d", p, "/dash").doc().h("authorization", &format!("Bearer {v}")).cookie(&format!("__clerk_handshake=abc; __client_uat={uat}")).expect(ok, ""),
    ];

    // 15-18. The production return leg.
    let v2 = m.token(p, |c| c["sid"] = json!("sess_2"));
    let payload = m.payload(p, &v2);
    let hs_jwt = m.fake.handshake_token(&payload);
    let forged = forger.sign_with(
        &json!({"alg": "RS256", "kid": fake_clerk::KID, "typ": "JWT"}),
        &json!({"handshake": payload}),
    );
    let template = m.fake.key().sign_with(
        &json!({"alg": "RS256", "kid": fake_clerk::KID, "typ": "JWT", "cat": TEMPLATE_CAT}),
        &json!({"handshake": payload}),
    );
    let expired_inner = m.fake.handshake_token(&m.payload(p, &e));
    let signed_out = m.fake.handshake_token(&[
        "__client_uat=0; Path=/; Domain=example.com; Max-Age=315360000; Secure; SameSite=Lax"
            .to_string(),
        format!("__session=; Path=/; {EPOCH}; Secure; SameSite=Lax"),
    ]);
    let mut foreign = payload.clone();
    foreign.insert(1, "evil=1; Path=/".to_string());
    let foreign = m.fake.handshake_token(&foreign);
    for (n, uses) in [("nonce_a", 2), ("nonce_b", 2), ("nonce_c", 2)] {
        m.fake.add_nonce(n, payload.clone(), uses);
    }
    m.fake
        .add_nonce_with("nonce_charset", payload.clone(), 2, true);
    s.extend([
        Shape::new("15a", p, "/dash?x=1")
            .doc()
            .cookie(&format!("__clerk_handshake={hs_jwt}; __client_uat={uat}"))
            .expect(ok, ""),
        Shape::new("15b", p, &format!("/dash?x=1&__clerk_handshake={hs_jwt}"))
            .doc()
            .expect(ok, ""),
        Shape::new("15c", p, "/api/x")
            .api()
            .cookie(&format!("__clerk_handshake={hs_jwt}"))
            .expect(ok, ""),
        Shape::new("15d", p, "/dash")
            .doc()
            .cookie(&format!("__clerk_handshake={foreign}"))
            .expect(ok, ""),
        Shape::new("16a", p, "/dash")
            .doc()
            .cookie(&format!("__clerk_handshake={forged}"))
            .expect(out, "session-token-and-uat-missing"),
        Shape::new("16b", p, "/dash")
            .doc()
            .cookie(&format!("__clerk_handshake={template}; __client_uat={uat}"))
            .expect(hs, "client-uat-but-no-session-token"),
        Shape::new("16c", p, "/dash")
            .doc()
            .cookie(&format!(
                "__clerk_handshake={expired_inner}; __client_uat={uat}"
            ))
            .expect(hs, "client-uat-but-no-session-token"),
        Shape::new("16d", p, "/dash")
            .doc()
            .cookie(&format!("__clerk_handshake=notajwt; __client_uat={uat}"))
            .expect(hs, "client-uat-but-no-session-token"),
        Shape::new("17", p, "/dash")
            .doc()
            .cookie(&format!(
                "__clerk_handshake={signed_out}; __session={v}; __client_uat={uat}"
            ))
            .expect(out, "session-token-missing"),
        Shape::new("18a", p, "/dash?x=1")
            .doc()
            .cookie(&format!(
                "__clerk_handshake_nonce=nonce_a; __client_uat={uat}"
            ))
            .expect(ok, ""),
        Shape::new("18b", p, "/dash?x=1&__clerk_handshake_nonce=nonce_b")
            .doc()
            .expect(ok, ""),
        Shape::new("18c", p, "/dash")
            .doc()
            .cookie(&format!(
                "__clerk_handshake_nonce=nonce_unknown; __session={v}; __client_uat={uat}"
            ))
            .expect(out, "session-token-missing")
            .or(Alt::AsShape(Deviation::StaleNonceMayKeepSession, "4")),
        Shape::new("18d", p, "/dash?x=1")
            .doc()
            .cookie(&format!(
                "__clerk_handshake_nonce=nonce_charset; __client_uat={uat}"
            ))
            .expect(out, "session-token-missing")
            .or(Alt::AsShape(Deviation::CharsetMayBeAccepted, "18a")),
        Shape::new("18e", p, "/api/x")
            .api()
            .cookie(&format!(
                "__clerk_handshake_nonce=nonce_c; __client_uat={uat}"
            ))
            .expect(ok, "")
            .or(Alt::AsShape(Deviation::ExchangeOnlyOnNavigation, "18f")),
        Shape::new("18f", p, "/api/x")
            .api()
            .cookie(&format!("__client_uat={uat}"))
            .expect(out, "client-uat-but-no-session-token"),
    ]);

    // 19-21. Development instances.
    let dv = m.valid(d);
    let duat = m.uat();
    let d_payload = {
        let mut p = m.payload(d, &m.token(d, |c| c["sid"] = json!("sess_3")));
        p.insert(0, "__clerk_db_jwt=dvb_1; Path=/; SameSite=Lax".into());
        p
    };
    let d_hs = m.fake.handshake_token(&d_payload);
    let d_forged = forger.sign_with(
        &json!({"alg": "RS256", "kid": fake_clerk::KID, "typ": "JWT"}),
        &json!({"handshake": d_payload}),
    );
    let old = m.token(d, |c| {
        c["iat"] = json!(m.t0 - 3600);
        c["nbf"] = json!(m.t0 - 3610);
        c["exp"] = json!(m.t0 - 3540);
    });
    let d_old = m.fake.handshake_token(&m.payload(d, &old));
    s.extend([
        Shape::new("19a", d, "/page")
            .doc()
            .expect(hs, "dev-browser-missing"),
        Shape::new("19b", d, "/api/x")
            .api()
            .expect(out, "dev-browser-missing"),
        Shape::new("19c", d, "/page")
            .doc()
            .cookie("__clerk_db_jwt=dvb_1")
            .expect(out, "session-token-and-uat-missing"),
        Shape::new("20a", d, "/page?x=1&__clerk_db_jwt=dvb_q")
            .doc()
            .expect(hs, "dev-browser-sync"),
        Shape::new("20b", d, "/page")
            .doc()
            .cookie(&format!("__session={dv}; __client_uat={duat}"))
            .expect(hs, "dev-browser-missing"),
        Shape::new("20c", d, "/page")
            .doc()
            .cookie(&format!(
                "__clerk_db_jwt=dvb_1; __session={dv}; __client_uat={duat}"
            ))
            .expect(ok, ""),
        Shape::new("20d", d, "/page")
            .doc()
            .cookie(&format!("__clerk_db_jwt=dvb_1; __client_uat={duat}"))
            .expect(hs, "client-uat-but-no-session-token"),
        Shape::new(
            "20e",
            d,
            "/page?__clerk_redirect_url=https%3A%2F%2Fsat.example%2F",
        )
        .doc()
        .cookie(&format!(
            "__clerk_db_jwt=dvb_1; __session={dv}; __client_uat={duat}"
        ))
        .expect(hs, "primary-responds-to-syncing")
        // Satellite sync: out of jwtgate's scope.
        .oracle_only(),
        Shape::new(
            "21a",
            d,
            &format!("/page?x=1&__clerk_handshake={d_hs}&__clerk_db_jwt=dvb_1&__clerk_help=1"),
        )
        .doc()
        .expect(ok, ""),
        Shape::new(
            "21b",
            d,
            &format!("/page?__clerk_handshake={d_forged}&__clerk_db_jwt=dvb_1"),
        )
        .doc()
        .expect("rejected", ""),
        Shape::new(
            "21c",
            d,
            &format!("/page?__clerk_handshake={d_old}&__clerk_db_jwt=dvb_1"),
        )
        .doc()
        .expect(ok, "")
        .or(Alt::NobodyIn(Deviation::DevSkewMayRefuse)),
    ]);

    // 24. The Frontend API through a proxy.
    s.push(
        Shape::new("24", Setup::ProdProxy, "/dash?x=1")
            .doc()
            .cookie(&format!("__client_uat={uat}"))
            .expect(hs, "client-uat-but-no-session-token"),
    );
    s.push(
        Shape::new("24r", Setup::ProdRelativeProxy, "/dash?x=1")
            .doc()
            .cookie(&format!("__client_uat={uat}"))
            .expect(hs, "client-uat-but-no-session-token")
            .oracle_only(),
    );

    // The BAPI refresh path (a __refresh_<sfx> cookie): what Clerk does;
    // whether jwtgate refreshes is its own choice (issue 8, "beyond the SDK").
    m.fake.add_session("user_1", "sess_1");
    s.extend([
        Shape::new("6r", p, "/dash")
            .doc()
            .cookie(&format!(
                "__session={e}; __client_uat={uat}; __refresh_{sfx}=rt_1"
            ))
            .expect(ok, "")
            .oracle_only(),
        Shape::new("6s", p, "/dash")
            .doc()
            .cookie(&format!(
                "__session={}; __client_uat={uat}; __refresh_{sfx}=rt_1",
                m.token(p, |c| {
                    c["sid"] = json!("sess_gone");
                    c["exp"] = json!(m.t0 - 60);
                    c["iat"] = json!(m.t0 - 120);
                })
            ))
            .expect(hs, "session-token-expired-refresh-resource_not_found")
            .oracle_only(),
    ]);
    s
}

// ---------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------

/// Runs tests/clerk/handshake.mjs on `shapes`; one JSON answer per shape.
fn oracle(shapes: &[Shape], fake: &FakeClerk, now_ms: i64) -> Vec<Value> {
    let pem = fake.key().public_pem();
    let input: String = shapes
        .iter()
        .map(|s| {
            let headers: Vec<[&str; 2]> = s
                .headers
                .iter()
                .map(|(n, v)| [n.as_str(), v.as_str()])
                .collect();
            json!({
                "id": s.id, "publishableKey": s.setup.publishable_key(), "secretKey": SECRET_KEY,
                "jwtKey": pem, "apiUrl": fake.api_url(), "options": s.setup.options(),
                "request": {"url": s.url, "method": s.method, "headers": headers},
                "nowMs": now_ms,
            })
            .to_string()
                + "\n"
        })
        .collect();
    let script = repo_path("tests/clerk/handshake.mjs");
    assert!(
        repo_path("tests/clerk/node_modules/@clerk/backend").exists(),
        "run `npm ci --prefix tests/clerk` first (scripts/test does)"
    );
    let mut child = Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()))
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (>= 20) is required for the Clerk oracle");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Clerk oracle took over 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap().expect("writing to the oracle");
    let text = reader.join().unwrap().expect("reading the oracle");
    let errors = err_reader.join().unwrap();
    assert!(status.success(), "oracle failed ({status}):\n{errors}");
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("oracle JSON"));
    let banner = lines.next().expect("oracle banner");
    assert_eq!(
        banner["clerkBackend"], "3.25.0",
        "the pinned @clerk/backend"
    );
    let answers: Vec<Value> = lines.collect();
    assert_eq!(
        answers.len(),
        shapes.len(),
        "one answer per shape:\n{errors}"
    );
    for (s, a) in shapes.iter().zip(&answers) {
        assert_eq!(a["id"], s.id.as_str());
        assert!(
            a["error"].is_null(),
            "shape {}: the oracle could not run it: {}",
            s.id,
            a["error"]
        );
    }
    answers
}

fn set_cookies(a: &Value) -> Vec<String> {
    a["setCookies"]
        .as_array()
        .map(|v| v.iter().map(|c| c.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn show(shapes: &[Shape], answers: &[Value]) {
    if std::env::var_os("HANDSHAKE_DIFF_SHOW").is_some() {
        for (s, a) in shapes.iter().zip(answers) {
            println!("{} {:?} {} {}\n  {a}", s.id, s.setup, s.method, s.url);
        }
    }
}

#[test]
fn oracle_reproduces_the_spec() {
    let fake = FakeClerk::start();
    fake.set(|s| s.issuer_host = "clerk.example.com".into());
    let t0 = now();
    let m = Mint { fake: &fake, t0 };
    let shapes = shapes(&m);
    let answers = oracle(&shapes, &fake, t0 * 1000);
    show(&shapes, &answers);
    let by_id: BTreeMap<&str, &Value> =
        shapes.iter().map(|s| s.id.as_str()).zip(&answers).collect();

    // Every shape's status and reason, as the spec records them.
    let mut wrong = Vec::new();
    for (s, a) in shapes.iter().zip(&answers) {
        let got = if a["rejected"].is_string() {
            ("rejected".to_string(), String::new())
        } else {
            (
                a["status"].as_str().unwrap().to_string(),
                a["reason"].as_str().unwrap_or("").to_string(),
            )
        };
        if (got.0.as_str(), got.1.as_str()) != (s.expect.0, s.expect.1.as_str()) {
            wrong.push(format!(
                "{}: expected {:?}, Clerk says {got:?}: {a}",
                s.id, s.expect
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} shape(s) disagree with the spec:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Exact strings the spec quotes.
    let a = by_id["2"];
    assert_eq!(
        a["location"],
        "https://clerk.example.com/v1/client/handshake?redirect_url=https%3A%2F%2Fapp.example.com%2Fdash%3Fx%3D1\
         &__clerk_api_version=2026-05-12&suffixed_cookies=false&__clerk_hs_reason=client-uat-but-no-session-token&format=nonce",
        "section 3's example"
    );
    assert_eq!(a["httpStatus"], 307);
    assert_eq!(a["cacheControl"], "no-store");
    assert_eq!(
        set_cookies(a),
        ["__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2"]
    );
    for (id, count) in [("8a", "3"), ("8c", "6"), ("8d", "1"), ("11a", "1")] {
        assert_eq!(
            set_cookies(by_id[id]),
            [format!(
                "__clerk_redirect_count={count}; SameSite=Lax; HttpOnly; Max-Age=2"
            )],
            "{id}"
        );
    }
    assert!(set_cookies(by_id["8b"]).is_empty() && by_id["8b"]["location"].is_null());
    let v = m.valid(Setup::Prod);
    assert!(by_id["5a"]["location"]
        .as_str()
        .unwrap()
        .ends_with(&format!("&format=nonce&__session={v}")));
    let e = m.expired(Setup::Prod);
    assert!(
        by_id["14a"]["location"]
            .as_str()
            .unwrap()
            .ends_with(&format!("&__session={e}")),
        "the header token travels too"
    );
    assert!(by_id["12a"]["location"]
        .as_str()
        .unwrap()
        .contains("&suffixed_cookies=true&"));
    assert!(by_id["12d"]["location"]
        .as_str()
        .unwrap()
        .contains("&suffixed_cookies=true&"));
    assert!(by_id["13a"]["location"]
        .as_str()
        .unwrap()
        .contains("redirect_url=https%3A%2F%2Fa.example.com%2Fdash%3Fx%3D1&"));
    assert!(by_id["13b"]["location"]
        .as_str()
        .unwrap()
        .contains("redirect_url=http%3A%2F%2Fapp%3A8443%2Fdash%3Fx%3D1&"));
    // Dev browser params removed, the query re-serialized, dot segments gone.
    assert!(
        by_id["13c"]["location"].as_str().unwrap().contains(
            "redirect_url=https%3A%2F%2Fapp.example.com%2Fdash%3Fa%3D%257E%26b%3D%26c%3Dd%2Be%26e%3Df%2Bg%26z%3D%25C3%25A9&"
        ),
        "{}",
        by_id["13c"]["location"]
    );
    assert!(by_id["13d"]["location"]
        .as_str()
        .unwrap()
        .contains("redirect_url=https%3A%2F%2Fapp.example.com%2Fdash&"));
    // The return leg: the payload verbatim, no Location in production.
    let payload = m.payload(
        Setup::Prod,
        &m.token(Setup::Prod, |c| c["sid"] = json!("sess_2")),
    );
    for id in ["15a", "15b", "15c", "18a", "18b", "18e"] {
        assert_eq!(set_cookies(by_id[id]), payload, "{id}");
        assert!(by_id[id]["location"].is_null(), "{id}");
    }
    assert_eq!(
        set_cookies(by_id["15d"])[1],
        "evil=1; Path=/",
        "Clerk passes any cookie through"
    );
    assert_eq!(by_id["15b"]["cleanUrl"], "https://app.example.com/dash?x=1");
    assert_eq!(set_cookies(by_id["17"]).len(), 2);
    // Development: the dev browser in the handshake URL, not in redirect_url.
    let l = by_id["20a"]["location"].as_str().unwrap();
    assert!(
        l.ends_with("&format=nonce&__clerk_db_jwt=dvb_q")
            && l.contains("redirect_url=http%3A%2F%2Flocalhost%3A3000%2Fpage%3Fx%3D1&"),
        "{l}"
    );
    assert_eq!(
        by_id["20e"]["location"],
        "https://sat.example/?__clerk_db_jwt=dvb_1&__clerk_synced=true"
    );
    assert_eq!(by_id["21a"]["location"], "http://localhost:3000/page?x=1");
    assert_eq!(by_id["21a"]["cacheControl"], "no-store");
    assert_eq!(
        set_cookies(by_id["21a"])[0],
        "__clerk_db_jwt=dvb_1; Path=/; SameSite=Lax"
    );
    assert!(by_id["21b"]["rejected"]
        .as_str()
        .unwrap()
        .contains("invalid signature"));
    assert_eq!(by_id["21c"]["location"], "http://localhost:3000/page");
    assert_eq!(
        by_id["19b"]["signInUrl"],
        "https://happy-hippo-1.accounts.dev/sign-in?redirect_url=http%3A%2F%2Flocalhost%3A3000%2Fapi%2Fx"
    );
    assert_eq!(
        by_id["20c"]["signInUrl"],
        "https://happy-hippo-1.accounts.dev/sign-in?redirect_url=http%3A%2F%2Flocalhost%3A3000%2Fpage&__clerk_db_jwt=dvb_1"
    );
    // A proxied Frontend API, absolute or relative: the same Location.
    let l = by_id["24"]["location"].as_str().unwrap();
    assert!(
        l.starts_with("https://app.example.com/__clerk/v1/client/handshake?redirect_url="),
        "{l}"
    );
    assert_eq!(by_id["24r"]["location"].as_str(), Some(l));
    // The refresh path reached the fake BAPI and came back with its token.
    let refreshed = set_cookies(by_id["6r"]);
    assert!(
        refreshed.len() == 1 && refreshed[0].starts_with("__session="),
        "{refreshed:?}"
    );
    assert_eq!(fake.count("/v1/sessions/sess_1/refresh"), 1);
    // Each nonce shape asked BAPI once; the unknown nonce got a 404.
    assert_eq!(fake.count("/v1/clients/handshake_payload"), 5);
    assert!(fake
        .log()
        .iter()
        .any(|l| l.contains("nonce=nonce_unknown => 404")));

    // The comparison of `jwtgate_decides_as_clerk`, checked on answers made
    // up from the oracle's: each acceptable answer passes, each kind of
    // wrong answer fails it, and every rule-based deviation applies to some
    // shape (so none is dead weight).
    let mut applied = std::collections::BTreeSet::new();
    for (s, a) in shapes.iter().zip(&answers).filter(|(s, _)| !s.oracle_only) {
        let wants = acceptable(s, a, &by_id);
        for want in &wants {
            applied.extend(want.deviations.iter().copied().map(|d| format!("{d:?}")));
            let ideal = || Got {
                status: want.statuses.first().copied().unwrap_or(401),
                location: want.locations.as_ref().map(|l| l[0].clone()),
                cookies: want
                    .cookies
                    .iter()
                    .cloned()
                    .chain(
                        want.clear_ok
                            .then(|| "__clerk_handshake=; Path=/; Max-Age=0".to_string()),
                    )
                    .collect(),
                no_store: want.no_store,
                reason: want.reason.clone(),
            };
            let id = format!("{} {:?}", s.id, want.deviations);
            assert_eq!(compare_any(&wants, &ideal()), Vec::<String>::new(), "{id}");
            let mut wrong = ideal();
            wrong.status = if wrong.status == 200 { 500 } else { 200 };
            assert!(!compare(want, &wrong).is_empty(), "{id}: status");
            if want.nobody_in {
                let mut w = ideal();
                w.cookies
                    .push(format!("__session={}; Path=/", m.valid(Setup::Dev)));
                assert!(!compare(want, &w).is_empty(), "{id}: a session");
                continue;
            }
            if let Some(l) = &ideal().location {
                let mut w = ideal();
                w.location = Some(format!("{l}&"));
                assert!(!compare(want, &w).is_empty(), "{id}: Location");
            }
            let mut w = ideal();
            w.cookies.push("theme=dark; Path=/".into());
            assert!(!compare(want, &w).is_empty(), "{id}: extra cookie");
            if !want.cookies.is_empty() {
                let mut w = ideal();
                w.cookies.remove(0);
                assert!(!compare(want, &w).is_empty(), "{id}: missing cookie");
            }
        }
    }
    for d in RULE_DEVIATIONS {
        assert!(
            applied.contains(&format!("{d:?}")),
            "no shape exercises {d:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// jwtgate against the oracle
// ---------------------------------------------------------------------------

/// Where jwtgate departs from `authenticateRequest` on purpose (CONTRACT,
/// issue 8, and the deviations listed in jwtgate's `src/browser`). The
/// rule-based ones are derived from the request in [`expected`]; the "may"
/// ones are declared on the shapes that have them ([`Alt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deviation {
    /// The loop guard stops at a counter >= 3; the SDK only at exactly 3
    /// (counter 5 gives it a 6th bounce).
    LoopGuardAtLeast3,
    /// A return leg whose URL carries handshake parameters, on a top-level
    /// GET navigation, ends with a 307 to the URL without them (the SDK
    /// serves the page in production).
    ReturnLegRedirects,
    /// A return leg with the payload in a cookie only, on a navigation:
    /// the page is served (as the SDK does) or, as the CONTRACT reads, a
    /// 307 to the same (clean) URL.
    CookieReturnLegMayRedirect,
    /// Whenever the request carries a handshake token or nonce, jwtgate
    /// also clears `__clerk_handshake` and `__clerk_handshake_nonce` (a
    /// stale one must not sign the user out on every request).
    ClearsHandshakeCookies,
    /// Only Clerk's cookie names pass through from a payload.
    ForeignCookiesDropped,
    /// A signed-out browser navigation (any method) is sent to the sign-in
    /// page (302/303/307, `redirect_url` = the original or the clean URL);
    /// the SDK leaves that to the adapter.
    SignInRedirect,
    /// A development return leg with a bad handshake token makes the SDK
    /// reject (adapters answer 500); jwtgate never answers 500 to bad input:
    /// anything that lets nobody in.
    NoRejection,
    /// A 1-hour-old session in a development payload: the SDK accepts it
    /// (24 h skew); jwtgate may refuse it.
    DevSkewMayRefuse,
    /// A nonce BAPI does not know, beside a valid `__session`: the SDK signs
    /// out; jwtgate may keep the session (and clear the stale nonce).
    StaleNonceMayKeepSession,
    /// BAPI's payload with `Content-Type: application/json; charset=utf-8`:
    /// the SDK fails to parse it; jwtgate may accept it.
    CharsetMayBeAccepted,
    /// A nonce on a request that is not a GET navigation: the SDK exchanges
    /// it; jwtgate may decide from the cookies instead (network I/O only
    /// for navigations).
    ExchangeOnlyOnNavigation,
}

/// One acceptable answer of jwtgate.
#[derive(Debug, Clone)]
struct Want {
    statuses: Vec<u16>,
    /// `None`: no Location; else one of these, byte for byte.
    locations: Option<Vec<String>>,
    /// Set-Cookie directives that must all be there (any order).
    cookies: Vec<String>,
    /// The clearing of handshake cookies may be added.
    clear_ok: bool,
    no_store: bool,
    reason: Option<String>,
    /// Anything that lets nobody in (see [`Deviation::NoRejection`]).
    nobody_in: bool,
    deviations: Vec<Deviation>,
}

impl Want {
    fn nobody_in(deviation: Deviation) -> Want {
        Want {
            statuses: vec![],
            locations: None,
            cookies: vec![],
            clear_ok: true,
            no_store: false,
            reason: None,
            nobody_in: true,
            deviations: vec![deviation],
        }
    }
}

/// jwtgate's answer.
#[derive(Debug)]
struct Got {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    no_store: bool,
    reason: Option<String>,
}

fn cookie_name_value(directive: &str) -> (&str, &str) {
    let pair = directive.split(';').next().unwrap_or("");
    pair.split_once('=').unwrap_or((pair, ""))
}

fn is_clerk_cookie(directive: &str) -> bool {
    let name = cookie_name_value(directive).0;
    ["__session", "__client_uat", "__refresh", "__clerk_"]
        .iter()
        .any(|p| name.starts_with(p))
}

fn is_handshake_clearing(directive: &str) -> bool {
    let (name, value) = cookie_name_value(directive);
    let lower = directive.to_ascii_lowercase();
    matches!(name, "__clerk_handshake" | "__clerk_handshake_nonce")
        && value.trim().is_empty()
        && (lower.contains("max-age=0") || lower.contains("expires=thu, 01 jan 1970"))
}

impl Shape {
    fn navigation(&self) -> bool {
        match self.header("sec-fetch-dest") {
            Some("document" | "iframe") => true,
            Some(_) => false,
            None => self
                .header("accept")
                .is_some_and(|a| a.starts_with("text/html")),
        }
    }

    fn bearer(&self) -> bool {
        self.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer ") || !a.contains(' '))
    }

    fn handshake_in_url(&self) -> bool {
        self.query_has("__clerk_handshake") || self.query_has("__clerk_handshake_nonce")
    }

    /// The request carries a handshake token or nonce, anywhere.
    fn carries_handshake(&self) -> bool {
        self.handshake_in_url()
            || self.cookie_value("__clerk_handshake").is_some()
            || self.cookie_value("__clerk_handshake_nonce").is_some()
    }

    /// A return leg as the SDK sees it (a Bearer header hides the cookies).
    fn return_leg(&self) -> bool {
        !self.bearer() && self.carries_handshake()
    }

    /// `Number(cookie) || 0`, as the SDK reads the loop counter.
    fn counter(&self) -> f64 {
        self.cookie_value("__clerk_redirect_count")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    }
}

/// The answers jwtgate may give to `s`, given Clerk's answer `a` to it:
/// Clerk's, as the rule-based deviations change it (one or two choices).
fn expected(s: &Shape, a: &Value) -> Vec<Want> {
    if a["rejected"].is_string() {
        return vec![Want::nobody_in(Deviation::NoRejection)];
    }
    let url = |k: &str| a[k].as_str().map(str::to_string);
    let mut deviations = Vec::new();
    let mut status = a["status"].as_str().unwrap().to_string();
    let mut cookies = set_cookies(a);
    let mut location = url("location");
    if status == "handshake" && s.counter() >= 3.0 && s.counter() != 3.0 {
        deviations.push(Deviation::LoopGuardAtLeast3);
        status = "signed-out".into();
        cookies.retain(|c| !c.starts_with("__clerk_redirect_count="));
        location = None;
    }
    let clear_ok = s.carries_handshake();
    if clear_ok {
        deviations.push(Deviation::ClearsHandshakeCookies);
    }
    if s.return_leg() && cookies.iter().any(|c| !is_clerk_cookie(c)) {
        deviations.push(Deviation::ForeignCookiesDropped);
        cookies.retain(|c| is_clerk_cookie(c));
    }
    let reason = a["reason"]
        .as_str()
        .filter(|r| !r.is_empty() && status != "signed-in")
        .map(str::to_string);
    let want = |statuses: Vec<u16>, locations: Option<Vec<String>>, extra: &[Deviation]| Want {
        statuses,
        locations,
        cookies: cookies.clone(),
        clear_ok,
        no_store: status == "handshake",
        reason: reason.clone(),
        nobody_in: false,
        deviations: deviations.iter().chain(extra).copied().collect(),
    };
    let navigation_get = s.method == "GET" && s.navigation();
    match status.as_str() {
        // A handshake, or the SDK's own redirect (the development return leg).
        _ if location.is_some() => vec![want(vec![307], Some(vec![location.unwrap()]), &[])],
        "signed-in" if s.return_leg() && navigation_get && s.handshake_in_url() => vec![want(
            vec![307],
            Some(vec![url("cleanUrl").unwrap()]),
            &[Deviation::ReturnLegRedirects],
        )],
        "signed-in" if s.return_leg() && navigation_get => vec![
            want(vec![200], None, &[]),
            want(
                vec![307],
                Some(vec![url("cleanUrl").unwrap()]),
                &[Deviation::CookieReturnLegMayRedirect],
            ),
        ],
        "signed-in" => vec![want(vec![200], None, &[])],
        _ if s.navigation() => {
            let mut l = vec![url("signInUrl").unwrap()];
            l.extend(url("signInUrlClean"));
            vec![want(
                vec![302, 303, 307],
                Some(l),
                &[Deviation::SignInRedirect],
            )]
        }
        _ => vec![want(vec![401], None, &[])],
    }
}

/// All the answers jwtgate may give: [`expected`] for Clerk's answer, and
/// for each declared [`Alt`].
fn acceptable(s: &Shape, a: &Value, by_id: &BTreeMap<&str, &Value>) -> Vec<Want> {
    let mut wants = expected(s, a);
    for alt in &s.alts {
        match alt {
            Alt::NobodyIn(d) => wants.push(Want::nobody_in(*d)),
            Alt::AsShape(d, id) => {
                for mut w in expected(s, by_id[id]) {
                    w.deviations.push(*d);
                    w.clear_ok |= s.carries_handshake();
                    // A different request: Clerk's reason words may differ.
                    w.reason = None;
                    wants.push(w);
                }
            }
        }
    }
    wants
}

/// Differences between jwtgate's answer and `want` (empty = agreed).
fn compare(want: &Want, got: &Got) -> Vec<String> {
    let mut diffs = Vec::new();
    if want.nobody_in {
        if matches!(got.status, 200 | 500) {
            diffs.push(format!(
                "status {} (must let nobody in, without a 500)",
                got.status
            ));
        }
        if got.cookies.iter().any(|c| {
            let (name, value) = cookie_name_value(c);
            name.starts_with("__session") && !value.trim().is_empty()
        }) {
            diffs.push(format!("sets a session: {:?}", got.cookies));
        }
        return diffs;
    }
    if !want.statuses.contains(&got.status) {
        diffs.push(format!("status {} (want {:?})", got.status, want.statuses));
    }
    match (&want.locations, &got.location) {
        (None, Some(l)) => diffs.push(format!("unexpected Location {l}")),
        (Some(w), None) => diffs.push(format!("no Location (want {})", w[0])),
        (Some(w), Some(l)) if !w.contains(l) => diffs.push(format!(
            "Location\n      got  {l}\n      want {}",
            w.join("\n        or ")
        )),
        _ => {}
    }
    let mut left: Vec<&String> = got.cookies.iter().collect();
    for c in &want.cookies {
        match left.iter().position(|g| *g == c) {
            Some(i) => {
                left.remove(i);
            }
            None => diffs.push(format!("missing Set-Cookie {c}")),
        }
    }
    for c in left {
        if !(want.clear_ok && is_handshake_clearing(c)) {
            diffs.push(format!("extra Set-Cookie {c}"));
        }
    }
    if want.no_store && !got.no_store {
        diffs.push("no Cache-Control: no-store".into());
    }
    if let (Some(w), Some(g)) = (&want.reason, &got.reason) {
        if w != g {
            diffs.push(format!("reason {g} (want {w})"));
        }
    }
    diffs
}

/// Empty when `got` matches one of `wants`; else the differences from each.
fn compare_any(wants: &[Want], got: &Got) -> Vec<String> {
    let mut all = Vec::new();
    for (i, w) in wants.iter().enumerate() {
        let diffs = compare(w, got);
        if diffs.is_empty() {
            return diffs;
        }
        let head = if wants.len() > 1 {
            format!("[choice {} {:?}] ", i + 1, w.deviations)
        } else {
            String::new()
        };
        all.extend(diffs.into_iter().map(|d| format!("{head}{d}")));
    }
    all
}

/// The same request, as a proxy describes it to jwtgate's `/forward`.
fn ask_jwtgate(daemon: &Daemon, s: &Shape) -> Got {
    let (scheme, rest) = s.url.split_once("://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let host = s.header("host").unwrap_or(authority);
    let mut raw = format!(
        "GET /forward HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Method: {}\r\n\
         X-Forwarded-Uri: {path}\r\nX-Forwarded-Proto: {}\r\nX-Forwarded-Host: {}\r\n",
        s.method,
        s.header("x-forwarded-proto").unwrap_or(scheme),
        s.header("x-forwarded-host").unwrap_or(host),
    );
    for (n, v) in &s.headers {
        if !matches!(
            n.as_str(),
            "host" | "x-forwarded-proto" | "x-forwarded-host"
        ) {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    raw.push_str("\r\n");
    let rsp = common::request(daemon.addr, &raw).expect("jwtgate /forward");
    let all = |name: &str| -> Vec<String> {
        rsp.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    };
    Got {
        status: rsp.status,
        location: rsp.header("location").map(str::to_string),
        cookies: all("set-cookie"),
        no_store: all("cache-control").iter().any(|v| v.contains("no-store")),
        reason: rsp
            .header("x-clerk-auth-reason")
            .or(rsp.header("x-jwtgate-reason"))
            .map(str::to_string),
    }
}

/// The deviations the shapes must exercise between them (each rule shows
/// up somewhere, so the list stays honest).
const RULE_DEVIATIONS: [Deviation; 7] = [
    Deviation::LoopGuardAtLeast3,
    Deviation::ReturnLegRedirects,
    Deviation::CookieReturnLegMayRedirect,
    Deviation::ClearsHandshakeCookies,
    Deviation::ForeignCookiesDropped,
    Deviation::SignInRedirect,
    Deviation::NoRejection,
];

#[test]
fn jwtgate_decides_as_clerk() {
    let fake = FakeClerk::start();
    fake.set(|s| s.issuer_host = "clerk.example.com".into());
    let t0 = now();
    let m = Mint { fake: &fake, t0 };
    let all = shapes(&m);
    // Each nonce serves both sides (2 uses): the oracle first.
    let answers = oracle(&all, &fake, t0 * 1000);
    show(&all, &answers);
    let by_id: BTreeMap<&str, &Value> = all.iter().map(|s| s.id.as_str()).zip(&answers).collect();
    let daemons: BTreeMap<Setup, Daemon> = SETUPS
        .iter()
        .map(|setup| (*setup, Daemon::start(&setup.jwtgate_config(&fake))))
        .collect();

    let mut failures = Vec::new();
    let mut compared = 0;
    let mut used = BTreeMap::<String, usize>::new();
    for (s, a) in all.iter().zip(&answers).filter(|(s, _)| !s.oracle_only) {
        compared += 1;
        let wants = acceptable(s, a, &by_id);
        let got = ask_jwtgate(&daemons[&s.setup], s);
        let diffs = compare_any(&wants, &got);
        if let Some(w) = wants.iter().find(|w| compare(w, &got).is_empty()) {
            for d in &w.deviations {
                *used.entry(format!("{d:?}")).or_default() += 1;
            }
        }
        if !diffs.is_empty() {
            failures.push(format!(
                "{} {:?} {} {} (Clerk: {} {})\n    got {got:?}\n    {}",
                s.id,
                s.setup,
                s.method,
                s.url.chars().take(100).collect::<String>(),
                a["status"],
                a["reason"],
                diffs.join("\n    ")
            ));
        }
    }
    println!("{compared} shapes compared; deviations taken: {used:?}");
    assert!(
        failures.is_empty(),
        "{} of {compared} shapes differ from Clerk:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
