//! The decision of `@clerk/backend`'s `authenticateRequest` for session
//! tokens (clerk-handshake.md §2), in the SDK's order, plus the return leg
//! of the handshake (§4) and jwtgate's stricter choices (listed in
//! [`super`]). Pure: no network I/O. Keys are reached only through
//! [`TokenVerifier`]; a nonce is handed back to the caller as
//! [`Outcome::NeedsNonceExchange`], and the caller resumes with
//! [`resume_with_directives`] once the Backend API answered.
//!
//! Out of scope, as in the brief: satellites (`isSatellite`, §2.4 C2),
//! the primary's half of satellite sync (C3, whose `Location` is any URL
//! from the query: an open redirect), `organizationSyncOptions` (C14), and
//! the Backend API refresh of expired tokens (§2.5).

use std::borrow::Cow;

use ::url::Url;
use serde::Deserialize;

use super::cookies::{latin1, ClerkCookies, Name};
use super::instance::{accounts_base_url, Instance};
use super::peek::{peek, Peek};
use super::url::{
    clean_url, handshake_url, origin, query_get, query_has, sign_in_url, HandshakeParams,
    HANDSHAKE_PARAMS,
};
use crate::token::algorithms::AlgorithmSet;
use crate::token::errors::TokenError;
use crate::token::json::{parse_object, present, Json};
use crate::token::{decode_jws, Jws};

/// At most this many `Set-Cookie` directives in one answer (nginx carries
/// them in `X-Jwtgate-Set-Cookie-1..16`).
pub const MAX_SET_COOKIES: usize = 16;
/// Longest `Set-Cookie` directive passed through from a payload.
pub const MAX_DIRECTIVE_BYTES: usize = 4096;
/// Longest handshake token read (a payload of ~10 directives is ~6 KB).
pub const MAX_HANDSHAKE_TOKEN_BYTES: usize = 64 * 1024;
/// Longest nonce sent to the Backend API.
pub const MAX_NONCE_BYTES: usize = 1024;
/// A handshake token that carries `iat` is refused when older than this.
pub const MAX_HANDSHAKE_AGE_SECS: i64 = 300;
/// The loop guard stops at this many consecutive handshakes.
pub const MAX_HANDSHAKES_IN_A_ROW: f64 = 3.0;

/// Cookie-name prefixes whose directives pass through from a payload.
const CLERK_COOKIE_PREFIXES: [&str; 4] = ["__session", "__client_uat", "__refresh", "__clerk_"];

/// Verifies tokens for the decision (implemented for
/// [`crate::verify::Verifier`]; the gate may wrap its cache around it).
pub trait TokenVerifier {
    /// What a verified session token yields (identity, claims, ...).
    type Verified;

    /// Full verification of a session token: signature, then claims.
    fn verify_session(&self, token: &str, now_ms: i64) -> Result<Self::Verified, TokenError>;

    /// The signature of a handshake token with the instance's keys (its
    /// header was already checked: `typ`, `cat`, `alg` in the RS family).
    fn check_handshake_signature(&self, jws: &Jws<'_>) -> Result<(), TokenError>;

    /// Clock leeway, for the handshake token's own `iat`/`exp` bound.
    fn leeway_ms(&self) -> i64 {
        5000
    }
}

impl TokenVerifier for crate::verify::Verifier {
    type Verified = crate::verify::Verified;

    fn verify_session(&self, token: &str, now_ms: i64) -> Result<Self::Verified, TokenError> {
        self.verify_at(token, now_ms)
    }

    fn check_handshake_signature(&self, jws: &Jws<'_>) -> Result<(), TokenError> {
        self.check_jws(jws)
    }

    fn leeway_ms(&self) -> i64 {
        self.policy().validation.leeway_ms
    }
}

/// The original request, as the decision reads it.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The original method (case-sensitive, as the SDK compares it).
    pub method: &'a [u8],
    /// The SDK's `clerkUrl`; `None` when the proxy sent no usable URL
    /// (then nothing redirects).
    pub url: Option<Url>,
    pub cookies: ClerkCookies<'a>,
    /// The token from `Authorization: Bearer`, found as jwtgate always has.
    pub bearer: Option<&'a str>,
    pub accept: Option<&'a [u8]>,
    pub sec_fetch_dest: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
}

/// The original request line, as the gate reads it from the proxy's
/// headers (`gate::original`: X-Forwarded-* / X-Original-*, the Envoy
/// route); the browser flow never reads those headers itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target<'a> {
    /// The original method (`""` when unknown: then nothing GET-only
    /// happens).
    pub method: &'a str,
    /// `http` or `https` (the first item of `X-Forwarded-Proto`).
    pub proto: &'a str,
    pub host: Option<&'a str>,
    /// Path and query as the browser sent them.
    pub uri: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// The request as the decision reads it: the original request line
    /// from `target`; from `headers`, every `Cookie` header (bytewise) and
    /// the first non-empty `Accept`, `Sec-Fetch-Dest` and `Referer`.
    /// `bearer` is the token the caller extracted from `Authorization`.
    pub fn new<I>(
        target: Target<'a>,
        headers: I,
        cookie_suffix: &str,
        bearer: Option<&'a str>,
    ) -> Request<'a>
    where
        I: Iterator<Item = (&'a str, &'a [u8])> + Clone,
    {
        let get = |name: &str| {
            headers
                .clone()
                .find(|(n, v)| n.eq_ignore_ascii_case(name) && !v.is_empty())
                .map(|(_, v)| v)
        };
        let url = super::url::clerk_url(
            Some(target.proto.as_bytes()),
            target.host.map(str::as_bytes),
            target.uri.map(str::as_bytes),
        );
        let cookies = ClerkCookies::parse(
            headers
                .clone()
                .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
                .map(|(_, v)| v),
            cookie_suffix,
        );
        Request {
            method: target.method.as_bytes(),
            url,
            cookies,
            bearer,
            accept: get("accept"),
            sec_fetch_dest: get("sec-fetch-dest"),
            referer: get("referer"),
        }
    }
}

/// Why a request is signed out or needs a handshake: the SDK's reason words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    ClientUatButNoSessionToken,
    SessionTokenButNoClientUat,
    SessionTokenIatBeforeClientUat,
    DevBrowserMissing,
    DevBrowserSync,
    PrimaryDomainCrossOriginSync,
    SessionTokenNbf,
    SessionTokenIatInTheFuture,
    /// `session-token-expired-refresh-<why no refresh>`.
    SessionTokenExpired(Refresh),
    SessionTokenAndUatMissing,
    /// A resolved handshake without a session token.
    SessionTokenMissing,
    TokenTypeMismatch,
    /// Any other verification failure, by its reason word.
    Token(TokenError),
    /// jwtgate: a development return leg with a bad handshake token (the
    /// SDK rejects the whole request there).
    HandshakeTokenInvalid,
}

/// Why an expired session token was not refreshed through the Backend API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    NonEligibleNonGet,
    NonEligibleNoRefreshCookie,
    /// A GET with a `__refresh_<sfx>` cookie: the SDK would call the
    /// Backend API; jwtgate does not (yet), as an SDK without an API client.
    MissingApiClient,
}

impl Reason {
    /// Every reason that is not a token error, in a fixed order: the
    /// bounded label set of the metrics ([`Reason::own_index`]).
    /// `token-type-mismatch` is left out: it is the word of
    /// [`TokenError::WrongCategory`] too ([`Reason::token_error`]).
    pub const OWN: [Reason; 14] = [
        Reason::ClientUatButNoSessionToken,
        Reason::SessionTokenButNoClientUat,
        Reason::SessionTokenIatBeforeClientUat,
        Reason::DevBrowserMissing,
        Reason::DevBrowserSync,
        Reason::PrimaryDomainCrossOriginSync,
        Reason::SessionTokenNbf,
        Reason::SessionTokenIatInTheFuture,
        Reason::SessionTokenExpired(Refresh::NonEligibleNonGet),
        Reason::SessionTokenExpired(Refresh::NonEligibleNoRefreshCookie),
        Reason::SessionTokenExpired(Refresh::MissingApiClient),
        Reason::SessionTokenAndUatMissing,
        Reason::SessionTokenMissing,
        Reason::HandshakeTokenInvalid,
    ];

    /// The position in [`Reason::OWN`]; `None` for a token error.
    pub fn own_index(self) -> Option<usize> {
        Reason::OWN.iter().position(|r| *r == self)
    }

    /// The token error this reason is, when it is one.
    pub fn token_error(self) -> Option<TokenError> {
        match self {
            Reason::Token(e) => Some(e),
            Reason::TokenTypeMismatch => Some(TokenError::WrongCategory),
            _ => None,
        }
    }

    /// Whether a request carried no credential at all (nothing to call
    /// invalid: a bare `WWW-Authenticate: Bearer`, as RFC 6750 asks).
    pub fn no_credential(self) -> bool {
        matches!(
            self,
            Reason::SessionTokenAndUatMissing | Reason::Token(TokenError::Missing)
        )
    }

    /// Whether the SDK can answer this reason with a handshake.
    pub fn can_handshake(self) -> bool {
        self.token_error().is_none()
            && !matches!(
                self,
                Reason::SessionTokenAndUatMissing
                    | Reason::SessionTokenMissing
                    | Reason::HandshakeTokenInvalid
            )
    }

    /// The reason word (`__clerk_hs_reason`, logs, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ClientUatButNoSessionToken => "client-uat-but-no-session-token",
            Reason::SessionTokenButNoClientUat => "session-token-but-no-client-uat",
            Reason::SessionTokenIatBeforeClientUat => "session-token-iat-before-client-uat",
            Reason::DevBrowserMissing => "dev-browser-missing",
            Reason::DevBrowserSync => "dev-browser-sync",
            Reason::PrimaryDomainCrossOriginSync => "primary-domain-cross-origin-sync",
            Reason::SessionTokenNbf => "session-token-nbf",
            Reason::SessionTokenIatInTheFuture => "session-token-iat-in-the-future",
            Reason::SessionTokenExpired(Refresh::NonEligibleNonGet) => {
                "session-token-expired-refresh-non-eligible-non-get"
            }
            Reason::SessionTokenExpired(Refresh::NonEligibleNoRefreshCookie) => {
                "session-token-expired-refresh-non-eligible-no-refresh-cookie"
            }
            Reason::SessionTokenExpired(Refresh::MissingApiClient) => {
                "session-token-expired-refresh-missing-api-client"
            }
            Reason::SessionTokenAndUatMissing => "session-token-and-uat-missing",
            Reason::SessionTokenMissing => "session-token-missing",
            Reason::TokenTypeMismatch => "token-type-mismatch",
            Reason::Token(e) => e.reason(),
            Reason::HandshakeTokenInvalid => "handshake-token-invalid",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A redirect the gate sends (307, or 303 to turn a non-GET navigation
/// into a GET), always with `Cache-Control: no-store`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// Absolute URL, visible ASCII only.
    pub location: String,
    pub status: u16,
    pub kind: RedirectKind,
}

/// Where a [`Redirect`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectKind {
    /// A signed-out navigation goes to sign in.
    SignIn,
    /// The return leg of a handshake ends on the URL without its parameters.
    ReturnLeg,
}

/// The decision.
#[derive(Debug)]
pub enum Outcome<V> {
    /// Allow, with these cookies. With a `redirect` (a return leg on a
    /// navigation whose URL carried handshake parameters), the gate
    /// redirects there with the cookies instead of allowing.
    SignedIn {
        token: String,
        verified: V,
        set_cookies: Vec<String>,
        redirect: Option<Redirect>,
    },
    /// Deny (401; 503 when `error` is [`TokenError::KeysUnavailable`]),
    /// with these cookies. A navigation carries a `redirect`: to sign in,
    /// or, on a return leg whose URL carried handshake parameters, to the
    /// clean URL.
    SignedOut {
        reason: Reason,
        error: Option<TokenError>,
        set_cookies: Vec<String>,
        redirect: Option<Redirect>,
    },
    /// 307 to the Frontend API's handshake endpoint, `Cache-Control:
    /// no-store`, and the cookies (the loop counter among them).
    Handshake {
        reason: Reason,
        location: String,
        set_cookies: Vec<String>,
    },
    /// Exchange this nonce with the Backend API (off the HTTP workers), then
    /// call [`resume_with_directives`].
    NeedsNonceExchange { nonce: String },
}

impl<V> Outcome<V> {
    /// The `Set-Cookie` directives to send (none for a nonce exchange).
    pub fn set_cookies(&self) -> &[String] {
        match self {
            Outcome::SignedIn { set_cookies, .. }
            | Outcome::SignedOut { set_cookies, .. }
            | Outcome::Handshake { set_cookies, .. } => set_cookies,
            Outcome::NeedsNonceExchange { .. } => &[],
        }
    }

    /// The redirect to send, if any, as `(location, status)`.
    pub fn location(&self) -> Option<(&str, u16)> {
        match self {
            Outcome::SignedIn { redirect, .. } | Outcome::SignedOut { redirect, .. } => {
                redirect.as_ref().map(|r| (r.location.as_str(), r.status))
            }
            Outcome::Handshake { location, .. } => Some((location, 307)),
            Outcome::NeedsNonceExchange { .. } => None,
        }
    }
}

/// `authenticateRequest` for one request. Returns
/// [`Outcome::NeedsNonceExchange`] when a handshake nonce must be exchanged
/// first; the caller then calls [`resume_with_directives`].
pub fn decide<V: TokenVerifier>(
    instance: &Instance,
    request: &Request<'_>,
    verifier: &V,
    now_ms: i64,
) -> Outcome<V::Verified> {
    Flow::new(instance, request, verifier, now_ms).run(None)
}

/// The decision after a nonce exchange: `directives` is the payload's
/// `Set-Cookie` list, or `None` when the exchange failed (which the SDK
/// treats as an empty payload).
pub fn resume_with_directives<V: TokenVerifier>(
    instance: &Instance,
    request: &Request<'_>,
    verifier: &V,
    now_ms: i64,
    directives: Option<Vec<String>>,
) -> Outcome<V::Verified> {
    Flow::new(instance, request, verifier, now_ms).run(Some(directives.unwrap_or_default()))
}

/// Whether the request is a top-level navigation by its headers:
/// `Sec-Fetch-Dest` document or iframe, or none and an `Accept` that starts
/// with `text/html` (case-sensitive, as the SDK tests it).
pub fn is_navigation(request: &Request<'_>) -> bool {
    match request.sec_fetch_dest {
        Some(b"document" | b"iframe") => true,
        Some(_) => false,
        None => request.accept.is_some_and(|a| a.starts_with(b"text/html")),
    }
}

/// `isRequestEligibleForHandshake`: a GET navigation (and, for jwtgate, a
/// known URL to come back to).
pub fn is_eligible(request: &Request<'_>) -> bool {
    request.url.is_some() && request.method == b"GET" && is_navigation(request)
}

struct Flow<'r, 'a, V> {
    instance: &'r Instance,
    req: &'r Request<'a>,
    verifier: &'r V,
    now_ms: i64,
    suffixed: bool,
    counter: f64,
    /// Directives jwtgate adds (clearing the handshake cookies).
    extra: Vec<String>,
    /// The plain `__session` cookie, decoded (boxed: the flow is moved
    /// around by value).
    plain_peek: Option<Box<Peek>>,
}

impl<'r, 'a, V: TokenVerifier> Flow<'r, 'a, V> {
    fn new(instance: &'r Instance, req: &'r Request<'a>, verifier: &'r V, now_ms: i64) -> Self {
        // The plain session cookie is decoded once: for the choice of
        // cookie set and, when that is the plain set, for C9 to C11.
        let plain_peek = req.cookies.get(Name::Session).and_then(peek).map(Box::new);
        let suffixed = req.cookies.uses_suffixed_peeked(
            plain_peek.as_deref(),
            instance.frontend_api_host(),
            instance.is_production(),
            now_ms,
        );
        Flow {
            instance,
            req,
            verifier,
            now_ms,
            suffixed,
            counter: req.cookies.redirect_count(),
            extra: Vec::new(),
            plain_peek,
        }
    }

    fn development(&self) -> bool {
        !self.instance.is_production()
    }

    fn query(&self, name: &str) -> Option<Cow<'r, str>> {
        let url = self.req.url.as_ref()?;
        query_get(url, name).filter(|v| !v.is_empty())
    }

    fn session_cookie(&self) -> Option<&'r str> {
        self.req.cookies.session(self.suffixed)
    }

    /// The SDK's `sessionToken`: the cookie's, else the header's.
    fn session_token(&self) -> Option<&'r str> {
        self.session_cookie()
            .or(self.req.bearer.filter(|t| !t.is_empty()))
    }

    fn client_uat(&self) -> f64 {
        self.req.cookies.client_uat(self.suffixed)
    }

    fn dev_browser(&self) -> Option<Cow<'r, str>> {
        self.query("__clerk_db_jwt").or_else(|| {
            self.req
                .cookies
                .dev_browser(self.suffixed)
                .map(Cow::Borrowed)
        })
    }

    fn run(self, exchanged: Option<Vec<String>>) -> Outcome<V::Verified> {
        if let Some(token) = self.req.bearer.filter(|t| !t.is_empty()) {
            return self.header_path(token);
        }
        self.cookie_path(exchanged)
    }

    /// §2.2: `Authorization` carries the token; cookies are ignored.
    fn header_path(self, token: &'r str) -> Outcome<V::Verified> {
        if peek(token).is_some_and(|p| p.is_machine() || p.has_non_session_category()) {
            return self.signed_out(Reason::TokenTypeMismatch, None);
        }
        match self.verifier.verify_session(token, self.now_ms) {
            Ok(verified) => self.signed_in(token, verified),
            Err(e) => self.token_error(e),
        }
    }

    /// §2.4, C1 and C4 to C13.
    fn cookie_path(mut self, exchanged: Option<Vec<String>>) -> Outcome<V::Verified> {
        let nonce = self.query("__clerk_handshake_nonce").or_else(|| {
            self.req
                .cookies
                .get(Name::HandshakeNonce)
                .map(Cow::Borrowed)
        });
        let handshake = self
            .query("__clerk_handshake")
            .or_else(|| self.req.cookies.get(Name::Handshake).map(Cow::Borrowed));
        if nonce.is_some() || handshake.is_some() {
            self.extra = self.clearing_directives();
        }
        // C1: the return leg, before anything else (nonce wins over token).
        if let Some(nonce) = nonce {
            if !is_eligible(self.req) {
                // Stricter: no Backend API call for a request that is not a
                // GET navigation; decide from the cookies as if the
                // resolution had failed (the nonce cookie is cleared).
                log::debug!("handshake nonce on a non-navigation request: not exchanged");
            } else if nonce.len() > MAX_NONCE_BYTES {
                log::warn!("handshake nonce of {} bytes refused", nonce.len());
                return self
                    .resolve(Vec::new())
                    .unwrap_or_else(|f| f.continue_at_c2());
            } else {
                match exchanged {
                    None => {
                        return Outcome::NeedsNonceExchange {
                            nonce: nonce.into_owned(),
                        }
                    }
                    Some(directives) => match self.resolve(directives) {
                        Ok(outcome) => return outcome,
                        Err(flow) => return flow.continue_at_c2(),
                    },
                }
            }
        } else if let Some(token) = handshake {
            match verify_handshake_token(self.verifier, &token, self.now_ms) {
                Ok(directives) => match self.resolve(directives) {
                    Ok(outcome) => return outcome,
                    Err(flow) => return flow.continue_at_c2(),
                },
                Err(e) if self.development() => {
                    // The SDK rejects the request (a 500) so that switched
                    // keys cannot loop; jwtgate ends signed out, no redirect.
                    log::warn!("development handshake token refused: {e}");
                    let set_cookies = std::mem::take(&mut self.extra);
                    return Outcome::SignedOut {
                        reason: Reason::HandshakeTokenInvalid,
                        error: Some(e),
                        set_cookies,
                        redirect: None,
                    };
                }
                Err(e) => log::info!("handshake token refused, deciding from cookies: {e}"),
            }
        }
        self.continue_at_c2()
    }

    /// C2 onwards (satellite sync and C3 are out of scope).
    fn continue_at_c2(mut self) -> Outcome<V::Verified> {
        let dev = self.development();
        // C4
        if dev
            && self
                .req
                .url
                .as_ref()
                .is_some_and(|u| query_has(u, "__clerk_db_jwt"))
        {
            return self.maybe_handshake(Reason::DevBrowserSync);
        }
        // C5
        if dev && self.dev_browser().is_none() {
            return self.maybe_handshake(Reason::DevBrowserMissing);
        }
        let uat = self.client_uat();
        let session = self.session_cookie();
        let Some(session) = session else {
            // C6, C8
            return if uat == 0.0 {
                self.signed_out(Reason::SessionTokenAndUatMissing, None)
            } else {
                self.maybe_handshake(Reason::ClientUatButNoSessionToken)
            };
        };
        // C7
        if uat == 0.0 {
            return self.maybe_handshake(Reason::SessionTokenButNoClientUat);
        }
        // C9 (the session is the plain cookie unless suffixed: decoded then)
        let p = if self.suffixed {
            peek(session)
        } else {
            self.plain_peek.take().map(|p| *p)
        };
        let Some(p) = p else {
            return self.token_error(TokenError::Malformed);
        };
        // C10
        if p.is_machine() || p.has_non_session_category() {
            return self.signed_out(Reason::TokenTypeMismatch, None);
        }
        // C11
        if p.issued_before(uat) {
            return self.maybe_handshake(Reason::SessionTokenIatBeforeClientUat);
        }
        // C12
        let verified = match self.verifier.verify_session(session, self.now_ms) {
            Ok(v) => v,
            Err(e) => return self.token_error(e),
        };
        // C13: a document GET from a foreign site costs one handshake.
        if self.req.method == b"GET"
            && self.req.sec_fetch_dest == Some(b"document")
            && self.cross_origin_referrer()
            && !self.known_clerk_referrer()
            && self.counter == 0.0
        {
            return self.maybe_handshake(Reason::PrimaryDomainCrossOriginSync);
        }
        self.signed_in(session, verified)
    }

    /// §4.4 `resolveHandshake` with the payload's directives. `Err` is the
    /// SDK's throw: the caller continues at C2 (the payload is dropped).
    fn resolve(mut self, directives: Vec<String>) -> Result<Outcome<V::Verified>, Self> {
        // Room for jwtgate's own directives (clearing, the dev browser pair).
        let room = MAX_SET_COOKIES.saturating_sub(self.extra.len() + 2);
        let mut set_cookies = pass_through(directives, room);
        let session = set_cookies
            .iter()
            .rev()
            .find(|d| cookie_name(d).starts_with("__session"))
            .map(|d| cookie_value(d).to_string())
            .unwrap_or_default();
        if let Some(keep) = self.dev_browser_cookies(&set_cookies) {
            set_cookies.extend(keep);
        }
        set_cookies.append(&mut self.extra);
        let redirect = self.return_leg_redirect();
        if session.is_empty() {
            let redirect = redirect.or_else(|| self.sign_in(Reason::SessionTokenMissing));
            return Ok(Outcome::SignedOut {
                reason: Reason::SessionTokenMissing,
                error: None,
                set_cookies,
                redirect,
            });
        }
        match self.verifier.verify_session(&session, self.now_ms) {
            Ok(verified) => Ok(Outcome::SignedIn {
                token: session,
                verified,
                set_cookies,
                redirect,
            }),
            Err(e) => {
                // No 24 h clock-skew retry on development instances: the
                // payload's session token must pass the normal checks.
                log::info!(
                    "handshake payload's session token refused ({e}); deciding from cookies"
                );
                self.extra = self.clearing_directives();
                Err(self)
            }
        }
    }

    /// On a development instance, the dev browser token that came in the
    /// URL is kept as clerk-js keeps it (`__clerk_db_jwt_<sfx>` and
    /// `__clerk_db_jwt`, Path=/, one year, SameSite=Lax, Secure over https)
    /// unless the payload sets it itself.
    fn dev_browser_cookies(&self, payload: &[String]) -> Option<[String; 2]> {
        if !self.development()
            || payload
                .iter()
                .any(|d| cookie_name(d).starts_with("__clerk_db_jwt"))
        {
            return None;
        }
        let token = self.query("__clerk_db_jwt")?;
        if token.len() > 4096 || !token.bytes().all(is_cookie_octet) {
            log::warn!("dev browser token in the URL is not a cookie value; not kept");
            return None;
        }
        let secure = match &self.req.url {
            Some(u) if u.scheme() == "https" => "; Secure",
            _ => "",
        };
        let attributes = format!("Path=/; Max-Age=31536000; SameSite=Lax{secure}");
        Some([
            format!(
                "__clerk_db_jwt_{}={token}; {attributes}",
                self.instance.cookie_suffix()
            ),
            format!("__clerk_db_jwt={token}; {attributes}"),
        ])
    }

    /// Clears `__clerk_handshake` and `__clerk_handshake_nonce`: host-only,
    /// and on the parent domain this host shares with the Frontend API
    /// (where the Frontend API sets them in production), so a stale nonce
    /// or token cannot decide request after request.
    fn clearing_directives(&self) -> Vec<String> {
        let domain = self
            .req
            .url
            .as_ref()
            .and_then(|u| u.domain())
            .and_then(|host| shared_parent_domain(host, self.instance.frontend_api_host()));
        let mut out = Vec::with_capacity(4);
        for name in ["__clerk_handshake", "__clerk_handshake_nonce"] {
            out.push(format!("{name}=; Path=/; Max-Age=0"));
            if let Some(domain) = &domain {
                out.push(format!("{name}=; Path=/; Domain={domain}; Max-Age=0"));
            }
        }
        out
    }

    /// The return leg ends on the clean URL when this is a GET navigation
    /// whose URL carries handshake parameters. (Without parameters, a
    /// redirect to the same URL could loop on an uncleared cookie; the
    /// page is then served with the cookies, as the SDK does.)
    fn return_leg_redirect(&self) -> Option<Redirect> {
        let url = self.req.url.as_ref()?;
        if !is_eligible(self.req) || !HANDSHAKE_PARAMS.iter().any(|p| query_has(url, p)) {
            return None;
        }
        safe_redirect(clean_url(url).into(), 307, RedirectKind::ReturnLeg)
    }

    /// §2.5 TOKEN_ERROR.
    fn token_error(self, e: TokenError) -> Outcome<V::Verified> {
        let refresh = if self.req.method != b"GET" {
            Refresh::NonEligibleNonGet
        } else if self.req.cookies.get(Name::RefreshSuffixed).is_none() {
            Refresh::NonEligibleNoRefreshCookie
        } else {
            Refresh::MissingApiClient
        };
        match e {
            TokenError::Expired => self.maybe_handshake(Reason::SessionTokenExpired(refresh)),
            TokenError::NotActiveYet => self.maybe_handshake(Reason::SessionTokenNbf),
            TokenError::IssuedInTheFuture => {
                self.maybe_handshake(Reason::SessionTokenIatInTheFuture)
            }
            e => self.signed_out(Reason::Token(e), Some(e)),
        }
    }

    /// §2.3 `handleMaybeHandshakeStatus`.
    fn maybe_handshake(mut self, reason: Reason) -> Outcome<V::Verified> {
        if !is_eligible(self.req) {
            return self.signed_out(reason, None);
        }
        let Some(location) = self.handshake_location(reason) else {
            return self.signed_out(reason, None);
        };
        // Stricter loop guard: the SDK stops only at exactly 3 (so 5 or
        // -1 loop on); jwtgate stops at 3 or more, and on a negative count.
        if !(0.0..MAX_HANDSHAKES_IN_A_ROW).contains(&self.counter) {
            log::warn!(
                "handshake loop guard: {} handshakes in a row ({reason}); signing out",
                self.counter
            );
            return self.signed_out(reason, None);
        }
        let mut set_cookies = std::mem::take(&mut self.extra);
        set_cookies.push(format!(
            "__clerk_redirect_count={}; SameSite=Lax; HttpOnly; Max-Age=2",
            self.counter + 1.0
        ));
        Outcome::Handshake {
            reason,
            location,
            set_cookies,
        }
    }

    fn handshake_location(&self, reason: Reason) -> Option<String> {
        let url = self.req.url.as_ref()?;
        let frontend_api = self.instance.frontend_api(Some(&origin(url)))?;
        let dev_browser = if self.development() {
            self.dev_browser()
        } else {
            None
        };
        let location = handshake_url(&HandshakeParams {
            frontend_api: &frontend_api,
            clerk_url: url,
            suffixed_cookies: self.suffixed,
            reason: reason.as_str(),
            session: self.session_token(),
            dev_browser: dev_browser.as_deref(),
        })?;
        safe_location(location)
    }

    fn signed_in(mut self, token: &str, verified: V::Verified) -> Outcome<V::Verified> {
        Outcome::SignedIn {
            token: token.to_string(),
            verified,
            set_cookies: std::mem::take(&mut self.extra),
            redirect: None,
        }
    }

    fn signed_out(mut self, reason: Reason, error: Option<TokenError>) -> Outcome<V::Verified> {
        let redirect = self.sign_in(reason);
        Outcome::SignedOut {
            reason,
            error,
            set_cookies: std::mem::take(&mut self.extra),
            redirect,
        }
    }

    /// A signed-out navigation goes to sign in, with `redirect_url` = the
    /// URL without handshake parameters (a GET keeps 307; another method
    /// gets 303, so the sign-in page is fetched with GET). Not for an
    /// outage (no keys), which is a 503.
    fn sign_in(&self, reason: Reason) -> Option<Redirect> {
        if reason == Reason::Token(TokenError::KeysUnavailable) || !is_navigation(self.req) {
            return None;
        }
        let url = self.req.url.as_ref()?;
        let target = self.instance.sign_in_url(url)?;
        let dev_browser = if self.development() {
            self.dev_browser()
        } else {
            None
        };
        let location = sign_in_url(target, &clean_url(url), dev_browser.as_deref());
        let status = if matches!(self.req.method, b"GET" | b"HEAD") {
            307
        } else {
            303
        };
        safe_redirect(location, status, RedirectKind::SignIn)
    }

    /// `isCrossOriginReferrer`.
    fn cross_origin_referrer(&self) -> bool {
        let (Some(referer), Some(url)) = (self.req.referer, &self.req.url) else {
            return false;
        };
        // The usual case, a link within the site, without parsing: the
        // Referer starts with this URL's origin (browsers send it
        // normalised) and a path, query or nothing follows.
        let own = &url[..::url::Position::BeforePath];
        if let Some(rest) = referer.strip_prefix(own.as_bytes()) {
            if matches!(rest.first(), None | Some(b'/' | b'?' | b'#')) {
                return false;
            }
        }
        match Url::parse(&latin1(referer)) {
            // An http(s) origin is (scheme, host, port): compared without
            // serialising either (this runs on every signed-in navigation).
            Ok(r) if matches!(r.scheme(), "http" | "https") => {
                r.scheme() != url.scheme()
                    || r.host() != url.host()
                    || r.port_or_known_default() != url.port_or_known_default()
            }
            Ok(r) => origin(&r) != origin(url),
            Err(_) => false,
        }
    }

    /// `isKnownClerkReferrer`: the Frontend API host, a development
    /// Account Portal (development instances only), or exactly this
    /// instance's Account Portal origin.
    fn known_clerk_referrer(&self) -> bool {
        let (Some(referer), Some(url)) = (self.req.referer, &self.req.url) else {
            return false;
        };
        let Ok(r) = Url::parse(&latin1(referer)) else {
            return false;
        };
        let host = r.host_str().unwrap_or("");
        let Some(frontend_api) = self.instance.frontend_api(Some(&origin(url))) else {
            return false;
        };
        let fapi_host = if frontend_api.starts_with("http") {
            match Url::parse(&frontend_api) {
                Ok(u) => u.host_str().unwrap_or("").to_string(),
                Err(_) => return false,
            }
        } else {
            frontend_api.clone()
        };
        if host == fapi_host {
            return true;
        }
        if self.development()
            && (legacy_dev_account_portal(host) || current_dev_account_portal(host))
        {
            return true;
        }
        match Url::parse(&accounts_base_url(&frontend_api)) {
            Ok(accounts) => origin(&accounts) == origin(&r),
            Err(_) => false,
        }
    }
}

/// `isLegacyDevAccountPortalOrigin`.
fn legacy_dev_account_portal(host: &str) -> bool {
    host.starts_with("accounts.")
        && [".lcl.dev", ".lclstage.dev", ".lclclerk.com"]
            .iter()
            .any(|s| host.ends_with(s))
}

/// `isCurrentDevAccountPortalOrigin`.
fn current_dev_account_portal(host: &str) -> bool {
    [
        ".accounts.dev",
        ".accountsstage.dev",
        ".accounts.lclclerk.com",
    ]
    .iter()
    .any(|s| host.ends_with(s) && !host.ends_with(&format!(".clerk{s}")))
}

/// The longest domain of two or more labels that both hosts are in (the
/// site's host and the Frontend API's: `example.com` for
/// `app.example.com` and `clerk.example.com`).
fn shared_parent_domain(host: &str, frontend_api_host: &str) -> Option<String> {
    let a: Vec<&str> = host.rsplit('.').collect();
    let b: Vec<&str> = frontend_api_host.rsplit('.').collect();
    let shared = a
        .iter()
        .zip(&b)
        .take_while(|(x, y)| x.eq_ignore_ascii_case(y) && !x.is_empty())
        .count();
    if shared < 2 {
        return None;
    }
    let mut labels: Vec<&str> = a[..shared].to_vec();
    labels.reverse();
    Some(labels.join(".").to_ascii_lowercase())
}

/// A Location the gate may send: visible ASCII only (URLs serialized by
/// the `url` crate always are; this is a last guard against header injection).
fn safe_location(location: String) -> Option<String> {
    if location.is_empty() || !location.bytes().all(|b| b.is_ascii_graphic()) {
        log::warn!("refusing a Location that is not visible ASCII");
        return None;
    }
    Some(location)
}

fn safe_redirect(location: String, status: u16, kind: RedirectKind) -> Option<Redirect> {
    safe_location(location).map(|location| Redirect {
        location,
        status,
        kind,
    })
}

/// `getCookieName`: the text before the first `=` of the part before the first `;`.
fn cookie_name(directive: &str) -> &str {
    let pair = directive.split(';').next().unwrap_or("");
    pair.split('=').next().unwrap_or("")
}

/// `getCookieValue`: between the first and second `=` of that part.
fn cookie_value(directive: &str) -> &str {
    let pair = directive.split(';').next().unwrap_or("");
    pair.split('=').nth(1).unwrap_or("")
}

/// RFC 6265 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// The payload's directives that may reach the browser, in order: Clerk's
/// cookie names only, printable, bounded in size and count. The others are
/// logged and dropped.
fn pass_through(directives: Vec<String>, max: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(directives.len().min(max));
    for d in directives {
        let name = cookie_name(&d);
        let clerk = CLERK_COOKIE_PREFIXES.iter().any(|p| name.starts_with(p));
        let printable = d.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
        if !clerk || !printable || d.len() > MAX_DIRECTIVE_BYTES || name.trim() != name {
            log::warn!(
                "handshake payload: dropped a Set-Cookie for {:?} (not a Clerk cookie, or unsafe)",
                name.escape_debug().to_string()
            );
        } else if out.len() >= max {
            log::warn!("handshake payload: dropped Set-Cookie {name} (over {max} directives)");
        } else {
            out.push(d);
        }
    }
    out
}

#[derive(Deserialize)]
struct HandshakeClaims {
    #[serde(default, deserialize_with = "present")]
    handshake: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<Json>,
}

/// §4.2 `verifyHandshakeToken`: the header (`typ` absent or `JWT`, `alg`
/// RS256/384/512, `cat` absent or a session category; jwtgate also refuses
/// `crit`), the signature with the instance's keys, then the payload's
/// `handshake` array of `Set-Cookie` strings (anything else there yields
/// no directives). Stricter than the SDK, which checks no claim: an `exp`
/// must not have passed and an `iat` must be at most
/// [`MAX_HANDSHAKE_AGE_SECS`] old and not in the future (with leeway).
pub fn verify_handshake_token<V: TokenVerifier + ?Sized>(
    verifier: &V,
    token: &str,
    now_ms: i64,
) -> Result<Vec<String>, TokenError> {
    if token.len() > MAX_HANDSHAKE_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let jws = decode_jws(token)?;
    if !AlgorithmSet::CLERK.contains(jws.header.alg) {
        return Err(TokenError::InvalidAlgorithm);
    }
    verifier.check_handshake_signature(&jws)?;
    let claims: HandshakeClaims = parse_object(&jws.payload)?;
    let leeway = verifier.leeway_ms() as f64;
    let now = now_ms as f64;
    let seconds = |v: &Option<Json>, invalid: TokenError| match v {
        None => Ok(None),
        Some(Json::Number(s)) if s.is_finite() => Ok(Some(s.trunc() * 1000.0)),
        Some(_) => Err(invalid),
    };
    if let Some(exp) = seconds(&claims.exp, TokenError::InvalidExpiry)? {
        if exp <= now - leeway {
            return Err(TokenError::Expired);
        }
    }
    if let Some(iat) = seconds(&claims.iat, TokenError::InvalidIssuedAt)? {
        if iat > now + leeway {
            return Err(TokenError::IssuedInTheFuture);
        }
        if iat < now - leeway - (MAX_HANDSHAKE_AGE_SECS * 1000) as f64 {
            return Err(TokenError::Expired);
        }
    }
    let Some(Json::Array(items)) = claims.handshake else {
        return Ok(Vec::new());
    };
    let mut directives = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Json::String(s) => directives.push(s),
            _ => log::warn!("handshake token: a directive that is not a string was dropped"),
        }
    }
    Ok(directives)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::peek::tests::unsigned;
    use crate::token::claims::Validation;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const NOW: i64 = 1_700_000_000_000;
    const S: i64 = NOW / 1000;
    const PK_LIVE: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"; // clerk.example.com
    const PK_TEST: &str = "pk_test_aGFwcHktaGlwcG8tMS5jbGVyay5hY2NvdW50cy5kZXYk"; // happy-hippo-1.clerk.accounts.dev
    const SFX: &str = "naoXFJnI";

    /// Tokens whose signature segment is "ok" verify; claims are checked
    /// with jwtgate's real claim rules.
    struct Fake;

    impl TokenVerifier for Fake {
        type Verified = String;

        fn verify_session(&self, token: &str, now_ms: i64) -> Result<String, TokenError> {
            let d = crate::token::decode(token)?;
            if d.jws.signature != b"ok" {
                return Err(TokenError::InvalidSignature);
            }
            Validation {
                issuer: None,
                authorized_parties: vec!["https://app.example.com".into()],
                leeway_ms: 5000,
                allow_pending: false,
                audience: vec![],
            }
            .validate(&d.claims, now_ms)?;
            Ok(d.claims
                .sub
                .and_then(|s| s.as_str().map(String::from))
                .unwrap_or_default())
        }

        fn check_handshake_signature(&self, jws: &Jws<'_>) -> Result<(), TokenError> {
            if jws.signature == b"ok" {
                Ok(())
            } else {
                Err(TokenError::InvalidSignature)
            }
        }
    }

    fn signed(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode("ok")
        )
    }

    /// A session token: issued `age` seconds ago, valid 60 s from then.
    fn session(iss: &str, age: i64) -> String {
        let iat = S - age;
        signed(
            r#"{"alg":"RS256","kid":"ins_1","typ":"JWT","cat":"cl_B7d4PD111AAA"}"#,
            &format!(
                r#"{{"iss":"https://{iss}","sub":"user_1","sid":"sess_1","azp":"https://app.example.com","iat":{iat},"nbf":{},"exp":{}}}"#,
                iat - 10,
                iat + 60
            ),
        )
    }

    fn valid() -> String {
        session("clerk.example.com", 5)
    }

    fn expired() -> String {
        session("clerk.example.com", 120)
    }

    fn handshake_token(directives: &[&str]) -> String {
        let list = serde_json::to_string(directives).unwrap();
        signed(
            r#"{"alg":"RS256","typ":"JWT"}"#,
            &format!(r#"{{"handshake":{list}}}"#),
        )
    }

    fn prod() -> Instance {
        Instance::new(PK_LIVE, None, None, "https://api.clerk.com").unwrap()
    }

    fn dev() -> Instance {
        Instance::new(PK_TEST, None, None, "https://api.clerk.com").unwrap()
    }

    /// A browser navigation to https://app.example.com<uri>.
    fn nav(uri: &str, cookie: &str) -> Vec<(&'static str, String)> {
        vec![
            ("Host", "app.example.com".into()),
            ("X-Forwarded-Proto", "https".into()),
            ("X-Original-URI", uri.into()),
            ("Cookie", cookie.into()),
            ("Sec-Fetch-Dest", "document".into()),
            ("Accept", "text/html,application/xhtml+xml".into()),
        ]
    }

    /// The same page fetched by XHR.
    fn xhr(uri: &str, cookie: &str) -> Vec<(&'static str, String)> {
        with(
            without(nav(uri, cookie), "Accept"),
            "Sec-Fetch-Dest",
            "empty",
        )
    }

    fn with(
        mut h: Vec<(&'static str, String)>,
        name: &'static str,
        value: &str,
    ) -> Vec<(&'static str, String)> {
        h.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        h.push((name, value.into()));
        h
    }

    fn without(mut h: Vec<(&'static str, String)>, name: &str) -> Vec<(&'static str, String)> {
        h.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        h
    }

    fn request<'a>(
        inst: &Instance,
        h: &'a [(&'static str, String)],
        bearer: Option<&'a str>,
    ) -> Request<'a> {
        // The contract's reading of the proxy's headers (the gate's
        // `Original` does it for real).
        let get = |names: &[&str]| {
            names.iter().find_map(|name| {
                h.iter()
                    .find(|(n, v)| n.eq_ignore_ascii_case(name) && !v.is_empty())
                    .map(|(_, v)| v.as_str())
            })
        };
        let first = |v: &'a str| v.split(',').next().unwrap_or(v).trim_matches([' ', '\t']);
        let target = Target {
            method: get(&["X-Forwarded-Method", "X-Original-Method"]).unwrap_or("GET"),
            proto: get(&["X-Forwarded-Proto"]).map_or("https", first),
            host: get(&["X-Forwarded-Host", "Host"]).map(first),
            uri: get(&["X-Forwarded-Uri", "X-Original-URI"]),
        };
        Request::new(
            target,
            h.iter().map(|(n, v)| (*n, v.as_bytes())),
            inst.cookie_suffix(),
            bearer,
        )
    }

    fn run(inst: &Instance, h: &[(&'static str, String)]) -> Outcome<String> {
        decide(inst, &request(inst, h, None), &Fake, NOW)
    }

    /// The outcome in one line: kind, reason, location, cookies.
    fn show(o: &Outcome<String>) -> String {
        let (kind, reason) = match o {
            Outcome::SignedIn { verified, .. } => ("in", verified.clone()),
            Outcome::SignedOut { reason, .. } => ("out", reason.to_string()),
            Outcome::Handshake { reason, .. } => ("hs", reason.to_string()),
            Outcome::NeedsNonceExchange { nonce } => ("nonce", nonce.clone()),
        };
        let location = o
            .location()
            .map_or(String::new(), |(l, s)| format!(" {s} {l}"));
        format!("{kind} {reason}{location} {:?}", o.set_cookies())
    }

    fn reason(o: &Outcome<String>) -> String {
        match o {
            Outcome::SignedIn { .. } => "signed-in".into(),
            Outcome::SignedOut { reason, .. } | Outcome::Handshake { reason, .. } => {
                reason.to_string()
            }
            Outcome::NeedsNonceExchange { .. } => "nonce".into(),
        }
    }

    fn is_handshake(o: &Outcome<String>) -> bool {
        matches!(o, Outcome::Handshake { .. })
    }

    #[test]
    fn browser_reasons_have_distinct_words_and_indices() {
        let mut words: Vec<&str> = Reason::OWN.iter().map(|r| r.as_str()).collect();
        words.extend(TokenError::ALL.iter().map(|e| e.reason()));
        let n = words.len();
        words.sort();
        words.dedup();
        assert_eq!(words.len(), n, "a reason word is used twice");
        for (i, r) in Reason::OWN.iter().enumerate() {
            assert_eq!(r.own_index(), Some(i));
            assert_eq!(r.token_error(), None);
        }
        assert_eq!(
            Reason::TokenTypeMismatch
                .token_error()
                .map(TokenError::reason),
            Some(Reason::TokenTypeMismatch.as_str())
        );
        assert!(Reason::DevBrowserMissing.can_handshake());
        assert!(!Reason::SessionTokenAndUatMissing.can_handshake());
    }

    const COUNT_1: &str = "__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2";
    const HS_BASE: &str = "https://clerk.example.com/v1/client/handshake?redirect_url=https%3A%2F%2Fapp.example.com%2Fdash%3Fx%3D1&__clerk_api_version=2026-05-12";

    #[test]
    fn browser_shape_1_no_cookies_is_signed_out_and_navigations_go_to_sign_in() {
        for cookie in ["", "__client_uat=0", "a=b"] {
            let o = run(&prod(), &nav("/dash?x=1&y=a%26b", cookie));
            assert_eq!(
                show(&o),
                "out session-token-and-uat-missing 307 https://accounts.example.com/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fdash%3Fx%3D1%26y%3Da%2526b []"
            );
            let o = run(&prod(), &xhr("/dash", cookie));
            assert_eq!(show(&o), "out session-token-and-uat-missing []");
        }
        // A POST form navigation goes to sign in with 303 (then GET).
        let h = with(nav("/form", ""), "X-Original-Method", "POST");
        assert_eq!(run(&prod(), &h).location().unwrap().1, 303);
    }

    #[test]
    fn browser_shape_2_uat_only_gets_the_exact_handshake() {
        let o = run(&prod(), &nav("/dash?x=1", "__client_uat=1700000000"));
        assert_eq!(
            show(&o),
            format!("hs client-uat-but-no-session-token 307 {HS_BASE}&suffixed_cookies=false&__clerk_hs_reason=client-uat-but-no-session-token&format=nonce [\"{COUNT_1}\"]")
        );
    }

    #[test]
    fn browser_shape_3_only_get_navigations_are_eligible() {
        let uat = "__client_uat=1700000000";
        let base = nav("/dash?x=1", uat);
        let json = with(
            without(base.clone(), "Sec-Fetch-Dest"),
            "Accept",
            "application/json",
        );
        assert_eq!(
            show(&run(&prod(), &json)),
            "out client-uat-but-no-session-token []"
        );
        let html = with(
            without(base.clone(), "Sec-Fetch-Dest"),
            "Accept",
            "text/html",
        );
        assert!(is_handshake(&run(&prod(), &html)));
        let upper = with(
            without(base.clone(), "Sec-Fetch-Dest"),
            "Accept",
            "Text/HTML",
        );
        assert!(
            !is_handshake(&run(&prod(), &upper)),
            "the Accept test is case-sensitive"
        );
        assert!(is_handshake(&run(
            &prod(),
            &with(base.clone(), "Sec-Fetch-Dest", "iframe")
        )));
        let empty = with(
            with(base.clone(), "Sec-Fetch-Dest", "empty"),
            "Accept",
            "text/html",
        );
        assert_eq!(
            show(&run(&prod(), &empty)),
            "out client-uat-but-no-session-token []"
        );
        for method in ["HEAD", "POST", "get"] {
            let o = run(&prod(), &with(base.clone(), "X-Forwarded-Method", method));
            assert_eq!(reason(&o), "client-uat-but-no-session-token", "{method}");
            assert!(!is_handshake(&o), "{method}");
        }
    }

    #[test]
    fn browser_shape_4_5_session_and_uat() {
        let t = valid();
        let o = run(
            &prod(),
            &nav("/", &format!("__session={t}; __client_uat={}", S - 100)),
        );
        assert_eq!(show(&o), "in user_1 []");
        for uat in ["", "; __client_uat=0", "; __client_uat=abc"] {
            let o = run(&prod(), &nav("/dash?x=1", &format!("__session={t}{uat}")));
            let (location, _) = o.location().unwrap();
            assert_eq!(reason(&o), "session-token-but-no-client-uat", "{uat}");
            assert!(
                location.ends_with(&format!("&format=nonce&__session={t}")),
                "{location}"
            );
        }
        let o = run(
            &prod(),
            &nav("/", &format!("__session={t}; __client_uat=12x")),
        );
        assert_eq!(reason(&o), "signed-in");
    }

    #[test]
    fn browser_shape_6_7_expired_tokens() {
        let c = format!("__session={}; __client_uat=1", expired());
        let o = run(&prod(), &nav("/dash?x=1", &c));
        assert_eq!(
            reason(&o),
            "session-token-expired-refresh-non-eligible-no-refresh-cookie"
        );
        assert!(o
            .location()
            .unwrap()
            .0
            .contains(&format!("&__session={}", expired())));
        for method in ["POST", "HEAD"] {
            let o = run(&prod(), &with(nav("/", &c), "X-Original-Method", method));
            assert_eq!(
                reason(&o),
                "session-token-expired-refresh-non-eligible-non-get"
            );
            assert!(!is_handshake(&o));
        }
        let o = run(&prod(), &xhr("/", &c));
        assert_eq!(
            show(&o),
            "out session-token-expired-refresh-non-eligible-no-refresh-cookie []"
        );
        let o = run(&prod(), &nav("/", &format!("{c}; __refresh_{SFX}=r")));
        assert_eq!(
            reason(&o),
            "session-token-expired-refresh-missing-api-client"
        );
        assert!(is_handshake(&o));
    }

    #[test]
    fn browser_shape_8_loop_guard() {
        let c = format!("__session={}; __client_uat=1", expired());
        let count = |n: &str| {
            run(
                &prod(),
                &nav("/", &format!("{c}; __clerk_redirect_count={n}")),
            )
        };
        let last_cookie = |o: &Outcome<String>| o.set_cookies().last().cloned().unwrap_or_default();
        assert_eq!(
            last_cookie(&count("2")),
            "__clerk_redirect_count=3; SameSite=Lax; HttpOnly; Max-Age=2"
        );
        assert_eq!(last_cookie(&count("abc")), COUNT_1);
        assert_eq!(
            last_cookie(&count("0.5")),
            "__clerk_redirect_count=1.5; SameSite=Lax; HttpOnly; Max-Age=2"
        );
        // The SDK stops only at exactly 3; jwtgate at 3 or more, or below 0.
        for n in ["3", "5", "Infinity", "-1"] {
            let o = count(n);
            assert!(!is_handshake(&o), "{n}");
            assert_eq!(
                reason(&o),
                "session-token-expired-refresh-non-eligible-no-refresh-cookie"
            );
            let (location, status) = o.location().unwrap();
            assert!(
                location.starts_with("https://accounts.example.com/sign-in?"),
                "{n}"
            );
            assert_eq!(status, 307);
            assert!(o.set_cookies().is_empty());
        }
    }

    #[test]
    fn browser_shape_9_time_rules() {
        let t = valid();
        let o = run(
            &prod(),
            &nav("/", &format!("__session={t}; __client_uat={}", S)),
        );
        assert_eq!(reason(&o), "session-token-iat-before-client-uat");
        let nbf = signed(
            r#"{"alg":"RS256"}"#,
            &format!(
                r#"{{"iss":"https://clerk.example.com","sub":"u","azp":"https://app.example.com","iat":{S},"nbf":{},"exp":{}}}"#,
                S + 30,
                S + 60
            ),
        );
        let o = run(
            &prod(),
            &nav("/", &format!("__session={nbf}; __client_uat=1")),
        );
        assert_eq!(reason(&o), "session-token-nbf");
        let iat = signed(
            r#"{"alg":"RS256"}"#,
            &format!(
                r#"{{"iss":"https://clerk.example.com","sub":"u","azp":"https://app.example.com","iat":{},"exp":{}}}"#,
                S + 30,
                S + 60
            ),
        );
        let o = run(
            &prod(),
            &nav("/", &format!("__session={iat}; __client_uat=1")),
        );
        assert_eq!(reason(&o), "session-token-iat-in-the-future");
    }

    #[test]
    fn browser_shape_10_bad_tokens_are_signed_out() {
        let t = valid();
        let forged = format!(
            "{}.{}",
            t.rsplit_once('.').unwrap().0,
            URL_SAFE_NO_PAD.encode("no")
        );
        let template = signed(
            r#"{"alg":"RS256","cat":"cl_B7d4PD222AAA"}"#,
            &format!(
                r#"{{"iss":"https://clerk.example.com","sub":"u","iat":{S},"exp":{}}}"#,
                S + 60
            ),
        );
        let wrong_azp = signed(
            r#"{"alg":"RS256"}"#,
            &format!(
                r#"{{"iss":"https://clerk.example.com","sub":"u","azp":"https://evil.com","iat":{S},"exp":{}}}"#,
                S + 60
            ),
        );
        for (token, want) in [
            (forged, "token-invalid-signature"),
            ("notajwt".to_string(), "token-invalid"),
            (template, "token-type-mismatch"),
            (wrong_azp, "token-invalid-authorized-parties"),
        ] {
            let o = run(
                &prod(),
                &xhr("/", &format!("__session={token}; __client_uat=1")),
            );
            assert_eq!(show(&o), format!("out {want} []"));
        }
    }

    #[test]
    fn browser_shape_11_foreign_referer() {
        let c = format!("__session={}; __client_uat=1", valid());
        let from = |referer: &str| run(&prod(), &with(nav("/dash?x=1", &c), "Referer", referer));
        let o = from("https://google.com/");
        assert_eq!(reason(&o), "primary-domain-cross-origin-sync");
        assert!(o.location().unwrap().0.contains("&__session="));
        for known in [
            "https://accounts.example.com/sign-in",
            "https://clerk.example.com/v1/client/handshake",
            "https://app.example.com/other",
            "not a url",
        ] {
            assert_eq!(reason(&from(known)), "signed-in", "{known}");
        }
        // Counter 1 (inside a handshake round): signed in.
        let h = with(
            nav("/", &format!("{c}; __clerk_redirect_count=1")),
            "Referer",
            "https://google.com/",
        );
        assert_eq!(reason(&run(&prod(), &h)), "signed-in");
        // Only document GETs: an iframe from a foreign page is signed in.
        let h = with(
            with(nav("/", &c), "Sec-Fetch-Dest", "iframe"),
            "Referer",
            "https://google.com/",
        );
        assert_eq!(reason(&run(&prod(), &h)), "signed-in");
        // The development Account Portal is known only to development instances.
        let dev_ap = with(
            nav("/", &c),
            "Referer",
            "https://happy-hippo-1.accounts.dev/sign-in",
        );
        assert_eq!(
            reason(&run(&prod(), &dev_ap)),
            "primary-domain-cross-origin-sync"
        );
    }

    #[test]
    fn browser_shape_12_suffixed_cookies() {
        let t = valid();
        let o = run(
            &prod(),
            &nav("/dash?x=1", &format!("__client_uat_{SFX}=1700000000")),
        );
        assert_eq!(
            show(&o),
            format!("hs client-uat-but-no-session-token 307 {HS_BASE}&suffixed_cookies=true&__clerk_hs_reason=client-uat-but-no-session-token&format=nonce [\"{COUNT_1}\"]")
        );
        let o = run(
            &prod(),
            &nav("/", &format!("__session_{SFX}={t}; __client_uat_{SFX}=1")),
        );
        assert_eq!(reason(&o), "signed-in");
        // A well-signed token of another instance in __session: the SDK
        // reads only the (absent) suffixed cookies.
        let foreign = session("clerk.other.com", 5);
        let o = run(
            &prod(),
            &xhr("/", &format!("__session={foreign}; __client_uat=1")),
        );
        assert_eq!(show(&o), "out session-token-and-uat-missing []");
    }

    #[test]
    fn browser_shape_13_url_shaping() {
        let uat = "__client_uat=1";
        let h = with(
            with(
                nav("/p?__clerk_db_jwt=d&__dev_session=z&a=%7e&b&c=d+e", uat),
                "X-Forwarded-Host",
                "a.example.com, b",
            ),
            "X-Forwarded-Proto",
            "https,http",
        );
        let o = run(&prod(), &h);
        assert_eq!(
            o.location().unwrap().0,
            "https://clerk.example.com/v1/client/handshake?redirect_url=https%3A%2F%2Fa.example.com%2Fp%3Fa%3D%257E%26b%3D%26c%3Dd%2Be&__clerk_api_version=2026-05-12&suffixed_cookies=false&__clerk_hs_reason=client-uat-but-no-session-token&format=nonce"
        );
        let h = with(
            with(nav("/x", uat), "Host", "app:8443"),
            "X-Forwarded-Proto",
            "http",
        );
        assert!(run(&prod(), &h)
            .location()
            .unwrap()
            .0
            .contains("redirect_url=http%3A%2F%2Fapp%3A8443%2Fx&"));
        // No usable URL: nothing redirects.
        let h = without(nav("/x", uat), "X-Original-URI");
        assert_eq!(
            show(&run(&prod(), &h)),
            "out client-uat-but-no-session-token []"
        );
        let h = with(nav("/x", uat), "Host", "evil.com@app.example.com");
        assert_eq!(
            show(&run(&prod(), &h)),
            "out client-uat-but-no-session-token []"
        );
    }

    #[test]
    fn browser_shape_14_bearer_tokens() {
        let inst = prod();
        let h = nav("/dash?x=1", "");
        let t = expired();
        let o = decide(&inst, &request(&inst, &h, Some(&t)), &Fake, NOW);
        assert_eq!(
            reason(&o),
            "session-token-expired-refresh-non-eligible-no-refresh-cookie"
        );
        assert!(o
            .location()
            .unwrap()
            .0
            .ends_with(&format!("&__session={t}")));
        let api = xhr("/api", "");
        let o = decide(&inst, &request(&inst, &api, Some(&t)), &Fake, NOW);
        assert_eq!(
            show(&o),
            "out session-token-expired-refresh-non-eligible-no-refresh-cookie []"
        );
        let v = valid();
        let o = decide(&inst, &request(&inst, &api, Some(&v)), &Fake, NOW);
        assert_eq!(show(&o), "in user_1 []");
        // The header path ignores the handshake cookies and query.
        let h = nav("/?__clerk_handshake=abc", "__clerk_handshake_nonce=n");
        let o = decide(&inst, &request(&inst, &h, Some(&v)), &Fake, NOW);
        assert_eq!(show(&o), "in user_1 []");
    }

    const CLEAR: [&str; 4] = [
        "__clerk_handshake=; Path=/; Max-Age=0",
        "__clerk_handshake=; Path=/; Domain=example.com; Max-Age=0",
        "__clerk_handshake_nonce=; Path=/; Max-Age=0",
        "__clerk_handshake_nonce=; Path=/; Domain=example.com; Max-Age=0",
    ];

    fn payload(session: &str) -> Vec<String> {
        vec![
            "__clerk_handshake=; Path=/; Domain=example.com; Expires=Thu, 01 Jan 1970 00:00:00 GMT".into(),
            "__client_uat=1700000000; Path=/; Domain=example.com; Max-Age=315360000; Secure; SameSite=Lax".into(),
            format!("__session={session}; Path=/; Secure; SameSite=Lax"),
        ]
    }

    fn with_clearing(mut cookies: Vec<String>) -> Vec<String> {
        cookies.extend(CLEAR.iter().map(|s| s.to_string()));
        cookies
    }

    #[test]
    fn browser_shape_15_prod_return_leg_with_a_token() {
        let v = valid();
        let p = payload(&v);
        let hs = handshake_token(&p.iter().map(String::as_str).collect::<Vec<_>>());
        // The cookie (production): the page is served with the cookies.
        let o = run(&prod(), &nav("/dash", &format!("__clerk_handshake={hs}")));
        match &o {
            Outcome::SignedIn {
                token,
                redirect: None,
                set_cookies,
                ..
            } => {
                assert_eq!(token, &v);
                assert_eq!(set_cookies, &with_clearing(p.clone()));
            }
            other => panic!("{}", show(other)),
        }
        // In the query on a navigation: 307 to the URL without it.
        let o = run(
            &prod(),
            &nav(
                &format!("/dash?a=1&__clerk_handshake={hs}&__clerk_help=1"),
                "",
            ),
        );
        assert_eq!(
            o.location(),
            Some(("https://app.example.com/dash?a=1", 307))
        );
        assert!(matches!(o, Outcome::SignedIn { .. }));
        // An API request: allowed with the cookies, no redirect.
        let o = run(&prod(), &xhr(&format!("/api?__clerk_handshake={hs}"), ""));
        assert!(matches!(&o, Outcome::SignedIn { redirect: None, .. }));
        assert_eq!(o.set_cookies(), with_clearing(p));
    }

    #[test]
    fn browser_shape_16_bad_handshakes_fall_through_in_production() {
        let v = valid();
        let p = payload(&v);
        let good = handshake_token(&p.iter().map(String::as_str).collect::<Vec<_>>());
        let forged = format!(
            "{}.{}",
            good.rsplit_once('.').unwrap().0,
            URL_SAFE_NO_PAD.encode("no")
        );
        let template = signed(
            r#"{"alg":"RS256","cat":"cl_B7d4PD222AAA"}"#,
            r#"{"handshake":["__session=x"]}"#,
        );
        let hs256 = signed(r#"{"alg":"HS256"}"#, r#"{"handshake":["__session=x"]}"#);
        let inner_expired = handshake_token(&[&format!("__session={}", expired())]);
        for hs in [forged, template, hs256, inner_expired, "junk".into()] {
            let o = run(&prod(), &nav("/dash", &format!("__clerk_handshake={hs}")));
            assert_eq!(reason(&o), "session-token-and-uat-missing");
            assert_eq!(
                o.set_cookies(),
                CLEAR,
                "stale handshake cookies are cleared"
            );
            let o = run(
                &prod(),
                &nav("/dash", &format!("__clerk_handshake={hs}; __client_uat=1")),
            );
            assert!(is_handshake(&o));
            let mut want: Vec<String> = CLEAR.map(String::from).to_vec();
            want.push(COUNT_1.into());
            assert_eq!(o.set_cookies(), want);
        }
    }

    #[test]
    fn browser_shape_17_payload_that_signs_out() {
        let hs = handshake_token(&[
            "__session=; Path=/; Max-Age=0",
            "__client_uat=0; Path=/; Domain=example.com",
        ]);
        let o = run(
            &prod(),
            &xhr(
                "/",
                &format!("__clerk_handshake={hs}; __session={}", valid()),
            ),
        );
        assert_eq!(reason(&o), "session-token-missing");
        assert_eq!(
            o.set_cookies(),
            with_clearing(vec![
                "__session=; Path=/; Max-Age=0".into(),
                "__client_uat=0; Path=/; Domain=example.com".into()
            ])
        );
        // A navigation: to sign in, carrying the cookies.
        let o = run(&prod(), &nav("/", &format!("__clerk_handshake={hs}")));
        assert!(o
            .location()
            .unwrap()
            .0
            .starts_with("https://accounts.example.com/sign-in?redirect_url="));
        assert_eq!(o.set_cookies().len(), 6);
    }

    #[test]
    fn browser_shape_18_nonce_exchange() {
        let inst = prod();
        let v = valid();
        let h = nav(
            "/dash",
            &format!("__clerk_handshake_nonce=n1; __session={v}; __client_uat=1"),
        );
        let req = request(&inst, &h, None);
        match decide(&inst, &req, &Fake, NOW) {
            Outcome::NeedsNonceExchange { nonce } => assert_eq!(nonce, "n1"),
            other => panic!("{}", show(&other)),
        }
        let o = resume_with_directives(&inst, &req, &Fake, NOW, Some(payload(&v)));
        assert_eq!(reason(&o), "signed-in");
        assert_eq!(o.set_cookies(), with_clearing(payload(&v)));
        // A failed exchange signs out (as the SDK), clearing the nonce.
        let o = resume_with_directives(&inst, &req, &Fake, NOW, None);
        assert_eq!(reason(&o), "session-token-missing");
        assert_eq!(o.set_cookies(), CLEAR);
        // The query wins over the cookie.
        let h = nav(
            "/dash?__clerk_handshake_nonce=q",
            "__clerk_handshake_nonce=c",
        );
        assert_eq!(show(&run(&inst, &h)), "nonce q []");
        // Not for a request that is not a GET navigation: decided from its cookies.
        let x = xhr(
            "/api",
            &format!("__clerk_handshake_nonce=n1; __session={v}; __client_uat=1"),
        );
        let o = run(&inst, &x);
        assert_eq!(reason(&o), "signed-in");
        assert_eq!(o.set_cookies(), CLEAR);
        let post = with(h.clone(), "X-Original-Method", "POST");
        assert!(!matches!(
            run(&inst, &post),
            Outcome::NeedsNonceExchange { .. }
        ));
        // An oversized nonce is never sent.
        let long = nav(
            &format!("/?__clerk_handshake_nonce={}", "n".repeat(2000)),
            "",
        );
        assert_eq!(reason(&run(&inst, &long)), "session-token-missing");
    }

    #[test]
    fn browser_shape_19_20_development_dev_browser() {
        let o = run(&dev(), &nav("/", ""));
        assert_eq!(reason(&o), "dev-browser-missing");
        assert!(o
            .location()
            .unwrap()
            .0
            .starts_with("https://happy-hippo-1.clerk.accounts.dev/v1/client/handshake?"));
        assert_eq!(
            show(&run(&dev(), &xhr("/", ""))),
            "out dev-browser-missing []"
        );
        assert_eq!(
            reason(&run(&dev(), &nav("/", "__clerk_db_jwt=dvb_1"))),
            "session-token-and-uat-missing"
        );
        let o = run(&dev(), &nav("/p?__clerk_db_jwt=dvb_q&k=v", ""));
        assert_eq!(reason(&o), "dev-browser-sync");
        let location = o.location().unwrap().0;
        assert!(
            location.contains("redirect_url=https%3A%2F%2Fapp.example.com%2Fp%3Fk%3Dv&"),
            "{location}"
        );
        assert!(
            location.ends_with("&format=nonce&__clerk_db_jwt=dvb_q"),
            "{location}"
        );
        let c = format!(
            "__session={}; __client_uat=1",
            session("happy-hippo-1.clerk.accounts.dev", 5)
        );
        assert_eq!(reason(&run(&dev(), &nav("/", &c))), "dev-browser-missing");
        assert_eq!(
            reason(&run(
                &dev(),
                &nav("/", &format!("{c}; __clerk_db_jwt=dvb_1"))
            )),
            "signed-in"
        );
        // The signed-out sign-in redirect carries the dev browser.
        let o = run(&dev(), &nav("/", "__clerk_db_jwt=dvb_1"));
        assert_eq!(
            o.location().unwrap().0,
            "https://happy-hippo-1.accounts.dev/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2F&__clerk_db_jwt=dvb_1"
        );
    }

    #[test]
    fn browser_shape_21_development_return_leg() {
        let v = session("happy-hippo-1.clerk.accounts.dev", 5);
        let hs = handshake_token(&[&format!("__session={v}; Path=/; SameSite=Lax")]);
        let h = nav(
            &format!("/p?x=1&__clerk_handshake={hs}&__clerk_db_jwt=dvb_q&__clerk_help=1"),
            "",
        );
        let o = run(&dev(), &h);
        assert!(matches!(o, Outcome::SignedIn { .. }), "{}", show(&o));
        assert_eq!(o.location(), Some(("https://app.example.com/p?x=1", 307)));
        assert_eq!(
            o.set_cookies(),
            [
                format!("__session={v}; Path=/; SameSite=Lax"),
                format!(
                    "__clerk_db_jwt_{}=dvb_q; Path=/; Max-Age=31536000; SameSite=Lax; Secure",
                    dev().cookie_suffix()
                ),
                "__clerk_db_jwt=dvb_q; Path=/; Max-Age=31536000; SameSite=Lax; Secure".into(),
                "__clerk_handshake=; Path=/; Max-Age=0".into(),
                "__clerk_handshake_nonce=; Path=/; Max-Age=0".into(),
            ]
        );
        // A payload that sets the dev browser itself: not added again.
        let hs = handshake_token(&[&format!("__session={v}"), "__clerk_db_jwt=dvb_new; Path=/"]);
        let o = run(
            &dev(),
            &nav(
                &format!("/p?__clerk_handshake={hs}&__clerk_db_jwt=dvb_q"),
                "",
            ),
        );
        assert_eq!(
            o.set_cookies()
                .iter()
                .filter(|c| c.starts_with("__clerk_db_jwt"))
                .count(),
            1
        );
        // A bad handshake token: signed out, no redirect (the SDK rejects).
        let forged = format!(
            "{}.{}",
            hs.rsplit_once('.').unwrap().0,
            URL_SAFE_NO_PAD.encode("no")
        );
        let o = run(
            &dev(),
            &nav(
                &format!("/p?__clerk_handshake={forged}&__clerk_db_jwt=dvb_q"),
                "",
            ),
        );
        assert_eq!(show(&o), "out handshake-token-invalid [\"__clerk_handshake=; Path=/; Max-Age=0\", \"__clerk_handshake_nonce=; Path=/; Max-Age=0\"]");
        // An inner token an hour old: no 24 h skew, so decided from cookies
        // (here: the dev browser in the URL asks for a sync handshake).
        let old = session("happy-hippo-1.clerk.accounts.dev", 3600);
        let hs = handshake_token(&[&format!("__session={old}")]);
        let o = run(
            &dev(),
            &nav(
                &format!("/p?__clerk_handshake={hs}&__clerk_db_jwt=dvb_q"),
                "",
            ),
        );
        assert_eq!(reason(&o), "dev-browser-sync");
    }

    #[test]
    fn browser_shape_24_relative_proxy_url() {
        let inst = Instance::new(PK_LIVE, Some("/__clerk"), None, "https://api.clerk.com").unwrap();
        let o = run(&inst, &nav("/", "__client_uat=1"));
        assert!(o
            .location()
            .unwrap()
            .0
            .starts_with("https://app.example.com/__clerk/v1/client/handshake?redirect_url="));
        // A Referer from the proxy's host is the Frontend API's.
        let c = format!("__session={}; __client_uat=1", valid());
        let h = with(nav("/", &c), "Referer", "https://app.example.com/__clerk/x");
        assert_eq!(reason(&run(&inst, &h)), "signed-in");
    }

    #[test]
    fn browser_payload_passes_only_clerk_cookies() {
        let v = valid();
        let hs = handshake_token(&[
            "tracking=1; Path=/",
            "__client_uat=1; Path=/",
            "__Secure-x=1",
            "bad=\r\nInjected: yes",
            "__clerk_x=1\r\nX: y",
            &format!("__session={v}; Path=/"),
        ]);
        let o = run(&prod(), &xhr("/", &format!("__clerk_handshake={hs}")));
        assert_eq!(reason(&o), "signed-in");
        assert_eq!(
            o.set_cookies(),
            with_clearing(vec![
                "__client_uat=1; Path=/".into(),
                format!("__session={v}; Path=/")
            ])
        );
        // Count bound: 16 in all, ours (the clearing) always in.
        let many: Vec<String> = (0..30)
            .map(|i| format!("__clerk_x{i}=1"))
            .chain([format!("__session={v}")])
            .collect();
        let hs = handshake_token(&many.iter().map(String::as_str).collect::<Vec<_>>());
        let o = run(&prod(), &xhr("/", &format!("__clerk_handshake={hs}")));
        assert!(o.set_cookies().len() <= MAX_SET_COOKIES);
        assert!(o.set_cookies().ends_with(&CLEAR.map(String::from)));
    }

    #[test]
    fn browser_handshake_token_age_is_bounded() {
        let hs = |claims: &str| {
            signed(
                r#"{"alg":"RS256","typ":"JWT"}"#,
                &format!(r#"{{"handshake":["__session=x"]{claims}}}"#),
            )
        };
        assert!(
            verify_handshake_token(&Fake, &hs(""), NOW).is_ok(),
            "no claims: as the SDK"
        );
        assert!(verify_handshake_token(
            &Fake,
            &hs(&format!(r#","iat":{S},"exp":{}"#, S + 60)),
            NOW
        )
        .is_ok());
        for (claims, want) in [
            (format!(r#","exp":{}"#, S - 10), TokenError::Expired),
            (format!(r#","iat":{}"#, S - 400), TokenError::Expired),
            (
                format!(r#","iat":{}"#, S + 60),
                TokenError::IssuedInTheFuture,
            ),
            (r#","iat":"1""#.to_string(), TokenError::InvalidIssuedAt),
        ] {
            assert_eq!(
                verify_handshake_token(&Fake, &hs(&claims), NOW),
                Err(want),
                "{claims}"
            );
        }
        let crit = signed(r#"{"alg":"RS256","crit":["x"]}"#, r#"{"handshake":[]}"#);
        assert_eq!(
            verify_handshake_token(&Fake, &crit, NOW),
            Err(TokenError::UnsupportedCrit)
        );
        let typ = signed(r#"{"alg":"RS256","typ":"jwt"}"#, r#"{"handshake":[]}"#);
        assert_eq!(
            verify_handshake_token(&Fake, &typ, NOW),
            Err(TokenError::InvalidType)
        );
        let not_array = signed(r#"{"alg":"RS256"}"#, r#"{"handshake":"__session=x"}"#);
        assert_eq!(verify_handshake_token(&Fake, &not_array, NOW), Ok(vec![]));
        let mixed = signed(
            r#"{"alg":"RS256"}"#,
            r#"{"handshake":["a=1",2,null,"b=2"]}"#,
        );
        assert_eq!(
            verify_handshake_token(&Fake, &mixed, NOW),
            Ok(vec!["a=1".into(), "b=2".into()])
        );
        // Unsigned (signature "sig", not "ok"): refused.
        assert_eq!(
            verify_handshake_token(
                &Fake,
                &unsigned(r#"{"alg":"RS256"}"#, r#"{"handshake":[]}"#),
                NOW
            ),
            Err(TokenError::InvalidSignature)
        );
    }

    #[test]
    fn browser_clearing_uses_the_shared_parent_domain() {
        assert_eq!(
            shared_parent_domain("app.example.com", "clerk.example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            shared_parent_domain("a.b.example.co.uk", "clerk.example.co.uk").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(
            shared_parent_domain("localhost", "x.clerk.accounts.dev"),
            None
        );
        assert_eq!(shared_parent_domain("a.com", "clerk.b.com"), None);
    }

    #[test]
    fn browser_every_reason_word_is_the_sdks() {
        let words = [
            Reason::ClientUatButNoSessionToken,
            Reason::SessionTokenButNoClientUat,
            Reason::SessionTokenIatBeforeClientUat,
            Reason::DevBrowserMissing,
            Reason::DevBrowserSync,
            Reason::PrimaryDomainCrossOriginSync,
            Reason::SessionTokenNbf,
            Reason::SessionTokenIatInTheFuture,
            Reason::SessionTokenExpired(Refresh::NonEligibleNonGet),
            Reason::SessionTokenExpired(Refresh::NonEligibleNoRefreshCookie),
            Reason::SessionTokenExpired(Refresh::MissingApiClient),
            Reason::SessionTokenAndUatMissing,
            Reason::SessionTokenMissing,
            Reason::TokenTypeMismatch,
            Reason::Token(TokenError::Malformed),
            Reason::HandshakeTokenInvalid,
        ];
        for w in words {
            let s = w.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{s}"
            );
        }
        assert_eq!(
            Reason::Token(TokenError::Malformed).as_str(),
            "token-invalid"
        );
    }

    /// The TokenVerifier of the real Verifier: an RS256 handshake token and
    /// session token signed with a key made here.
    #[test]
    fn browser_real_verifier_checks_handshake_signatures() {
        use crate::keys::jwk::VerifyingKey;
        use crate::keys::store::KeyStore;
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::rsa::Rsa;
        use openssl::sign::Signer;
        use std::sync::Arc;
        use std::time::Duration;

        let private = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let pem = String::from_utf8(private.public_key_to_pem().unwrap()).unwrap();
        let keys = Arc::new(KeyStore::new(
            4,
            Duration::from_secs(10),
            Duration::from_millis(10),
        ));
        keys.install_pem(VerifyingKey::from_pem(&pem).unwrap());
        let policy = crate::verify::Policy {
            algorithms: AlgorithmSet::CLERK,
            validation: Validation {
                issuer: Some("https://clerk.example.com".into()),
                authorized_parties: vec![],
                leeway_ms: 5000,
                allow_pending: false,
                audience: vec![],
            },
            max_token_bytes: 16 * 1024,
        };
        let verifier = crate::verify::Verifier::new(keys, policy);
        let sign = |header: &str, payload: &str| {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            let mut signer = Signer::new(MessageDigest::sha256(), &private).unwrap();
            signer.update(input.as_bytes()).unwrap();
            format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(signer.sign_to_vec().unwrap())
            )
        };
        let now = crate::verify::now_ms() / 1000;
        let session = sign(
            r#"{"alg":"RS256","typ":"JWT"}"#,
            &format!(
                r#"{{"iss":"https://clerk.example.com","sub":"user_9","iat":{now},"exp":{}}}"#,
                now + 60
            ),
        );
        let hs = sign(
            r#"{"alg":"RS256"}"#,
            &format!(r#"{{"handshake":["__session={session}; Path=/"]}}"#),
        );
        let inst = prod();
        let h = xhr("/", &format!("__clerk_handshake={hs}"));
        let req = request(&inst, &h, None);
        match decide(&inst, &req, &verifier, crate::verify::now_ms()) {
            Outcome::SignedIn { verified, .. } => {
                assert_eq!(verified.identity.user_id, "user_9")
            }
            other => panic!("{:?}", other.set_cookies()),
        }
        // The same payload signed by another key signs nobody in.
        let other = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let (input, _) = hs.rsplit_once('.').unwrap();
        let mut signer = Signer::new(MessageDigest::sha256(), &other).unwrap();
        signer.update(input.as_bytes()).unwrap();
        let forged = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signer.sign_to_vec().unwrap())
        );
        assert_eq!(
            verify_handshake_token(&verifier, &forged, crate::verify::now_ms()),
            Err(TokenError::InvalidSignature)
        );
    }
}
