//! A fake Clerk for the browser and handshake tests: the Frontend API
//! (FAPI), a stand-in Account Portal (AP) and the Backend API (BAPI), as
//! `shared/docs/clerk-handshake.md` section 8 designs them, on loopback.
//!
//! - FAPI and AP share one HTTPS listener (a certificate for `app.test` and
//!   `*.app.test` made with OpenSSL at test time) and are told apart by the
//!   `Host` header: `clerk.app.test` is the FAPI, `accounts.app.test` the AP.
//!   A browser reaches them as `https://clerk.app.test/...` through
//!   Chromium's `--host-resolver-rules` (see `browser.rs`).
//! - BAPI listens on plain `http://127.0.0.1:<port>`: jwtgate and the Node
//!   oracle call it there (`keys.api_url`, `apiUrl`).
//!
//! The instance key is an RSA-2048 key with kid `ins_test`. Session tokens
//! live `session_ttl_secs` (5 s by default, so a test sees them expire).
//! Switches ([`Settings`]) choose the payload transport (cookie or query,
//! token or nonce), break the FAPI (for the loop guard) or forge payloads.
//! Every request is counted per endpoint ([`FakeClerk::count`]) and logged
//! ([`FakeClerk::log`]), so a test can assert what the browser did.
//!
//! Include it from a test crate root that also has `mod common;`:
//! `#[path = "common/fake_clerk.rs"] mod fake_clerk;`
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE};
use base64::Engine;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder};
use serde_json::{json, Value};

use crate::common::{jwks, now, Key, TempDir};

/// The registrable domain (eTLD+1) of the fake deployment.
pub const DOMAIN: &str = "app.test";
/// The protected site.
pub const APP_HOST: &str = "app.test";
/// The Frontend API host, encoded in the publishable key.
pub const FAPI_HOST: &str = "clerk.app.test";
/// The Account Portal host.
pub const AP_HOST: &str = "accounts.app.test";
/// The sign-in page on the AP.
pub const SIGN_IN_URL: &str = "https://accounts.app.test/sign-in";
/// The Backend API secret the fake BAPI insists on.
pub const SECRET_KEY: &str = "sk_live_fake_clerk_secret";
/// The instance key's kid.
pub const KID: &str = "ins_test";
/// Clerk's session-token category (`cat` header).
pub const SESSION_CAT: &str = "cl_B7d4PD111AAA";
/// The JWT-template category: never a session or handshake token.
pub const TEMPLATE_CAT: &str = "cl_B7d4PD222AAA";
const EPOCH: &str = "Expires=Thu, 01 Jan 1970 00:00:00 GMT";

/// `pk_live_` (or `pk_test_`) + base64(`<host>$`) without padding.
pub fn publishable_key(live: bool, fapi_host: &str) -> String {
    let prefix = if live { "pk_live_" } else { "pk_test_" };
    format!(
        "{prefix}{}",
        STANDARD_NO_PAD.encode(format!("{fapi_host}$"))
    )
}

/// Clerk's cookie suffix: the first 8 characters of base64url(SHA-1(pk)).
pub fn cookie_suffix(publishable_key: &str) -> String {
    URL_SAFE.encode(openssl::sha::sha1(publishable_key.as_bytes()))[..8].to_string()
}

pub fn random_id(prefix: &str) -> String {
    let mut b = [0u8; 12];
    openssl::rand::rand_bytes(&mut b).unwrap();
    format!("{prefix}{}", hex::encode(b))
}

// ---------------------------------------------------------------------------
// TLS: one self-signed certificate for app.test and *.app.test
// ---------------------------------------------------------------------------

/// A self-signed certificate (RSA-2048, SHA-256) for `app.test`,
/// `*.app.test`, `localhost` and 127.0.0.1, made with OpenSSL, written as
/// PEM files (for nginx) and kept as an acceptor (for the fake servers).
pub struct Tls {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub acceptor: Arc<SslAcceptor>,
    _dir: TempDir,
}

impl Tls {
    pub fn new() -> Tls {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", APP_HOST).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().build().unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns(APP_HOST)
            .dns(&format!("*.{DOMAIN}"))
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build();

        let dir = TempDir::new("tls");
        let cert_pem = dir.path("cert.pem");
        let key_pem = dir.path("key.pem");
        std::fs::write(&cert_pem, cert.to_pem().unwrap()).unwrap();
        std::fs::write(&key_pem, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        acceptor.set_private_key(&key).unwrap();
        acceptor.set_certificate(&cert).unwrap();
        acceptor.check_private_key().unwrap();
        Tls {
            cert_pem,
            key_pem,
            acceptor: Arc::new(acceptor.build()),
            _dir: dir,
        }
    }
}

impl Default for Tls {
    fn default() -> Self {
        Tls::new()
    }
}

// ---------------------------------------------------------------------------
// A tiny HTTP/1.1 server (one request per connection, Connection: close)
// ---------------------------------------------------------------------------

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The host name of `Host`, without a port, lowercased.
    pub fn host(&self) -> String {
        let h = self.header("host").unwrap_or("");
        h.rsplit_once(':')
            .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            .map_or(h, |(h, _)| h)
            .to_ascii_lowercase()
    }

    /// The first query parameter `name` (form-decoded).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter, else a form field of an urlencoded body.
    pub fn field(&self, name: &str) -> Option<String> {
        if let Some(v) = self.param(name) {
            return Some(v.to_string());
        }
        form_decode(&String::from_utf8_lossy(&self.body))
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The first cookie `name` of the Cookie header(s).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.trim().to_string())
    }
}

/// A response; `Content-Length` and `Connection: close` are added.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn new(status: u16, content_type: &str, body: impl Into<String>) -> Resp {
        Resp {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn html(body: impl Into<String>) -> Resp {
        Resp::new(200, "text/html; charset=utf-8", body)
    }

    pub fn json(status: u16, body: &Value) -> Resp {
        Resp::new(status, "application/json", body.to_string())
    }

    pub fn redirect(status: u16, location: &str) -> Resp {
        let mut r = Resp::new(status, "text/plain", "");
        r.headers.push(("Location".into(), location.into()));
        r
    }

    pub fn with(mut self, name: &str, value: &str) -> Resp {
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

pub type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

/// Serves `handler` on `listener`, over TLS when `tls` is given; a thread
/// per connection, bounded reads (10 s idle, 64 KiB of headers, 1 MiB body).
pub fn serve(listener: TcpListener, tls: Option<Arc<SslAcceptor>>, handler: Handler) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (tls, handler) = (tls.clone(), handler.clone());
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream) {
                            serve_one(s, &handler);
                        }
                    }
                    None => serve_one(stream, &handler),
                }
            });
        }
    });
}

fn serve_one<S: Read + Write>(stream: S, handler: &Handler) {
    let mut reader = BufReader::new(stream);
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    let rsp = handler(&req);
    let mut out = format!("HTTP/1.1 {} {}\r\n", rsp.status, reason_phrase(rsp.status));
    for (n, v) in &rsp.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        rsp.body.len()
    ));
    if req.method != "HEAD" {
        out.push_str(&rsp.body);
    }
    let stream = reader.get_mut();
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}

fn read_request(reader: &mut impl BufRead) -> Option<Req> {
    let mut line = String::new();
    let mut total = 0usize;
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        let n = reader.read_line(&mut h).ok()?;
        total += n;
        if n == 0 || total > 64 * 1024 {
            return None;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > 1 << 20 {
        return None;
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Req {
        method,
        path: path.to_string(),
        query: form_decode(query),
        target: target.clone(),
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------
// URL bits
// ---------------------------------------------------------------------------

/// `application/x-www-form-urlencoded` serialization as WHATWG
/// `URLSearchParams` does it: `*-._` and alphanumerics raw, space as `+`.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes `a=b&c=d` (`+` is a space, `%XX` a byte).
pub fn form_decode(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(n), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `name=value` to the query of `url` (before any fragment).
pub fn add_query(url: &str, name: &str, value: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, format!("#{f}")),
        None => (url, String::new()),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    format!(
        "{base}{sep}{}={}{fragment}",
        form_encode(name),
        form_encode(value)
    )
}

/// `scheme://host[:port]` of an absolute http(s) URL, lowercased host.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    Some(format!(
        "{scheme}://{}",
        authority.strip_suffix(default).unwrap_or(&authority)
    ))
}

// ---------------------------------------------------------------------------
// The fake Clerk
// ---------------------------------------------------------------------------

/// Where FAPI puts the handshake payload on its redirect back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `__clerk_handshake=<jwt>` cookie on the eTLD+1 (production's default).
    CookieToken,
    /// `?__clerk_handshake=<jwt>` (development's way).
    QueryToken,
    /// `__clerk_handshake_nonce=<n>` cookie; the app exchanges it at BAPI.
    CookieNonce,
    /// `?__clerk_handshake_nonce=<n>`.
    QueryNonce,
}

pub const TRANSPORTS: [Transport; 4] = [
    Transport::CookieToken,
    Transport::QueryToken,
    Transport::CookieNonce,
    Transport::QueryNonce,
];

/// A FAPI that misbehaves (for the loop-guard test).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// `/v1/client/handshake` answers 500.
    Error500,
    /// `/v1/client/handshake` redirects back with no payload and no cookie.
    NoPayload,
}

/// A payload an attacker made (for the forged-payload test).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forge {
    /// Token transports: the handshake JWT (and the session JWT in it) is
    /// signed with another RSA key under the instance's kid. Nonce
    /// transports: BAPI returns directives whose session JWT is signed so.
    WrongKey,
    /// Nonce transports: FAPI redirects with a nonce BAPI never issued
    /// (404). Token transports: the handshake JWT's header says a template
    /// `cat` (AISEC-85), signed with the real key.
    Unknown,
}

/// The switches; change them any time with [`FakeClerk::set`].
#[derive(Clone, Debug)]
pub struct Settings {
    /// `pk_live_` semantics (cookies) when true, `pk_test_` (dev browser).
    pub live: bool,
    pub transport: Transport,
    pub session_ttl_secs: i64,
    pub broken: Option<Broken>,
    pub forge: Option<Forge>,
    /// Add `Secure` to the cookies FAPI sets (the browser tests use HTTPS).
    pub secure: bool,
    /// Origins `redirect_url` may point to (a real FAPI's allowlist).
    pub allowed_origins: Vec<String>,
    /// `/test/sign-in` and `/test/sign-out` also set `__client_uat_<sfx>`,
    /// as current Clerk does, which makes the SDK ask for suffixed cookies.
    pub suffixed_uat: bool,
    /// BAPI answers the payload with `; charset=utf-8` (the SDK then fails).
    pub bapi_charset: bool,
    /// How many times BAPI hands out one nonce's payload (1 = single use).
    pub nonce_uses: u32,
    /// Extra directives FAPI puts in every signed-in payload (before the
    /// session), e.g. a non-Clerk cookie that the gateway must drop.
    pub extra_directives: Vec<String>,
    /// The Frontend API host the publishable key encodes and session tokens
    /// name in `iss` (the browser always reaches FAPI as `clerk.app.test`).
    pub issuer_host: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            live: true,
            transport: Transport::CookieNonce,
            session_ttl_secs: 5,
            broken: None,
            forge: None,
            secure: true,
            allowed_origins: vec![format!("https://{APP_HOST}")],
            suffixed_uat: true,
            bapi_charset: false,
            nonce_uses: 1,
            extra_directives: Vec::new(),
            issuer_host: FAPI_HOST.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
struct Client {
    user: Option<String>,
    session: Option<String>,
    updated_at: i64,
}

struct Nonce {
    directives: Vec<String>,
    uses_left: u32,
    expires: i64,
    charset: bool,
}

struct State {
    settings: Mutex<Settings>,
    key: Key,
    forger: Key,
    publishable_key: Mutex<String>,
    clients: Mutex<HashMap<String, Client>>,
    dev_browsers: Mutex<HashMap<String, String>>,
    nonces: Mutex<HashMap<String, Nonce>>,
    counts: Mutex<BTreeMap<String, usize>>,
    log: Mutex<Vec<String>>,
    quiet: AtomicBool,
}

/// The running fake. Servers are threads; they live until the test process
/// ends (nothing to clean up but sockets).
pub struct FakeClerk {
    /// HTTPS: FAPI (`Host: clerk.app.test`) and AP (`Host: accounts.app.test`).
    pub fapi_addr: SocketAddr,
    /// HTTP: BAPI.
    pub bapi_addr: SocketAddr,
    pub tls: Arc<Tls>,
    state: Arc<State>,
}

impl FakeClerk {
    pub fn start() -> FakeClerk {
        FakeClerk::start_with(Arc::new(Tls::new()), Settings::default())
    }

    pub fn start_with(tls: Arc<Tls>, settings: Settings) -> FakeClerk {
        let pk = publishable_key(settings.live, &settings.issuer_host);
        let state = Arc::new(State {
            settings: Mutex::new(settings),
            key: Key::rsa(KID, 2048),
            forger: Key::rsa(KID, 2048),
            publishable_key: Mutex::new(pk),
            clients: Mutex::new(HashMap::new()),
            dev_browsers: Mutex::new(HashMap::new()),
            nonces: Mutex::new(HashMap::new()),
            counts: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Vec::new()),
            quiet: AtomicBool::new(std::env::var_os("FAKE_CLERK_QUIET").is_some()),
        });
        let fapi = TcpListener::bind("127.0.0.1:0").unwrap();
        let bapi = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = FakeClerk {
            fapi_addr: fapi.local_addr().unwrap(),
            bapi_addr: bapi.local_addr().unwrap(),
            tls: tls.clone(),
            state: state.clone(),
        };
        let s = state.clone();
        serve(
            fapi,
            Some(tls.acceptor.clone()),
            Arc::new(move |req| s.front(req)),
        );
        let s = state;
        serve(bapi, None, Arc::new(move |req| s.back(req)));
        fake
    }

    /// Changes the switches.
    pub fn set(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.state.settings.lock().unwrap());
        let s = self.settings();
        *self.state.publishable_key.lock().unwrap() = publishable_key(s.live, &s.issuer_host);
    }

    pub fn settings(&self) -> Settings {
        self.state.settings.lock().unwrap().clone()
    }

    /// The instance's signing key (kid `ins_test`).
    pub fn key(&self) -> &Key {
        &self.state.key
    }

    pub fn publishable_key(&self) -> String {
        self.state.publishable_key.lock().unwrap().clone()
    }

    pub fn suffix(&self) -> String {
        cookie_suffix(&self.publishable_key())
    }

    /// `http://127.0.0.1:<port>`: jwtgate's `keys.api_url`, the oracle's `apiUrl`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.bapi_addr)
    }

    /// `https://127.0.0.1:<port>`: FAPI for clients that cannot map host
    /// names (send `Host: clerk.app.test`).
    pub fn fapi_direct_url(&self) -> String {
        format!("https://{}", self.fapi_addr)
    }

    /// How many requests reached `path` (e.g. `/v1/client/handshake`), any
    /// method, on any of the fake's hosts.
    pub fn count(&self, path: &str) -> usize {
        self.state
            .counts
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.rsplit(' ').next() == Some(path))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every counter: `"<host> <METHOD> <path>"` → requests.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.state.counts.lock().unwrap().clone()
    }

    /// One line per request: host, method, target, and what was answered.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    /// Stores `directives` under `nonce` for BAPI, usable `uses` times.
    pub fn add_nonce(&self, nonce: &str, directives: Vec<String>, uses: u32) {
        self.add_nonce_with(nonce, directives, uses, false);
    }

    /// As [`FakeClerk::add_nonce`]; with `charset`, BAPI answers this nonce
    /// with `Content-Type: application/json; charset=utf-8`.
    pub fn add_nonce_with(&self, nonce: &str, directives: Vec<String>, uses: u32, charset: bool) {
        self.state.nonces.lock().unwrap().insert(
            nonce.to_string(),
            Nonce {
                directives,
                uses_left: uses,
                expires: now() + 300,
                charset,
            },
        );
    }

    /// A signed-in client for `user` with session `sid` (no cookie is set;
    /// BAPI's refresh endpoint knows the session). Returns the client id.
    pub fn add_session(&self, user: &str, sid: &str) -> String {
        let id = random_id("client_");
        self.state.clients.lock().unwrap().insert(
            id.clone(),
            Client {
                user: Some(user.to_string()),
                session: Some(sid.to_string()),
                updated_at: now(),
            },
        );
        id
    }

    /// A session JWT as FAPI mints it, for `user`/`sid`, `azp` = `azp`.
    pub fn session_token(&self, user: &str, sid: &str, azp: &str) -> String {
        let ttl = self.settings().session_ttl_secs;
        self.state
            .session_jwt(&self.state.key, user, sid, azp, now(), ttl)
    }

    /// A handshake JWT `{"handshake": directives}` signed with the instance key.
    pub fn handshake_token(&self, directives: &[String]) -> String {
        self.state.handshake_jwt(&self.state.key, directives, None)
    }

    /// The public JWKS of the instance.
    pub fn jwks(&self) -> String {
        jwks(&[&self.state.key])
    }

    /// The user currently signed in on `client_id`, if any.
    pub fn signed_in_user(&self, client_id: &str) -> Option<String> {
        let clients = self.state.clients.lock().unwrap();
        let c = clients.get(client_id)?;
        c.session.as_ref()?;
        c.user.clone()
    }
}

impl State {
    fn settings(&self) -> Settings {
        self.settings.lock().unwrap().clone()
    }

    fn record(&self, side: &str, req: &Req, rsp: &Resp) {
        let host = if side == "bapi" {
            "bapi".to_string()
        } else {
            req.host()
        };
        *self
            .counts
            .lock()
            .unwrap()
            .entry(format!("{host} {} {}", req.method, req.path))
            .or_insert(0) += 1;
        let location = rsp
            .headers
            .iter()
            .find(|(n, _)| n == "Location")
            .map_or(String::new(), |(_, v)| format!(" -> {v}"));
        let line = format!(
            "{side} {host} {} {} => {}{location}",
            req.method, req.target, rsp.status
        );
        if !self.quiet.load(Ordering::Relaxed) {
            eprintln!("[fake-clerk] {line}");
        }
        self.log.lock().unwrap().push(line);
    }

    // ---- tokens and directives --------------------------------------------

    fn session_jwt(
        &self,
        key: &Key,
        user: &str,
        sid: &str,
        azp: &str,
        iat: i64,
        ttl: i64,
    ) -> String {
        let header = json!({"alg": "RS256", "kid": KID, "typ": "JWT", "cat": SESSION_CAT});
        let claims = json!({
            "azp": azp, "exp": iat + ttl, "iat": iat, "nbf": iat - 10,
            "iss": format!("https://{}", self.settings().issuer_host), "sid": sid, "sub": user, "v": 2,
            "jti": random_id(""),
        });
        key.sign_with(&header, &claims)
    }

    fn handshake_jwt(&self, key: &Key, directives: &[String], cat: Option<&str>) -> String {
        let mut header = json!({"alg": "RS256", "kid": KID, "typ": "JWT"});
        if let Some(cat) = cat {
            header["cat"] = json!(cat);
        }
        let t = now();
        key.sign_with(
            &header,
            &json!({"handshake": directives, "iat": t, "exp": t + 60}),
        )
    }

    fn attrs(&self, s: &Settings) -> &'static str {
        if s.secure {
            "; Secure; SameSite=Lax"
        } else {
            "; SameSite=Lax"
        }
    }

    fn uat_directives(&self, s: &Settings, value: i64, suffixed: bool) -> Vec<String> {
        let mut names = vec!["__client_uat".to_string()];
        if suffixed {
            names.push(format!("__client_uat_{}", cookie_suffix(&self.pk())));
        }
        names
            .into_iter()
            .map(|n| {
                format!(
                    "{n}={value}; Path=/; Domain={DOMAIN}; Max-Age=315360000{}",
                    self.attrs(s)
                )
            })
            .collect()
    }

    fn pk(&self) -> String {
        self.publishable_key.lock().unwrap().clone()
    }

    /// The handshake directives for `client` (signed in or out), session last.
    fn directives(
        &self,
        s: &Settings,
        client: Option<&Client>,
        suffixed: bool,
        azp: &str,
        dvb: Option<&str>,
    ) -> Vec<String> {
        let sfx = cookie_suffix(&self.pk());
        let attrs = self.attrs(s);
        let mut d = vec![
            format!("__clerk_handshake=; Path=/; Domain={DOMAIN}; {EPOCH}{attrs}"),
            format!("__clerk_handshake_nonce=; Path=/; Domain={DOMAIN}; {EPOCH}{attrs}"),
        ];
        if let Some(dvb) = dvb {
            d.push(format!("__clerk_db_jwt={dvb}; Path=/; SameSite=Lax"));
        }
        let signed_in =
            client.and_then(|c| Some((c.user.clone()?, c.session.clone()?, c.updated_at)));
        let mut names = vec!["__session".to_string()];
        if suffixed {
            names.push(format!("__session_{sfx}"));
        }
        match signed_in {
            Some((user, sid, updated_at)) => {
                d.extend(self.uat_directives(s, updated_at, suffixed));
                d.extend(s.extra_directives.iter().cloned());
                let key = if s.forge == Some(Forge::WrongKey) {
                    &self.forger
                } else {
                    &self.key
                };
                let jwt = self.session_jwt(key, &user, &sid, azp, now(), s.session_ttl_secs);
                for n in names {
                    d.push(format!("{n}={jwt}; Path=/{attrs}"));
                }
            }
            None => {
                d.extend(self.uat_directives(s, 0, suffixed));
                for n in names {
                    d.push(format!("{n}=; Path=/; {EPOCH}{attrs}"));
                }
            }
        }
        d
    }

    fn client_cookie(&self, s: &Settings, id: &str) -> String {
        format!("__client={id}; Path=/; HttpOnly{}", self.attrs(s))
    }

    // ---- FAPI and AP ---------------------------------------------------------

    fn front(&self, req: &Req) -> Resp {
        let rsp = match req.host().as_str() {
            h if h == FAPI_HOST => self.fapi(req),
            h if h == AP_HOST => self.account_portal(req),
            // Direct access by IP (e.g. a non-browser client): FAPI.
            _ => self.fapi(req),
        };
        self.record("front", req, &rsp);
        rsp
    }

    fn allowed(&self, s: &Settings, url: &str) -> bool {
        origin_of(url).is_some_and(|o| s.allowed_origins.contains(&o))
    }

    fn fapi(&self, req: &Req) -> Resp {
        let s = self.settings();
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/client/handshake") => self.handshake(&s, req),
            ("GET" | "POST", "/test/sign-in") => self.sign_in(&s, req),
            ("GET" | "POST", "/test/sign-out") => self.sign_out(&s, req),
            ("GET", "/.well-known/jwks.json") => {
                Resp::new(200, "application/json", jwks(&[&self.key]))
            }
            ("POST", "/v1/dev_browser") => {
                let dvb = random_id("dvb_");
                self.dev_browsers
                    .lock()
                    .unwrap()
                    .insert(dvb.clone(), random_id("client_"));
                Resp::json(200, &json!({"id": dvb}))
            }
            _ => Resp::new(404, "text/plain", "not found"),
        }
    }

    fn handshake(&self, s: &Settings, req: &Req) -> Resp {
        let Some(redirect_url) = req.param("redirect_url").map(str::to_string) else {
            return Resp::new(400, "text/plain", "redirect_url missing");
        };
        if !self.allowed(s, &redirect_url) {
            return Resp::new(400, "text/plain", "redirect_url not allowed");
        }
        match s.broken {
            Some(Broken::Error500) => return Resp::new(500, "text/plain", "FAPI is broken"),
            Some(Broken::NoPayload) => return Resp::redirect(307, &redirect_url),
            None => {}
        }
        let suffixed = req.param("suffixed_cookies") == Some("true");
        let azp = origin_of(&redirect_url).unwrap_or_default();
        // Identify the client: production by the HttpOnly __client cookie on
        // this host; development by the dev browser in the query.
        let (client, dvb) = if s.live {
            let c = req
                .cookie("__client")
                .and_then(|id| self.clients.lock().unwrap().get(&id).cloned());
            (c, None)
        } else {
            let dvb = req
                .param("__clerk_db_jwt")
                .map(str::to_string)
                .unwrap_or_else(|| random_id("dvb_"));
            let id = self
                .dev_browsers
                .lock()
                .unwrap()
                .entry(dvb.clone())
                .or_insert_with(|| random_id("client_"))
                .clone();
            let c = self.clients.lock().unwrap().get(&id).cloned();
            (c, Some(dvb))
        };
        let directives = self.directives(s, client.as_ref(), suffixed, &azp, dvb.as_deref());
        let nonce_transport = matches!(s.transport, Transport::CookieNonce | Transport::QueryNonce);
        let (name, value) = if nonce_transport {
            let nonce = random_id("nonce_");
            if s.forge != Some(Forge::Unknown) {
                self.nonces.lock().unwrap().insert(
                    nonce.clone(),
                    Nonce {
                        directives,
                        uses_left: s.nonce_uses,
                        expires: now() + 60,
                        charset: false,
                    },
                );
            }
            ("__clerk_handshake_nonce", nonce)
        } else {
            let (key, cat) = match s.forge {
                Some(Forge::WrongKey) => (&self.forger, None),
                Some(Forge::Unknown) => (&self.key, Some(TEMPLATE_CAT)),
                None => (&self.key, None),
            };
            (
                "__clerk_handshake",
                self.handshake_jwt(key, &directives, cat),
            )
        };
        let in_query =
            !s.live || matches!(s.transport, Transport::QueryToken | Transport::QueryNonce);
        if in_query {
            let mut url = redirect_url;
            if let Some(dvb) = &dvb {
                url = add_query(&url, "__clerk_db_jwt", dvb);
            }
            Resp::redirect(307, &add_query(&url, name, &value))
        } else {
            Resp::redirect(307, &redirect_url).with(
                "Set-Cookie",
                &format!(
                    "{name}={value}; Domain={DOMAIN}; Path=/; Max-Age=60{}",
                    self.attrs(s)
                ),
            )
        }
    }

    /// Stands in for signing in on the AP: a client and a session for
    /// `user`, `__client` host-only here, `__client_uat` on the eTLD+1.
    fn sign_in(&self, s: &Settings, req: &Req) -> Resp {
        let user = req.field("user").unwrap_or_else(|| "user_1".into());
        let redirect_url = req.field("redirect_url");
        if let Some(url) = &redirect_url {
            if !self.allowed(s, url) {
                return Resp::new(400, "text/plain", "redirect_url not allowed");
            }
        }
        let t = now();
        let id = req
            .cookie("__client")
            .filter(|id| self.clients.lock().unwrap().contains_key(id))
            .unwrap_or_else(|| random_id("client_"));
        self.clients.lock().unwrap().insert(
            id.clone(),
            Client {
                user: Some(user.clone()),
                session: Some(random_id("sess_")),
                updated_at: t,
            },
        );
        if let Some(dvb) = req.field("__clerk_db_jwt") {
            self.dev_browsers.lock().unwrap().insert(dvb, id.clone());
        }
        let mut rsp = match &redirect_url {
            Some(url) => Resp::redirect(303, url),
            None => Resp::html(format!("<p id=signed-in>signed in as {user}</p>")),
        };
        rsp = rsp.with("Set-Cookie", &self.client_cookie(s, &id));
        for d in self.uat_directives(s, t, s.suffixed_uat) {
            rsp = rsp.with("Set-Cookie", &d);
        }
        rsp
    }

    fn sign_out(&self, s: &Settings, req: &Req) -> Resp {
        let redirect_url = req.field("redirect_url");
        if let Some(url) = &redirect_url {
            if !self.allowed(s, url) {
                return Resp::new(400, "text/plain", "redirect_url not allowed");
            }
        }
        if let Some(id) = req.cookie("__client") {
            if let Some(c) = self.clients.lock().unwrap().get_mut(&id) {
                c.session = None;
                c.updated_at = now();
            }
        }
        let mut rsp = match &redirect_url {
            Some(url) => Resp::redirect(303, url),
            None => Resp::html("<p id=signed-out>signed out</p>"),
        };
        for d in self.uat_directives(s, 0, s.suffixed_uat) {
            rsp = rsp.with("Set-Cookie", &d);
        }
        rsp
    }

    /// The Account Portal: `/sign-in?redirect_url=` shows a form that posts
    /// to FAPI's `/test/sign-in` (as the AP's clerk-js talks to FAPI).
    fn account_portal(&self, req: &Req) -> Resp {
        match req.path.as_str() {
            "/sign-in" => {
                let redirect_url = req.param("redirect_url").unwrap_or("");
                Resp::html(format!(
                    "<!doctype html><title>Sign in</title><link rel=icon href=\"data:,\"><h1 id=sign-in>Sign in</h1>\
                     <form method=post action=\"https://{FAPI_HOST}/test/sign-in\">\
                     <input name=user value=user_1>\
                     <input type=hidden name=redirect_url value=\"{}\">\
                     <button id=submit type=submit>Continue</button></form>",
                    html_escape(redirect_url)
                ))
            }
            _ => Resp::new(404, "text/plain", "not found"),
        }
    }

    // ---- BAPI ----------------------------------------------------------------

    fn back(&self, req: &Req) -> Resp {
        let rsp = self.bapi(req);
        self.record("bapi", req, &rsp);
        rsp
    }

    fn bapi(&self, req: &Req) -> Resp {
        let s = self.settings();
        if req.header("authorization") != Some(&format!("Bearer {SECRET_KEY}")) {
            return Resp::json(
                401,
                &json!({"errors": [{"code": "authentication_invalid", "message": "bad secret key"}]}),
            );
        }
        let not_found = |what: &str| {
            Resp::json(
                404,
                &json!({"errors": [{"code": "resource_not_found", "message": format!("{what} not found")}]}),
            )
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/jwks") => Resp::new(200, "application/json", jwks(&[&self.key])),
            ("GET", "/v1/clients/handshake_payload") => {
                let Some(nonce) = req.param("nonce") else {
                    return not_found("nonce");
                };
                let mut nonces = self.nonces.lock().unwrap();
                let Some(entry) = nonces.get_mut(nonce).filter(|n| n.expires >= now()) else {
                    return not_found("nonce");
                };
                let directives = entry.directives.clone();
                let charset = entry.charset;
                entry.uses_left = entry.uses_left.saturating_sub(1);
                if entry.uses_left == 0 {
                    nonces.remove(nonce);
                }
                let ct = if s.bapi_charset || charset {
                    "application/json; charset=utf-8"
                } else {
                    "application/json"
                };
                Resp::new(200, ct, json!({"directives": directives}).to_string())
            }
            ("POST", p) if p.starts_with("/v1/sessions/") && p.ends_with("/refresh") => {
                let sid = &p["/v1/sessions/".len()..p.len() - "/refresh".len()];
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let client = self
                    .clients
                    .lock()
                    .unwrap()
                    .values()
                    .find(|c| c.session.as_deref() == Some(sid))
                    .cloned();
                let (Some(client), Some(_)) = (client, body["refresh_token"].as_str()) else {
                    return not_found("session");
                };
                let azp = body["request_origin"].as_str().unwrap_or("").to_string();
                let jwt = self.session_jwt(
                    &self.key,
                    client.user.as_deref().unwrap_or(""),
                    sid,
                    &azp,
                    now(),
                    s.session_ttl_secs,
                );
                let mut names = vec!["__session".to_string()];
                if req.param("suffixed_cookies") == Some("true") {
                    names.push(format!("__session_{}", cookie_suffix(&self.pk())));
                }
                let cookies: Vec<String> = names
                    .iter()
                    .map(|n| format!("{n}={jwt}; Path=/{}", self.attrs(&s)))
                    .collect();
                Resp::json(200, &json!({"object": "cookies", "cookies": cookies}))
            }
            _ => not_found("endpoint"),
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
