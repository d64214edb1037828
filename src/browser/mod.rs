//! Browser sign-in: Clerk's handshake, as `@clerk/backend` 3.25.0's
//! `authenticateRequest` does it (specified in
//! `shared/docs/clerk-handshake.md`; section numbers below refer to it).
//!
//! - [`instance`]: the Clerk instance from its publishable key and URLs.
//! - [`cookies`]: Clerk's cookies, read bytewise with `cookie@1`'s rules,
//!   and the choice between suffixed and plain cookies.
//! - [`url`]: the request's URL and the redirects, byte-exact.
//! - [`decision`]: signed in, signed out, handshake, or "exchange this
//!   nonce first"; the return leg. Pure: no network I/O.
//! - [`exchange`]: the nonce exchange with the Backend API on its own small
//!   thread pool, awaited by a coroutine without blocking its worker.
//!
//! # Deviations from the SDK (all stricter)
//!
//! 1. **Loop guard**: the SDK stops handshaking only when
//!    `__clerk_redirect_count` is exactly 3 (5, or -1, loops on); jwtgate
//!    stops at 3 or more, and on a negative count.
//! 2. **Handshake tokens are not replayable forever**: the SDK checks no
//!    claim of a handshake token. jwtgate refuses one whose `exp` passed or
//!    whose `iat` is over [`decision::MAX_HANDSHAKE_AGE_SECS`] old or in the
//!    future, refuses a `crit` header, and always verifies the session
//!    token inside with its normal checks (so a replay is worth at most
//!    that token's 60 s life).
//! 3. **No 24 h clock skew on development instances**: the SDK retries an
//!    expired / not-yet-valid session token from a development payload
//!    with 24 h of skew; jwtgate keeps `verify.leeway_secs`, and a refused
//!    payload token is treated like the SDK's other failures (decide from
//!    the cookies).
//! 4. **Stale handshake cookies are cleared**: whenever a request carries a
//!    handshake token or nonce, jwtgate also sends directives that delete
//!    `__clerk_handshake` and `__clerk_handshake_nonce` (host-only, and on
//!    the parent domain the site shares with the Frontend API), so a used
//!    nonce cannot sign the user out request after request.
//! 5. **No nonce exchange for non-navigations**: a nonce is exchanged only
//!    for a GET navigation (the SDK exchanges for any request); another
//!    request is decided from its cookies, as after a failed resolution.
//!    A nonce over [`decision::MAX_NONCE_BYTES`] is never sent.
//! 6. **Return leg on a navigation ends on the clean URL**: when the URL
//!    carries handshake parameters, jwtgate answers 307 to the URL without
//!    them, with the payload's cookies (the SDK does so in development only
//!    and serves the page in production). With the payload in a cookie
//!    only, the page is served, as by the SDK (a redirect to the same URL
//!    could loop on an uncleared cookie).
//! 7. **Only Clerk's cookies pass through** a payload: names starting with
//!    `__session`, `__client_uat`, `__refresh`, `__clerk_`; printable ASCII,
//!    at most [`decision::MAX_DIRECTIVE_BYTES`] each and
//!    [`decision::MAX_SET_COOKIES`] in all. Others are logged and dropped.
//! 8. **A bad development handshake token** makes the SDK reject the
//!    request (a 500); jwtgate answers signed out
//!    (`handshake-token-invalid`) without a redirect, which also ends the
//!    loop the SDK's rejection is there to stop.
//! 9. **URLs**: jwtgate builds the URL only from a plain host (optional
//!    port) and a URI that is a path; a URI starting with `//` stays on the
//!    host (the SDK would resolve it to another host); a scheme other than
//!    http(s) or an unusable host means no redirect at all. The sign-in
//!    `redirect_url` is the URL without handshake parameters.
//! 10. **No CORS headers** on the return leg (the SDK adds
//!     `Access-Control-Allow-Origin: null` with credentials), and no
//!     `x-clerk-auth-*` debug headers.
//! 11. **Keys unavailable** (no key ever loaded) stays a 503, not a
//!     signed-out redirect to sign in.
//! 12. **Decoding** before verification is strict JSON (objects, valid
//!     UTF-8, no duplicate known keys); a token the SDK would half-decode
//!     counts as undecodable (`token-invalid`).
//!
//! A signed-out navigation (any method) is sent to sign in, as Clerk's
//! framework adapters do with `createRedirect`: 307, or 303 for a non-GET
//! so that the sign-in page is fetched with GET.
//!
//! # Out of scope
//!
//! Satellite domains (`isSatellite`, `__clerk_synced`, and the primary's
//! `__clerk_redirect_url` answer, whose `Location` is any URL from the
//! query), `organizationSyncOptions`, and the Backend API refresh of an
//! expired token with a `__refresh_<sfx>` cookie (such a request gets the
//! reason `session-token-expired-refresh-missing-api-client`, as the SDK
//! without an API client).

pub mod cookies;
pub mod decision;
pub mod exchange;
pub mod instance;
mod peek;
pub mod url;

pub use decision::{
    decide, is_eligible, is_navigation, resume_with_directives, Outcome, Reason, Redirect,
    RedirectKind, Refresh, Request, Target, TokenVerifier,
};
pub use exchange::{ExchangeError, ExchangeSettings, NonceExchanger};
pub use instance::Instance;
