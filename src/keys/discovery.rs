//! OpenID Connect discovery: the keys of any OpenID Connect issuer, found
//! through `<issuer>/.well-known/openid-configuration` (OpenID Connect
//! Discovery 1.0, section 4).
//!
//! A load is two fetches under one deadline (`keys.fetch_timeout_ms`): the
//! discovery document, then the JWKS its `jwks_uri` names. Both go through
//! the JWKS fetch's client (no redirects, our User-Agent, no secret) and
//! its bounds; the document is at most [`MAX_DISCOVERY_BYTES`]. Before its
//! `jwks_uri` is used, the document must name the configured issuer
//! *exactly* (section 4.3: a document served for another issuer, on a
//! shared host say, is refused), and `jwks_uri` must be `https://`, or
//! plain `http://` to loopback, like the issuer itself.
//!
//! The refresher rediscovers on every scheduled refresh, at start and on
//! SIGHUP, so an issuer that moves its JWKS is followed within
//! `keys.refresh_secs`; an unknown `kid` refetches the JWKS it last
//! discovered (one request, not two), and a failed fetch forgets it.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::keys::source::{
    fetch_document, fetch_jwks_by, is_private_url, Document, FetchError, Fetched, JwksSource,
};

/// Largest discovery document read, in bytes (real ones are 1 to 10 KiB).
pub const MAX_DISCOVERY_BYTES: u64 = 64 * 1024;

/// The path appended to the issuer (without its trailing `/`).
pub const WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// An OpenID Connect issuer whose keys are found by discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSource {
    /// The issuer, exactly as tokens and the discovery document carry it.
    pub issuer: String,
    /// `<issuer>/.well-known/openid-configuration`.
    pub discovery_url: String,
    /// One deadline for the discovery and the JWKS fetch together.
    pub timeout: Duration,
}

impl OidcSource {
    /// Checks the issuer: an `https://` URL (plain `http://` to loopback
    /// only: the keys would otherwise come over a network anyone on the
    /// path can change) without query or fragment (section 2 of the spec).
    pub fn new(issuer: &str, timeout: Duration) -> Result<OidcSource, String> {
        let url =
            reqwest::Url::parse(issuer).map_err(|e| format!("{issuer:?} is not a URL: {e}"))?;
        if !is_private_url(&url) {
            return Err(format!(
                "{issuer:?}: an OpenID Connect issuer is an https:// URL (plain http:// only \
                 on loopback): its keys are fetched from it"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{issuer:?}: an OpenID Connect issuer has no query or fragment"
            ));
        }
        Ok(OidcSource {
            issuer: issuer.to_string(),
            discovery_url: format!("{}{WELL_KNOWN}", issuer.trim_end_matches('/')),
            timeout,
        })
    }
}

/// Discovers (unless `known` already names the JWKS) and fetches the keys,
/// all within `source.timeout`. Gives the JWKS source used, for the next
/// unknown-kid refetch.
pub fn fetch_oidc(
    client: &reqwest::blocking::Client,
    source: &OidcSource,
    known: Option<JwksSource>,
) -> Result<(JwksSource, Fetched), FetchError> {
    let deadline = Instant::now() + source.timeout;
    let jwks = match known {
        Some(jwks) => jwks,
        None => discover(client, source, deadline)?,
    };
    let fetched = fetch_jwks_by(client, &jwks, deadline)?;
    Ok((jwks, fetched))
}

/// Fetches the discovery document and gives the JWKS it names.
pub fn discover(
    client: &reqwest::blocking::Client,
    source: &OidcSource,
    deadline: Instant,
) -> Result<JwksSource, FetchError> {
    let body = fetch_document(
        client,
        &source.discovery_url,
        None,
        deadline,
        Document::Discovery,
    )?;
    let url = jwks_uri(&body, &source.issuer)
        .map_err(|e| FetchError::new(format!("{}: {e}", source.discovery_url)))?;
    Ok(JwksSource {
        url,
        secret_key: None,
        timeout: source.timeout,
    })
}

/// The `jwks_uri` of a discovery document for `issuer`, checked.
pub fn jwks_uri(document: &[u8], issuer: &str) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let doc: Discovery = serde_json::from_slice(document)
        .map_err(|e| format!("not an OpenID Connect discovery document: {e}"))?;
    if doc.issuer != issuer {
        return Err(format!(
            "the discovery document is for issuer \"{}\", not the configured {issuer}: refused",
            doc.issuer
                .chars()
                .take(200)
                .collect::<String>()
                .escape_debug()
        ));
    }
    let url = reqwest::Url::parse(&doc.jwks_uri).map_err(|e| {
        format!(
            "jwks_uri \"{}\" is not a URL: {e}",
            doc.jwks_uri
                .chars()
                .take(200)
                .collect::<String>()
                .escape_debug()
        )
    })?;
    if !is_private_url(&url) {
        return Err(format!(
            "jwks_uri {url} is not https:// (plain http:// only to loopback): refused"
        ));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);

    #[test]
    fn the_issuer_is_https_or_loopback_and_gives_the_discovery_url() {
        let o = OidcSource::new("https://login.example.com/realms/a/", T).unwrap();
        assert_eq!(
            o.discovery_url,
            "https://login.example.com/realms/a/.well-known/openid-configuration"
        );
        assert_eq!(o.issuer, "https://login.example.com/realms/a/");
        let o = OidcSource::new("http://127.0.0.1:8080", T).unwrap();
        assert_eq!(
            o.discovery_url,
            "http://127.0.0.1:8080/.well-known/openid-configuration"
        );
        for ok in [
            "http://localhost:1",
            "http://[::1]:9/x",
            "https://a.example",
        ] {
            assert!(OidcSource::new(ok, T).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com",
            "http://10.0.0.1",
            "http://127.0.0.1.nip.io",
            "ftp://a.example",
            "login.example.com",
            "https://a.example/?x=1",
            "https://a.example/#f",
            "",
        ] {
            assert!(OidcSource::new(bad, T).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_document_must_name_the_issuer_exactly_and_a_private_jwks_uri() {
        let iss = "https://login.example.com";
        let doc = |issuer: &str, jwks: &str| {
            serde_json::json!({"issuer": issuer, "jwks_uri": jwks, "response_types_supported": ["code"]})
                .to_string()
        };
        assert_eq!(
            jwks_uri(doc(iss, "https://login.example.com/keys").as_bytes(), iss).unwrap(),
            "https://login.example.com/keys"
        );
        assert!(jwks_uri(doc(iss, "http://127.0.0.1:9/k").as_bytes(), iss).is_ok());
        for other in [
            "https://login.example.com/",
            "https://LOGIN.example.com",
            "https://evil.example",
            "",
        ] {
            let err = jwks_uri(doc(other, "https://k.example/").as_bytes(), iss).unwrap_err();
            assert!(err.contains("refused"), "{other}: {err}");
        }
        for bad in ["http://k.example/keys", "/keys", "file:///etc/passwd"] {
            assert!(jwks_uri(doc(iss, bad).as_bytes(), iss).is_err(), "{bad}");
        }
        for broken in [
            "",
            "[]",
            "{\"issuer\": \"https://login.example.com\"}",
            "{\"issuer\": 5, \"jwks_uri\": \"https://k.example\"}",
            "{\"issuer\":\"https://login.example.com\",\"issuer\":\"https://login.example.com\",\"jwks_uri\":\"https://k\"}",
        ] {
            assert!(jwks_uri(broken.as_bytes(), iss).is_err(), "{broken}");
        }
        let hostile = doc("https://x\r\nforged log line", "https://k");
        let err = jwks_uri(hostile.as_bytes(), iss).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
    }
}
