//! The JOSE header (RFC 7515 §4): which algorithm and which key.
//!
//! Only `alg`, `kid`, `typ`, `crit` and `cat` are read. `jku`, `x5u`, `jwk`
//! and `x5c` are never read at all: a token must not choose its own key.

use serde::Deserialize;

use crate::token::algorithms::Algorithm;
use crate::token::errors::TokenError;
use crate::token::json::{parse_object, present, Json};

/// Longest `kid` accepted, in bytes (in a token and in a JWKS).
pub const MAX_KID_BYTES: usize = 256;

/// Clerk token categories that mark a session token (`cat` header).
/// Absent also means a (legacy) session token.
const SESSION_CATEGORIES: [&str; 2] = ["cl_B7d4PD111AAA", "cl_I7d4PD111III"];

/// The checked header of a token.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    #[serde(default, deserialize_with = "present")]
    alg: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    kid: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    typ: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    cat: Option<Json>,
}

/// Parses and checks the decoded header JSON. Everything here happens
/// before any key lookup.
pub fn parse_header(json: &[u8]) -> Result<Header, TokenError> {
    let raw: RawHeader = parse_object(json)?;
    if raw.crit.is_some() {
        // We implement no JWS extension, so every `crit` entry is unknown.
        return Err(TokenError::UnsupportedCrit);
    }
    match &raw.typ {
        None => {}
        Some(Json::String(t)) if t == "JWT" => {}
        Some(_) => return Err(TokenError::InvalidType),
    }
    match &raw.cat {
        None => {}
        Some(Json::String(c)) if SESSION_CATEGORIES.contains(&c.as_str()) => {}
        Some(_) => return Err(TokenError::WrongCategory),
    }
    let alg = match &raw.alg {
        Some(Json::String(name)) => Algorithm::from_name(name),
        _ => None,
    }
    .ok_or(TokenError::InvalidAlgorithm)?;
    let kid = match raw.kid {
        None => None,
        Some(Json::String(kid)) if kid.len() <= MAX_KID_BYTES => Some(kid),
        Some(_) => return Err(TokenError::InvalidKid),
    };
    Ok(Header { alg, kid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Header, TokenError> {
        parse_header(json.as_bytes())
    }

    #[test]
    fn clerk_header_parses() {
        let h = parse(r#"{"alg":"RS256","kid":"ins_2abc","typ":"JWT","cat":"cl_B7d4PD111AAA"}"#);
        assert_eq!(
            h.unwrap(),
            Header {
                alg: Algorithm::RS256,
                kid: Some("ins_2abc".into())
            }
        );
        assert!(
            parse(r#"{"alg":"RS512"}"#).is_ok(),
            "typ and kid are optional"
        );
    }

    #[test]
    fn each_bad_header_has_its_reason() {
        use TokenError::*;
        let cases = [
            (r#"{"alg":"none"}"#, InvalidAlgorithm),
            (r#"{"alg":"HS256","kid":"k"}"#, InvalidAlgorithm),
            (r#"{"alg":null}"#, InvalidAlgorithm),
            (r#"{"kid":"k"}"#, InvalidAlgorithm),
            (r#"{"alg":"RS256","typ":"jwt"}"#, InvalidType),
            (r#"{"alg":"RS256","typ":null}"#, InvalidType),
            (r#"{"alg":"RS256","crit":["exp"]}"#, UnsupportedCrit),
            (r#"{"alg":"RS256","crit":[]}"#, UnsupportedCrit),
            (r#"{"alg":"RS256","cat":"cl_B7d4PD333AAA"}"#, WrongCategory),
            (r#"{"alg":"RS256","cat":"cl_B7d4PD222AAA"}"#, WrongCategory),
            (r#"{"alg":"RS256","kid":7}"#, InvalidKid),
            (r#"{"alg":"RS256","alg":"RS256"}"#, Malformed),
            (r#"["RS256"]"#, Malformed),
            (r#"null"#, Malformed),
            (r#"{"alg":"RS256""#, Malformed),
        ];
        for (json, want) in cases {
            assert_eq!(parse(json), Err(want), "{json}");
        }
        let long_kid = format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(257));
        assert_eq!(parse(&long_kid), Err(InvalidKid));
    }

    #[test]
    fn key_carrying_headers_are_ignored() {
        let h = parse(
            r#"{"alg":"RS256","kid":"a","jku":"http://evil/jwks","x5u":"http://evil","jwk":{"kty":"RSA"},"x5c":["AAAA"]}"#,
        );
        assert_eq!(h.unwrap().kid.as_deref(), Some("a"));
    }
}
