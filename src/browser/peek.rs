//! Unverified reads of a session token, as `@clerk/backend`'s `decodeJwt`
//! does them before any signature check: which cookie set to trust
//! (`usesSuffixedCookies`), `iat` against `__client_uat`, and the token
//! class (machine token, JWT template). Nothing read here ever grants
//! access; it only picks between signed-out, handshake and verification.
//!
//! Stricter than `decodeJwt` in small ways that only affect garbage
//! tokens: the header and payload must be JSON objects with valid UTF-8
//! and no duplicate known keys, and the base64url must be canonical apart
//! from optional padding. Such tokens count as "does not decode".

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::Deserialize;

use crate::token::json::{parse_object, present, Json};

/// Tokens longer than this are not decoded (verification refuses them
/// anyway, by `verify.max_token_bytes`).
const MAX_PEEK_BYTES: usize = 64 * 1024;

/// base64url, padding optional (built at compile time: building it costs
/// as much as decoding a token).
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Clerk's session-token categories (`cat` header); absent also means a
/// session token.
const SESSION_CATEGORIES: [&str; 2] = ["cl_B7d4PD111AAA", "cl_I7d4PD111III"];

/// RFC 9068 access-token types, which mark OAuth machine tokens.
const OAUTH_TYPES: [&str; 2] = ["at+jwt", "application/at+jwt"];

#[derive(Debug, Default, Deserialize)]
struct RawHeader {
    #[serde(default, deserialize_with = "present")]
    typ: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    cat: Option<Json>,
}

#[derive(Debug, Default, Deserialize)]
struct RawPayload {
    #[serde(default, deserialize_with = "present")]
    iss: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    sub: Option<Json>,
}

/// The parts of a decoded, unverified JWT that the decision reads.
#[derive(Debug)]
pub struct Peek {
    header: RawHeader,
    payload: RawPayload,
    /// Matches `^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`.
    jwt_format: bool,
}

/// Decodes a token without verifying it; `None` when it does not decode.
pub fn peek(token: &str) -> Option<Peek> {
    if token.len() > MAX_PEEK_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    // This runs on every browser request: a usual token decodes into
    // buffers on the stack (an RSA-4096 signature included).
    let mut buffer = [0u8; 2048];
    let mut heap = Vec::new();
    let header: RawHeader = parse_object(decode(h, &mut buffer, &mut heap)?).ok()?;
    let payload: RawPayload = parse_object(decode(p, &mut buffer, &mut heap)?).ok()?;
    decode(s, &mut buffer, &mut heap)?;
    // Every byte already decoded as base64url or padding: the format
    // holds when no part is empty or padded.
    let b64url = |part: &str| !part.is_empty() && !part.as_bytes().contains(&b'=');
    Some(Peek {
        jwt_format: b64url(h) && b64url(p) && b64url(s),
        header,
        payload,
    })
}

/// Decodes one base64url part into `buffer`, or into `heap` when it does
/// not fit.
fn decode<'b>(part: &str, buffer: &'b mut [u8], heap: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    if part.len() / 4 * 3 + 3 <= buffer.len() {
        let n = ENGINE.decode_slice(part, buffer).ok()?;
        Some(&buffer[..n])
    } else {
        *heap = ENGINE.decode(part).ok()?;
        Some(heap)
    }
}

impl Peek {
    /// `!!payload.iss` (JavaScript truthiness).
    pub fn has_issuer(&self) -> bool {
        match &self.payload.iss {
            None | Some(Json::Null) | Some(Json::Bool(false)) => false,
            Some(Json::String(s)) => !s.is_empty(),
            Some(Json::Number(n)) => *n != 0.0 && !n.is_nan(),
            Some(_) => true,
        }
    }

    /// `tokenBelongsToInstance`: a string `iss`, with every `http://` and
    /// `https://` removed (case-insensitive), equal to the Frontend API host.
    pub fn belongs_to(&self, frontend_api_host: &str) -> bool {
        match &self.payload.iss {
            Some(Json::String(iss)) => strip_schemes(iss) == frontend_api_host,
            _ => false,
        }
    }

    /// `payload.iat || 0` for the comparison between cookie sets.
    pub fn iat_or_zero(&self) -> f64 {
        match &self.payload.iat {
            Some(Json::Number(n)) if !n.is_nan() => *n,
            _ => 0.0,
        }
    }

    /// `payload.iat < clientUat` (JavaScript: absent is never less; `null` is 0).
    pub fn issued_before(&self, client_uat: f64) -> bool {
        match &self.payload.iat {
            Some(Json::Number(n)) => *n < client_uat,
            Some(Json::Null) => 0.0 < client_uat,
            _ => false,
        }
    }

    /// `payload.exp <= (Date.now() / 1000) >> 0`.
    pub fn expired(&self, now_ms: i64) -> bool {
        let now = ((now_ms as f64 / 1000.0) as i64) as i32 as f64;
        match &self.payload.exp {
            Some(Json::Number(n)) => *n <= now,
            Some(Json::Null) => 0.0 <= now,
            _ => false,
        }
    }

    /// `isMachineJwt`: an OAuth access token (`typ` at+jwt) or an M2M
    /// token (`sub` starting with `mch_`).
    pub fn is_machine(&self) -> bool {
        if !self.jwt_format {
            return false;
        }
        let oauth =
            matches!(&self.header.typ, Some(Json::String(t)) if OAUTH_TYPES.contains(&t.as_str()));
        let m2m = matches!(&self.payload.sub, Some(Json::String(s)) if s.starts_with("mch_"));
        oauth || m2m
    }

    /// `hasNonSessionJwtCategory`: a `cat` header that is present and not
    /// one of the session categories (`null` counts as present).
    pub fn has_non_session_category(&self) -> bool {
        match &self.header.cat {
            None => false,
            Some(Json::String(c)) => !SESSION_CATEGORIES.contains(&c.as_str()),
            Some(_) => true,
        }
    }
}

/// `iss.replace(/https?:\/\//gi, '')`.
fn strip_schemes(iss: &str) -> String {
    let bytes = iss.as_bytes();
    let mut out = String::with_capacity(iss.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let len = if starts_with_ignore_case(rest, b"https://") {
            8
        } else if starts_with_ignore_case(rest, b"http://") {
            7
        } else {
            0
        };
        if len > 0 {
            out.push_str(&iss[copied..i]);
            i += len;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&iss[copied..]);
    out
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.len() >= prefix.len() && haystack[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// An unsigned token with this header and payload (signature "sig").
    pub(crate) fn unsigned(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn browser_peek_reads_what_the_sdk_reads() {
        let t = unsigned(
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"iss":"https://clerk.example.com","iat":100,"exp":160,"sub":"user_1"}"#,
        );
        let p = peek(&t).unwrap();
        assert!(p.has_issuer() && p.belongs_to("clerk.example.com"));
        assert!(!p.belongs_to("clerk.other.com"));
        assert_eq!(p.iat_or_zero(), 100.0);
        assert!(p.issued_before(101.0) && !p.issued_before(100.0));
        assert!(p.expired(160_000) && !p.expired(159_999));
        assert!(!p.is_machine() && !p.has_non_session_category());
    }

    #[test]
    fn browser_peek_issuer_rules() {
        let iss = |v: &str| {
            peek(&unsigned(
                r#"{"alg":"RS256"}"#,
                &format!(r#"{{"iss":{v}}}"#),
            ))
            .unwrap()
        };
        assert!(!iss("null").has_issuer());
        assert!(!iss(r#""""#).has_issuer());
        assert!(!iss("0").has_issuer());
        assert!(iss("1").has_issuer() && !iss("1").belongs_to("1"));
        assert!(iss(r#""HTTPS://clerk.example.com""#).belongs_to("clerk.example.com"));
        assert!(iss(r#""clerk.example.com""#).belongs_to("clerk.example.com"));
        assert!(iss(r#""http://https://clerk.example.com""#).belongs_to("clerk.example.com"));
        assert!(!iss(r#""https://clerk.example.com/""#).belongs_to("clerk.example.com"));
        assert_eq!(strip_schemes("xhttps://yHttP://z"), "xyz");
    }

    #[test]
    fn browser_peek_token_classes() {
        let m2m = peek(&unsigned(r#"{"alg":"RS256"}"#, r#"{"sub":"mch_1"}"#)).unwrap();
        assert!(m2m.is_machine());
        let oauth = peek(&unsigned(
            r#"{"alg":"RS256","typ":"at+jwt"}"#,
            r#"{"sub":"u"}"#,
        ))
        .unwrap();
        assert!(oauth.is_machine());
        for (cat, non_session) in [
            (r#""cl_B7d4PD111AAA""#, false),
            (r#""cl_I7d4PD111III""#, false),
            (r#""cl_B7d4PD222AAA""#, true),
            ("null", true),
        ] {
            let t = unsigned(&format!(r#"{{"alg":"RS256","cat":{cat}}}"#), "{}");
            assert_eq!(
                peek(&t).unwrap().has_non_session_category(),
                non_session,
                "{cat}"
            );
        }
    }

    #[test]
    fn browser_peek_refuses_what_does_not_decode() {
        let good = unsigned(r#"{"alg":"RS256"}"#, r#"{"iat":1}"#);
        assert!(peek(&good).is_some());
        for bad in [
            "notajwt".to_string(),
            format!("{good}.x"),
            good.replace(".c2ln", ".c2l!"),
            unsigned("[1]", "{}"),
            unsigned("{}", "null"),
            unsigned("{}", "{\"iat\":1,\"iat\":2}"),
            format!("{}.{}.c2ln", "e30", "%%%"),
        ] {
            assert!(peek(&bad).is_none(), "{bad}");
        }
        // Padding is tolerated (decodeJwt is loose), but then it is not JWT format.
        let padded = format!("{}.e30=.c2ln", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#));
        assert!(peek(&padded).is_some_and(|p| !p.jwt_format));
    }
}
