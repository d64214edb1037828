//! The gate: from a request's headers to a [`Decision`], and the HTTP
//! service that answers with it.
//!
//! - [`extract`]: find the token in the request headers.
//! - [`original`]: the browser's request, as the proxy describes it.
//! - [`decision`]: the decision type and its rendering to HTTP.
//! - [`cache`]: verified tokens by keyed hash, so a repeat costs no RSA.
//! - [`handshake`]: browser sign-in (Clerk's handshake), when `[browser]` is on.
//! - [`server`]: the may_minihttp service: `/auth`, `/healthz`, `/readyz`, `/metrics`.
//! - [`metrics`]: Prometheus counters and the latency histogram.

pub mod cache;
pub mod decision;
pub mod extract;
pub mod grant;
pub mod handshake;
pub mod metrics;
pub mod original;
pub mod server;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::rules::{Facts, RuleSet, Verdict};
use crate::token::errors::TokenError;
use crate::verify::Verifier;
use cache::{Entry, TokenCache};
pub use decision::{Decision, Forbidden, Grant, Redirect, RedirectKind, SignedOut, Source, Style};
use extract::{find_bearer, find_token, Carrier};
use grant::GrantParts;
pub use handshake::Browser;
use handshake::Trace;
use metrics::Metrics;
use original::Original;

/// How the gate uses a verifier.
#[derive(Clone, Debug)]
pub struct GateOptions {
    /// Verified tokens remembered (0: no cache).
    pub cache_tokens: usize,
    /// How long a decision may be reused (here and, through
    /// `X-Accel-Expires`, by nginx), at most until the token's exp.
    pub decision_ttl: Duration,
    /// Clerk's per-instance cookie suffix, from the publishable key.
    pub cookie_suffix: Option<String>,
}

/// What every connection shares: the verifier, the cache, the metrics.
pub struct Gate {
    verifier: Verifier,
    cache: Option<TokenCache>,
    options: GateOptions,
    metrics: Arc<Metrics>,
    /// Browser sign-in; `None`: tokens only, as before.
    browser: Option<Browser>,
}

impl Gate {
    pub fn new(verifier: Verifier, options: GateOptions, metrics: Arc<Metrics>) -> Gate {
        Gate {
            cache: TokenCache::new(options.cache_tokens),
            verifier,
            options,
            metrics,
            browser: None,
        }
    }

    /// The same gate with browser sign-in (Clerk's handshake) on.
    pub fn with_browser(mut self, browser: Browser) -> Gate {
        self.browser = Some(browser);
        self
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether verified tokens are cached.
    pub fn caches(&self) -> bool {
        self.cache.is_some()
    }

    /// Ready while every issuer holds keys that are not too old to use.
    pub fn is_ready(&self) -> bool {
        self.verifier.is_usable()
    }

    /// `/readyz`: whether ready, and a body that says how many keys are
    /// held and how old they are (`now_unix`: the time in Unix seconds);
    /// with several issuers, one line each, named, and ready only when
    /// every issuer is.
    pub fn readiness(&self, now_unix: u64) -> (bool, String) {
        let issuers = self.verifier.issuers();
        if let [only] = issuers {
            return key_readiness(&only.keys, now_unix);
        }
        let mut ready = true;
        let mut body = String::new();
        for issuer in issuers {
            let (one, line) = key_readiness(&issuer.keys, now_unix);
            ready &= one;
            let _ = write!(body, "{}: {line}", issuer.name);
        }
        (ready, body)
    }

    /// The decision for one auth request: how the proxy asked (`call`,
    /// whose query holds the location's rules) and the `(name, value)`
    /// headers. Counts it in the metrics and logs it at debug level.
    /// Independent of the HTTP library, so the fuzz target and the server
    /// share it. A cache hit allocates nothing, rules or not (with browser
    /// sign-in off).
    pub fn decide<'a>(
        &self,
        call: &Call<'a>,
        headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
        now_ms: i64,
    ) -> Decision {
        let started = Instant::now();
        let rules = match RuleSet::parse(call.rules_query()) {
            Ok(rules) => rules,
            Err(e) => {
                log::error!("refusing a request whose location rules are malformed: {e}");
                let decision = Decision::Misconfigured(e.to_string());
                self.metrics.record_decision(&decision, started.elapsed());
                return decision;
            }
        };
        let original =
            || Original::from_headers(headers.clone()).with_route(call.method, call.target);
        let (decision, carrier, trace) = match &self.browser {
            None => {
                let found = find_token(headers.clone(), self.options.cookie_suffix.as_deref());
                let carrier = found.as_ref().ok().map(|(_, carrier)| *carrier);
                let decision = match found.and_then(|(token, _)| self.authorize(token, now_ms)) {
                    Ok((grant, source)) => match rules.evaluate(&self.facts(&grant)) {
                        Verdict::Allow => Decision::allow(grant, source),
                        Verdict::Forbidden(refusal) => forbidden(&refusal),
                    },
                    Err(_) if rules.is_optional() => Decision::Anonymous,
                    Err(TokenError::KeysUnavailable) => Decision::Unavailable,
                    Err(e) => Decision::Deny(e),
                };
                (decision, carrier, Trace::default())
            }
            Some(browser) => match find_bearer(headers.clone()) {
                // An unusable Authorization header is refused as always.
                Err(_) if rules.is_optional() => (Decision::Anonymous, None, Trace::default()),
                Err(e) => (Decision::Deny(e), None, Trace::default()),
                Ok(bearer) => {
                    let mut original = original();
                    original.method = original.method.or(Some(call.method));
                    let (decision, trace) =
                        self.decide_browser(browser, &original, headers.clone(), bearer, now_ms);
                    let carrier = bearer.map_or(Carrier::Cookie, |_| Carrier::Header);
                    (self.with_rules(&rules, decision), Some(carrier), trace)
                }
            },
        };
        if log::log_enabled!(log::Level::Debug) {
            log_decision(&original(), &decision, carrier, trace, &self.verifier);
        }
        self.metrics.record_decision(&decision, started.elapsed());
        decision
    }

    /// A grant for `token`, from the cache or by verifying it: the decision
    /// once the token is found.
    pub fn authorize(&self, token: &str, now_ms: i64) -> Result<(Arc<Grant>, Source), TokenError> {
        self.verifier.policy().check_size(token)?;
        let Some(cache) = &self.cache else {
            return Ok((self.grant(token, now_ms)?, Source::Verified));
        };
        let key = cache.key(token);
        let generation = self.verifier.generation();
        if let Some(grant) = cache.get(key, now_ms, generation, |e| e.grant.clone()) {
            self.metrics.record_token(grant.issuer, true);
            return Ok((grant, Source::Cache));
        }
        let grant = self.grant(token, now_ms)?;
        if now_ms < grant.reuse_until_ms {
            let grant = grant.clone();
            cache.insert(key, Entry { grant, generation });
        }
        Ok((grant, Source::Verified))
    }

    /// Full verification, rendered once: the identity headers and
    /// `X-Accel-Expires`. The decision may be reused until the token's exp,
    /// capped at the decision TTL; nginx is told the same, one second early,
    /// because it keeps an `X-Accel-Expires: @T` entry through the whole
    /// second T.
    fn grant(&self, token: &str, now_ms: i64) -> Result<Arc<Grant>, TokenError> {
        let verified = match self.verifier.verify_routed_at(token, now_ms) {
            Ok(verified) => verified,
            Err(refused) => {
                if let Some(issuer) = refused.issuer {
                    self.metrics.record_token(issuer, false);
                }
                return Err(refused.error);
            }
        };
        self.metrics.record_token(verified.issuer, true);
        let exp_secs = verified
            .claims
            .expiry_secs()
            .ok_or(TokenError::InvalidExpiry)?;
        let ttl_ms = self.options.decision_ttl.as_millis() as i64;
        let reuse_until_ms = exp_secs
            .saturating_mul(1000)
            .min(now_ms.saturating_add(ttl_ms));
        let issuer = &self.verifier.issuers()[verified.issuer];
        let grant = Grant::new(GrantParts {
            issuer: verified.issuer,
            identity: &verified.identity,
            facts_from: issuer.clerk_facts.then_some(&verified.claims),
            extra_headers: &verified.headers[verified.identity_len..],
            reuse_until_ms,
        })
        .ok_or(TokenError::UnsafeHeaderValue)?;
        Ok(Arc::new(grant))
    }

    /// A browser decision under the location's rules: a signed-in browser
    /// must pass them; with `optional=1` a browser that is not signed in is let
    /// through anonymously instead of being refused or sent to sign in (a
    /// handshake, which renews a signed-in user's session, and the way back
    /// from it still happen).
    fn with_rules(&self, rules: &RuleSet, decision: Decision) -> Decision {
        match decision {
            Decision::Allow {
                grant,
                source,
                set_cookies,
            } => match rules.evaluate(&self.facts(&grant)) {
                Verdict::Allow => Decision::Allow {
                    grant,
                    source,
                    set_cookies,
                },
                Verdict::Forbidden(refusal) => forbidden(&refusal),
            },
            Decision::Redirect(r)
                if matches!(r.kind, RedirectKind::Handshake | RedirectKind::Return) =>
            {
                Decision::Redirect(r)
            }
            _ if rules.is_optional() => Decision::Anonymous,
            other => other,
        }
    }

    /// The rule facts of a grant (with its issuer's name).
    fn facts<'a>(&'a self, grant: &'a Grant) -> Facts<'a> {
        grant.facts(&self.verifier.issuers()[grant.issuer].name)
    }
}

/// One issuer's line of `/readyz`.
fn key_readiness(keys: &crate::keys::store::KeyStore, now_unix: u64) -> (bool, String) {
    let ready = keys.is_usable();
    let Some(fetched_at) = keys.fetched_at() else {
        return (false, "no keys loaded\n".into());
    };
    let age = now_unix.saturating_sub(fetched_at);
    let bound = keys
        .max_stale()
        .map_or(String::new(), |m| format!(" (at most {})", m.as_secs()));
    let state = if ready { "ready" } else { "keys too old" };
    let body = format!("{state}: {} key(s), {age} s old{bound}\n", keys.len());
    (ready, body)
}

/// How a proxy asked: the route's style, and the auth request's own method
/// and target (path and query).
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    pub style: Style,
    pub method: &'a str,
    pub target: &'a str,
}

impl<'a> Call<'a> {
    /// An nginx-style `GET /auth?<query>` (tests, benchmarks, fuzzing).
    pub fn auth(target: &'a str) -> Call<'a> {
        Call {
            style: Style::AuthRequest,
            method: "GET",
            target,
        }
    }

    /// The location's rules: the query of `/auth?...` or `/forward?...`.
    /// Below `/forward/` the query is the browser's own (Envoy), so there
    /// are none.
    pub fn rules_query(&self) -> &'a str {
        let (path, query) = self.target.split_once('?').unwrap_or((self.target, ""));
        if path.starts_with("/forward/") {
            ""
        } else {
            query
        }
    }
}

/// The 403 for a signed-in user who fails a rule; the header lines come
/// from the rule grammar's fixed words, so they are header-safe.
fn forbidden(refusal: &crate::rules::Forbidden<'_>) -> Decision {
    let mut headers = String::new();
    refusal.write_headers(&mut headers);
    let mut body = String::new();
    refusal.write_clerk_error(&mut body);
    Decision::Forbidden(Box::new(Forbidden {
        reason: refusal.reason.as_str(),
        headers,
        body,
    }))
}

/// The one debug line per decision: outcome, who or why, and the original
/// request the proxy forwarded (values escaped, so a client cannot forge
/// lines).
fn log_decision(
    original: &Original<'_>,
    decision: &Decision,
    carrier: Option<Carrier>,
    trace: Trace,
    verifier: &Verifier,
) {
    let escaped = |v: Option<&str>| v.map_or(String::from("-"), |v| v.escape_debug().to_string());
    let (method, uri) = (escaped(original.method), escaped(original.uri));
    let carrier = carrier.map_or("-", Carrier::name);
    let exchange = trace
        .exchange
        .map_or(String::new(), |l| format!(" exchange={l}"));
    match decision {
        Decision::Allow {
            grant,
            source,
            set_cookies,
        } => log::debug!(
            "allow sub={} sid={}{} carrier={carrier} cached={} cookies={}{exchange} method={method} uri={uri}",
            grant.user_id(),
            grant.session_id().unwrap_or("-"),
            match verifier.issuers() {
                [_] => String::new(),
                all => format!(" issuer={}", all[grant.issuer].name),
            },
            *source == Source::Cache,
            set_cookies.len(),
        ),
        Decision::Redirect(r) => log::debug!(
            "redirect kind={:?} reason={} carrier={carrier} cookies={}{exchange} method={method} uri={uri}",
            r.kind,
            r.reason,
            r.set_cookies.len(),
        ),
        _ => log::debug!(
            "deny reason={} carrier={carrier}{exchange} method={method} uri={uri}",
            decision.reason()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::jwk::VerifyingKey;
    use crate::keys::store::{unix_now, KeyStore};
    use crate::token::algorithms::AlgorithmSet;
    use crate::verify::Policy;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn gate(store: KeyStore) -> Gate {
        let policy = Policy {
            algorithms: AlgorithmSet::ALL,
            validation: Default::default(),
            max_token_bytes: 16 * 1024,
        };
        let options = GateOptions {
            cache_tokens: 0,
            decision_ttl: Duration::from_secs(60),
            cookie_suffix: None,
        };
        Gate::new(
            Verifier::new(Arc::new(store), policy),
            options,
            Arc::new(Metrics::default()),
        )
    }

    #[test]
    fn readiness_says_how_old_the_keys_are() {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let key = VerifyingKey::from_jwk(&serde_json::json!({
            "kty": "RSA", "kid": "k",
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        }))
        .unwrap();
        let store = KeyStore::new(4, Duration::from_secs(10), Duration::from_millis(1))
            .with_max_stale(Duration::from_secs(600));
        let now = unix_now();
        let g = gate(store);
        assert_eq!(g.readiness(now), (false, "no keys loaded\n".into()));
        let keys = g.verifier().keys();
        keys.install_jwks_fetched_at(vec![key.clone()], now - 35);
        assert_eq!(
            g.readiness(now),
            (true, "ready: 1 key(s), 35 s old (at most 600)\n".into())
        );
        assert!(g.is_ready());
        keys.install_jwks_fetched_at(vec![key], now - 700);
        assert_eq!(
            g.readiness(now),
            (
                false,
                "keys too old: 1 key(s), 700 s old (at most 600)\n".into()
            )
        );
        assert!(!g.is_ready());
    }
}
