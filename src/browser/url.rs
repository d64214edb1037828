//! URLs of the browser flow, byte-exact as `@clerk/backend` 3.25.0 builds
//! them (clerk-handshake.md §3):
//!
//! - the request's `clerkUrl` from the original scheme, host and URI that
//!   the proxy forwards, WHATWG-normalised (the `url` crate implements the
//!   WHATWG URL Standard);
//! - query edits as `URLSearchParams` makes them: any `delete` or `set`
//!   re-serialises the whole query as `application/x-www-form-urlencoded`
//!   (`form_urlencoded` is the same serializer), and an empty query
//!   disappears;
//! - the handshake URL, the sign-in URL (`createRedirect`), and the clean
//!   return URL without the handshake parameters.

use std::borrow::Cow;

use ::url::form_urlencoded;
use ::url::Url;

use super::cookies::latin1;

/// The API version the SDK sends (`SUPPORTED_BAPI_VERSION`).
pub const CLERK_API_VERSION: &str = "2026-05-12";

/// Query parameters removed from the URL the user returns to.
pub const HANDSHAKE_PARAMS: [&str; 4] = [
    "__clerk_handshake",
    "__clerk_help",
    "__clerk_db_jwt",
    "__clerk_handshake_nonce",
];

/// The original request's URL (the SDK's `clerkUrl`): `<proto>://<host><uri>`.
///
/// `proto` and `host` are the first comma-separated items of their
/// headers (as the SDK takes them); `proto` defaults to `https`. `None`
/// when there is no usable URL: no URI, a URI that is not a path, a host
/// that is not a plain host name or IP literal with an optional port, a
/// scheme other than http(s). Without a URL nothing redirects.
///
/// Stricter than the SDK, which resolves the path against the origin: a
/// URI starting with `//` stays on this host instead of naming another.
pub fn clerk_url(proto: Option<&[u8]>, host: Option<&[u8]>, uri: Option<&[u8]>) -> Option<Url> {
    let scheme = match proto.map(first_item).map(trim_ows) {
        None | Some(b"") => "https",
        Some(p) if p.eq_ignore_ascii_case(b"https") => "https",
        Some(p) if p.eq_ignore_ascii_case(b"http") => "http",
        Some(_) => return None,
    };
    let host = host.map(first_item).filter(|h| is_host_and_port(h))?;
    let uri = uri.filter(|u| u.first() == Some(&b'/'))?;
    let host = std::str::from_utf8(host).ok()?;
    let url = Url::parse(&format!("{scheme}://{host}{}", latin1(uri))).ok()?;
    if url.host_str().is_none() || url.scheme() != scheme {
        return None;
    }
    Some(url)
}

/// `value.split(',')[0]`, not trimmed (as the SDK does it).
pub fn first_item(value: &[u8]) -> &[u8] {
    value.split(|b| *b == b',').next().unwrap_or(value)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A host name (letters, digits, `.`, `-`, `_`) or a bracketed IPv6
/// literal, then an optional `:port`. Nothing that could carry userinfo,
/// a path or a second host.
fn is_host_and_port(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(close) = value.iter().position(|b| *b == b']') else {
            return false;
        };
        let inner = &value[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
        {
            return false;
        }
        (&value[..=close], &value[close + 1..])
    } else {
        let end = value.iter().position(|b| *b == b':').unwrap_or(value.len());
        let host = &value[..end];
        if host.is_empty()
            || !host
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return false;
        }
        (host, &value[end..])
    };
    let _ = host;
    match port {
        [] => true,
        [b':', digits @ ..] => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// The URL's origin as `URL.origin` serializes it (`null` when opaque).
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// `url.searchParams.get(name)`: the first value, decoded.
pub fn query_get<'u>(url: &'u Url, name: &str) -> Option<Cow<'u, str>> {
    url.query()?;
    url.query_pairs().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// `url.searchParams.has(name)`.
pub fn query_has(url: &Url, name: &str) -> bool {
    url.query().is_some() && url.query_pairs().any(|(n, _)| n == name)
}

/// A copy of `url` after `searchParams.delete(name)` for each name: the
/// query is re-serialized even if nothing was deleted.
pub fn without_params(url: &Url, names: &[&str]) -> Url {
    let mut out = url.clone();
    let pairs: Vec<(Cow<str>, Cow<str>)> = url
        .query_pairs()
        .filter(|(n, _)| !names.contains(&n.as_ref()))
        .collect();
    set_pairs(&mut out, &pairs);
    out
}

/// The URL the user returns to: `clerkUrl` without the handshake
/// parameters (`__clerk_handshake`, `__clerk_help`, `__clerk_db_jwt`,
/// `__clerk_handshake_nonce`).
pub fn clean_url(url: &Url) -> Url {
    without_params(url, &HANDSHAKE_PARAMS)
}

/// `searchParams.set(name, value)`: the first pair of that name takes the
/// value and the others go, or the pair is appended; then re-serialization.
pub fn set_param(url: &mut Url, name: &str, value: &str) {
    let mut pairs: Vec<(Cow<str>, Cow<str>)> = Vec::new();
    let mut done = false;
    let old = url.clone();
    for (n, v) in old.query_pairs() {
        if n == name {
            if !done {
                pairs.push((n, Cow::Borrowed(value)));
                done = true;
            }
        } else {
            pairs.push((n, v));
        }
    }
    if !done {
        pairs.push((Cow::Borrowed(name), Cow::Borrowed(value)));
    }
    set_pairs(url, &pairs);
}

/// URLSearchParams' update steps: serialize, and drop an empty query.
fn set_pairs(url: &mut Url, pairs: &[(Cow<str>, Cow<str>)]) {
    if pairs.is_empty() {
        url.set_query(None);
        return;
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref())))
        .finish();
    url.set_query(Some(&query));
}

/// What the handshake redirect carries.
#[derive(Debug)]
pub struct HandshakeParams<'a> {
    /// The SDK's `frontendApi`: a host, or an absolute (proxy) URL.
    pub frontend_api: &'a str,
    /// The request's `clerkUrl`.
    pub clerk_url: &'a Url,
    pub suffixed_cookies: bool,
    pub reason: &'a str,
    /// The session token the request carried (cookie, else header), even expired.
    pub session: Option<&'a str>,
    /// Development instances only: the dev browser token.
    pub dev_browser: Option<&'a str>,
}

/// `buildRedirectToHandshake`: `<frontend api>/v1/client/handshake?
/// redirect_url=…&__clerk_api_version=2026-05-12&suffixed_cookies=…&
/// __clerk_hs_reason=…&format=nonce[&__session=…][&__clerk_db_jwt=…]`, with
/// `__clerk_db_jwt` and `__dev_session` deleted from `redirect_url`.
pub fn handshake_url(p: &HandshakeParams) -> Option<String> {
    let redirect = without_params(p.clerk_url, &["__clerk_db_jwt", "__dev_session"]);
    let base = if p.frontend_api.starts_with("http") {
        p.frontend_api.to_string()
    } else {
        format!("https://{}", p.frontend_api)
    };
    let base = format!("{}/", base.trim_end_matches('/'));
    let mut url = Url::parse(&base).ok()?.join("v1/client/handshake").ok()?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("redirect_url", redirect.as_str())
        .append_pair("__clerk_api_version", CLERK_API_VERSION)
        .append_pair(
            "suffixed_cookies",
            if p.suffixed_cookies { "true" } else { "false" },
        )
        .append_pair("__clerk_hs_reason", p.reason)
        .append_pair("format", "nonce");
    if let Some(session) = p.session {
        query.append_pair("__session", session);
    }
    if let Some(dev_browser) = p.dev_browser {
        query.append_pair("__clerk_db_jwt", dev_browser);
    }
    url.set_query(Some(&query.finish()));
    Some(url.into())
}

/// `createRedirect`'s `redirectToSignIn`: the sign-in URL with
/// `redirect_url=<return_url>` set, and on a cross-origin sign-in page
/// (host and port differ from the return URL's) the development
/// instance's dev browser token as `__clerk_db_jwt`.
pub fn sign_in_url(mut sign_in: Url, return_url: &Url, dev_browser: Option<&str>) -> String {
    set_param(&mut sign_in, "redirect_url", return_url.as_str());
    let cross_origin =
        (return_url.host_str(), return_url.port()) != (sign_in.host_str(), sign_in.port());
    if let (true, Some(token)) = (cross_origin, dev_browser) {
        set_param(&mut sign_in, "__clerk_db_jwt", token);
    }
    sign_in.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn from(proto: Option<&str>, host: Option<&str>, uri: &str) -> Option<String> {
        clerk_url(
            proto.map(str::as_bytes),
            host.map(str::as_bytes),
            Some(uri.as_bytes()),
        )
        .map(String::from)
    }

    #[test]
    fn browser_clerk_url_from_forwarded_values() {
        assert_eq!(
            from(Some("https,http"), Some("a.example.com, b"), "/dash?x=1").as_deref(),
            Some("https://a.example.com/dash?x=1")
        );
        assert_eq!(
            from(Some("http"), Some("app:8443"), "/").as_deref(),
            Some("http://app:8443/")
        );
        assert_eq!(
            from(None, Some("App.Example.COM:443"), "/a/./b/../c").as_deref(),
            Some("https://app.example.com/a/c"),
            "default port dropped, host lowercased, dot segments removed"
        );
        assert_eq!(
            from(Some("http"), Some("[::1]:80"), "/x").as_deref(),
            Some("http://[::1]/x")
        );
        assert_eq!(
            from(None, Some("app.example.com"), "/caf%C3%A9 x").as_deref(),
            Some("https://app.example.com/caf%C3%A9%20x")
        );
        // Raw bytes are Latin-1 characters (as Node.js reads them), so raw
        // UTF-8 encodes twice; browsers percent-encode paths themselves.
        assert_eq!(
            from(None, Some("app.example.com"), "/caf\u{e9}").as_deref(),
            Some("https://app.example.com/caf%C3%83%C2%A9")
        );
        assert_eq!(
            from(None, Some("app.example.com"), "//evil.com/x").as_deref(),
            Some("https://app.example.com//evil.com/x"),
            "stays on the host"
        );
        for (proto, host, uri) in [
            (None, None, "/"),
            (None, Some(""), "/"),
            (None, Some("a@evil.com"), "/"),
            (None, Some("evil.com/x?"), "/"),
            (None, Some("a.com:x"), "/"),
            (None, Some("a b"), "/"),
            (None, Some("[zz]"), "/"),
            (Some("ftp"), Some("a.com"), "/"),
            (None, Some("a.com"), "x"),
            (None, Some("a.com"), "http://evil.com/"),
            (None, Some("a.com"), ""),
        ] {
            assert_eq!(from(proto, host, uri), None, "{proto:?} {host:?} {uri:?}");
        }
        assert_eq!(clerk_url(None, Some(b"a.com"), None), None);
        assert_eq!(
            clerk_url(None, Some(b"a.com"), Some(b"/\xff")).map(String::from),
            Some("https://a.com/%C3%BF".into()),
            "URI bytes are Latin-1"
        );
    }

    #[test]
    fn browser_query_is_reserialized_like_url_search_params() {
        let u = url("https://app.example.com/p?a=%7e&b&c=d+e&e=f%20g");
        assert_eq!(
            without_params(&u, &[]).as_str(),
            "https://app.example.com/p?a=%7E&b=&c=d+e&e=f+g"
        );
        assert_eq!(
            without_params(&url("https://a.com/p?"), &[]).as_str(),
            "https://a.com/p"
        );
        assert_eq!(
            without_params(&url("https://a.com/p?x=1#frag"), &["x"]).as_str(),
            "https://a.com/p#frag"
        );
        assert_eq!(
            without_params(&url("https://a.com/p?x=~!'()*-._"), &[]).as_str(),
            "https://a.com/p?x=%7E%21%27%28%29*-._"
        );
        assert_eq!(query_get(&u, "c").as_deref(), Some("d e"));
        assert_eq!(query_get(&u, "b").as_deref(), Some(""));
        assert!(query_has(&u, "b") && !query_has(&u, "z"));
        let mut s = url("https://a.com/?r=1&x=2&r=3");
        set_param(&mut s, "r", "v w");
        assert_eq!(s.as_str(), "https://a.com/?r=v+w&x=2");
    }

    fn params<'a>(
        frontend_api: &'a str,
        clerk_url: &'a Url,
        reason: &'a str,
    ) -> HandshakeParams<'a> {
        HandshakeParams {
            frontend_api,
            clerk_url,
            suffixed_cookies: false,
            reason,
            session: None,
            dev_browser: None,
        }
    }

    #[test]
    fn browser_handshake_url_is_byte_exact() {
        let u = url("https://app.example.com/dash?x=1");
        assert_eq!(
            handshake_url(&params("clerk.example.com", &u, "client-uat-but-no-session-token")).unwrap(),
            "https://clerk.example.com/v1/client/handshake?redirect_url=https%3A%2F%2Fapp.example.com%2Fdash%3Fx%3D1&__clerk_api_version=2026-05-12&suffixed_cookies=false&__clerk_hs_reason=client-uat-but-no-session-token&format=nonce"
        );
        let mut p = params("clerk.example.com", &u, "session-token-but-no-client-uat");
        p.session = Some("a.b.c");
        p.suffixed_cookies = true;
        assert!(handshake_url(&p)
            .unwrap()
            .ends_with("&suffixed_cookies=true&__clerk_hs_reason=session-token-but-no-client-uat&format=nonce&__session=a.b.c"));
    }

    #[test]
    fn browser_handshake_redirect_url_drops_the_dev_browser() {
        // Shape 13/20: __clerk_db_jwt and __dev_session leave redirect_url,
        // and the rest of the query is re-serialized.
        let u = url("https://app.example.com/p?__clerk_db_jwt=dvb_q&__dev_session=z&a=%7e&b&c=d+e");
        let mut p = params("happy-hippo-1.clerk.accounts.dev", &u, "dev-browser-sync");
        p.dev_browser = Some("dvb_q");
        assert_eq!(
            handshake_url(&p).unwrap(),
            "https://happy-hippo-1.clerk.accounts.dev/v1/client/handshake?redirect_url=https%3A%2F%2Fapp.example.com%2Fp%3Fa%3D%257E%26b%3D%26c%3Dd%2Be&__clerk_api_version=2026-05-12&suffixed_cookies=false&__clerk_hs_reason=dev-browser-sync&format=nonce&__clerk_db_jwt=dvb_q"
        );
    }

    #[test]
    fn browser_handshake_url_through_a_proxy() {
        let u = url("https://app.example.com/");
        for proxy in [
            "https://app.example.com/__clerk",
            "https://app.example.com/__clerk/",
            "https://app.example.com/__clerk//",
        ] {
            assert!(handshake_url(&params(proxy, &u, "r"))
                .unwrap()
                .starts_with("https://app.example.com/__clerk/v1/client/handshake?redirect_url="));
        }
        assert!(handshake_url(&params("http://127.0.0.1:9000", &u, "r"))
            .unwrap()
            .starts_with("http://127.0.0.1:9000/v1/client/handshake?"));
    }

    #[test]
    fn browser_sign_in_url_sets_redirect_url() {
        let back = url("https://app.example.com/a?x=1&y=a%26b");
        assert_eq!(
            sign_in_url(url("https://accounts.example.com/sign-in"), &back, None),
            "https://accounts.example.com/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fa%3Fx%3D1%26y%3Da%2526b"
        );
        assert_eq!(
            sign_in_url(url("https://x.accounts.dev/sign-in?redirect_url=old&k=v"), &back, Some("dvb_1")),
            "https://x.accounts.dev/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fa%3Fx%3D1%26y%3Da%2526b&k=v&__clerk_db_jwt=dvb_1"
        );
        // Same host and port: no dev browser token (not cross-origin).
        assert_eq!(
            sign_in_url(url("https://app.example.com/sign-in"), &back, Some("dvb_1")),
            "https://app.example.com/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fa%3Fx%3D1%26y%3Da%2526b"
        );
    }

    #[test]
    fn browser_clean_url_drops_the_handshake_params() {
        let u = url("https://app.example.com/p?__clerk_handshake=t&a=1&__clerk_help=1&__clerk_db_jwt=d&__clerk_handshake_nonce=n");
        assert_eq!(clean_url(&u).as_str(), "https://app.example.com/p?a=1");
        assert_eq!(
            clean_url(&url("https://app.example.com/p?__clerk_handshake=t")).as_str(),
            "https://app.example.com/p"
        );
    }
}
