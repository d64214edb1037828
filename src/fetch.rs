//! Where keys come from, and the background thread that keeps them fresh.
//!
//! All network I/O of the daemon happens here, on one OS thread with
//! reqwest's blocking client: requests never wait on a socket, only (when a
//! kid is unknown, and bounded) on the [`SyncFlag`](may::sync::SyncFlag)
//! the refresher fires after a fetch.

use std::io::Read;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::jwk::{parse_jwks, VerifyingKey};
use crate::keystore::{Command, KeyStore};
use crate::metrics::Metrics;
use crate::systemd;

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

/// The background refresher: periodic refresh, unknown-kid refetches and
/// SIGHUP reloads, all on one thread, one fetch at a time.
pub struct Refresher {
    pub store: Arc<KeyStore>,
    pub metrics: Arc<Metrics>,
    pub source: KeySource,
    pub refresh_every: Duration,
    pub commands: Receiver<Command>,
}

impl Refresher {
    /// Runs until `Command::Shutdown` or until every sender is gone.
    pub fn run(mut self) {
        let mut backoff = Duration::from_secs(1);
        let mut next = Instant::now();
        let mut first = true;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            let reason = match self.commands.recv_timeout(wait) {
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Command::Reload(source)) => {
                    self.reload(*source);
                    next = Instant::now() + self.next_refresh();
                    continue;
                }
                Ok(Command::RefetchUnknownKid) => "unknown kid",
                Err(RecvTimeoutError::Timeout) if first => "start",
                Err(RecvTimeoutError::Timeout) => "scheduled refresh",
            };
            let ok = self.refresh(reason);
            if first {
                first = false;
                systemd::notify_ready();
            }
            if ok {
                backoff = Duration::from_secs(1);
                next = Instant::now() + self.next_refresh();
            } else {
                next = Instant::now() + backoff;
                backoff = (backoff * 2).min(self.refresh_every.min(Duration::from_secs(60)));
            }
        }
    }

    /// A PEM key does not change by itself: only SIGHUP reloads it.
    fn next_refresh(&self) -> Duration {
        match self.source {
            KeySource::Pem { .. } => Duration::from_secs(365 * 24 * 3600),
            KeySource::Jwks(_) => self.refresh_every,
        }
    }

    /// One load of the current source. On failure the old keys stay.
    fn refresh(&self, reason: &str) -> bool {
        self.store.fetch_started();
        let result = load_into(&self.store, &self.source);
        self.record(&result);
        self.store.fetch_finished();
        match result {
            Ok(n) => {
                log::info!(
                    "loaded {n} key(s) from {} ({reason})",
                    self.source.describe()
                );
                true
            }
            Err(e) => {
                log::error!(
                    "key load failed ({reason}): {e}; keeping {} old key(s)",
                    self.store.len()
                );
                false
            }
        }
    }

    /// SIGHUP: load the new source; adopt it only if it loads.
    fn reload(&mut self, source: KeySource) {
        self.store.fetch_started();
        let result = load_into(&self.store, &source);
        self.record(&result);
        self.store.fetch_finished();
        match result {
            Ok(n) => {
                log::info!("reload: loaded {n} key(s) from {}", source.describe());
                self.source = source;
            }
            Err(e) => log::error!(
                "reload failed: {e}; keeping {} old key(s) from {}",
                self.store.len(),
                self.source.describe()
            ),
        }
        systemd::notify_ready();
    }

    fn record(&self, result: &Result<usize, String>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.metrics
            .record_fetch(result.is_ok(), self.store.len(), now);
    }
}
