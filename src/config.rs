//! Configuration: a TOML file and `JWTGATE_*` environment variables through
//! the `config` crate, plus Clerk's own variables (`CLERK_SECRET_KEY`,
//! `CLERK_JWT_KEY`, `CLERK_PUBLISHABLE_KEY`) as defaults.
//!
//! Precedence, lowest first: built-in defaults, Clerk variables and
//! systemd's `$STATE_DIRECTORY`, the file, `JWTGATE_<KEY>` (nesting with
//! `__`, e.g. `JWTGATE_KEYS__JWKS_URL`). Unknown keys, wrong types and
//! out-of-range values are errors that name the key, so a typo never
//! silently weakens verification. The one exception: the variables
//! Kubernetes sets for a Service named `jwtgate` (`JWTGATE_SERVICE_HOST`,
//! `JWTGATE_PORT_7070_TCP`, ...) are recognised by name *and* value and
//! left out.
//!
//! `[browser]` (Clerk's handshake, see [`crate::browser`]) resolves into a
//! [`BrowserConfig`]; `CLERK_API_URL`, `CLERK_SIGN_IN_URL` and
//! `CLERK_PROXY_URL` are its defaults. `[http]` (the HTTP layer's limits,
//! the drain on stop, the start-up wait for keys) resolves into
//! [`HttpOptions`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use may_minihttp::HttpConfig;

// The publishable key's decoding lives with the instance it describes;
// re-exported here, where it was first (fuzz targets and tests use it).
pub use crate::browser::instance::{cookie_suffix, parse_publishable_key};
use crate::gate::GateOptions;
use crate::keys::source::KeySource;
use crate::keys::state::KeyState;
use crate::keys::store::KeyStore;
use crate::verify::Policy;

mod issuers;
pub use issuers::{check_name, IssuerConfig, IssuerKind, IssuerSettings, MAX_ISSUERS};

/// Clerk's Backend API JWKS, the default when a secret key is set.
pub const CLERK_JWKS_URL: &str = "https://api.clerk.com/v1/jwks";

/// The file and environment, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub listen: String,
    /// 0 = one worker per CPU.
    pub workers: usize,
    /// Pin may's workers to cores (slower when nginx shares the machine).
    pub pin_workers: bool,
    pub keys: KeySettings,
    pub verify: VerifySettings,
    pub cache: CacheSettings,
    pub browser: BrowserSettings,
    pub http: HttpSettings,
    /// More issuers (see [`IssuerSettings`]); from the file only.
    pub issuers: Vec<IssuerSettings>,
}

/// `[http]`: what one connection may send, how long it may take, how the
/// port is shared, and the stop and start of the server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Most header lines of a request (more: 431).
    pub max_headers: usize,
    /// Most bytes of a request head, request line included (more: 431).
    pub max_header_bytes: usize,
    /// Largest `Content-Length` accepted (the body is skipped; more: 413).
    pub max_body_bytes: u64,
    /// An idle keep-alive connection is closed after this; keep it above
    /// nginx's upstream `keepalive_timeout` (60 s).
    pub idle_timeout_secs: u64,
    /// A request head must arrive within this (else 408).
    pub header_read_timeout_secs: u64,
    /// `SO_REUSEPORT`: let another process listen on the same port (a
    /// blue-green hand-over). Off: a taken port fails the start.
    pub reuse_port: bool,
    /// On SIGTERM, how long requests already started may take to be
    /// answered before jwtgate exits anyway.
    pub drain_secs: u64,
    /// At start, how long connections wait (in the listen backlog) for the
    /// first keys before they are accepted and answered 503.
    pub startup_wait_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_headers: 64,
            max_header_bytes: 32 * 1024,
            max_body_bytes: 1024 * 1024,
            idle_timeout_secs: 75,
            header_read_timeout_secs: 10,
            reuse_port: false,
            drain_secs: 5,
            startup_wait_ms: 3000,
        }
    }
}

/// `[http]`, resolved.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The HTTP layer's limits, timeouts and `SO_REUSEPORT`.
    pub server: HttpConfig,
    /// The SIGTERM drain deadline.
    pub drain: Duration,
    /// The bound on holding connections while the first keys load.
    pub startup_wait: Duration,
}

/// `[browser]`: sign-in for browsers through Clerk's handshake.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserSettings {
    /// Where signed-out navigations go; default: the Account Portal's
    /// `https://accounts.<domain>/sign-in`. An absolute URL or a `/path`.
    pub sign_in_url: Option<String>,
    /// Clerk's `proxyUrl`: where the Frontend API is reached when proxied
    /// (absolute, or a `/path` on the site); empty = not proxied.
    pub proxy_url: Option<String>,
    /// Default: on when `keys.publishable_key` and `keys.secret_key` are set.
    pub handshake: Option<bool>,
}

/// The browser flow, resolved: `Config::browser` is `None` when it is off.
#[derive(Clone)]
pub struct BrowserConfig {
    pub instance: crate::browser::Instance,
    /// Sent to the Backend API for the nonce exchange.
    pub secret_key: String,
    /// Deadline of one nonce exchange (`keys.fetch_timeout_ms`).
    pub fetch_timeout: Duration,
}

impl std::fmt::Debug for BrowserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserConfig")
            .field("instance", &self.instance)
            .field("secret_key", &"<redacted>")
            .field("fetch_timeout", &self.fetch_timeout)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Verified tokens remembered (0 = no cache).
    pub tokens: usize,
    /// How long one verification may be reused, at most until exp.
    pub ttl_secs: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            tokens: 100_000,
            ttl_secs: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    pub jwks_url: Option<String>,
    pub secret_key: Option<String>,
    pub jwt_key: Option<String>,
    pub jwt_key_file: Option<PathBuf>,
    pub publishable_key: Option<String>,
    /// Clerk's Backend API (default JWKS `<api_url>/v1/jwks`, nonce exchange).
    pub api_url: Option<String>,
    pub cache_capacity: usize,
    pub refresh_secs: u64,
    pub min_refetch_secs: u64,
    pub fetch_timeout_ms: u64,
    /// Where the last good JWKS is kept across restarts (default: systemd's
    /// `$STATE_DIRECTORY`; `""`: nowhere).
    pub state_dir: Option<PathBuf>,
    /// JWKS keys older than this (no newer fetch succeeded) are not used.
    pub max_stale_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifySettings {
    /// Allowed `alg` names; default: RS256/384/512 in Clerk mode, all otherwise.
    pub algorithms: Option<Vec<String>>,
    pub issuer: Option<String>,
    pub authorized_parties: Vec<String>,
    /// RFC 7519 `aud`: the token's must name one of these.
    pub audience: Option<OneOrMany>,
    /// With a plain `jwks_url`, accept tokens for any audience (explicitly).
    pub allow_any_audience: bool,
    pub leeway_secs: u64,
    pub allow_pending: bool,
    pub max_token_bytes: usize,
    /// Claims to response headers for the top-level issuer:
    /// `{ "X-Email" = "email" }` (see [`crate::token::claim_headers`]).
    pub headers: BTreeMap<String, OneOrMany>,
}

/// A string or a list of strings (TOML `"a"` or `["a", "b"]`; in the
/// environment, comma-separated).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one.clone()],
            OneOrMany::Many(many) => many.clone(),
        }
    }
}

/// The default of `keys.max_stale_secs`: 7 days. See the README ("Keys
/// across restarts"): Clerk rotates an instance's signing key only when
/// asked to, and its own networkless mode pins one key for ever, so keys a
/// week old are what Clerk's SDKs would trust anyway; a week outlasts any
/// key-server or egress outage short of a long weekend unnoticed, and past
/// it a key removed upstream (a leaked key, say) is not trusted blind.
pub const DEFAULT_MAX_STALE_SECS: u64 = 7 * 24 * 3600;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:7070".into(),
            workers: 0,
            pin_workers: false,
            keys: KeySettings::default(),
            verify: VerifySettings::default(),
            cache: CacheSettings::default(),
            browser: BrowserSettings::default(),
            http: HttpSettings::default(),
            issuers: Vec::new(),
        }
    }
}

impl Default for KeySettings {
    fn default() -> Self {
        KeySettings {
            jwks_url: None,
            secret_key: None,
            jwt_key: None,
            jwt_key_file: None,
            publishable_key: None,
            api_url: None,
            cache_capacity: 64,
            refresh_secs: 3600,
            min_refetch_secs: 10,
            fetch_timeout_ms: 2000,
            state_dir: None,
            max_stale_secs: DEFAULT_MAX_STALE_SECS,
        }
    }
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            algorithms: None,
            issuer: None,
            authorized_parties: vec![],
            audience: None,
            allow_any_audience: false,
            leeway_secs: 5,
            allow_pending: false,
            max_token_bytes: 16 * 1024,
            headers: BTreeMap::new(),
        }
    }
}

/// Everything the daemon runs with, checked and resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub workers: usize,
    pub pin_workers: bool,
    /// The first issuer's key source.
    pub key_source: KeySource,
    pub cache_capacity: usize,
    pub refresh_every: Duration,
    pub min_refetch: Duration,
    pub fetch_timeout: Duration,
    /// Where the first issuer keeps its last good JWKS (`None`: nowhere;
    /// always `None` for a PEM key).
    pub state: Option<KeyState>,
    /// JWKS keys older than this are not used.
    pub max_stale: Duration,
    /// What a token of the first issuer must satisfy.
    pub policy: Policy,
    /// The token cache, decision reuse and cookie suffix.
    pub gate: GateOptions,
    /// The browser sign-in flow; `None` when off.
    pub browser: Option<BrowserConfig>,
    /// The HTTP server: limits, stop and start.
    pub http: HttpOptions,
    /// Every issuer, in order: the top-level `[keys]`/`[verify]` one (when
    /// it has a key source), then `[[issuers]]`. `key_source`, `state` and
    /// `policy` above are the first one's.
    pub issuers: Vec<IssuerConfig>,
}

impl Config {
    /// Reads the file (if any) and the environment, and resolves the key source.
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        Config::from_settings(read_settings(path)?)
    }

    pub fn from_settings(s: Settings) -> Result<Config, String> {
        let listen: SocketAddr = s.listen.parse().map_err(|_| {
            format!(
                "listen: {:?} is not an address like 127.0.0.1:7070",
                s.listen
            )
        })?;
        let k = &s.keys;
        let v = &s.verify;
        in_range("keys.cache_capacity", k.cache_capacity as u64, 1, 10_000)?;
        in_range("keys.refresh_secs", k.refresh_secs, 10, 7 * 24 * 3600)?;
        in_range("keys.min_refetch_secs", k.min_refetch_secs, 1, 3600)?;
        in_range("keys.fetch_timeout_ms", k.fetch_timeout_ms, 100, 60_000)?;
        in_range("keys.max_stale_secs", k.max_stale_secs, 60, 365 * 24 * 3600)?;
        if k.max_stale_secs <= k.refresh_secs {
            return Err(format!(
                "keys.max_stale_secs: {} must be more than keys.refresh_secs ({}), or keys \
                 would go stale between two refreshes",
                k.max_stale_secs, k.refresh_secs
            ));
        }
        in_range(
            "verify.max_token_bytes",
            v.max_token_bytes as u64,
            512,
            64 * 1024,
        )?;
        in_range("workers", s.workers as u64, 0, 256)?;
        in_range("cache.tokens", s.cache.tokens as u64, 0, 10_000_000)?;
        in_range("cache.ttl_secs", s.cache.ttl_secs, 1, 3600)?;
        let fetch_timeout = Duration::from_millis(k.fetch_timeout_ms);
        let api_url = k
            .api_url
            .as_deref()
            .unwrap_or(crate::browser::instance::DEFAULT_API_URL);
        if !url::Url::parse(api_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(format!("keys.api_url: {api_url:?} is not an http(s) URL"));
        }
        let state_dir = k.state_dir.as_deref().filter(|d| !d.as_os_str().is_empty());
        let shared = issuers::Shared {
            api_url,
            fetch_timeout,
            state_dir,
            max_token_bytes: v.max_token_bytes,
            allow_pending: v.allow_pending,
        };
        let issuers = issuers::resolve_issuers(&s, &shared)?;
        let browser = resolve_browser(&s, api_url, fetch_timeout)?;
        let http = resolve_http(&s.http)?;
        // Checked only when some issuer keeps a JWKS there.
        if issuers.iter().any(|i| i.state.is_some()) {
            check_state_dir(state_dir)?;
        }
        let first = &issuers[0];
        Ok(Config {
            listen,
            workers: s.workers,
            pin_workers: s.pin_workers,
            key_source: first.key_source.clone(),
            cache_capacity: k.cache_capacity,
            refresh_every: Duration::from_secs(k.refresh_secs),
            min_refetch: Duration::from_secs(k.min_refetch_secs),
            fetch_timeout,
            state: first.state.clone(),
            max_stale: Duration::from_secs(k.max_stale_secs),
            policy: first.policy.clone(),
            gate: GateOptions {
                cache_tokens: s.cache.tokens,
                decision_ttl: Duration::from_secs(s.cache.ttl_secs),
                cookie_suffix: k.publishable_key.as_deref().map(cookie_suffix),
            },
            browser,
            http,
            issuers,
        })
    }

    /// More than one issuer: tokens are routed by `iss`.
    pub fn several_issuers(&self) -> bool {
        self.issuers.len() > 1
    }

    /// An empty key store sized and bounded as configured.
    pub fn key_store(&self) -> KeyStore {
        KeyStore::new(self.cache_capacity, self.min_refetch, self.fetch_timeout)
            .with_max_stale(self.max_stale)
    }
}

/// The state directory: `keys.state_dir` (which `$STATE_DIRECTORY`
/// defaults) must be an existing directory; `""` or unset: none.
fn check_state_dir(dir: Option<&Path>) -> Result<(), String> {
    let Some(dir) = dir else {
        return Ok(());
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "keys.state_dir: {}: not a directory",
            dir.display()
        )),
        Err(e) => Err(format!("keys.state_dir: {}: {e}", dir.display())),
    }
}

/// `[http]`: every value in range, into the HTTP layer's config.
fn resolve_http(h: &HttpSettings) -> Result<HttpOptions, String> {
    in_range("http.max_headers", h.max_headers as u64, 16, 1024)?;
    in_range(
        "http.max_header_bytes",
        h.max_header_bytes as u64,
        1024,
        1024 * 1024,
    )?;
    in_range(
        "http.max_body_bytes",
        h.max_body_bytes,
        0,
        1024 * 1024 * 1024,
    )?;
    in_range("http.idle_timeout_secs", h.idle_timeout_secs, 1, 3600)?;
    in_range(
        "http.header_read_timeout_secs",
        h.header_read_timeout_secs,
        1,
        300,
    )?;
    in_range("http.drain_secs", h.drain_secs, 0, 300)?;
    in_range("http.startup_wait_ms", h.startup_wait_ms, 0, 60_000)?;
    if h.idle_timeout_secs <= 60 {
        log::warn!(
            "http.idle_timeout_secs = {}: not above nginx's upstream keepalive_timeout \
             (60 s), so jwtgate may close a connection nginx is about to reuse",
            h.idle_timeout_secs
        );
    }
    Ok(HttpOptions {
        server: HttpConfig::default()
            .with_max_headers(h.max_headers)
            .with_max_header_bytes(h.max_header_bytes)
            .with_max_body_bytes(h.max_body_bytes)
            .with_idle_timeout(Some(Duration::from_secs(h.idle_timeout_secs)))
            .with_header_read_timeout(Some(Duration::from_secs(h.header_read_timeout_secs)))
            .with_reuse_port(h.reuse_port),
        drain: Duration::from_secs(h.drain_secs),
        startup_wait: Duration::from_millis(h.startup_wait_ms),
    })
}

/// `[browser]`: on when asked, or by default when both Clerk keys are set
/// (the nonce exchange needs the secret key).
fn resolve_browser(
    s: &Settings,
    api_url: &str,
    fetch_timeout: Duration,
) -> Result<Option<BrowserConfig>, String> {
    let (k, b) = (&s.keys, &s.browser);
    let on = b
        .handshake
        .unwrap_or(k.publishable_key.is_some() && k.secret_key.is_some());
    if !on {
        return Ok(None);
    }
    let Some(publishable_key) = &k.publishable_key else {
        return Err(
            "browser.handshake: needs keys.publishable_key (or CLERK_PUBLISHABLE_KEY)".into(),
        );
    };
    let Some(secret_key) = k.secret_key.clone().filter(|s| !s.is_empty()) else {
        return Err(
            "browser.handshake: needs keys.secret_key (or CLERK_SECRET_KEY) for the nonce \
             exchange with the Backend API"
                .into(),
        );
    };
    let instance = crate::browser::Instance::new(
        publishable_key,
        b.proxy_url.as_deref(),
        b.sign_in_url.as_deref(),
        api_url,
    )?;
    Ok(Some(BrowserConfig {
        instance,
        secret_key,
        fetch_timeout,
    }))
}

/// Layers defaults, Clerk variables, the file and `JWTGATE_*` variables.
pub fn read_settings(path: Option<&Path>) -> Result<Settings, String> {
    let mut builder = config::Config::builder();
    for (var, key) in [
        ("CLERK_SECRET_KEY", "keys.secret_key"),
        ("CLERK_JWT_KEY", "keys.jwt_key"),
        ("CLERK_PUBLISHABLE_KEY", "keys.publishable_key"),
        ("CLERK_API_URL", "keys.api_url"),
        ("CLERK_SIGN_IN_URL", "browser.sign_in_url"),
        ("CLERK_PROXY_URL", "browser.proxy_url"),
    ] {
        if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            builder = builder
                .set_default(key, value)
                .map_err(|e| format!("{var}: {e}"))?;
        }
    }
    // systemd's StateDirectory=: a colon-separated list; the first is ours.
    if let Some(dir) = std::env::var("STATE_DIRECTORY")
        .ok()
        .and_then(|dirs| dirs.split(':').next().map(str::to_string))
        .filter(|dir| !dir.is_empty())
    {
        builder = builder
            .set_default("keys.state_dir", dir)
            .map_err(|e| format!("STATE_DIRECTORY: {e}"))?;
    }
    if let Some(path) = path {
        if !path.is_file() {
            return Err(format!("config file {}: not found", path.display()));
        }
        builder = builder
            .add_source(config::File::from(path.to_path_buf()).format(config::FileFormat::Toml));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("JWTGATE")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("verify.authorized_parties")
            .with_list_parse_key("verify.audience")
            .source(Some(jwtgate_variables(std::env::vars_os())?)),
    );
    let merged = builder.build().map_err(describe_error)?;
    merged.try_deserialize().map_err(describe_error)
}

/// The `JWTGATE_*` variables that are configuration: all but those
/// Kubernetes sets for a Service (see [`is_kubernetes_service_variable`]).
fn jwtgate_variables(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<config::Map<String, String>, String> {
    let mut map = config::Map::new();
    for (name, value) in vars {
        // Names that are not UTF-8 are skipped, as the config crate does.
        let Some(name) = name.to_str() else { continue };
        if !name
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("JWTGATE_"))
        {
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_| format!("config: {name}: the value is not UTF-8"))?;
        if is_kubernetes_service_variable(name, &value) {
            log::debug!("ignoring {name}: a Kubernetes Service variable, not configuration");
            continue;
        }
        if name
            .get(8..)
            .is_some_and(|rest| rest.to_ascii_uppercase().starts_with("ISSUERS"))
        {
            return Err(format!(
                "config: {name}: [[issuers]] entries come from the config file only (the \
                 environment cannot address an entry of a list)"
            ));
        }
        map.insert(name.to_string(), value);
    }
    Ok(map)
}

/// Whether `name=value` is one of the variables Kubernetes gives a pod for
/// a Service named `jwtgate` or `jwtgate-<more>` (the Docker-links style,
/// on unless `enableServiceLinks: false`). Both the name's shape and the
/// value must fit, so `JWTGATE_PORT=7070` (not `tcp://host:port`) or
/// `JWTGATE_LISTEN_PORT=...` are still reported as unknown keys:
///
/// ```text
/// JWTGATE_SERVICE_HOST=10.96.0.12           JWTGATE_PORT=tcp://10.96.0.12:7070
/// JWTGATE_SERVICE_PORT=7070                 JWTGATE_PORT_7070_TCP=tcp://10.96.0.12:7070
/// JWTGATE_SERVICE_PORT_<PORT NAME>=7070     JWTGATE_PORT_7070_TCP_PROTO=tcp
///                                           JWTGATE_PORT_7070_TCP_PORT=7070
///                                           JWTGATE_PORT_7070_TCP_ADDR=10.96.0.12
/// ```
pub fn is_kubernetes_service_variable(name: &str, value: &str) -> bool {
    let Some(rest) = name.strip_prefix("JWTGATE") else {
        return false;
    };
    // rest = <service name tail> <suffix>; try every split.
    (0..=rest.len()).any(|i| {
        rest.is_char_boundary(i) && service_tail(&rest[..i]) && service_link(&rest[i..], value)
    })
}

/// `""`, or `_A_B` for a Service named `jwtgate-a-b`.
fn service_tail(tail: &str) -> bool {
    tail.is_empty()
        || (tail.starts_with('_')
            && !tail.ends_with('_')
            && !tail.contains("__")
            && tail.bytes().all(|b| upper_word(&[b])))
}

fn upper_word(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

fn service_link(suffix: &str, value: &str) -> bool {
    let ip = |v: &str| v.parse::<std::net::IpAddr>().is_ok();
    let port = |v: &str| v.parse::<u16>().is_ok_and(|p| p > 0) && !v.starts_with('0');
    // tcp://10.96.0.12:7070, tcp://[fd00::12]:7070
    let url = |v: &str, proto: Option<&str>, want_port: Option<&str>| {
        let Some((scheme, addr)) = v.split_once("://") else {
            return false;
        };
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            return false;
        };
        matches!(scheme, "tcp" | "udp" | "sctp")
            && proto.is_none_or(|p| p.eq_ignore_ascii_case(scheme))
            && want_port.is_none_or(|p| p == addr.port().to_string())
    };
    match suffix {
        "_SERVICE_HOST" => ip(value),
        "_SERVICE_PORT" => port(value),
        "_PORT" => url(value, None, None),
        _ => {
            if let Some(port_name) = suffix.strip_prefix("_SERVICE_PORT_") {
                return upper_word(port_name.as_bytes()) && port(value);
            }
            let Some(rest) = suffix.strip_prefix("_PORT_") else {
                return false;
            };
            let mut parts = rest.splitn(3, '_');
            let (Some(number), Some(proto)) = (parts.next(), parts.next()) else {
                return false;
            };
            if !port(number) || !matches!(proto, "TCP" | "UDP" | "SCTP") {
                return false;
            }
            match parts.next() {
                None => url(value, Some(proto), Some(number)),
                Some("PROTO") => value == proto.to_ascii_lowercase(),
                Some("PORT") => value == number,
                Some("ADDR") => ip(value),
                Some(_) => false,
            }
        }
    }
}

/// Parses TOML text alone (no environment): for tests and fuzzing.
pub fn settings_from_toml(text: &str) -> Result<Settings, String> {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .map_err(describe_error)?
        .try_deserialize()
        .map_err(describe_error)
}

/// The `config` crate reports unknown fields without their section; add
/// a hint of where to look.
fn describe_error(e: config::ConfigError) -> String {
    let text = one_line(&e.to_string());
    if text.contains("unknown field") {
        format!("config: {text} (check the file and JWTGATE_* environment variables)")
    } else {
        format!("config: {text}")
    }
}

/// Folds a multi-line parser message (with its source excerpt and caret)
/// into one line: the position, then the explanation.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('|') && !l.contains(" | ") && !l.starts_with('^')
        })
        .collect::<Vec<_>>()
        .join(": ")
}

fn in_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("{key}: {value} is out of range ({min} to {max})"))
    }
}

/// Reads a PEM key file: a regular file of at most 64 KiB, so a path to
/// /dev/zero or a FIFO cannot exhaust memory or stall a reload.
fn read_key_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    const MAX: u64 = 64 * 1024;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.len() > MAX {
        return Err(format!("not a regular file of at most {MAX} bytes"));
    }
    let mut text = String::new();
    file.take(MAX)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::source::KeySource;
    use crate::token::algorithms::{Algorithm, AlgorithmSet};

    /// A plain `jwks_url` config (another issuer) with its required
    /// issuer and audience.
    fn plain_jwks() -> Settings {
        let mut s = Settings::default();
        s.keys.jwks_url = Some("https://issuer.example/jwks".into());
        s.verify.issuer = Some("https://issuer.example".into());
        s.verify.audience = Some(OneOrMany::One("api://app".into()));
        s
    }

    #[test]
    fn algorithms_follow_the_mode() {
        assert_eq!(
            Config::from_settings(plain_jwks())
                .unwrap()
                .policy
                .algorithms,
            AlgorithmSet::ALL
        );
        let mut s = plain_jwks();
        s.verify.algorithms = Some(vec!["ES256".into(), "EdDSA".into()]);
        let set = Config::from_settings(s).unwrap().policy.algorithms;
        assert!(set.contains(Algorithm::ES256) && !set.contains(Algorithm::RS256));
        let mut s = Settings::default();
        s.keys.secret_key = Some("sk_test_x".into());
        s.verify.algorithms = Some(vec!["ES256".into()]);
        assert!(Config::from_settings(s).unwrap_err().contains("Clerk mode"));
        let mut s = plain_jwks();
        s.verify.algorithms = Some(vec!["HS256".into()]);
        assert!(Config::from_settings(s)
            .unwrap_err()
            .starts_with("verify.algorithms"));
    }

    #[test]
    fn key_files_must_be_small_regular_files() {
        assert!(read_key_file(Path::new("/dev/zero"))
            .unwrap_err()
            .contains("regular file"));
        assert!(read_key_file(Path::new("/nonexistent.pem")).is_err());
    }

    #[test]
    fn resolution_names_the_bad_key() {
        let mut s = Settings::default();
        assert!(Config::from_settings(Settings::default())
            .unwrap_err()
            .starts_with("keys: no key source"));
        s.keys.secret_key = Some("sk_test_x".into());
        s.keys.cache_capacity = 0;
        assert!(Config::from_settings(s)
            .unwrap_err()
            .starts_with("keys.cache_capacity"));
        let mut s = Settings::default();
        s.keys.jwks_url = Some("ftp://x/jwks".into());
        assert!(Config::from_settings(s)
            .unwrap_err()
            .starts_with("keys.jwks_url"));
        let s = Settings {
            listen: "nowhere".into(),
            ..Settings::default()
        };
        assert!(Config::from_settings(s).unwrap_err().starts_with("listen"));
    }

    fn browser_settings(toml: &str) -> Result<Config, String> {
        Config::from_settings(settings_from_toml(toml)?)
    }

    #[test]
    fn browser_config_defaults_on_with_both_clerk_keys() {
        let pk = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";
        let c = browser_settings(&format!(
            "[keys]\npublishable_key = \"{pk}\"\nsecret_key = \"sk_live_x\"\n"
        ))
        .unwrap();
        let b = c.browser.expect("on by default");
        assert_eq!(b.secret_key, "sk_live_x");
        assert_eq!(
            b.instance.sign_in_url_setting(),
            "https://accounts.example.com/sign-in"
        );
        assert_eq!(b.instance.api_url(), "https://api.clerk.com");
        assert!(
            !format!("{b:?}").contains("sk_live_x"),
            "the secret is not logged"
        );
        // Off: without a secret key, or when asked.
        let c = browser_settings(&format!("[keys]\npublishable_key = \"{pk}\"\n")).unwrap();
        assert!(c.browser.is_none());
        let c = browser_settings(&format!(
            "[keys]\npublishable_key = \"{pk}\"\nsecret_key = \"s\"\n[browser]\nhandshake = false\n"
        ))
        .unwrap();
        assert!(c.browser.is_none());
        // All keys set, with test URLs on loopback.
        let c = browser_settings(&format!(
            "[keys]\npublishable_key = \"{pk}\"\nsecret_key = \"s\"\napi_url = \"http://127.0.0.1:9001\"\n\
             [browser]\nsign_in_url = \"http://127.0.0.1:9002/sign-in\"\nproxy_url = \"/__clerk\"\n"
        ))
        .unwrap();
        let i = c.browser.unwrap().instance;
        assert_eq!(i.api_url(), "http://127.0.0.1:9001");
        assert_eq!(i.proxy_url(), Some("/__clerk"));
        match c.key_source {
            KeySource::Jwks(j) => assert_eq!(j.url, "http://127.0.0.1:9001/v1/jwks"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn browser_config_errors_name_the_key() {
        let pk = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";
        let err = |toml: &str| browser_settings(toml).unwrap_err();
        assert!(
            err("[keys]\nsecret_key = \"s\"\n[browser]\nhandshake = true\n")
                .starts_with("browser.handshake: needs keys.publishable_key")
        );
        assert!(err(&format!(
            "[keys]\njwt_key_file = \"/nonexistent\"\npublishable_key = \"{pk}\"\n"
        ))
        .starts_with("keys.jwt_key_file"));
        assert!(err(&format!(
            "[keys]\npublishable_key = \"{pk}\"\njwks_url = \"https://x/jwks\"\n[browser]\nhandshake = true\n"
        ))
        .starts_with("browser.handshake: needs keys.secret_key"));
        let both = format!("[keys]\npublishable_key = \"{pk}\"\nsecret_key = \"s\"\n");
        assert!(err(&format!("{both}[browser]\nsign_in_url = \"\"\n"))
            .starts_with("browser.sign_in_url"));
        assert!(err(&format!(
            "{both}[browser]\nproxy_url = \"clerk.example.com\"\n"
        ))
        .starts_with("browser.proxy_url"));
        // The secret would go to <api_url>/v1/jwks in clear.
        assert!(
            err(&format!("{both}api_url = \"http://api.example.com\"\n"))
                .starts_with("keys.secret_key: would be sent in clear")
        );
        assert!(err(&format!("{both}api_url = \"nope\"\n")).starts_with("keys.api_url"));
        assert!(err("[browser]\nsign_in = \"x\"\n").contains("unknown field"));
    }

    #[test]
    fn secret_key_defaults_to_clerks_backend_api_and_pk_gives_the_issuer() {
        let mut s = Settings::default();
        s.keys.secret_key = Some("sk_test_x".into());
        s.keys.publishable_key = Some("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k".into());
        let c = Config::from_settings(s).unwrap();
        assert_eq!(c.policy.algorithms, AlgorithmSet::CLERK);
        match &c.key_source {
            KeySource::Jwks(j) => assert_eq!(j.url, CLERK_JWKS_URL),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.policy.validation.issuer.as_deref(),
            Some("https://clerk.example.com")
        );
        assert_eq!(c.gate.cookie_suffix.as_deref(), Some("naoXFJnI"));
        let mut s = Settings::default();
        s.keys.publishable_key = Some("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k".into());
        match Config::from_settings(s).unwrap().key_source {
            KeySource::Jwks(j) => {
                assert_eq!(j.url, "https://clerk.example.com/.well-known/jwks.json")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_secret_goes_over_https_or_to_loopback_only() {
        let with = |url: &str| {
            let mut s = Settings::default();
            s.keys.secret_key = Some("sk_test_x".into());
            s.keys.jwks_url = Some(url.into());
            Config::from_settings(s)
        };
        for ok in [
            "https://api.clerk.com/v1/jwks",
            "http://127.0.0.1:8080/v1/jwks",
            "http://127.8.9.10/jwks",
            "http://[::1]:80/jwks",
            "http://localhost/jwks",
            "http://LOCALHOST/jwks",
        ] {
            assert!(with(ok).is_ok(), "{ok}: {:?}", with(ok).err());
        }
        for bad in [
            "http://api.clerk.com/v1/jwks",
            "http://10.0.0.1/jwks",
            "http://[::2]/jwks",
            "http://localhost.example/jwks",
            "http://127.0.0.1.nip.io/jwks",
        ] {
            let err = with(bad).unwrap_err();
            assert!(
                err.starts_with("keys.secret_key:") && err.contains("keys.jwks_url"),
                "{bad}: {err}"
            );
        }
        // Without a secret, plain http off loopback is allowed (with a warning).
        let mut s = plain_jwks();
        s.keys.jwks_url = Some("http://issuer.example/jwks".into());
        assert!(Config::from_settings(s).is_ok());
    }

    #[test]
    fn a_plain_jwks_url_needs_an_issuer_and_an_audience_or_an_explicit_opt_out() {
        let mut s = plain_jwks();
        s.verify.issuer = None;
        assert!(Config::from_settings(s)
            .unwrap_err()
            .starts_with("verify.issuer: required"));
        let mut s = plain_jwks();
        s.verify.audience = None;
        assert!(Config::from_settings(s)
            .unwrap_err()
            .starts_with("verify.audience: required"));
        let mut s = plain_jwks();
        s.verify.audience = Some(OneOrMany::Many(vec![]));
        assert!(Config::from_settings(s)
            .unwrap_err()
            .starts_with("verify.audience: must not be empty"));
        let mut s = plain_jwks();
        s.verify.audience = Some(OneOrMany::Many(vec!["a".into(), "".into()]));
        assert!(Config::from_settings(s).unwrap_err().contains("entries"));
        let mut s = plain_jwks();
        s.verify.allow_any_audience = true;
        assert!(Config::from_settings(s)
            .unwrap_err()
            .contains("set one, not both"));
        let mut s = plain_jwks();
        s.verify.audience = None;
        s.verify.allow_any_audience = true;
        let c = Config::from_settings(s).unwrap();
        assert!(c.policy.validation.audience.is_empty());
        let mut s = plain_jwks();
        s.verify.audience = Some(OneOrMany::Many(vec!["a".into(), "b".into()]));
        let c = Config::from_settings(s).unwrap();
        assert_eq!(c.policy.validation.audience, ["a", "b"]);
        // Clerk mode needs neither (Clerk's session tokens carry no aud).
        let mut s = Settings::default();
        s.keys.secret_key = Some("sk_test_x".into());
        assert!(Config::from_settings(s).is_ok());
    }

    #[test]
    fn audience_reads_as_a_string_or_a_list_from_toml() {
        let one = settings_from_toml("[verify]\naudience = \"api://a\"\n").unwrap();
        assert_eq!(one.verify.audience, Some(OneOrMany::One("api://a".into())));
        let many = settings_from_toml("[verify]\naudience = [\"a\", \"b\"]\n").unwrap();
        assert_eq!(
            many.verify.audience,
            Some(OneOrMany::Many(vec!["a".into(), "b".into()]))
        );
        assert!(settings_from_toml("[verify]\naudience = 5\n").is_err());
    }

    #[test]
    fn staleness_and_the_state_directory() {
        let mut s = Settings::default();
        s.keys.secret_key = Some("sk_test_x".into());
        let c = Config::from_settings(s).unwrap();
        assert_eq!(c.max_stale, Duration::from_secs(DEFAULT_MAX_STALE_SECS));
        assert_eq!(c.state, None);
        let mut s = Settings::default();
        s.keys.secret_key = Some("sk_test_x".into());
        s.keys.max_stale_secs = 3600;
        assert!(Config::from_settings(s)
            .unwrap_err()
            .starts_with("keys.max_stale_secs: 3600 must be more than keys.refresh_secs"));
        let mut s = Settings::default();
        s.keys.secret_key = Some("sk_test_x".into());
        s.keys.max_stale_secs = 59;
        assert!(Config::from_settings(s)
            .unwrap_err()
            .starts_with("keys.max_stale_secs: 59 is out of range"));
        let dir = std::env::temp_dir();
        let mut s = Settings::default();
        s.keys.secret_key = Some("sk_test_x".into());
        s.keys.state_dir = Some(dir.clone());
        assert_eq!(
            Config::from_settings(s).unwrap().state,
            Some(KeyState::new(dir.clone()))
        );
        let mut s = Settings::default();
        s.keys.secret_key = Some("sk_test_x".into());
        s.keys.state_dir = Some(PathBuf::new());
        assert_eq!(Config::from_settings(s).unwrap().state, None, "\"\": none");
        let mut s = Settings::default();
        s.keys.secret_key = Some("sk_test_x".into());
        s.keys.state_dir = Some("/nonexistent/jwtgate".into());
        assert!(Config::from_settings(s)
            .unwrap_err()
            .starts_with("keys.state_dir: /nonexistent/jwtgate"));
        let mut s = Settings::default();
        s.keys.jwt_key = Some(
            String::from_utf8(
                openssl::rsa::Rsa::generate(2048)
                    .unwrap()
                    .public_key_to_pem()
                    .unwrap(),
            )
            .unwrap(),
        );
        s.keys.state_dir = Some(dir);
        assert_eq!(
            Config::from_settings(s).unwrap().state,
            None,
            "a PEM key needs no state"
        );
    }

    #[test]
    fn http_settings_reach_the_server_config_and_errors_name_the_key() {
        let clerk = "[keys]\nsecret_key = \"sk_test_x\"\n";
        let c = Config::from_settings(settings_from_toml(clerk).unwrap()).unwrap();
        assert_eq!(c.http.server.max_headers, 64);
        assert_eq!(c.http.server.max_header_bytes, 32 * 1024);
        assert_eq!(c.http.server.max_body_bytes, 1024 * 1024);
        assert_eq!(c.http.server.idle_timeout, Some(Duration::from_secs(75)));
        assert_eq!(
            c.http.server.header_read_timeout,
            Some(Duration::from_secs(10))
        );
        assert!(!c.http.server.reuse_port);
        assert_eq!(c.http.drain, Duration::from_secs(5));
        assert_eq!(c.http.startup_wait, Duration::from_millis(3000));
        let set = format!(
            "{clerk}[http]\nmax_headers = 100\nmax_header_bytes = 65536\nmax_body_bytes = 0\n\
             idle_timeout_secs = 120\nheader_read_timeout_secs = 3\nreuse_port = true\n\
             drain_secs = 0\nstartup_wait_ms = 250\n"
        );
        let c = Config::from_settings(settings_from_toml(&set).unwrap()).unwrap();
        assert_eq!(c.http.server.max_headers, 100);
        assert_eq!(c.http.server.max_header_bytes, 65536);
        assert_eq!(c.http.server.max_body_bytes, 0);
        assert_eq!(c.http.server.idle_timeout, Some(Duration::from_secs(120)));
        assert_eq!(
            c.http.server.header_read_timeout,
            Some(Duration::from_secs(3))
        );
        assert!(c.http.server.reuse_port);
        assert_eq!(c.http.drain, Duration::ZERO);
        assert_eq!(c.http.startup_wait, Duration::from_millis(250));
        for (line, key) in [
            ("max_headers = 8", "http.max_headers: 8 is out of range"),
            ("max_header_bytes = 100", "http.max_header_bytes"),
            ("max_body_bytes = 2147483648", "http.max_body_bytes"),
            ("idle_timeout_secs = 0", "http.idle_timeout_secs"),
            (
                "header_read_timeout_secs = 0",
                "http.header_read_timeout_secs",
            ),
            ("drain_secs = 301", "http.drain_secs"),
            ("startup_wait_ms = 60001", "http.startup_wait_ms"),
        ] {
            let toml = format!("{clerk}[http]\n{line}\n");
            let err = Config::from_settings(settings_from_toml(&toml).unwrap()).unwrap_err();
            assert!(err.starts_with(key), "{line}: {err}");
        }
        let err = settings_from_toml("[http]\nreuse_port = \"maybe\"\n").unwrap_err();
        assert!(err.contains("reuse_port"), "{err}");
        let err = settings_from_toml("[http]\nmax_header = 1\n").unwrap_err();
        assert!(err.contains("unknown field `max_header`"), "{err}");
    }

    #[test]
    fn kubernetes_service_variables_are_recognised_by_name_and_value() {
        for (name, value) in [
            ("JWTGATE_SERVICE_HOST", "10.96.0.12"),
            ("JWTGATE_SERVICE_HOST", "fd00::12"),
            ("JWTGATE_SERVICE_PORT", "7070"),
            ("JWTGATE_SERVICE_PORT_HTTP_API", "7070"),
            ("JWTGATE_PORT", "tcp://10.96.0.12:7070"),
            ("JWTGATE_PORT", "udp://[fd00::12]:53"),
            ("JWTGATE_PORT_7070_TCP", "tcp://10.96.0.12:7070"),
            ("JWTGATE_PORT_7070_TCP_PROTO", "tcp"),
            ("JWTGATE_PORT_7070_TCP_PORT", "7070"),
            ("JWTGATE_PORT_7070_TCP_ADDR", "10.96.0.12"),
            ("JWTGATE_PORT_53_SCTP_PROTO", "sctp"),
            ("JWTGATE_ADMIN_SERVICE_HOST", "10.96.0.13"),
            ("JWTGATE_ADMIN_2_PORT_9090_TCP", "tcp://10.96.0.13:9090"),
        ] {
            assert!(
                is_kubernetes_service_variable(name, value),
                "{name}={value}"
            );
        }
        for (name, value) in [
            ("JWTGATE_SERVICE_HOST", "example.com"),
            ("JWTGATE_SERVICE_PORT", "http"),
            ("JWTGATE_SERVICE_PORT", "0"),
            ("JWTGATE_SERVICE_PORT", "070"),
            ("JWTGATE_PORT", "7070"),
            ("JWTGATE_PORT", "https://10.96.0.12:7070"),
            ("JWTGATE_PORT_7070_TCP", "tcp://10.96.0.12:7071"),
            ("JWTGATE_PORT_7070_TCP", "udp://10.96.0.12:7070"),
            ("JWTGATE_PORT_7070_TCP_PROTO", "udp"),
            ("JWTGATE_PORT_7070_TCP_PORT", "7071"),
            ("JWTGATE_PORT_7070_TCP_HOST", "10.96.0.12"),
            ("JWTGATE_PORT_7070_HTTP", "tcp://10.96.0.12:7070"),
            ("JWTGATE_LISTEN_PORT", "7070"),
            ("JWTGATE_LISTEN", "127.0.0.1:7070"),
            ("JWTGATE_KEYS__JWKS_URL_PORT", "tcp://10.96.0.12:7070"),
            ("JWTGATE__SERVICE_HOST", "10.96.0.12"),
            ("JWTGATE_x_SERVICE_HOST", "10.96.0.12"),
            ("jwtgate_service_host", "10.96.0.12"),
            ("JWTGATEX_SERVICE_HOST", "10.96.0.12"),
        ] {
            assert!(
                !is_kubernetes_service_variable(name, value),
                "{name}={value}"
            );
        }
        let vars = [
            ("JWTGATE_SERVICE_HOST", "10.96.0.12"),
            ("JWTGATE_LISTEN", "127.0.0.1:1"),
            ("JWTGATE_PORT", "7070"),
            ("OTHER", "x"),
        ]
        .map(|(n, v)| (n.into(), v.into()));
        let kept = jwtgate_variables(vars.into_iter()).unwrap();
        let mut names: Vec<&String> = kept.keys().collect();
        names.sort();
        assert_eq!(names, ["JWTGATE_LISTEN", "JWTGATE_PORT"]);
    }
}
