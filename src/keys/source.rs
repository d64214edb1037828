//! Where keys come from: a PEM key, a JWKS fetched over HTTP(S), or an
//! OpenID Connect issuer's JWKS found through its discovery document
//! ([`crate::keys::discovery`]).
//!
//! The fetch is blocking I/O; only the refresher thread calls it (and the
//! one-shot `check`/`verify` commands), never a request.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use crate::keys::discovery::{fetch_oidc, OidcSource};
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
    /// An OpenID Connect issuer: its discovery document names the JWKS.
    Oidc(OidcSource),
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
            KeySource::Oidc(o) => format!("OpenID Connect discovery {}", o.discovery_url),
        }
    }

    /// The URL a saved JWKS is kept for (see [`crate::keys::state`]): the
    /// JWKS URL, or an OpenID Connect issuer's discovery document URL;
    /// `None` for a PEM key, which is not saved.
    pub fn state_url(&self) -> Option<&str> {
        match self {
            KeySource::Pem { .. } => None,
            KeySource::Jwks(j) => Some(&j.url),
            KeySource::Oidc(o) => Some(&o.discovery_url),
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

/// Builds the blocking HTTP client for a JWKS source: our User-Agent, no
/// redirects (a key server that redirects is misconfigured, and a redirect
/// could carry the secret away), and `timeout` on connecting and on each
/// read. The whole fetch has its own deadline on top (see [`fetch_jwks`]).
/// One client serves many fetches (its connection pool is reused).
pub fn http_client(timeout: Duration) -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("jwtgate/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A JWKS fetched and parsed.
pub struct Fetched {
    /// The usable keys (at least one).
    pub keys: Vec<VerifyingKey>,
    /// The document as served, for the state directory.
    pub body: Vec<u8>,
}

/// Why a fetch failed, and whether the key server asked us to wait.
#[derive(Debug)]
pub struct FetchError {
    pub message: String,
    /// HTTP 429, or a `Retry-After` on any error status: the server asked
    /// for fewer requests.
    pub throttled: bool,
    /// The server's `Retry-After`, as a delay from now.
    pub retry_after: Option<Duration>,
}

impl FetchError {
    pub fn new(message: String) -> FetchError {
        FetchError {
            message,
            throttled: false,
            retry_after: None,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Fetches and parses a JWKS; keys that fail to parse are logged and skipped.
///
/// One deadline, `source.timeout`, covers the whole fetch: connecting, the
/// response headers and every byte of the body. reqwest's blocking client
/// applies its own `timeout` to each read only, so a server that drips its
/// body could hold a fetch for ever; here the request carries the deadline
/// as reqwest's total timeout (which covers the body), and the body loop
/// checks it between reads as well.
pub fn fetch_jwks(
    client: &reqwest::blocking::Client,
    source: &JwksSource,
) -> Result<Fetched, FetchError> {
    fetch_jwks_by(client, source, Instant::now() + source.timeout)
}

/// [`fetch_jwks`] within a deadline of the caller's (an OpenID Connect
/// load shares one deadline between the discovery and the JWKS).
pub fn fetch_jwks_by(
    client: &reqwest::blocking::Client,
    source: &JwksSource,
    deadline: Instant,
) -> Result<Fetched, FetchError> {
    let body = fetch_document(
        client,
        &source.url,
        source.secret_key.as_deref(),
        deadline,
        Document::Jwks,
    )?;
    let parsed = parse_jwks(&body).map_err(|e| FetchError::new(format!("{}: {e}", source.url)))?;
    for refused in &parsed.refused {
        log::warn!("refused {refused} from {}", source.url);
    }
    if parsed.keys.is_empty() {
        return Err(FetchError::new(format!(
            "{}: no usable signing key in the JWKS",
            source.url
        )));
    }
    Ok(Fetched {
        keys: parsed.keys,
        body,
    })
}

/// What a fetch reads, and its size bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    /// A JWKS: at most [`MAX_JWKS_BYTES`].
    Jwks,
    /// An OpenID Connect discovery document: at most
    /// [`crate::keys::discovery::MAX_DISCOVERY_BYTES`].
    Discovery,
}

impl Document {
    fn name(self) -> &'static str {
        match self {
            Document::Jwks => "JWKS",
            Document::Discovery => "discovery document",
        }
    }

    fn max_bytes(self) -> u64 {
        match self {
            Document::Jwks => MAX_JWKS_BYTES,
            Document::Discovery => crate::keys::discovery::MAX_DISCOVERY_BYTES,
        }
    }
}

/// GETs `url` (with the bearer `secret` if any) and reads its body, all
/// before `deadline` and within the document's size bound. An error status
/// says whether the server asked us to wait (429, `Retry-After`).
pub fn fetch_document(
    client: &reqwest::blocking::Client,
    url: &str,
    secret: Option<&str>,
    deadline: Instant,
    what: Document,
) -> Result<Vec<u8>, FetchError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    if timeout.is_zero() {
        return Err(FetchError::new(format!(
            "fetching {url}: no time left before the deadline"
        )));
    }
    let mut request = client.get(url).timeout(timeout);
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    let response = request
        .send()
        .map_err(|e| FetchError::new(format!("fetching {url}: {}", error_chain(&e))))?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let throttled = status.as_u16() == 429 || retry_after.is_some();
        let told = retry_after.map_or(String::new(), |d| {
            format!(" (Retry-After: {} s)", d.as_secs())
        });
        return Err(FetchError {
            message: format!("fetching {url}: HTTP {}{told}", status.as_u16()),
            throttled,
            retry_after,
        });
    }
    read_body(response, deadline, what).map_err(|e| FetchError::new(format!("reading {url}: {e}")))
}

/// Reads a body within the document's size bound, giving up at `deadline`.
fn read_body(mut body: impl Read, deadline: Instant, what: Document) -> Result<Vec<u8>, String> {
    let max = what.max_bytes();
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if Instant::now() >= deadline {
            return Err(format!(
                "the key server did not send the whole {} in time",
                what.name()
            ));
        }
        let n = match body.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(error_chain(&e)),
        };
        if (out.len() + n) as u64 > max {
            return Err(format!("{} is over {max} bytes", what.name()));
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Whether nothing on the network can read or change an exchange with
/// `url`: https, or plain http to loopback (`127.0.0.0/8`, `::1`,
/// `localhost`).
pub fn is_private_url(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => {
            // The URL parser lowercases names and brackets IPv6 addresses.
            let host = url.host_str().unwrap_or_default();
            let ip = host.trim_start_matches('[').trim_end_matches(']');
            host == "localhost"
                || ip
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

/// `Retry-After` (RFC 9110 10.2.3): delay-seconds or an HTTP-date, as a
/// delay from `now`. `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturates rather than failing on absurd values; callers bound it.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An error and its sources, `: `-separated, each said once (reqwest's
/// errors repeat their source's text).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut last = text.clone();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if part != last && !last.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        last = part;
        source = s.source();
    }
    text
}

/// Loads a source into the store once (`jwtgate check` and `verify`).
/// Returns how many keys are held.
pub fn load_into(store: &KeyStore, source: &KeySource) -> Result<usize, String> {
    match source {
        KeySource::Pem { key, .. } => Ok(store.install_pem(key.clone()).held),
        KeySource::Jwks(jwks) => {
            let client = http_client(jwks.timeout)?;
            let fetched = fetch_jwks(&client, jwks).map_err(|e| e.message)?;
            Ok(store.install_jwks(fetched.keys))
        }
        KeySource::Oidc(oidc) => {
            let client = http_client(oidc.timeout)?;
            let (_, fetched) = fetch_oidc(&client, oidc, None).map_err(|e| e.message)?;
            Ok(store.install_jwks(fetched.keys))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let p = |v| parse_retry_after(v, now);
        assert_eq!(p("120"), Some(Duration::from_secs(120)));
        assert_eq!(p(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            p("Wed, 21 Oct 2015 07:28:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(p("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(
            p("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-1", "1.5", "soon", "120 s"] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_body_read_stops_at_the_deadline_and_the_size_bound() {
        /// Yields one byte per read, for ever.
        struct Drip;
        impl Read for Drip {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(5));
                buf[0] = b' ';
                Ok(1)
            }
        }
        let started = Instant::now();
        let err = read_body(
            Drip,
            Instant::now() + Duration::from_millis(50),
            Document::Jwks,
        )
        .unwrap_err();
        assert!(err.contains("in time"), "{err}");
        assert!(started.elapsed() < Duration::from_millis(500));
        let big = std::io::repeat(b' ').take(MAX_JWKS_BYTES + 1);
        let err = read_body(
            big,
            Instant::now() + Duration::from_secs(60),
            Document::Jwks,
        )
        .unwrap_err();
        assert!(err.contains("over"), "{err}");
        let exact = std::io::repeat(b' ').take(MAX_JWKS_BYTES);
        let body = read_body(
            exact,
            Instant::now() + Duration::from_secs(60),
            Document::Jwks,
        )
        .unwrap();
        assert_eq!(body.len() as u64, MAX_JWKS_BYTES);
    }
}
