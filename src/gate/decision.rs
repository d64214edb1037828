//! The `/auth` decision as a type, and the one place it becomes HTTP.
//!
//! Two proxy styles read the same decision:
//! - [`Style::AuthRequest`] (nginx `auth_request`, `GET /auth`): nginx turns
//!   any 3xx from the auth server into a 500 and joins repeated
//!   `Set-Cookie` headers with ", " (which breaks `Expires=` dates). So a
//!   redirect is a 401 carrying `X-Jwtgate-Location`, and each cookie
//!   travels in its own numbered `X-Jwtgate-Set-Cookie-N` header, which the
//!   nginx snippets turn back into `Location` and `Set-Cookie`.
//! - [`Style::Forward`] (Traefik ForwardAuth, Caddy `forward_auth`, Envoy
//!   `ext_authz`, `GET /forward`): these copy a non-2xx answer to the
//!   browser as it is, so a redirect is a real `307` with `Location`, and
//!   cookies are real `Set-Cookie` headers. An allow names every identity
//!   header, empty when the token has no such claim: Caddy 2.6 (Debian 12)
//!   copies a header missing from the answer to the app as its unexpanded
//!   placeholder text (`{http.reverse_proxy.header.X-Org-Id}`).
//!
//! An allow that sets cookies (the end of a handshake) says
//! `X-Accel-Expires: 0`: nginx's optional decision cache must never replay
//! it (nginx only refuses to cache a real `Set-Cookie`, and these travel
//! as `X-Jwtgate-Set-Cookie-N`).

use std::fmt::Write as _;
use std::sync::Arc;

pub use super::grant::Grant;
use crate::browser::Reason;
use crate::token::errors::TokenError;
use crate::token::identity::{is_safe_header_value, HEADER_NAMES};

/// At most this many cookies travel with one answer (numbered headers
/// `X-Jwtgate-Set-Cookie-1` to `-16` in the nginx style).
pub const MAX_SET_COOKIES: usize = 16;

/// How an allow was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A live cache entry: no signature work.
    Cache,
    /// A full verification.
    Verified,
}

/// Why the browser is sent elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectKind {
    /// Signed out: to the sign-in page, with the way back.
    SignIn,
    /// To Clerk's Frontend API, which refreshes the session cookies.
    Handshake,
    /// Back from the handshake: to the original URL, with new cookies.
    Return,
}

/// A redirect of a browser navigation.
#[derive(Debug)]
pub struct Redirect {
    pub kind: RedirectKind,
    /// 307, or 303 for a non-GET navigation sent to sign in (so the
    /// sign-in page is fetched with GET). Forward style only: nginx picks
    /// the status itself from the method (jwtgate-auth.conf).
    pub status: u16,
    /// An absolute URL, checked header-safe.
    pub location: String,
    /// `Set-Cookie` directives, each checked header-safe.
    pub set_cookies: Vec<String>,
    /// The reason word (Clerk's, e.g. `client-uat-but-no-session-token`).
    pub reason: String,
}

/// A browser request that is signed out, as Clerk's SDK decides it,
/// without a redirect (not a navigation, or the loop guard stopped it):
/// 401, with the cookies the browser must still get (e.g. clearing a used
/// handshake nonce).
#[derive(Debug)]
pub struct SignedOut {
    /// The SDK's reason (`WWW-Authenticate`'s `error_description`).
    pub reason: Reason,
    /// `Set-Cookie` directives, each checked header-safe.
    pub set_cookies: Vec<String>,
}

/// A signed-in user who fails a per-location rule.
#[derive(Debug)]
pub struct Forbidden {
    /// The reason word, e.g. `missing-role`.
    pub reason: &'static str,
    /// The response header lines (CRLF-separated, safe by construction):
    /// `WWW-Authenticate`, `X-Jwtgate-Reason`, and for reverification what a
    /// frontend needs to prompt for it.
    pub headers: String,
    /// Clerk's reverification error JSON, the body of a forward-style 403
    /// (empty otherwise; nginx's snippet returns the header as the body).
    pub body: String,
}

/// What the gate answers.
#[derive(Debug)]
pub enum Decision {
    /// 200 for anyone, without identity headers: `optional=1` and no valid
    /// token.
    Anonymous,
    /// 200 with the identity headers (and cookies the browser must get,
    /// e.g. after a handshake; empty, so unallocated, on the hot path).
    Allow {
        grant: Arc<Grant>,
        source: Source,
        set_cookies: Vec<String>,
    },
    /// 401 with an RFC 6750 challenge naming the reason.
    Deny(TokenError),
    /// 401 from the browser flow: Clerk's reason, and cookies.
    SignedOut(Box<SignedOut>),
    /// 503: no usable key, so nobody can be verified.
    Unavailable,
    /// A browser navigation goes elsewhere (401 + `X-Jwtgate-Location` for
    /// nginx, 307 for the forward style).
    Redirect(Box<Redirect>),
    /// 403: signed in, but a rule of the location does not hold.
    Forbidden(Box<Forbidden>),
    /// 500: the location's rules are wrong (an operator error). Never an
    /// allow: the proxy fails closed.
    Misconfigured(String),
}

/// Which proxy asked (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    AuthRequest,
    Forward,
}

impl Decision {
    /// An allow without cookies.
    pub fn allow(grant: Arc<Grant>, source: Source) -> Decision {
        Decision::Allow {
            grant,
            source,
            set_cookies: Vec::new(),
        }
    }

    /// The HTTP status in `style`.
    pub fn status_in(&self, style: Style) -> u16 {
        match self {
            Decision::Allow { .. } | Decision::Anonymous => 200,
            Decision::Deny(_) | Decision::SignedOut(_) => 401,
            Decision::Unavailable => 503,
            Decision::Redirect(r) if style == Style::Forward => r.status,
            Decision::Redirect(_) => 401,
            Decision::Forbidden(_) => 403,
            Decision::Misconfigured(_) => 500,
        }
    }

    /// The HTTP status in the nginx style.
    pub fn status(&self) -> u16 {
        self.status_in(Style::AuthRequest)
    }

    /// Appends the response header lines (CRLF-separated, none at the
    /// end) to `out` in the nginx style. Allocates nothing for an allow
    /// without cookies when `out` has room.
    pub fn render_headers(&self, out: &mut String) {
        self.render_headers_in(Style::AuthRequest, out)
    }

    /// Appends the response header lines for `style` to `out`.
    pub fn render_headers_in(&self, style: Style, out: &mut String) {
        match self {
            Decision::Allow {
                grant, set_cookies, ..
            } => {
                push_grant(out, grant);
                if set_cookies.is_empty() {
                    // nginx keeps an `@T` entry through the whole second T.
                    let last_second = grant.reuse_until_ms.div_euclid(1000) - 1;
                    out.push_str("\r\nX-Accel-Expires: @");
                    out.push_str(itoa::Buffer::new().format(last_second));
                } else {
                    // Never cached: see the module doc.
                    push_line(out, "X-Accel-Expires", "0");
                }
                if style == Style::Forward {
                    push_absent(out, grant);
                }
                push_cookies(out, style, set_cookies);
            }
            Decision::Anonymous if style == Style::Forward => {
                // Every identity header, empty (see the module doc on Caddy).
                for start in LINE_STARTS {
                    out.push_str(start);
                }
            }
            Decision::Anonymous => {}
            Decision::Unavailable => out.push_str("Retry-After: 5"),
            Decision::Deny(TokenError::Missing) => out.push_str("WWW-Authenticate: Bearer"),
            Decision::Deny(e) => push_challenge(out, e.reason()),
            Decision::SignedOut(s) => {
                if s.reason.no_credential() {
                    push_line(out, "WWW-Authenticate", "Bearer");
                } else {
                    push_challenge(out, s.reason.as_str());
                }
                push_cookies(out, style, &s.set_cookies);
            }
            Decision::Redirect(r) => {
                match style {
                    Style::AuthRequest => {
                        push_challenge(out, &r.reason);
                        push_line(out, "X-Jwtgate-Location", &r.location);
                    }
                    Style::Forward => push_line(out, "Location", &r.location),
                }
                push_line(out, "Cache-Control", "no-store");
                push_cookies(out, style, &r.set_cookies);
            }
            Decision::Forbidden(f) => {
                if !out.is_empty() {
                    out.push_str("\r\n");
                }
                out.push_str(&f.headers);
            }
            Decision::Misconfigured(_) => push_line(out, "X-Jwtgate-Reason", "misconfigured-rule"),
        }
    }

    /// The response body in `style`: only a forward-style 403 for
    /// reverification has one (Clerk's error JSON, which a frontend reads).
    pub fn body_in(&self, style: Style) -> &str {
        match self {
            Decision::Forbidden(f) if style == Style::Forward => &f.body,
            _ => "",
        }
    }

    /// The reason word for logs and metrics (`ok` for an allow).
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow { .. } => "ok",
            Decision::Anonymous => "anonymous",
            Decision::Deny(e) => e.reason(),
            Decision::SignedOut(s) => s.reason.as_str(),
            Decision::Unavailable => TokenError::KeysUnavailable.reason(),
            Decision::Redirect(r) => &r.reason,
            Decision::Forbidden(f) => f.reason,
            Decision::Misconfigured(_) => "misconfigured-rule",
        }
    }
}

/// `WWW-Authenticate` naming the reason (RFC 6750 `invalid_token`).
fn push_challenge(out: &mut String, reason: &str) {
    if !out.is_empty() {
        out.push_str("\r\n");
    }
    let _ = write!(
        out,
        "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"{reason}\""
    );
}

/// How each identity header's line starts ([`HEADER_NAMES`] with `: `,
/// and CRLF before all but the first): two writes a header at each hit.
const LINE_STARTS: [&str; HEADER_NAMES.len()] = [
    "X-User-Id: ",
    "\r\nX-Session-Id: ",
    "\r\nX-Org-Id: ",
    "\r\nX-Org-Role: ",
    "\r\nX-Org-Slug: ",
    "\r\nX-Org-Permissions: ",
    "\r\nX-Actor-Id: ",
];

/// The identity's lines (`X-User-Id` always, the others when not empty),
/// then the extra lines, as the verifier checked them.
fn push_grant(out: &mut String, grant: &Grant) {
    for (i, (start, value)) in LINE_STARTS.iter().zip(grant.values()).enumerate() {
        if i == 0 || !value.is_empty() {
            out.push_str(start);
            out.push_str(value);
        }
    }
    out.push_str(grant.extra_headers());
}

/// Every identity header the grant has no value for, empty (see the module
/// doc on Caddy).
fn push_absent(out: &mut String, grant: &Grant) {
    for (start, value) in LINE_STARTS.iter().zip(grant.values()).skip(1) {
        if value.is_empty() {
            out.push_str(start);
        }
    }
}

/// One header line; a value that could break the header block is dropped
/// (callers check values first; this is the last guard).
fn push_line(out: &mut String, name: &str, value: &str) {
    if !is_safe_header_value(value) && !is_safe_long_value(value) {
        log::error!("dropped an unsafe {name} header value");
        return;
    }
    if !out.is_empty() {
        out.push_str("\r\n");
    }
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
}

/// Locations and cookies may exceed the identity headers' 1 KiB bound (a
/// handshake URL carries a session token); they still must hold no
/// control character.
fn is_safe_long_value(value: &str) -> bool {
    value.len() <= 8192 && !value.chars().any(char::is_control) && value.trim() == value
}

fn push_cookies(out: &mut String, style: Style, cookies: &[String]) {
    for (i, cookie) in cookies.iter().take(MAX_SET_COOKIES).enumerate() {
        match style {
            Style::AuthRequest => {
                push_line(out, &format!("X-Jwtgate-Set-Cookie-{}", i + 1), cookie)
            }
            Style::Forward => push_line(out, "Set-Cookie", cookie),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_starts_are_the_identity_header_names() {
        for (i, (start, name)) in LINE_STARTS.iter().zip(HEADER_NAMES).enumerate() {
            let crlf = if i == 0 { "" } else { "\r\n" };
            assert_eq!(*start, format!("{crlf}{name}: "));
        }
    }

    fn redirect() -> Decision {
        Decision::Redirect(Box::new(Redirect {
            kind: RedirectKind::Handshake,
            status: 307,
            location: "https://clerk.example.com/v1/client/handshake?x=1".into(),
            set_cookies: vec![
                "__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2".into(),
                "bad=\r\nInjected: yes".into(),
            ],
            reason: "client-uat-but-no-session-token".into(),
        }))
    }

    #[test]
    fn a_redirect_is_a_401_with_headers_for_nginx_and_a_307_for_forward_proxies() {
        let d = redirect();
        assert_eq!(d.status_in(Style::AuthRequest), 401);
        assert_eq!(d.status_in(Style::Forward), 307);
        let mut nginx = String::new();
        d.render_headers_in(Style::AuthRequest, &mut nginx);
        assert!(nginx.contains("\r\nX-Jwtgate-Location: https://clerk.example.com/"));
        assert!(nginx.contains("\r\nX-Jwtgate-Set-Cookie-1: __clerk_redirect_count=1;"));
        assert!(!nginx.contains("Injected"), "{nginx}");
        let mut forward = String::new();
        d.render_headers_in(Style::Forward, &mut forward);
        assert!(forward.starts_with("Location: https://clerk.example.com/"));
        assert!(forward.contains("\r\nSet-Cookie: __clerk_redirect_count=1;"));
        assert!(forward.contains("\r\nCache-Control: no-store"));
    }

    #[test]
    fn an_allow_with_cookies_is_never_cached_and_a_browser_401_names_clerks_reason() {
        let grant = Arc::new(Grant::of_user("u", 1_700_000_060_000));
        let mut out = String::new();
        Decision::allow(grant.clone(), Source::Cache).render_headers(&mut out);
        assert_eq!(out, "X-User-Id: u\r\nX-Accel-Expires: @1700000059");
        let d = Decision::Allow {
            grant,
            source: Source::Verified,
            set_cookies: vec!["__session=t; Path=/".into()],
        };
        out.clear();
        d.render_headers(&mut out);
        assert_eq!(
            out,
            "X-User-Id: u\r\nX-Accel-Expires: 0\r\nX-Jwtgate-Set-Cookie-1: __session=t; Path=/"
        );
        let expired =
            Reason::SessionTokenExpired(crate::browser::Refresh::NonEligibleNoRefreshCookie);
        let d = Decision::SignedOut(Box::new(SignedOut {
            reason: expired,
            set_cookies: vec!["__clerk_handshake_nonce=; Path=/; Max-Age=0".into()],
        }));
        assert_eq!(
            (d.status_in(Style::AuthRequest), d.status_in(Style::Forward)),
            (401, 401)
        );
        out.clear();
        d.render_headers_in(Style::Forward, &mut out);
        assert_eq!(
            out,
            "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"session-token-expired-refresh-non-eligible-no-refresh-cookie\"\r\n\
             Set-Cookie: __clerk_handshake_nonce=; Path=/; Max-Age=0"
        );
        let d = Decision::SignedOut(Box::new(SignedOut {
            reason: Reason::SessionTokenAndUatMissing,
            set_cookies: vec![],
        }));
        out.clear();
        d.render_headers(&mut out);
        assert_eq!(out, "WWW-Authenticate: Bearer");
        assert_eq!(d.reason(), "session-token-and-uat-missing");
    }
}
