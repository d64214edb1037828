//! Finding the session token in a request, as Clerk's SDKs do: the
//! `Authorization: Bearer` header first (scheme case-insensitive), else the
//! `__session` cookie (or Clerk's per-instance `__session_<suffix>`).
//! When the header carries a token, cookies are not looked at.
//!
//! The Cookie header is read as bytes (Clerk's Node SDK sees it as Latin-1
//! text): a cookie jwtgate does not read may hold any byte, a control
//! character or invalid UTF-8 included, without hiding the session cookie.
//! Only the session cookie's own value must be text, or the token is
//! malformed.

use crate::token::errors::TokenError;

/// Where the token was found (shown in the debug log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    Header,
    Cookie,
}

impl Carrier {
    pub fn name(self) -> &'static str {
        match self {
            Carrier::Header => "header",
            Carrier::Cookie => "cookie",
        }
    }
}

/// Finds the token among `(name, value)` request headers.
///
/// `cookie_suffix` is Clerk's suffix for this instance when known (it comes
/// from the publishable key); its cookie is preferred over plain `__session`.
pub fn find_token<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
    cookie_suffix: Option<&str>,
) -> Result<(&'a str, Carrier), TokenError> {
    let mut authorization = headers
        .clone()
        .filter(|(name, _)| name.eq_ignore_ascii_case("authorization"));
    if let Some((_, value)) = authorization.next() {
        if authorization.next().is_some() {
            return Err(TokenError::AmbiguousAuthorization);
        }
        if let Some(token) = bearer_token(value)? {
            return Ok((token, Carrier::Header));
        }
    }
    let cookies = headers
        .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, value)| value.split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = trim(pair);
            let eq = pair.iter().position(|b| *b == b'=')?;
            Some((trim(&pair[..eq]), &pair[eq + 1..]))
        });
    match session_cookie(cookies, cookie_suffix) {
        Some(value) => std::str::from_utf8(value)
            .map(|token| (token, Carrier::Cookie))
            .map_err(|_| TokenError::Malformed),
        None => Err(TokenError::Missing),
    }
}

/// Trims the whitespace a Cookie header puts around pairs, names and values.
fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// The token of the `Authorization: Bearer` header alone, by the same
/// rules as [`find_token`]: `Ok(None)` when there is no header or another
/// scheme (the cookies decide), an error when two headers or an empty
/// Bearer make it unusable. The browser flow reads cookies itself.
pub fn find_bearer<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<Option<&'a str>, TokenError> {
    let mut authorization = headers.filter(|(name, _)| name.eq_ignore_ascii_case("authorization"));
    let Some((_, value)) = authorization.next() else {
        return Ok(None);
    };
    if authorization.next().is_some() {
        return Err(TokenError::AmbiguousAuthorization);
    }
    bearer_token(value)
}

/// `Ok(None)` when the scheme is not Bearer (another auth scheme: fall
/// back to the cookie); an error when it is Bearer but unusable.
fn bearer_token(value: &[u8]) -> Result<Option<&str>, TokenError> {
    let value = std::str::from_utf8(value)
        .map_err(|_| TokenError::Malformed)?
        .trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(Some(token))
}

/// The session cookie's value among `(name, value)` cookies, as bytes.
fn session_cookie<'a>(
    cookies: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    suffix: Option<&str>,
) -> Option<&'a [u8]> {
    let mut plain = None;
    let mut suffixed = None;
    let mut any_suffixed = None;
    for (name, value) in cookies {
        let value = unquote(trim(value));
        if value.is_empty() {
            continue;
        }
        if name == b"__session" {
            plain = plain.or(Some(value));
        } else if let Some(rest) = name.strip_prefix(b"__session_") {
            if suffix.is_some_and(|s| s.as_bytes() == rest) {
                suffixed = suffixed.or(Some(value));
            }
            any_suffixed = any_suffixed.or(Some(value));
        }
    }
    match suffix {
        Some(_) => suffixed.or(plain),
        None => plain.or(any_suffixed),
    }
}

fn unquote(value: &[u8]) -> &[u8] {
    value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(
        headers: &[(&'static str, &'static str)],
        suffix: Option<&str>,
    ) -> Result<(&'static str, Carrier), TokenError> {
        find_token(headers.iter().map(|(n, v)| (*n, v.as_bytes())), suffix)
    }

    #[test]
    fn bearer_header_wins_over_cookie() {
        let h = [
            ("Cookie", "__session=cookietok"),
            ("authorization", "bEaReR   headertok"),
        ];
        assert_eq!(find(&h, None), Ok(("headertok", Carrier::Header)));
    }

    #[test]
    fn cookie_is_used_without_a_bearer_header() {
        let h = [
            ("Authorization", "Basic dXNlcjpwdw=="),
            ("Cookie", "a=b; __session=tok; c=d"),
        ];
        assert_eq!(find(&h, None), Ok(("tok", Carrier::Cookie)));
        let h = [("Cookie", "__session_abc=s1; __session=plain")];
        assert_eq!(find(&h, None), Ok(("plain", Carrier::Cookie)));
        assert_eq!(find(&h, Some("abc")), Ok(("s1", Carrier::Cookie)));
        assert_eq!(
            find(&[("Cookie", "__session_xyz=s2")], None),
            Ok(("s2", Carrier::Cookie))
        );
        assert_eq!(
            find(&[("Cookie", "__session=\"q\"")], None),
            Ok(("q", Carrier::Cookie))
        );
        assert_eq!(
            find(&[("Cookie", "__session=first; __session=second")], None),
            Ok(("first", Carrier::Cookie))
        );
    }

    #[test]
    fn other_cookies_may_hold_any_byte() {
        fn find_bytes<'a>(
            cookies: &[&'a [u8]],
            suffix: Option<&str>,
        ) -> Result<(&'a str, Carrier), TokenError> {
            find_token(cookies.iter().map(|c| ("Cookie", *c)), suffix)
        }
        for other in [
            &b"a=caf\xe9"[..],
            b"theme=\xff\xfe",
            b"x=\x01",
            b"x=\x00\x7f",
            b"n\xe4me=1",
            b"\xc3",
            b"=",
            b"a=\"\x01\"",
        ] {
            for cookie in [
                [other, b"; __session=tok"].concat(),
                [b"__session=tok;", other].concat(),
                [b"__session=tok;", other, b";"].concat(),
            ] {
                assert_eq!(
                    find_bytes(&[&cookie], None),
                    Ok(("tok", Carrier::Cookie)),
                    "{}",
                    cookie.escape_ascii()
                );
            }
            // In another Cookie header (HTTP/2 sends one per cookie).
            assert_eq!(
                find_bytes(&[other, b"__session=tok"], None),
                Ok(("tok", Carrier::Cookie))
            );
        }
        let suffixed: &[u8] = b"x=\xe9; __session_abc=s1; __session=plain";
        assert_eq!(
            find_bytes(&[suffixed], Some("abc")),
            Ok(("s1", Carrier::Cookie))
        );
        // The session cookie itself must be text.
        assert_eq!(
            find_bytes(&[b"__session=t\xe9k"], None),
            Err(TokenError::Malformed)
        );
        assert_eq!(find_bytes(&[b"\xe9=\xe9"], None), Err(TokenError::Missing));
    }

    #[test]
    fn the_bearer_alone_follows_the_same_rules() {
        let find = |h: &[(&'static str, &'static str)]| {
            find_bearer(h.iter().map(|(n, v)| (*n, v.as_bytes())))
        };
        assert_eq!(find(&[("Cookie", "__session=c")]), Ok(None));
        assert_eq!(find(&[("Authorization", "Basic x")]), Ok(None));
        assert_eq!(find(&[("authorization", "bearer  t")]), Ok(Some("t")));
        assert_eq!(
            find(&[("Authorization", "Bearer a"), ("Authorization", "Bearer b")]),
            Err(TokenError::AmbiguousAuthorization)
        );
        assert_eq!(
            find(&[("Authorization", "Bearer")]),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn missing_ambiguous_and_empty() {
        assert_eq!(find(&[], None), Err(TokenError::Missing));
        assert_eq!(
            find(&[("Cookie", "__session=; other=1")], None),
            Err(TokenError::Missing)
        );
        assert_eq!(
            find(&[("Cookie", "__sessionX=a")], None),
            Err(TokenError::Missing)
        );
        let two = [("Authorization", "Bearer a"), ("Authorization", "Bearer b")];
        assert_eq!(find(&two, None), Err(TokenError::AmbiguousAuthorization));
        assert_eq!(
            find(&[("Authorization", "Bearer   ")], None),
            Err(TokenError::Malformed)
        );
    }
}
