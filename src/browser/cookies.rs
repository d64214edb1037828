//! Clerk's cookies, read as `@clerk/backend` reads them.
//!
//! The `Cookie` header is parsed with `cookie@1`'s algorithm
//! (clerk-handshake.md §1): pairs split at `;`, the first `=` splits name
//! and value, name and value are trimmed of SP and HTAB, the **first**
//! occurrence of a name wins (even an empty one), and a value holding `%`
//! is percent-decoded as `decodeURIComponent` does, or left raw when that
//! fails. The header is read **bytewise**, each byte as one Latin-1
//! character (as Node.js hands headers to the SDK), so a non-UTF-8 byte or
//! a control byte in someone else's cookie can neither hide `__session`
//! nor fail the request. An empty value reads as absent (`|| undefined`).
//!
//! Then the SDK's choice between the suffixed cookies (`__session_<sfx>`,
//! `__client_uat_<sfx>`) and the plain ones ([`ClerkCookies::uses_suffixed`],
//! rules 1-8 of §1), `__client_uat`'s `parseInt` and the redirect
//! counter's `Number()`.

use std::borrow::Cow;

use super::peek::{peek, Peek};
use crate::token::scopes::js_space;

/// The cookies the browser flow reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    Session,
    SessionSuffixed,
    ClientUat,
    ClientUatSuffixed,
    /// `__refresh_<sfx>` (the SDK never reads an unsuffixed one).
    RefreshSuffixed,
    DevBrowser,
    DevBrowserSuffixed,
    /// `__clerk_handshake` (never suffixed).
    Handshake,
    /// `__clerk_handshake_nonce` (never suffixed).
    HandshakeNonce,
    /// `__clerk_redirect_count` (never suffixed).
    RedirectCount,
}

const NAMES: [(Name, &str, bool); 10] = [
    (Name::Session, "__session", false),
    (Name::SessionSuffixed, "__session", true),
    (Name::ClientUat, "__client_uat", false),
    (Name::ClientUatSuffixed, "__client_uat", true),
    (Name::RefreshSuffixed, "__refresh", true),
    (Name::DevBrowser, "__clerk_db_jwt", false),
    (Name::DevBrowserSuffixed, "__clerk_db_jwt", true),
    (Name::Handshake, "__clerk_handshake", false),
    (Name::HandshakeNonce, "__clerk_handshake_nonce", false),
    (Name::RedirectCount, "__clerk_redirect_count", false),
];

/// The first occurrence of each Clerk cookie in a request.
#[derive(Clone, Debug, Default)]
pub struct ClerkCookies<'a> {
    /// Indexed like `NAMES`; `Some("")` is a first occurrence with an empty value.
    values: [Option<Cow<'a, str>>; 10],
}

impl<'a> ClerkCookies<'a> {
    /// Parses every `Cookie` header of the request, in order (nginx joins
    /// HTTP/2 cookie crumbs into one; several headers read as one list).
    pub fn parse<I>(cookie_headers: I, suffix: &str) -> ClerkCookies<'a>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut jar = ClerkCookies::default();
        for header in cookie_headers {
            for_each_pair(header, |name, value| {
                let Some(i) = index_of(name, suffix) else {
                    return;
                };
                if jar.values[i].is_none() {
                    jar.values[i] = Some(decode_value(value));
                }
            });
        }
        jar
    }

    /// A cookie's value; `None` when absent or empty.
    pub fn get(&self, name: Name) -> Option<&str> {
        let i = NAMES.iter().position(|(n, _, _)| *n == name)?;
        self.values[i].as_deref().filter(|v| !v.is_empty())
    }

    /// `usesSuffixedCookies()` (§1 rules 1-8), for an instance whose
    /// Frontend API host (from the publishable key) is `frontend_api_host`.
    /// `now_ms` only matters for rule 6 (development instances).
    pub fn uses_suffixed(&self, frontend_api_host: &str, production: bool, now_ms: i64) -> bool {
        let session_peek = self.get(Name::Session).and_then(peek);
        self.uses_suffixed_peeked(session_peek.as_ref(), frontend_api_host, production, now_ms)
    }

    /// [`ClerkCookies::uses_suffixed`] with the plain `__session` already
    /// decoded (`peek` of [`Name::Session`]'s value), so the decision
    /// decodes it once per request.
    pub(crate) fn uses_suffixed_peeked(
        &self,
        session_peek: Option<&Peek>,
        frontend_api_host: &str,
        production: bool,
        now_ms: i64,
    ) -> bool {
        let suffixed_uat = self.get(Name::ClientUatSuffixed);
        let uat = self.get(Name::ClientUat);
        let suffixed_session = self.get(Name::SessionSuffixed);
        let session = self.get(Name::Session);
        if session.is_some() {
            // 1: a malformed plain session (or one without iss) reads plain;
            // 2: a plain session from another instance means trust suffixed.
            match session_peek {
                Some(p) if p.has_issuer() => {
                    if !p.belongs_to(frontend_api_host) {
                        return true;
                    }
                }
                _ => return false,
            }
        }
        // 3
        if suffixed_uat.is_none() && suffixed_session.is_none() {
            return false;
        }
        let suffixed_peek = suffixed_session.and_then(peek);
        let iat = session_peek.map_or(0.0, Peek::iat_or_zero);
        let suffixed_iat = suffixed_peek.as_ref().map_or(0.0, Peek::iat_or_zero);
        // 4: both signed in, plain is newer
        if suffixed_uat != Some("0") && uat != Some("0") && iat > suffixed_iat {
            return false;
        }
        // 5: suffixed says signed out, plain says signed in
        if suffixed_uat == Some("0") && uat != Some("0") {
            return false;
        }
        // 6: development: suffixed signed in but expired, plain signed out
        if !production {
            let suffixed_expired = suffixed_peek.as_ref().is_some_and(|p| p.expired(now_ms));
            if suffixed_uat != Some("0") && uat == Some("0") && suffixed_expired {
                return false;
            }
        }
        // 7: a suffixed session without its uat (FAPI has suffixes off)
        if suffixed_uat.is_none() && suffixed_session.is_some() {
            return false;
        }
        // 8
        true
    }

    /// `__session[_sfx]`.
    pub fn session(&self, suffixed: bool) -> Option<&str> {
        self.get(if suffixed {
            Name::SessionSuffixed
        } else {
            Name::Session
        })
    }

    /// `Number.parseInt(__client_uat[_sfx]) || 0`.
    pub fn client_uat(&self, suffixed: bool) -> f64 {
        let name = if suffixed {
            Name::ClientUatSuffixed
        } else {
            Name::ClientUat
        };
        let n = js_parse_int(self.get(name).unwrap_or(""));
        if n.is_nan() || n == 0.0 {
            0.0
        } else {
            n
        }
    }

    /// `__clerk_db_jwt[_sfx]`.
    pub fn dev_browser(&self, suffixed: bool) -> Option<&str> {
        self.get(if suffixed {
            Name::DevBrowserSuffixed
        } else {
            Name::DevBrowser
        })
    }

    /// `Number(__clerk_redirect_count) || 0`.
    pub fn redirect_count(&self) -> f64 {
        let n = js_number(self.get(Name::RedirectCount).unwrap_or(""));
        if n.is_nan() || n == 0.0 {
            0.0
        } else {
            n
        }
    }
}

fn index_of(name: &[u8], suffix: &str) -> Option<usize> {
    NAMES.iter().position(|(_, base, suffixed)| {
        let base = base.as_bytes();
        if !*suffixed {
            return name == base;
        }
        name.len() == base.len() + 1 + suffix.len()
            && name.starts_with(base)
            && name[base.len()] == b'_'
            && name.ends_with(suffix.as_bytes())
    })
}

/// `cookie@1`'s `parseCookie` over raw bytes: calls `f(name, value)` for
/// every pair, in order, names and values trimmed of SP/HTAB, values not
/// yet decoded. Never fails.
pub fn for_each_pair<'a>(header: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8])) {
    let len = header.len();
    if len < 2 {
        return;
    }
    let find = |byte: u8, from: usize| {
        header[from..]
            .iter()
            .position(|b| *b == byte)
            .map(|i| from + i)
    };
    let mut index = 0;
    while index < len {
        let Some(eq) = find(b'=', index) else {
            break;
        };
        let end = find(b';', index).unwrap_or(len);
        if eq > end {
            // A pair without '=': skip to the segment holding this '='.
            index = header[..eq]
                .iter()
                .rposition(|b| *b == b';')
                .map_or(0, |i| i + 1);
            continue;
        }
        f(trim(&header[index..eq]), trim(&header[eq + 1..end]));
        index = end + 1;
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A raw cookie value as the SDK sees it: bytes as Latin-1 characters,
/// then `decodeURIComponent` when it holds `%` (raw if that fails).
pub fn decode_value(raw: &[u8]) -> Cow<'_, str> {
    let text = latin1(raw);
    if !text.contains('%') {
        return text;
    }
    match decode_uri_component(&text) {
        Some(decoded) => Cow::Owned(decoded),
        None => text,
    }
}

/// Bytes as Latin-1 text; borrowed when they are ASCII.
pub fn latin1(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) if s.is_ascii() => Cow::Borrowed(s),
        _ => Cow::Owned(raw.iter().map(|b| char::from(*b)).collect()),
    }
}

/// JavaScript's `decodeURIComponent`: `None` where it throws `URIError`.
fn decode_uri_component(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    let hex_at = |i: usize| -> Option<u8> {
        let h = s.get(i + 1..i + 3)?;
        if h.bytes().all(|b| b.is_ascii_hexdigit()) {
            u8::from_str_radix(h, 16).ok()
        } else {
            None
        }
    };
    while let Some((i, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let first = hex_at(i)?;
        let extra = match first {
            0x00..=0x7f => 0,
            0xc0..=0xdf => 1,
            0xe0..=0xef => 2,
            0xf0..=0xf7 => 3,
            _ => return None,
        };
        let mut bytes = vec![first];
        let mut at = i + 3;
        for _ in 0..extra {
            if s.as_bytes().get(at) != Some(&b'%') {
                return None;
            }
            let b = hex_at(at)?;
            if b & 0xc0 != 0x80 {
                return None;
            }
            bytes.push(b);
            at += 3;
        }
        out.push_str(std::str::from_utf8(&bytes).ok()?);
        // Skip the consumed "%XX" triplets (ASCII, so one char per byte).
        while chars.peek().is_some_and(|(j, _)| *j < at) {
            chars.next();
        }
    }
    Some(out)
}

/// JavaScript's `Number(string)`: NaN when the text is not a numeric literal.
pub fn js_number(s: &str) -> f64 {
    let s = s.trim_matches(js_space);
    if s.is_empty() {
        return 0.0;
    }
    let lower = s.to_ascii_lowercase();
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = lower.strip_prefix(prefix) {
            return radix_value(digits, radix).unwrap_or(f64::NAN);
        }
    }
    let (sign, unsigned) = match s.as_bytes()[0] {
        b'-' => (-1.0, &s[1..]),
        b'+' => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    if unsigned == "Infinity" {
        return sign * f64::INFINITY;
    }
    if !is_decimal_literal(unsigned) {
        return f64::NAN;
    }
    unsigned.parse::<f64>().map_or(f64::NAN, |v| sign * v)
}

/// `DecimalDigits [. DecimalDigits?] [Exponent]` or `. DecimalDigits [Exponent]`.
fn is_decimal_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(0);
    let mut i = int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac = digits(i);
        i += frac;
    }
    if int == 0 && frac == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = digits(i);
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

fn radix_value(digits: &str, radix: u32) -> Option<f64> {
    if digits.is_empty() {
        return None;
    }
    digits.chars().try_fold(0.0f64, |acc, c| {
        c.to_digit(radix).map(|d| acc * radix as f64 + d as f64)
    })
}

/// JavaScript's `Number.parseInt(string)` (no radix): leading white space,
/// a sign, `0x` for hex, then the longest run of digits; NaN if none.
pub fn js_parse_int(s: &str) -> f64 {
    let s = s.trim_start_matches(js_space);
    let (sign, s) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let (radix, s) = match s.get(..2) {
        Some("0x" | "0X") => (16, &s[2..]),
        _ => (10, s),
    };
    let end = s
        .char_indices()
        .find(|(_, c)| !c.is_digit(radix))
        .map_or(s.len(), |(i, _)| i);
    let digits = &s[..end];
    if digits.is_empty() {
        return f64::NAN;
    }
    let value = if radix == 10 {
        digits.parse::<f64>().unwrap_or(f64::NAN)
    } else {
        radix_value(digits, radix).unwrap_or(f64::NAN)
    };
    sign * value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::peek::tests::unsigned;

    const SFX: &str = "naoXFJnI";
    const HOST: &str = "clerk.example.com";

    fn jar(header: &'static [u8]) -> ClerkCookies<'static> {
        ClerkCookies::parse([header], SFX)
    }

    fn pairs(header: &[u8]) -> Vec<(String, String)> {
        let mut out = vec![];
        for_each_pair(header, |n, v| {
            out.push((latin1(n).into_owned(), decode_value(v).into_owned()))
        });
        out
    }

    #[test]
    fn browser_cookie_pairs_follow_cookie_1() {
        assert_eq!(
            pairs(b"a=1; b=2"),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(
            pairs(b"  a \t=  1 ;b=2"),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        // A segment without '=' is skipped; the next pair still parses.
        assert_eq!(pairs(b"junk; a=1"), [("a".into(), "1".into())]);
        assert_eq!(pairs(b"junk;more;a=1;x"), [("a".into(), "1".into())]);
        // The first '=' splits; later ones are part of the value.
        assert_eq!(pairs(b"a=b=c"), [("a".into(), "b=c".into())]);
        // Quotes are kept, empty names are pairs too.
        assert_eq!(
            pairs(b"a=\"q\"; =v"),
            [("a".into(), "\"q\"".into()), ("".into(), "v".into())]
        );
        assert_eq!(pairs(b"a"), []);
        assert_eq!(pairs(b"="), [], "shorter than 2 bytes");
        assert_eq!(pairs(b"=="), [("".into(), "=".into())]);
        assert_eq!(pairs(b""), []);
    }

    #[test]
    fn browser_cookie_values_are_percent_decoded_like_decode_uri_component() {
        assert_eq!(decode_value(b"caf%C3%A9"), "café");
        assert_eq!(decode_value(b"a%3Bb%3D"), "a;b=");
        assert_eq!(decode_value(b"%41%42"), "AB");
        // Failures leave the value raw.
        for raw in [
            "%",
            "%4",
            "%zz",
            "%C3",
            "%C3%41",
            "%C0%80",
            "%ED%A0%80",
            "%FF",
            "100%",
        ] {
            assert_eq!(decode_value(raw.as_bytes()), raw, "{raw}");
        }
        // Bytes are Latin-1 characters, decoded or not.
        assert_eq!(decode_value(b"caf\xe9"), "caf\u{e9}");
        assert_eq!(decode_value(b"\xe9%41"), "\u{e9}A");
    }

    #[test]
    fn browser_foreign_bytes_never_hide_the_session() {
        let c = jar(b"x=\x01\x02; a=caf\xe9; b=\xff\xfe; __session=tok; c=\"");
        assert_eq!(c.get(Name::Session), Some("tok"));
        let c = jar(b"\xff=1;__session=tok");
        assert_eq!(c.get(Name::Session), Some("tok"));
    }

    #[test]
    fn browser_first_occurrence_wins_even_when_empty() {
        let c = jar(b"__session=first; __session=second");
        assert_eq!(c.get(Name::Session), Some("first"));
        let c = jar(b"__session=; __session=second");
        assert_eq!(
            c.get(Name::Session),
            None,
            "the empty first one wins and reads absent"
        );
        let two = ClerkCookies::parse(
            [
                &b"a=1"[..],
                &b"__session=x; __session=y"[..],
                &b"__session=z"[..],
            ],
            SFX,
        );
        assert_eq!(two.get(Name::Session), Some("x"));
    }

    #[test]
    fn browser_suffixed_names_need_this_instances_suffix() {
        let c = jar(b"__session_naoXFJnI=s; __session_other=o; __client_uat_naoXFJnI=5; __refresh_naoXFJnI=r; __refresh=plain");
        assert_eq!(c.get(Name::SessionSuffixed), Some("s"));
        assert_eq!(c.get(Name::Session), None);
        assert_eq!(c.get(Name::RefreshSuffixed), Some("r"));
        assert_eq!(c.client_uat(true), 5.0);
        let c = jar(b"__clerk_handshake=h; __clerk_handshake_nonce=n; __clerk_redirect_count=2; __clerk_db_jwt=d; __clerk_db_jwt_naoXFJnI=ds");
        assert_eq!(c.get(Name::Handshake), Some("h"));
        assert_eq!(c.get(Name::HandshakeNonce), Some("n"));
        assert_eq!(c.redirect_count(), 2.0);
        assert_eq!(c.dev_browser(false), Some("d"));
        assert_eq!(c.dev_browser(true), Some("ds"));
    }

    #[test]
    fn browser_client_uat_is_parse_int() {
        for (v, want) in [
            ("1700000000", 1_700_000_000.0),
            ("abc", 0.0),
            ("12x", 12.0),
            ("0", 0.0),
            ("-0", 0.0),
            ("", 0.0),
            (" 7", 7.0),
            ("-5", -5.0),
            ("0x1A", 26.0),
            ("0x", 0.0),
            ("1e3", 1.0),
            ("3.9", 3.0),
            ("+4", 4.0),
        ] {
            let header = format!("__client_uat={v}");
            let c = ClerkCookies::parse([header.as_bytes()], SFX);
            assert_eq!(c.client_uat(false), want, "{v:?}");
        }
    }

    #[test]
    fn browser_redirect_count_is_number() {
        for (v, want) in [
            ("2", 2.0),
            ("abc", 0.0),
            ("", 0.0),
            (" 3 ", 3.0),
            ("0x10", 16.0),
            ("1e1", 10.0),
            ("2.5", 2.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("-1", -1.0),
            ("-0", 0.0),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("infinity", 0.0),
            ("inf", 0.0),
            ("NaN", 0.0),
            ("1_0", 0.0),
            ("-0x10", 0.0),
            ("0b11", 3.0),
            ("0o7", 7.0),
            ("1e", 0.0),
            ("e1", 0.0),
            ("%20%31", 1.0),
        ] {
            let header = format!("__clerk_redirect_count={v}");
            let c = ClerkCookies::parse([header.as_bytes()], SFX);
            assert_eq!(c.redirect_count(), want, "{v:?}");
        }
    }

    fn token(iss: &str, iat: i64, exp: i64) -> String {
        unsigned(
            r#"{"alg":"RS256"}"#,
            &format!(r#"{{"iss":"{iss}","iat":{iat},"exp":{exp},"sub":"u"}}"#),
        )
    }

    fn suffixed(cookies: &str, production: bool) -> bool {
        ClerkCookies::parse([cookies.as_bytes()], SFX).uses_suffixed(HOST, production, 1_000_000)
    }

    #[test]
    fn browser_suffix_selection_rules() {
        let mine = token("https://clerk.example.com", 100, 2000);
        let newer = token("https://clerk.example.com", 200, 2000);
        let expired = token("https://clerk.example.com", 100, 900);
        let foreign = token("https://clerk.other.com", 100, 2000);
        let no_iss = unsigned(r#"{"alg":"RS256"}"#, r#"{"iat":1}"#);
        // 1: a plain session that does not decode or has no iss
        assert!(!suffixed(
            &format!("__session=junk; __session_{SFX}={mine}; __client_uat_{SFX}=1"),
            true
        ));
        assert!(!suffixed(
            &format!("__session={no_iss}; __session_{SFX}={mine}; __client_uat_{SFX}=1"),
            true
        ));
        // 2: a plain session of another instance
        assert!(suffixed(&format!("__session={foreign}"), true));
        // 3: no suffixed cookies
        assert!(!suffixed(
            &format!("__session={mine}; __client_uat=1"),
            true
        ));
        assert!(!suffixed("", true));
        // 4: both signed in, the plain token is newer
        assert!(!suffixed(
            &format!(
                "__session={newer}; __client_uat=1; __session_{SFX}={mine}; __client_uat_{SFX}=1"
            ),
            true
        ));
        assert!(suffixed(
            &format!(
                "__session={mine}; __client_uat=1; __session_{SFX}={newer}; __client_uat_{SFX}=1"
            ),
            true
        ));
        // 5: suffixed signed out, plain signed in
        assert!(!suffixed(
            &format!("__client_uat=5; __client_uat_{SFX}=0"),
            true
        ));
        assert!(suffixed(
            &format!("__client_uat=0; __client_uat_{SFX}=0"),
            true
        ));
        // 6: development only: suffixed token expired, plain signed out
        let c = format!("__client_uat=0; __client_uat_{SFX}=5; __session_{SFX}={expired}");
        assert!(!suffixed(&c, false));
        assert!(suffixed(&c, true));
        // 7: a suffixed session without its uat
        assert!(!suffixed(&format!("__session_{SFX}={mine}"), true));
        // 8
        assert!(suffixed(&format!("__client_uat_{SFX}=5"), true));
        assert!(suffixed(
            &format!("__session_{SFX}={mine}; __client_uat_{SFX}=5"),
            true
        ));
    }
}
