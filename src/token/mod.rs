//! The token itself: decoding, the JOSE header, algorithms, claims and the
//! identity they carry, and the reasons a token fails. Pure: no I/O, no
//! keys, no configuration.
//!
//! Compact JWS decoding (RFC 7515 §7.1) lives here: three base64url
//! segments, strict on purpose: no `=` padding, no `+` or `/`, no
//! whitespace, no non-canonical trailing bits. Anything else is
//! `token-invalid`.

pub mod algorithms;
pub mod claim_headers;
pub mod claims;
pub mod errors;
pub mod header;
pub mod identity;
pub(crate) mod json;
pub mod scopes;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use claims::Claims;
use errors::TokenError;
use header::{parse_header, Header};

/// A structurally valid compact JWS whose signature is not yet checked.
#[derive(Debug)]
pub struct Jws<'t> {
    pub header: Header,
    /// The payload bytes (for a JWT, the claims JSON).
    pub payload: Vec<u8>,
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    pub signing_input: &'t [u8],
    pub signature: Vec<u8>,
}

/// A JWT: a JWS whose payload is a JSON object of claims.
#[derive(Debug)]
pub struct Decoded<'t> {
    pub jws: Jws<'t>,
    pub claims: Claims,
}

/// Splits and decodes a compact JWS and checks its header.
pub fn decode_jws(token: &str) -> Result<Jws<'_>, TokenError> {
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header = parse_header(&decode_segment(h64)?)?;
    let payload = decode_segment(p64)?;
    let signature = decode_segment(s64)?;
    let signing_input = &token.as_bytes()[..h64.len() + 1 + p64.len()];
    Ok(Jws {
        header,
        payload,
        signing_input,
        signature,
    })
}

/// Decodes a JWT: the JWS, then its claims JSON.
pub fn decode(token: &str) -> Result<Decoded<'_>, TokenError> {
    let jws = decode_jws(token)?;
    let claims = Claims::parse(&jws.payload)?;
    Ok(Decoded { jws, claims })
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str, sig: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), sig)
    }

    #[test]
    fn well_formed_token_decodes() {
        let t = token(
            r#"{"alg":"RS256","kid":"k"}"#,
            r#"{"sub":"u","exp":1}"#,
            "AQID",
        );
        let d = decode(&t).unwrap().jws;
        assert_eq!(d.signature, [1, 2, 3]);
        assert_eq!(d.signing_input, t.rsplit_once('.').unwrap().0.as_bytes());
        assert_eq!(d.header.kid.as_deref(), Some("k"));
    }

    #[test]
    fn structural_damage_is_malformed() {
        let good = token(r#"{"alg":"RS256"}"#, r#"{"sub":"u"}"#, "AQID");
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let cases = [
            String::new(),
            format!("{h}.{p}"),
            format!("{h}.{p}.{s}.x"),
            format!("{h}.{p}.{s}="),
            format!("{h}=.{p}.{s}"),
            format!("{h}.{p}.{s}\n"),
            format!(" {h}.{p}.{s}"),
            format!("{h}.{p}.AQI+"),
            format!("{h}.{p}.AQI/"),
            format!("{h}.{p}.AQJ"), // non-canonical trailing bits
            format!("{h}.{}.{s}", b64("[1]")),
            format!("{h}.{}.{s}", b64("\"str\"")),
            format!(
                "{}.{p}.{s}",
                URL_SAFE_NO_PAD.encode([0x7b, 0xff, 0xfe, 0x7d])
            ),
            format!(
                "{h}.{}.{s}",
                b64(&format!("{}1{}", "[".repeat(200), "]".repeat(200)))
            ),
        ];
        for t in cases {
            assert_eq!(decode(&t).unwrap_err(), TokenError::Malformed, "{t:?}");
        }
    }
}
