//! Where keys come from: a PEM key, or a JWKS fetched over HTTP(S).
//!
//! The fetch is blocking I/O; only the refresher thread calls it (and the
//! one-shot `check`/`verify` commands), never a request.

use std::io::Read;
use std::time::Duration;

use crate::keys::jwk::{parse_jwks, VerifyingKey};
use crate::keys::store::KeyStore;

/// Largest JWKS document read, in bytes.
pub const MAX_JWKS_BYTES: u64 = 1 << 20;

/// The configured origin of the verification keys.
#[derive(Clone)]
pub enum KeySource {
    /// A networkless PEM key; `origin` names where it came from.
    Pem { key: VerifyingKey, origin: String },
    /// A JWKS document fetched over HTTP(S).
    Jwks(JwksSource),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySource {
    /// A one-line description without secrets.
    pub fn describe(&self) -> String {
        match self {
            KeySource::Pem { origin, .. } => format!("PEM key from {origin}"),
            KeySource::Jwks(j) => format!(
                "JWKS {}{}",
                j.url,
                if j.secret_key.is_some() {
                    " (with secret key)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// A JWKS endpoint.
#[derive(Clone)]
pub struct JwksSource {
    pub url: String,
    /// Sent as `Authorization: Bearer` (Clerk's Backend API needs it).
    pub secret_key: Option<String>,
    pub timeout: Duration,
}

/// Builds the blocking HTTP client for a JWKS source: a timeout on the
/// whole exchange, our User-Agent, and no redirects (a key server that
/// redirects is misconfigured, and a redirect could carry the secret away).
pub fn http_client(timeout: Duration) -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("jwtgate/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Fetches and parses a JWKS; keys that fail to parse are logged and skipped.
pub fn fetch_jwks(
    client: &reqwest::blocking::Client,
    source: &JwksSource,
) -> Result<Vec<VerifyingKey>, String> {
    let mut request = client.get(&source.url);
    if let Some(secret) = &source.secret_key {
        request = request.bearer_auth(secret);
    }
    let response = request
        .send()
        .map_err(|e| format!("fetching {}: {}", source.url, error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("fetching {}: HTTP {}", source.url, status.as_u16()));
    }
    let mut body = Vec::new();
    response
        .take(MAX_JWKS_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading {}: {e}", source.url))?;
    if body.len() as u64 > MAX_JWKS_BYTES {
        return Err(format!(
            "{}: JWKS is over {MAX_JWKS_BYTES} bytes",
            source.url
        ));
    }
    let parsed = parse_jwks(&body).map_err(|e| format!("{}: {e}", source.url))?;
    for refused in &parsed.refused {
        log::warn!("refused {refused} from {}", source.url);
    }
    if parsed.keys.is_empty() {
        return Err(format!("{}: no usable signing key in the JWKS", source.url));
    }
    Ok(parsed.keys)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Loads a source into the store once. Returns how many keys are held.
pub fn load_into(store: &KeyStore, source: &KeySource) -> Result<usize, String> {
    match source {
        KeySource::Pem { key, .. } => {
            store.install_pem(key.clone());
            Ok(1)
        }
        KeySource::Jwks(jwks) => {
            let client = http_client(jwks.timeout)?;
            let keys = fetch_jwks(&client, jwks)?;
            Ok(store.install_jwks(keys))
        }
    }
}
