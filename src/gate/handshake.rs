//! Browser sign-in in the gate: the request handed to [`crate::browser`]'s
//! decision (Clerk's `authenticateRequest`), its session tokens verified
//! through the gate's token cache, a handshake nonce exchanged with the
//! Backend API from the request's coroutine, and the outcome turned into a
//! [`Decision`].
//!
//! Only when `[browser]` is on ([`Gate::with_browser`]); otherwise the gate
//! runs exactly as before. What it costs per request, on top of the token
//! cache: the request's URL parsed, Clerk's cookies read, and the session
//! token's payload decoded once (the SDK's `iat`-before-`client_uat` rule
//! runs before any signature check); the signature itself comes from the
//! cache. The README's "Browser sign-in" section has the measurement.

use std::sync::Arc;

use super::decision::{Decision, Grant, Redirect, RedirectKind, SignedOut, Source};
use super::original::Original;
use super::Gate;
use crate::browser::{
    self, decide, resume_with_directives, Instance, NonceExchanger, Outcome, Reason, Request,
    Target, TokenVerifier,
};
use crate::token::errors::TokenError;
use crate::token::Jws;

/// What the gate needs for browser sign-in.
pub struct Browser {
    pub instance: Instance,
    /// The nonce exchange pool, started outside the HTTP runtime.
    pub exchanger: NonceExchanger,
}

/// The gate's verifier as the browser decision sees it: session tokens go
/// through [`Gate::authorize`] (the token cache), so a signed-in browser's
/// repeat costs no RSA; handshake tokens are checked with the same keys.
struct Cached<'g>(&'g Gate);

impl TokenVerifier for Cached<'_> {
    type Verified = (Arc<Grant>, Source);

    fn verify_session(&self, token: &str, now_ms: i64) -> Result<Self::Verified, TokenError> {
        self.0.authorize(token, now_ms)
    }

    fn check_handshake_signature(&self, jws: &Jws<'_>) -> Result<(), TokenError> {
        self.0.verifier.check_jws(jws)
    }

    fn leeway_ms(&self) -> i64 {
        self.0.verifier.policy().validation.leeway_ms
    }
}

/// How the decision was reached, for the debug line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Trace {
    /// The nonce exchange's outcome label, when one ran.
    pub exchange: Option<&'static str>,
}

impl Gate {
    /// The browser flow's decision. `bearer` is the `Authorization: Bearer`
    /// token found as jwtgate always finds it.
    pub(super) fn decide_browser<'a>(
        &self,
        browser: &Browser,
        original: &Original<'a>,
        headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
        bearer: Option<&'a str>,
        now_ms: i64,
    ) -> (Decision, Trace) {
        let target = Target {
            method: original.method.unwrap_or(""),
            proto: original.proto,
            host: original.host,
            uri: original.uri,
        };
        let instance = &browser.instance;
        let request = Request::new(target, headers, instance.cookie_suffix(), bearer);
        let verifier = Cached(self);
        let mut trace = Trace::default();
        let mut outcome = decide(instance, &request, &verifier, now_ms);
        if let Outcome::NeedsNonceExchange { nonce } = &outcome {
            // Parks this coroutine (not its worker) for at most
            // keys.fetch_timeout_ms; the decision only asks for it on a
            // GET navigation.
            let result = browser.exchanger.exchange(nonce);
            let label = browser::exchange::label(&result);
            self.metrics.record_exchange(label);
            trace.exchange = Some(label);
            outcome = resume_with_directives(instance, &request, &verifier, now_ms, result.ok());
        }
        (self.to_decision(outcome), trace)
    }

    fn to_decision(&self, outcome: Outcome<(Arc<Grant>, Source)>) -> Decision {
        match outcome {
            Outcome::SignedIn {
                verified: (grant, source),
                set_cookies,
                redirect: None,
                ..
            } => Decision::Allow {
                grant,
                source,
                set_cookies,
            },
            Outcome::SignedIn {
                set_cookies,
                redirect: Some(r),
                ..
            } => redirect(r, set_cookies, "signed-in"),
            Outcome::SignedOut {
                set_cookies,
                redirect: Some(r),
                reason,
                ..
            } => redirect(r, set_cookies, reason.as_str()),
            Outcome::SignedOut {
                error: Some(TokenError::KeysUnavailable),
                ..
            } => Decision::Unavailable,
            Outcome::SignedOut {
                reason,
                set_cookies,
                redirect: None,
                ..
            } => Decision::SignedOut(Box::new(SignedOut {
                reason,
                set_cookies,
            })),
            Outcome::Handshake {
                reason,
                location,
                set_cookies,
            } => {
                self.metrics.record_handshake(reason);
                Decision::Redirect(Box::new(Redirect {
                    kind: RedirectKind::Handshake,
                    status: 307,
                    location,
                    set_cookies,
                    reason: reason.as_str().to_string(),
                }))
            }
            // resume_with_directives never asks again; should it, nobody
            // is signed in.
            Outcome::NeedsNonceExchange { .. } => Decision::SignedOut(Box::new(SignedOut {
                reason: Reason::SessionTokenMissing,
                set_cookies: Vec::new(),
            })),
        }
    }
}

fn redirect(r: browser::Redirect, set_cookies: Vec<String>, reason: &str) -> Decision {
    let kind = match r.kind {
        browser::RedirectKind::SignIn => RedirectKind::SignIn,
        browser::RedirectKind::ReturnLeg => RedirectKind::Return,
    };
    Decision::Redirect(Box::new(Redirect {
        kind,
        status: r.status,
        location: r.location,
        set_cookies,
        reason: reason.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;
    use std::time::Duration;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;

    use super::*;
    use crate::browser::ExchangeSettings;
    use crate::gate::metrics::Metrics;
    use crate::gate::{Call, GateOptions, Style};
    use crate::keys::jwk::VerifyingKey;
    use crate::keys::store::KeyStore;
    use crate::token::algorithms::AlgorithmSet;
    use crate::token::claims::Validation;
    use crate::verify::{Policy, Verifier};

    const PK_LIVE: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"; // clerk.example.com
    const APP: &str = "https://app.example.com";
    const NOW: i64 = 1_700_000_000_000;
    const S: i64 = NOW / 1000;
    const DOC: &str = "text/html,application/xhtml+xml";

    fn key() -> &'static PKey<Private> {
        static KEY: std::sync::OnceLock<PKey<Private>> = std::sync::OnceLock::new();
        KEY.get_or_init(|| PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap())
    }

    fn sign(header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut signer = Signer::new(MessageDigest::sha256(), key()).unwrap();
        signer.update(input.as_bytes()).unwrap();
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signer.sign_to_vec().unwrap())
        )
    }

    /// A session token for user_1, issued `age` seconds before NOW.
    fn session(age: i64) -> String {
        let iat = S - age;
        sign(
            r#"{"alg":"RS256","kid":"ins_1","typ":"JWT"}"#,
            &format!(
                r#"{{"iss":"https://clerk.example.com","sub":"user_1","sid":"sess_1","azp":"{APP}","iat":{iat},"nbf":{},"exp":{},"v":2}}"#,
                iat - 10,
                iat + 60
            ),
        )
    }

    /// A fake Backend API that answers every nonce with `directives`.
    fn fake_bapi(directives: Vec<String>) -> (String, Arc<Mutex<usize>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(0));
        let seen = calls.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                *seen.lock().unwrap() += 1;
                let body = serde_json::json!({ "directives": directives }).to_string();
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        (url, calls)
    }

    fn gate_with(keys: bool, bapi: &str) -> Gate {
        let store = Arc::new(KeyStore::new(
            4,
            Duration::from_secs(10),
            Duration::from_millis(100),
        ));
        if keys {
            let pem = key().public_key_to_pem().unwrap();
            store.install_pem(VerifyingKey::from_pem(std::str::from_utf8(&pem).unwrap()).unwrap());
        }
        let policy = Policy {
            algorithms: AlgorithmSet::CLERK,
            validation: Validation {
                issuer: Some("https://clerk.example.com".into()),
                authorized_parties: vec![APP.into()],
                leeway_ms: 0,
                allow_pending: false,
                audience: vec![],
            },
            max_token_bytes: 16 * 1024,
        };
        let options = GateOptions {
            cache_tokens: 100,
            decision_ttl: Duration::from_secs(60),
            cookie_suffix: Some(crate::browser::instance::cookie_suffix(PK_LIVE)),
        };
        let instance = Instance::new(PK_LIVE, None, None, bapi).unwrap();
        let exchanger = NonceExchanger::start(ExchangeSettings {
            api_url: bapi.into(),
            secret_key: "sk_live_x".into(),
            timeout: Duration::from_secs(2),
            threads: 1,
            queue: 4,
        })
        .unwrap();
        Gate::new(
            Verifier::new(store, policy),
            options,
            Arc::new(Metrics::default()),
        )
        .with_browser(Browser {
            instance,
            exchanger,
        })
    }

    fn gate() -> Gate {
        gate_with(true, "http://127.0.0.1:9")
    }

    /// `GET /auth` as nginx sends it for a browser request to `uri`.
    fn nginx(uri: &str, cookie: &str, dest: &str) -> Vec<(&'static str, String)> {
        vec![
            ("Host", "jwtgate".into()),
            ("X-Original-Method", "GET".into()),
            ("X-Original-URI", uri.into()),
            ("X-Forwarded-Host", "app.example.com".into()),
            ("X-Forwarded-Proto", "https".into()),
            ("Cookie", cookie.into()),
            ("Sec-Fetch-Dest", dest.into()),
            ("Accept", DOC.into()),
        ]
    }

    fn ask(gate: &Gate, h: &[(&'static str, String)]) -> Decision {
        gate.decide(
            &Call::auth("/auth"),
            h.iter().map(|(n, v)| (*n, v.as_bytes())),
            NOW,
        )
    }

    fn headers(d: &Decision, style: Style) -> String {
        let mut out = String::new();
        d.render_headers_in(style, &mut out);
        out
    }

    fn metrics(gate: &Gate) -> String {
        let mut text = String::new();
        gate.metrics().render(&mut text).unwrap();
        text
    }

    #[test]
    fn gate_browser_sends_a_returning_user_through_the_handshake() {
        let g = gate();
        let d = ask(
            &g,
            &nginx("/dash?x=1", "__client_uat=1699999000", "document"),
        );
        let Decision::Redirect(r) = &d else {
            panic!("{d:?}")
        };
        assert_eq!((r.kind, r.status), (RedirectKind::Handshake, 307));
        assert_eq!(
            r.location,
            "https://clerk.example.com/v1/client/handshake?redirect_url=https%3A%2F%2Fapp.example.com%2Fdash%3Fx%3D1\
             &__clerk_api_version=2026-05-12&suffixed_cookies=false\
             &__clerk_hs_reason=client-uat-but-no-session-token&format=nonce"
        );
        let h = headers(&d, Style::AuthRequest);
        assert!(
            h.contains("\r\nX-Jwtgate-Location: https://clerk.example.com/v1/client/handshake?")
        );
        assert!(h.contains("\r\nCache-Control: no-store"));
        assert!(h.contains(
            "\r\nX-Jwtgate-Set-Cookie-1: __clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2"
        ));
        assert!(metrics(&g)
            .contains("jwtgate_handshakes_total{reason=\"client-uat-but-no-session-token\"} 1\n"));
        assert!(metrics(&g).contains("jwtgate_redirects_total{kind=\"handshake\"} 1\n"));
        // The same request from fetch(): a 401 naming Clerk's reason.
        let d = ask(&g, &nginx("/api", "__client_uat=1699999000", "empty"));
        assert_eq!(d.status(), 401);
        assert_eq!(d.reason(), "client-uat-but-no-session-token");
    }

    #[test]
    fn gate_browser_signed_in_repeats_come_from_the_token_cache() {
        let g = gate();
        let cookie = format!("__session={}; __client_uat={}", session(5), S - 100);
        for want in [Source::Verified, Source::Cache] {
            let d = ask(&g, &nginx("/", &cookie, "document"));
            match &d {
                Decision::Allow {
                    grant,
                    source,
                    set_cookies,
                } => {
                    assert_eq!(grant.user_id(), "user_1");
                    assert_eq!(*source, want);
                    assert!(set_cookies.is_empty());
                }
                other => panic!("{other:?}"),
            }
            assert!(headers(&d, Style::AuthRequest).contains("X-Accel-Expires: @"));
        }
        assert!(metrics(&g).contains("jwtgate_token_cache_total{result=\"hit\"} 1\n"));
    }

    #[test]
    fn gate_browser_after_expiry_navigations_handshake_and_fetches_get_401() {
        let g = gate();
        let cookie = format!("__session={}; __client_uat={}", session(120), S - 200);
        let d = ask(&g, &nginx("/next", &cookie, "document"));
        assert_eq!(d.status_in(Style::Forward), 307);
        assert!(
            matches!(&d, Decision::Redirect(r) if r.location.contains("&__session=")),
            "{d:?}"
        );
        let d = ask(&g, &nginx("/api/poll", &cookie, "empty"));
        assert_eq!(
            headers(&d, Style::AuthRequest),
            "WWW-Authenticate: Bearer error=\"invalid_token\", \
             error_description=\"session-token-expired-refresh-non-eligible-no-refresh-cookie\""
        );
        assert!(metrics(&g).contains(
            "jwtgate_decisions_total{outcome=\"deny\",reason=\"session-token-expired-refresh-non-eligible-no-refresh-cookie\"} 1\n"
        ));
    }

    #[test]
    fn gate_browser_signed_out_navigations_go_to_sign_in_with_the_url_encoded() {
        let g = gate();
        let d = ask(&g, &nginx("/a?b=1&c=%7E", "", "document"));
        let Decision::Redirect(r) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(r.kind, RedirectKind::SignIn);
        assert_eq!(
            r.location,
            "https://accounts.example.com/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3D1%26c%3D%257E"
        );
        // A POST navigation is sent there with 303 (fetched with GET).
        let mut h = nginx("/form", "", "document");
        h[1].1 = "POST".into();
        assert_eq!(ask(&g, &h).status_in(Style::Forward), 303);
        // An API client keeps a bare challenge.
        let d = ask(&g, &nginx("/api", "", "empty"));
        assert_eq!(headers(&d, Style::AuthRequest), "WWW-Authenticate: Bearer");
    }

    #[test]
    fn gate_browser_bearer_tokens_follow_the_sdk_and_bad_headers_stay_refused() {
        let g = gate();
        let bearer = |token: &str, dest: &str| {
            let mut h = nginx("/", "", dest);
            h.push(("Authorization", format!("Bearer {token}")));
            h
        };
        let d = ask(&g, &bearer(&session(5), "empty"));
        assert_eq!(d.status(), 200, "{d:?}");
        let d = ask(&g, &bearer(&session(120), "document"));
        assert!(
            matches!(&d, Decision::Redirect(r) if r.kind == RedirectKind::Handshake),
            "{d:?}"
        );
        assert_eq!(ask(&g, &bearer(&session(120), "empty")).status(), 401);
        let mut two = bearer(&session(5), "empty");
        two.push(("Authorization", "Bearer x".into()));
        assert!(matches!(
            ask(&g, &two),
            Decision::Deny(TokenError::AmbiguousAuthorization)
        ));
    }

    #[test]
    fn gate_browser_exchanges_a_nonce_and_returns_to_the_clean_url() {
        let token = session(1);
        let (url, calls) = fake_bapi(vec![
            format!("__client_uat={}; Path=/; Domain=example.com", S - 1),
            format!("__session={token}; Path=/; Secure; SameSite=Lax"),
            "tracker=1; Path=/".into(),
        ]);
        let g = gate_with(true, &url);
        let d = ask(
            &g,
            &nginx("/dash?x=1&__clerk_handshake_nonce=n1", "", "document"),
        );
        let Decision::Redirect(r) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(
            (r.kind, r.location.as_str()),
            (RedirectKind::Return, "https://app.example.com/dash?x=1")
        );
        assert!(r.set_cookies.iter().any(|c| c.starts_with("__session=ey")));
        assert!(!r.set_cookies.iter().any(|c| c.starts_with("tracker=")));
        assert!(r
            .set_cookies
            .iter()
            .any(|c| c.starts_with("__clerk_handshake_nonce=; Path=/; Max-Age=0")));
        assert_eq!(*calls.lock().unwrap(), 1);
        assert!(metrics(&g).contains("jwtgate_nonce_exchanges_total{outcome=\"ok\"} 1\n"));
        assert!(metrics(&g).contains("jwtgate_redirects_total{kind=\"return\"} 1\n"));
        // The same nonce on fetch(): no Backend API call.
        let d = ask(&g, &nginx("/api?__clerk_handshake_nonce=n1", "", "empty"));
        assert_eq!(d.status(), 401);
        assert_eq!(*calls.lock().unwrap(), 1);
        // Nobody listening: the exchange fails, counted, nobody signed in.
        let g = gate();
        let d = ask(
            &g,
            &nginx("/dash?__clerk_handshake_nonce=n1", "", "document"),
        );
        assert_ne!(d.status_in(Style::Forward), 200);
        assert!(metrics(&g).contains("jwtgate_nonce_exchanges_total{outcome=\"network\"} 1\n"));
    }

    #[test]
    fn gate_browser_envoy_routes_give_the_url_and_no_keys_is_503() {
        let g = gate();
        let h = [
            ("Host", "app.example.com"),
            ("Cookie", "__client_uat=1699999000"),
            ("Accept", DOC),
        ];
        let envoy = Call {
            style: Style::Forward,
            method: "GET",
            target: "/forward/dash?x=1",
        };
        let d = g.decide(&envoy, h.iter().map(|(n, v)| (*n, v.as_bytes())), NOW);
        assert!(
            matches!(&d, Decision::Redirect(r) if r.location.contains("redirect_url=https%3A%2F%2Fapp.example.com%2Fdash%3Fx%3D1&")),
            "{d:?}"
        );
        let g = gate_with(false, "http://127.0.0.1:9");
        let cookie = format!("__session={}; __client_uat={}", session(5), S - 100);
        assert!(matches!(
            ask(&g, &nginx("/", &cookie, "document")),
            Decision::Unavailable
        ));
    }

    #[test]
    fn gate_browser_location_rules_apply_to_signed_in_browsers_and_optional_lets_others_through() {
        let g = gate();
        let at = |target: &'static str, h: &[(&'static str, String)]| {
            g.decide(
                &Call::auth(target),
                h.iter().map(|(n, v)| (*n, v.as_bytes())),
                NOW,
            )
        };
        let signed_in = nginx(
            "/",
            &format!("__session={}; __client_uat=1", session(5)),
            "document",
        );
        assert_eq!(at("/auth?role=org:admin", &signed_in).status(), 403);
        assert!(matches!(
            at("/auth?optional=1", &signed_in),
            Decision::Allow { .. }
        ));
        // Signed out: optional=1 serves the page anonymously, no sign-in.
        let signed_out = nginx("/", "", "document");
        assert!(matches!(
            at("/auth?optional=1", &signed_out),
            Decision::Anonymous
        ));
        assert!(matches!(
            at("/auth?optional=1", &nginx("/", "", "empty")),
            Decision::Anonymous
        ));
        // A returning user still goes through the handshake (it renews the
        // session), on an optional page too.
        let returning = nginx("/", "__client_uat=1699999000", "document");
        assert!(matches!(
            at("/auth?optional=1", &returning),
            Decision::Redirect(r) if r.kind == RedirectKind::Handshake
        ));
        // Malformed rules are an operator error, before anything else.
        assert!(matches!(
            at("/auth?role=", &returning),
            Decision::Misconfigured(_)
        ));
    }
}
