//! Shared parts of the black-box tests: real RSA keys made with OpenSSL at
//! test time, tokens signed with them, a real HTTP key server on loopback,
//! the real `jwtgate` binary, and a raw HTTP/1.1 client (raw, so tests can
//! send what a browser or an attacker would: pipelining, duplicate headers,
//! bodies that never come).
#![allow(dead_code)]

pub mod echo;
pub mod oidc;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_jwtgate");
pub const ISSUER: &str = "https://clerk.example.com";
pub const AZP: &str = "https://app.example.com";
pub const SECRET: &str = "sk_test_jwtgate_integration";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A unique scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("jwtgate-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An RSA signing key with its kid.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    pub private: PKey<Private>,
}

impl Key {
    pub fn rsa(kid: &str, bits: u32) -> Key {
        Key {
            kid: kid.to_string(),
            private: PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap(),
        }
    }

    /// An EC P-256 key (for ES256).
    pub fn ec_p256(kid: &str) -> Key {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        Key {
            kid: kid.to_string(),
            private: PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap(),
        }
    }

    /// The public JWK, as Clerk publishes it (RSA), or an ES256 EC JWK.
    pub fn jwk(&self) -> Value {
        if let Ok(ec) = self.private.ec_key() {
            let mut ctx = BigNumContext::new().unwrap();
            let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
            ec.public_key()
                .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                .unwrap();
            return json!({
                "use": "sig", "kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(x.to_vec_padded(32).unwrap()),
                "y": URL_SAFE_NO_PAD.encode(y.to_vec_padded(32).unwrap()),
            });
        }
        let rsa = self.private.rsa().unwrap();
        json!({
            "use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        })
    }

    pub fn public_pem(&self) -> String {
        String::from_utf8(self.private.public_key_to_pem().unwrap()).unwrap()
    }

    /// Signs with a Clerk-shaped header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(
            &json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// Signs any header and claims with this key: RSA keys use PKCS#1 v1.5
    /// with the hash of the header's RS* alg (SHA-256 for any other alg);
    /// EC keys sign ES256 as JWS wants it (r || s, 32 bytes each).
    pub fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(self.raw_signature(header, input.as_bytes()))
        )
    }

    fn raw_signature(&self, header: &Value, input: &[u8]) -> Vec<u8> {
        let digest = match header["alg"].as_str() {
            Some("RS384") => MessageDigest::sha384(),
            Some("RS512") => MessageDigest::sha512(),
            _ => MessageDigest::sha256(),
        };
        let mut signer = Signer::new(digest, &self.private).unwrap();
        let der = signer.sign_oneshot_to_vec(input).unwrap();
        if self.private.ec_key().is_err() {
            return der;
        }
        let sig = EcdsaSig::from_der(&der).unwrap();
        let mut raw = sig.r().to_vec_padded(32).unwrap();
        raw.extend(sig.s().to_vec_padded(32).unwrap());
        raw
    }
}

pub fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

pub fn jwks(keys: &[&Key]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// Claims of a fresh Clerk v2 session token for `user`.
pub fn claims(user: &str) -> Value {
    let t = now();
    json!({
        "sub": user, "sid": format!("sess_{user}"), "iss": ISSUER, "azp": AZP,
        "iat": t, "nbf": t - 10, "exp": t + 60, "v": 2, "jti": "j1",
    })
}

/// How the key server misbehaves (besides `down`, a plain HTTP 500).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Mode {
    #[default]
    Normal,
    /// Sends the status line and headers at once, then the body one byte
    /// per interval (a stalled or hostile key server).
    Drip(Duration),
    /// HTTP 429 Too Many Requests, with this `Retry-After` value if any.
    TooMany(Option<String>),
    /// HTTP 503 Service Unavailable, with this `Retry-After` value if any.
    Unavailable(Option<String>),
}

/// A real HTTP/1.1 JWKS server on loopback. It serves `GET /v1/jwks` only
/// with `Authorization: Bearer <SECRET>`, counts every request (and notes
/// when each arrived), and can be switched to failing (HTTP 500) to play an
/// outage, or to another [`Mode`].
pub struct KeyServer {
    pub addr: SocketAddr,
    pub body: Arc<Mutex<String>>,
    pub fetches: Arc<AtomicUsize>,
    pub down: Arc<AtomicBool>,
    /// Serve without the bearer secret (a public JWKS, as other issuers have).
    pub public: Arc<AtomicBool>,
    pub last_headers: Arc<Mutex<HashMap<String, String>>>,
    pub mode: Arc<Mutex<Mode>>,
    /// When each request arrived (its headers fully read).
    pub arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl KeyServer {
    pub fn start(jwks_body: String) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = KeyServer {
            addr: listener.local_addr().unwrap(),
            body: Arc::new(Mutex::new(jwks_body)),
            fetches: Arc::new(AtomicUsize::new(0)),
            down: Arc::new(AtomicBool::new(false)),
            public: Arc::new(AtomicBool::new(false)),
            last_headers: Arc::new(Mutex::new(HashMap::new())),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            arrivals: Arc::new(Mutex::new(Vec::new())),
        };
        let state = server.state();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || serve_jwks(stream, &state));
            }
        });
        server
    }

    fn state(&self) -> ServerState {
        ServerState {
            body: self.body.clone(),
            fetches: self.fetches.clone(),
            down: self.down.clone(),
            public: self.public.clone(),
            last: self.last_headers.clone(),
            mode: self.mode.clone(),
            arrivals: self.arrivals.clone(),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// When each request so far arrived.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/jwks", self.addr)
    }

    pub fn set_keys(&self, keys: &[&Key]) {
        *self.body.lock().unwrap() = jwks(keys);
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct ServerState {
    body: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    public: Arc<AtomicBool>,
    last: Arc<Mutex<HashMap<String, String>>>,
    mode: Arc<Mutex<Mode>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

fn serve_jwks(stream: TcpStream, state: &ServerState) {
    let ServerState {
        body,
        fetches,
        down,
        public,
        last,
        mode,
        arrivals,
    } = state;
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
        }
    }
    arrivals.lock().unwrap().push(Instant::now());
    fetches.fetch_add(1, Ordering::SeqCst);
    let mode = mode.lock().unwrap().clone();
    let authorized = public.load(Ordering::SeqCst)
        || headers.get("authorization").map(String::as_str) == Some(&format!("Bearer {SECRET}"));
    *last.lock().unwrap() = headers;
    let mut extra = String::new();
    let (status, text) = if down.load(Ordering::SeqCst) {
        ("500 Internal Server Error", String::from("{\"errors\":[]}"))
    } else if let Mode::TooMany(retry) | Mode::Unavailable(retry) = &mode {
        if let Some(retry) = retry {
            extra = format!("Retry-After: {retry}\r\n");
        }
        let status = match mode {
            Mode::TooMany(_) => "429 Too Many Requests",
            _ => "503 Service Unavailable",
        };
        (status, String::from("{\"errors\":[]}"))
    } else if !request_line.starts_with("GET /v1/jwks ") {
        ("404 Not Found", String::new())
    } else if !authorized {
        (
            "401 Unauthorized",
            String::from("{\"errors\":[{\"code\":\"clerk_key_invalid\"}]}"),
        )
    } else {
        ("200 OK", body.lock().unwrap().clone())
    };
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        text.len()
    );
    if let Mode::Drip(interval) = mode {
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        for byte in text.as_bytes() {
            if stream.write_all(&[*byte]).is_err() {
                return; // the client gave up
            }
            std::thread::sleep(interval);
        }
        return;
    }
    let _ = stream.write_all(format!("{head}{text}").as_bytes());
}

/// A free loopback port (bound and released; fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real daemon, killed on drop. Its stderr (the log) goes to a file.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub config: PathBuf,
    pub log: PathBuf,
    _dir: TempDir,
}

/// A config for a daemon: the TOML text without `listen` (added by `start`).
pub fn jwks_config(server: &KeyServer, extra_keys: &str) -> String {
    format!(
        "[keys]\njwks_url = \"{}\"\nsecret_key = \"{SECRET}\"\nmin_refetch_secs = 2\nfetch_timeout_ms = 1000\n{extra_keys}\n\
         [verify]\nissuer = \"{ISSUER}\"\nauthorized_parties = [\"{AZP}\"]\n",
        server.url()
    )
}

/// A command for the binary with no JWTGATE_/CLERK_ variables (nor
/// systemd's NOTIFY_SOCKET or STATE_DIRECTORY) inherited.
pub fn jwtgate_command() -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("JWTGATE_")
            || name.starts_with("CLERK_")
            || name == "NOTIFY_SOCKET"
            || name == "STATE_DIRECTORY"
        {
            cmd.env_remove(name);
        }
    }
    cmd.env("RUST_LOG", "debug,may=warn,may_minihttp=off");
    cmd
}

impl Daemon {
    /// Starts `jwtgate --config <file>` and waits until `/healthz` answers.
    pub fn start(config_toml: &str) -> Daemon {
        Daemon::start_with(config_toml, |_| {})
    }

    pub fn start_with(config_toml: &str, customize: impl FnOnce(&mut Command)) -> Daemon {
        let dir = TempDir::new("daemon");
        let port = free_port();
        let config = dir.path("jwtgate.toml");
        std::fs::write(
            &config,
            format!("listen = \"127.0.0.1:{port}\"\n{config_toml}"),
        )
        .unwrap();
        let log = dir.path("stderr.log");
        let mut cmd = jwtgate_command();
        cmd.arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        customize(&mut cmd);
        let child = cmd.spawn().expect("spawn jwtgate");
        let daemon = Daemon {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            config,
            log,
            _dir: dir,
        };
        daemon.wait_until(
            |d| d.try_get("/healthz").map(|r| r.status) == Some(200),
            "healthz",
        );
        daemon
    }

    /// Polls `cond` for up to 10 s; panics with the log if it never holds.
    pub fn wait_until(&self, mut cond: impl FnMut(&Daemon) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}; log:\n{}", self.log_text());
    }

    pub fn wait_ready(&self) {
        self.wait_until(|d| d.get("/readyz").status == 200, "readyz 200");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn try_get(&self, path: &str) -> Option<Response> {
        request(
            self.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"),
        )
        .ok()
    }

    pub fn get(&self, path: &str) -> Response {
        self.try_get(path).expect("GET")
    }

    /// `GET /auth` with extra header lines (each without CRLF).
    pub fn auth(&self, headers: &[&str]) -> Response {
        let mut raw = String::from("GET /auth HTTP/1.1\r\nHost: t\r\n");
        for h in headers {
            raw.push_str(h);
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
        request(self.addr, &raw).expect("GET /auth")
    }

    pub fn bearer(&self, token: &str) -> Response {
        self.auth(&[&format!("Authorization: Bearer {token}")])
    }

    pub fn metric(&self, line_prefix: &str) -> f64 {
        let text = self.get("/metrics").body;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(line_prefix)
                    .map(|v| v.trim().parse::<f64>().unwrap())
            })
            .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{text}"))
    }

    pub fn signal(&self, name: &str) {
        signal_child(&self.child, name);
    }

    /// Waits for exit up to `limit`; returns the exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        wait_child(&mut self.child, limit)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The `error_description` of a 401's challenge.
    pub fn reason(&self) -> Option<&str> {
        let challenge = self.header("www-authenticate")?;
        let start = challenge.find("error_description=\"")? + "error_description=\"".len();
        Some(&challenge[start..start + challenge[start..].find('"')?])
    }
}

/// Sends raw text on a new connection and reads one response.
pub fn request(addr: SocketAddr, raw: &str) -> std::io::Result<Response> {
    request_bytes(addr, raw.as_bytes())
}

/// Sends raw bytes (not necessarily UTF-8) on a new connection and reads
/// one response.
pub fn request_bytes(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(raw)?;
    read_response(&mut BufReader::new(stream))
}

/// Reads one response (status line, headers, Content-Length body).
pub fn read_response(reader: &mut impl BufRead) -> std::io::Result<Response> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed",
        ));
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap_or(0));
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Path of a file in the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Sends signal `name` (`TERM`, `HUP`, ...) to a child process.
pub fn signal_child(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

/// Waits up to `limit` for a child to exit; its exit code, if it did.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// The nginx binary: `$NGINX`, else Debian's or a local build's path, else
/// `nginx` from `PATH`.
pub fn nginx_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NGINX") {
        return PathBuf::from(path);
    }
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("nginx"))
}

/// Replaces `from` with `to`, insisting that `from` occurs exactly once, so
/// an edit to a shipped file can't silently make a test run something else
/// than what it claims.
pub fn replace_once(text: &str, from: &str, to: &str, file: &str) -> String {
    let n = text.matches(from).count();
    assert_eq!(n, 1, "expected {from:?} exactly once in {file}, found {n}");
    text.replacen(from, to, 1)
}

/// Replaces the one nginx directive `name ...;` on a line of its own
/// (indentation kept; a trailing comment such as the example's `# CHANGE`
/// goes with it), insisting there is exactly one.
pub fn replace_directive(text: &str, name: &str, to: &str, file: &str) -> String {
    let is_it = |l: &str| {
        let t = l.trim_start();
        let code = t.split_once(" #").map_or(t, |(code, _)| code);
        t.starts_with(&format!("{name} ")) && code.trim_end().ends_with(';')
    };
    let n = text.lines().filter(|l| is_it(l)).count();
    assert_eq!(n, 1, "expected one `{name}` directive in {file}, found {n}");
    text.lines()
        .map(|l| {
            if is_it(l) {
                format!("{}{to}", &l[..l.len() - l.trim_start().len()])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
