//! Browser sign-in end to end (issue 8, test 2): a real headless Chromium,
//! the real nginx running the repo's `nginx/example-site.conf`, the real
//! jwtgate binary, an app that echoes the identity it receives, and a fake
//! Clerk (Frontend API, Account Portal, Backend API; `common/fake_clerk.rs`).
//!
//! The browser sees production-shaped names, all on port 443 and mapped to
//! loopback ports by `--host-resolver-rules` (`common/browser.rs`):
//!   https://app.test/           nginx (TLS, a certificate made at test time) -> app
//!   https://clerk.app.test/     the fake FAPI (publishable key `pk_live_` +
//!                               base64("clerk.app.test$"))
//!   https://accounts.app.test/  the fake Account Portal (`/sign-in`)
//! and jwtgate talks to the fake BAPI at `http://127.0.0.1:<port>`
//! (`keys.api_url`: JWKS and the nonce exchange).
//!
//! `harness_*` tests check the harness itself (fake Clerk + browser, no
//! jwtgate). The six scenarios of issue 8 run the whole flow through
//! jwtgate and the shipped nginx snippets.
//!
//! What the scenarios assume (the CONTRACT's interface):
//! - jwtgate config: see [`jwtgate_config`] (`keys.publishable_key`,
//!   `keys.secret_key`, `keys.api_url`, `verify.authorized_parties`,
//!   `verify.leeway_secs = 0`, `browser.sign_in_url`, `browser.handshake`;
//!   no `proxy_url`: FAPI is `https://clerk.app.test`, from the key).
//! - nginx (the shipped snippets): forwards `Accept`, `Sec-Fetch-Dest` (and
//!   `Referer`) plus the original scheme and host to `/auth`; turns a 401
//!   carrying `X-Jwtgate-Location` into a 307 there (else keeps the 401);
//!   emits every `X-Jwtgate-Set-Cookie-N` as its own `Set-Cookie`, on the
//!   redirect and on the proxied 200 alike; has room for a Location that
//!   carries a JWT. Test-time rewrites: listen address + `ssl` + this
//!   test's certificate, upstream addresses, pid/log/temp paths.
//! - Outcomes, not mechanics: a return leg may end with a 307 to the clean
//!   URL or serve the page; a signed-out navigation ends on
//!   `<sign_in_url>?redirect_url=<the page, percent-encoded>`; the loop
//!   guard allows exactly 3 bounces.
//!
//! (Checked while writing them against a throwaway stand-in of jwtgate
//! and a draft of those snippet changes: all six pass, and each fails when
//! the stand-in loses its loop guard, skips signatures, drops the payload's
//! cookies on the way to sign-in, or redirects a `fetch()`.)
//!
//! Browser tests take a process-wide lock: one Chromium at a time, so a
//! 5-second session token is not outlived by a slow machine. The six
//! scenarios take about 80 s together, the harness self-test about 10 s.
//! Needs: nginx with auth_request, chromium, chromium-driver (scripts/test
//! installs them). They FAIL, never skip, when a part is missing.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/fake_clerk.rs"]
mod fake_clerk;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use browser::Browser;
use common::{
    free_port, nginx_bin, now, replace_directive, replace_once, repo_path, Daemon, TempDir,
};
use fake_clerk::{
    serve, FakeClerk, Forge, Req, Resp, Settings, Tls, Transport, APP_HOST, AP_HOST, FAPI_HOST,
    SECRET_KEY, SIGN_IN_URL, TRANSPORTS,
};
use serde_json::{json, Value};

const APP: &str = "https://app.test";

/// One browser test at a time (a panicking test must not poison the rest).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// The app: echoes the identity nginx hands it
// ---------------------------------------------------------------------------

/// The protected app. Pages are HTML naming the user it was told about
/// (`X-User-Id`); `/api/...` answers JSON. It records every request.
struct App {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Req>>>,
}

impl App {
    /// Plain HTTP (behind nginx), or HTTPS when `tls` is given (the harness
    /// tests put it straight at `https://app.test`).
    fn start(tls: Option<&Tls>) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Req>>> = Arc::default();
        let log = seen.clone();
        serve(
            listener,
            tls.map(|t| t.acceptor.clone()),
            Arc::new(move |req: &Req| {
                // Chromium's own favicon probe is not the page's traffic.
                if req.path == "/favicon.ico" {
                    return Resp::new(404, "text/plain", "");
                }
                log.lock().unwrap().push(req.clone());
                let user = req.header("x-user-id").unwrap_or("");
                if req.path.starts_with("/api/") {
                    return Resp::json(200, &json!({"user": user, "path": req.target}));
                }
                let shown = if user.is_empty() { "nobody" } else { user };
                Resp::html(format!(
                    "<!doctype html><title>app</title><link rel=icon href=\"data:,\"><h1>app</h1>\
                     <p>user: <span id=user>{shown}</span></p><p>path: {}</p>",
                    req.target.replace('<', "&lt;")
                ))
            }),
        );
        App { addr, seen }
    }

    fn requests(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }

    /// The users the app was told about, request by request (`""` = none).
    fn users(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.header("x-user-id").unwrap_or("").to_string())
            .collect()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

// ---------------------------------------------------------------------------
// nginx with the shipped example-site.conf over TLS
// ---------------------------------------------------------------------------

/// The real nginx running `nginx/example-site.conf` and its snippets from
/// a temp dir. Test-time rewrites, each insisting on exactly one match:
/// the listen address (plus `ssl` and this test's certificate: the browser
/// needs https for Clerk's `Secure` cookies), the app's and jwtgate's
/// upstream addresses, pid/log/temp paths.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    fn start(jwtgate: SocketAddr, app: SocketAddr, tls: &Tls) -> Nginx {
        let bin = nginx_bin();
        let dir = TempDir::new("nginx-browser");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let d = dir.0.display().to_string();
        let f = "nginx/example-site.conf";
        let mut site = std::fs::read_to_string(repo_path(f)).unwrap();
        site = replace_directive(&site, "listen", &format!("listen {addr} ssl;"), f);
        let cert = tls.cert_pem.display().to_string();
        let key = tls.key_pem.display().to_string();
        if site.contains("ssl_certificate ") {
            site = replace_directive(
                &site,
                "ssl_certificate",
                &format!("ssl_certificate {cert};"),
                f,
            );
            site = replace_directive(
                &site,
                "ssl_certificate_key",
                &format!("ssl_certificate_key {key};"),
                f,
            );
        } else {
            let listen = format!("listen {addr} ssl;");
            site = replace_once(
                &site,
                &listen,
                &format!(
                    "{listen}\n        ssl_certificate {cert};\n        ssl_certificate_key {key};"
                ),
                f,
            );
        }
        site = replace_once(
            &site,
            "server 127.0.0.1:8080;",
            &format!("server {app};"),
            f,
        );
        site = replace_directive(&site, "pid", &format!("pid {d}/nginx.pid;"), f);
        site = replace_directive(
            &site,
            "error_log",
            &format!("error_log {d}/error.log warn;"),
            f,
        );
        site = replace_directive(
            &site,
            "access_log",
            &format!("access_log {d}/access.log;"),
            f,
        );
        let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|t| format!("\n    {t}_temp_path {d}/temp/{t};"))
            .collect();
        site = replace_once(&site, "http {", &format!("http {{{temp_paths}"), f);
        std::fs::write(dir.path("nginx.conf"), &site).unwrap();
        std::fs::create_dir_all(dir.path("temp")).unwrap();
        std::fs::create_dir_all(dir.path("jwtgate")).unwrap();

        // The snippets, with jwtgate's address (once across them all).
        let mut snippets: Vec<(String, String)> = std::fs::read_dir(repo_path("nginx"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".conf") && n != "example-site.conf")
            .map(|n| {
                let text = std::fs::read_to_string(repo_path(&format!("nginx/{n}"))).unwrap();
                (n, text)
            })
            .collect();
        let upstream = "server 127.0.0.1:7070;";
        let total: usize = snippets
            .iter()
            .map(|(_, t)| t.matches(upstream).count())
            .sum();
        assert_eq!(
            total, 1,
            "jwtgate's address {upstream:?} must appear once in nginx/"
        );
        for (name, text) in &mut snippets {
            *text = text.replace(upstream, &format!("server {jwtgate};"));
            // A sign-in URL still kept in nginx (before jwtgate computed the
            // Location) points at the fake Account Portal.
            *text = text.replace("https://accounts.example.com/sign-in", SIGN_IN_URL);
            text.push('\n');
            std::fs::write(dir.path(&format!("jwtgate/{name}")), &*text).unwrap();
        }
        let cache_dir = format!("{d}/cache");
        if let Some((name, text)) = snippets
            .iter()
            .find(|(_, t)| t.contains("/run/nginx-jwtgate-cache"))
        {
            std::fs::write(
                dir.path(&format!("jwtgate/{name}")),
                text.replace("/run/nginx-jwtgate-cache", &cache_dir),
            )
            .unwrap();
        }

        let conf = dir.path("nginx.conf");
        let error_log = dir.path("error.log");
        let run = |extra: &[&str]| {
            let mut cmd = Command::new(&bin);
            cmd.arg("-p")
                .arg(&dir.0)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(&error_log)
                .args(extra);
            cmd
        };
        let test = run(&["-t"]).output().unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (apt-get install -y nginx)",
                bin.display()
            )
        });
        assert!(
            test.status.success(),
            "nginx -t rejected the config:\n{}\n{site}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = run(&["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut nginx = Nginx { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited at startup ({status}):\n{}", nginx.logs());
            }
            assert!(
                Instant::now() < deadline,
                "nginx never listened:\n{}",
                nginx.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path(n)).unwrap_or_default();
        format!(
            "--- nginx error.log ---\n{}--- nginx access.log ---\n{}",
            read("error.log"),
            read("access.log")
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The whole stack
// ---------------------------------------------------------------------------

/// jwtgate's configuration for the browser tests (TOML, `listen` is added
/// by `Daemon::start`): the fake's production publishable key (so the
/// Frontend API is `https://clerk.app.test`, and tokens carry that `iss`),
/// its Backend API on loopback for JWKS and nonces, the fake Account
/// Portal's sign-in page, and no clock leeway so a 5 s token is expired 5 s
/// after it was minted.
fn jwtgate_config(fake: &FakeClerk) -> String {
    format!(
        "[keys]\n\
         publishable_key = \"{pk}\"\n\
         secret_key = \"{SECRET_KEY}\"\n\
         api_url = \"{api}\"\n\
         min_refetch_secs = 2\n\
         fetch_timeout_ms = 2000\n\
         [verify]\n\
         authorized_parties = [\"{APP}\"]\n\
         leeway_secs = 0\n\
         [browser]\n\
         sign_in_url = \"{SIGN_IN_URL}\"\n\
         handshake = true\n",
        pk = fake.publishable_key(),
        api = fake.api_url(),
    )
}

struct Stack {
    // Dropped in this order: the browser first, the fake last.
    browser: Browser,
    nginx: Nginx,
    jwtgate: Daemon,
    app: App,
    fake: FakeClerk,
    _lock: MutexGuard<'static, ()>,
}

impl Stack {
    fn start(settings: Settings) -> Stack {
        let lock = one_at_a_time();
        let fake = FakeClerk::start_with(Arc::new(Tls::new()), settings);
        let jwtgate = Daemon::start(&jwtgate_config(&fake));
        jwtgate.wait_ready();
        let app = App::start(None);
        let nginx = Nginx::start(jwtgate.addr, app.addr, &fake.tls);
        let browser = Browser::start(&[
            (APP_HOST, nginx.addr),
            (FAPI_HOST, fake.fapi_addr),
            (AP_HOST, fake.fapi_addr),
        ]);
        Stack {
            browser,
            nginx,
            jwtgate,
            app,
            fake,
            _lock: lock,
        }
    }

    /// Everything a failed assertion should show.
    fn debug(&self) -> String {
        format!(
            "browser at {}\npage text: {:?}\ncookies: {:#?}\n--- fake Clerk ---\n{}\n--- app saw ---\n{:#?}\n{}\n--- jwtgate log (tail) ---\n{}",
            self.browser.url(),
            self.browser.text(),
            self.browser.all_cookies(),
            self.fake.log().join("\n"),
            self.app.requests().iter().map(|r| format!("{} {} user={:?}", r.method, r.target, r.header("x-user-id"))).collect::<Vec<_>>(),
            self.nginx.logs(),
            tail(&self.jwtgate.log_text(), 6000),
        )
    }

    fn goto(&self, url: &str) {
        if let Err(e) = self.browser.goto(url) {
            panic!("navigation to {url} failed: {e}\n{}", self.debug());
        }
    }

    /// The user the app names on the current page (`nobody` if none).
    fn page_user(&self) -> String {
        self.browser
            .run(
                "const e = document.getElementById('user'); return e ? e.textContent : null;",
                json!([]),
            )
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("<not the app's page: {:?}>", self.browser.text()))
    }

    /// Signs `user` in on the fake Account Portal (as a person would: the
    /// protected page sends the browser to sign-in, the form is submitted)
    /// and asserts that the browser lands on `path` with the app seeing
    /// `user`.
    fn sign_in_via_portal(&self, user: &str, path: &str) {
        let target = format!("{APP}{path}");
        self.goto(&target);
        let url = self.browser.url();
        let expected = format!(
            "{SIGN_IN_URL}?redirect_url={}",
            fake_clerk::form_encode(&target)
        );
        assert!(
            url == expected
                || url == format!("{SIGN_IN_URL}?redirect_url={}", encode_component(&target)),
            "a signed-out navigation must land on the sign-in page with redirect_url = the page: \
             {url} (expected {expected})\n{}",
            self.debug()
        );
        self.browser
            .run(
                "document.querySelector('input[name=user]').value = arguments[0];",
                json!([user]),
            )
            .unwrap();
        if let Err(e) = self.browser.click_and_wait("submit") {
            panic!("{e}\n{}", self.debug());
        }
        self.assert_signed_in_at(&target, user);
    }

    /// Signs `user` in straight at FAPI (the AP's job, one navigation) and
    /// lets the browser go on to `path`.
    fn sign_in_direct(&self, user: &str, path: &str) {
        let target = format!("{APP}{path}");
        self.goto(&format!(
            "https://{FAPI_HOST}/test/sign-in?user={user}&redirect_url={}",
            fake_clerk::form_encode(&target)
        ));
    }

    fn assert_signed_in_at(&self, url: &str, user: &str) {
        assert_eq!(
            (self.browser.url().as_str(), self.page_user().as_str()),
            (url, user),
            "expected the app's page for {user}\n{}",
            self.debug()
        );
        assert!(
            !self.browser.url().contains("__clerk"),
            "handshake parameters left in the URL\n{}",
            self.debug()
        );
    }

    fn assert_at_sign_in(&self) {
        let url = self.browser.url();
        assert!(
            url.starts_with(&format!("{SIGN_IN_URL}?redirect_url=")),
            "expected the sign-in page, at {url}\n{}",
            self.debug()
        );
    }

    /// Waits until the `__session` cookie the browser holds for app.test
    /// has expired (its `exp` is in the past, by 1 s).
    fn wait_for_session_expiry(&self) {
        let token = self
            .browser
            .cookie(APP_HOST, "__session")
            .unwrap_or_else(|| panic!("no __session cookie on {APP_HOST}\n{}", self.debug()));
        let exp = claims_of(&token)["exp"].as_i64().expect("exp");
        assert!(
            exp - now() <= 10,
            "a session token longer than the test's 5 s"
        );
        while now() <= exp {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// `encodeURIComponent`, in case jwtgate encodes `redirect_url` that way
/// rather than as a form (`URLSearchParams`); both decode the same.
fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The claims of a JWT (unverified; for reading `exp`/`sub` in asserts).
fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap_or("");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap_or_default())
        .unwrap_or(Value::Null)
}

/// Verifies an RS256 JWT with `key`'s public half.
fn signed_by(jwt: &str, key: &common::Key) -> bool {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return false;
    }
    let Ok(sig) = URL_SAFE_NO_PAD.decode(parts[2]) else {
        return false;
    };
    let public = openssl::pkey::PKey::public_key_from_pem(key.public_pem().as_bytes()).unwrap();
    let mut v =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &public).unwrap();
    v.verify_oneshot(&sig, format!("{}.{}", parts[0], parts[1]).as_bytes())
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// The harness on its own (no jwtgate): runs now
// ---------------------------------------------------------------------------

/// The handshake URL as the SDK builds it for a page (section 3 of the spec).
fn handshake_url(page: &str, reason: &str, suffixed: bool) -> String {
    format!(
        "https://{FAPI_HOST}/v1/client/handshake?redirect_url={}&__clerk_api_version=2026-05-12\
         &suffixed_cookies={suffixed}&__clerk_hs_reason={reason}&format=nonce",
        fake_clerk::form_encode(page)
    )
}

/// Exchanges a nonce at the fake BAPI as the SDK does.
fn exchange(fake: &FakeClerk, nonce: &str, secret: &str) -> (u16, String, Value) {
    let rsp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!(
            "{}/v1/clients/handshake_payload?nonce={}",
            fake.api_url(),
            fake_clerk::form_encode(nonce)
        ))
        .header("Authorization", format!("Bearer {secret}"))
        .header("Clerk-API-Version", "2026-05-12")
        .send()
        .unwrap();
    let status = rsp.status().as_u16();
    let ct = rsp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        ct,
        serde_json::from_str(&rsp.text().unwrap()).unwrap_or(Value::Null),
    )
}

/// The session JWT among handshake directives (the last `__session*`).
fn session_in(directives: &[Value]) -> String {
    directives
        .iter()
        .filter_map(|d| d.as_str())
        .rfind(|d| d.starts_with("__session"))
        .and_then(|d| {
            d.split(';')
                .next()?
                .split_once('=')
                .map(|(_, v)| v.to_string())
        })
        .unwrap_or_default()
}

#[test]
fn harness_signs_in_on_the_fake_account_portal_and_the_handshake_comes_back_with_a_payload() {
    let _lock = one_at_a_time();
    let started = Instant::now();
    let fake = FakeClerk::start();
    let app = App::start(Some(&fake.tls));
    let browser = Browser::start(&[
        (APP_HOST, app.addr),
        (FAPI_HOST, fake.fapi_addr),
        (AP_HOST, fake.fapi_addr),
    ]);
    let debug = |b: &Browser| {
        format!(
            "at {}\ntext {:?}\ncookies {:#?}\nfake:\n{}\nchromedriver:\n{}",
            b.url(),
            b.text(),
            b.all_cookies(),
            fake.log().join("\n"),
            b.driver_log()
        )
    };
    let welcome = format!("{APP}/welcome?tab=1&x=%7E");

    // The AP's sign-in page, as jwtgate would send a signed-out browser there.
    browser
        .goto(&format!(
            "{SIGN_IN_URL}?redirect_url={}",
            fake_clerk::form_encode(&welcome)
        ))
        .unwrap_or_else(|e| panic!("{e}\n{}", debug(&browser)));
    assert_eq!(browser.title(), "Sign in", "{}", debug(&browser));
    browser
        .click_and_wait("submit")
        .unwrap_or_else(|e| panic!("{e}\n{}", debug(&browser)));
    // The form posted to FAPI, which 303'd back to the page.
    assert_eq!(browser.url(), welcome, "{}", debug(&browser));
    assert_eq!(fake.count("/test/sign-in"), 1);
    let last = app
        .requests()
        .last()
        .cloned()
        .expect("the app saw the page");
    assert_eq!(last.target, "/welcome?tab=1&x=%7E");
    assert_eq!(
        last.header("host"),
        Some(APP_HOST),
        "real host names, default port"
    );
    assert_eq!(
        last.header("referer"),
        Some("https://accounts.app.test/"),
        "the navigation started on the AP (the SDK trusts that Referer)"
    );

    // __client_uat (and its suffixed twin) on the eTLD+1: app.test gets it;
    // __client stays host-only and HttpOnly on the FAPI host.
    let uat = browser
        .cookie(APP_HOST, "__client_uat")
        .unwrap_or_else(|| panic!("no __client_uat for app.test\n{}", debug(&browser)));
    let uat: i64 = uat.parse().unwrap();
    assert!((now() - uat).abs() <= 5, "__client_uat={uat}");
    let sfx = fake.suffix();
    assert_eq!(
        browser.cookie(APP_HOST, &format!("__client_uat_{sfx}")),
        Some(uat.to_string())
    );
    let cookie_header = last.header("cookie").unwrap_or("");
    assert!(
        cookie_header.contains(&format!("__client_uat={uat}")),
        "{cookie_header}"
    );
    assert!(
        !cookie_header.contains("__client="),
        "__client must not reach app.test: {cookie_header}"
    );
    let client = browser
        .all_cookies()
        .into_iter()
        .find(|c| c.name == "__client")
        .expect("__client");
    assert_eq!(client.domain, FAPI_HOST, "host-only on FAPI");
    assert!(client.http_only && client.secure, "{client:?}");
    assert_eq!(browser.cookie(AP_HOST, "__client"), None);

    // The handshake, as jwtgate would start it, for each transport: FAPI
    // identifies the browser by __client and sends it back with a payload
    // that signs user_1 in.
    for transport in TRANSPORTS {
        fake.set(|s| s.transport = transport);
        let before = app.count();
        let page = format!("{APP}/hs/{transport:?}?a=1");
        browser
            .goto(&handshake_url(
                &page,
                "client-uat-but-no-session-token",
                true,
            ))
            .unwrap_or_else(|e| panic!("{e}\n{}", debug(&browser)));
        let req = app.requests().last().cloned().unwrap();
        assert_eq!(
            app.count(),
            before + 1,
            "{transport:?}\n{}",
            debug(&browser)
        );
        let (in_query, name) = match transport {
            Transport::CookieToken => (false, "__clerk_handshake"),
            Transport::QueryToken => (true, "__clerk_handshake"),
            Transport::CookieNonce => (false, "__clerk_handshake_nonce"),
            Transport::QueryNonce => (true, "__clerk_handshake_nonce"),
        };
        let value = if in_query {
            assert!(
                req.target
                    .starts_with(&format!("/hs/{transport:?}?a=1&{name}=")),
                "{}",
                req.target
            );
            req.param(name).map(str::to_string)
        } else {
            assert_eq!(req.target, format!("/hs/{transport:?}?a=1"));
            // The handshake cookie is on the eTLD+1, so app.test has it.
            let c = browser.all_cookies().into_iter().find(|c| c.name == name);
            assert_eq!(
                c.as_ref().map(|c| c.domain.as_str()),
                Some(".app.test"),
                "{transport:?}"
            );
            req.cookie(name)
        };
        let value =
            value.unwrap_or_else(|| panic!("no {name} for {transport:?}\n{}", debug(&browser)));
        let directives: Vec<Value> = if name == "__clerk_handshake" {
            assert!(
                signed_by(&value, fake.key()),
                "the handshake JWT is signed by the instance key"
            );
            claims_of(&value)["handshake"].as_array().cloned().unwrap()
        } else {
            let (status, ct, body) = exchange(&fake, &value, SECRET_KEY);
            assert_eq!((status, ct.as_str()), (200, "application/json"), "{body}");
            // Single use, JSON errors.
            let (status, ct, again) = exchange(&fake, &value, SECRET_KEY);
            assert_eq!((status, ct.as_str()), (404, "application/json"));
            assert_eq!(again["errors"][0]["code"], "resource_not_found");
            body["directives"].as_array().cloned().unwrap()
        };
        let names: Vec<&str> = directives
            .iter()
            .map(|d| d.as_str().unwrap().split('=').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "__clerk_handshake",
                "__clerk_handshake_nonce",
                "__client_uat",
                &format!("__client_uat_{sfx}"),
                "__session",
                &format!("__session_{sfx}"),
            ],
            "suffixed twins, session last"
        );
        let session = session_in(&directives);
        assert!(signed_by(&session, fake.key()));
        let c = claims_of(&session);
        assert_eq!(
            (c["sub"].as_str(), c["azp"].as_str()),
            (Some("user_1"), Some(APP))
        );
        assert_eq!(c["iss"], format!("https://{FAPI_HOST}"));
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 5);
    }
    assert_eq!(fake.count("/v1/client/handshake"), 4);

    // The switches the e2e tests rely on.
    fake.set(|s| s.broken = Some(fake_clerk::Broken::NoPayload));
    let before = app.count();
    browser
        .goto(&handshake_url(&format!("{APP}/np"), "x", false))
        .unwrap();
    let req = app.requests().last().cloned().unwrap();
    assert_eq!((app.count(), req.target.as_str()), (before + 1, "/np"));
    assert!(
        req.param("__clerk_handshake").is_none() && req.param("__clerk_handshake_nonce").is_none()
    );
    fake.set(|s| s.broken = Some(fake_clerk::Broken::Error500));
    browser
        .goto(&handshake_url(&format!("{APP}/e"), "x", false))
        .unwrap();
    assert!(
        browser.text().contains("FAPI is broken"),
        "{}",
        debug(&browser)
    );
    fake.set(|s| {
        s.broken = None;
        s.forge = Some(Forge::WrongKey);
        s.transport = Transport::QueryToken;
    });
    browser
        .goto(&handshake_url(&format!("{APP}/f"), "x", false))
        .unwrap();
    let forged = app
        .requests()
        .last()
        .unwrap()
        .param("__clerk_handshake")
        .unwrap()
        .to_string();
    assert!(
        !signed_by(&forged, fake.key()),
        "a forged payload is not signed by the instance"
    );
    // An open redirect is refused.
    fake.set(|s| s.forge = None);
    browser
        .goto(&handshake_url("https://evil.test/", "x", false))
        .unwrap();
    assert!(browser.text().contains("redirect_url not allowed"));

    // Sign-out: __client_uat=0 on the eTLD+1; a handshake now signs out.
    browser
        .goto(&format!(
            "https://{FAPI_HOST}/test/sign-out?redirect_url={}",
            fake_clerk::form_encode(&format!("{APP}/bye"))
        ))
        .unwrap();
    assert_eq!(browser.url(), format!("{APP}/bye"));
    assert_eq!(
        browser.cookie(APP_HOST, "__client_uat").as_deref(),
        Some("0")
    );
    fake.set(|s| s.transport = Transport::QueryToken);
    browser
        .goto(&handshake_url(&format!("{APP}/out"), "x", false))
        .unwrap();
    let token = app
        .requests()
        .last()
        .unwrap()
        .param("__clerk_handshake")
        .unwrap()
        .to_string();
    let d: Vec<String> = claims_of(&token)["handshake"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(d.iter().any(|d| d.starts_with("__client_uat=0;")), "{d:?}");
    assert!(d.last().unwrap().starts_with("__session=;"), "{d:?}");

    // A fresh start for the next case of a test.
    assert!(!browser.all_cookies().is_empty());
    browser.clear_cookies();
    assert!(browser.all_cookies().is_empty(), "{}", debug(&browser));

    let took = started.elapsed();
    println!("harness self-test took {took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn harness_fake_backend_api_checks_the_secret_and_answers_json() {
    let fake = FakeClerk::start();
    fake.add_nonce("n1", vec!["__session=x; Path=/".into()], 2);
    let (status, _, body) = exchange(&fake, "n1", "sk_live_wrong");
    assert_eq!(
        (status, body["errors"][0]["code"].as_str()),
        (401, Some("authentication_invalid"))
    );
    for _ in 0..2 {
        let (status, ct, body) = exchange(&fake, "n1", SECRET_KEY);
        assert_eq!((status, ct.as_str()), (200, "application/json"));
        assert_eq!(body, json!({"directives": ["__session=x; Path=/"]}));
    }
    assert_eq!(
        exchange(&fake, "n1", SECRET_KEY).0,
        404,
        "two uses, then gone"
    );
    fake.add_nonce("n2", vec![], 1);
    fake.set(|s| s.bapi_charset = true);
    let (_, ct, _) = exchange(&fake, "n2", SECRET_KEY);
    assert_eq!(ct, "application/json; charset=utf-8");
    let jwks = reqwest::blocking::Client::new()
        .get(format!("{}/v1/jwks", fake.api_url()))
        .header("Authorization", format!("Bearer {SECRET_KEY}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "ins_test");
    assert_eq!(fake.count("/v1/clients/handshake_payload"), 5);
    assert_eq!(
        fake_clerk::publishable_key(true, "clerk.example.com"),
        "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k",
        "the spec's example key"
    );
    assert_eq!(
        fake_clerk::cookie_suffix("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"),
        "naoXFJnI"
    );
}

// ---------------------------------------------------------------------------
// Issue 8, test 2: the six scenarios (need the handshake in jwtgate)
// ---------------------------------------------------------------------------

/// (1) Signing in on the Account Portal lands on the protected page, and
/// the app sees the user; for each of FAPI's four payload transports.
#[test]
fn sign_in_on_the_account_portal_lands_on_the_page_with_the_user() {
    let s = Stack::start(Settings::default());
    let started = Instant::now();
    for (i, transport) in TRANSPORTS.into_iter().enumerate() {
        s.browser.clear_cookies();
        s.fake.set(|f| f.transport = transport);
        let user = format!("user_{i}");
        let (handshakes, exchanges) = (
            s.fake.count("/v1/client/handshake"),
            s.fake.count("/v1/clients/handshake_payload"),
        );
        let seen = s.app.count();
        s.sign_in_via_portal(&user, "/dashboard?tab=a%26b&x=1");
        // One bounce through FAPI; a nonce is exchanged exactly once.
        assert_eq!(
            s.fake.count("/v1/client/handshake") - handshakes,
            1,
            "{transport:?}\n{}",
            s.debug()
        );
        let nonce = matches!(transport, Transport::CookieNonce | Transport::QueryNonce);
        assert_eq!(
            s.fake.count("/v1/clients/handshake_payload") - exchanges,
            nonce as usize,
            "{transport:?}"
        );
        // The app only ever saw the signed-in request.
        assert_eq!(
            s.app.users()[seen..],
            [user.as_str()],
            "{transport:?}\n{}",
            s.debug()
        );
        let echo = s.app.requests().last().cloned().unwrap();
        assert_eq!(
            echo.target, "/dashboard?tab=a%26b&x=1",
            "the original URL, byte for byte"
        );
        // The payload's cookies are the browser's now: __session host-only
        // on app.test, no handshake cookie left behind.
        let session = s
            .browser
            .all_cookies()
            .into_iter()
            .find(|c| c.name == "__session" && c.domain == APP_HOST)
            .unwrap_or_else(|| panic!("no host-only __session on app.test\n{}", s.debug()));
        assert_eq!(claims_of(&session.value)["sub"], user.as_str());
        for gone in ["__clerk_handshake", "__clerk_handshake_nonce"] {
            assert_eq!(
                s.browser.cookie(APP_HOST, gone),
                None,
                "{gone} left behind ({transport:?})"
            );
        }
        // A reload is served with no further bounce.
        s.goto(&format!("{APP}/dashboard?tab=a%26b&x=1"));
        s.assert_signed_in_at(&format!("{APP}/dashboard?tab=a%26b&x=1"), &user);
        assert_eq!(s.fake.count("/v1/client/handshake") - handshakes, 1);
    }
    println!("4 sign-ins took {:?}", started.elapsed());
}

/// (2) After the 5 s session token expires, a navigation bounces through
/// FAPI and comes back signed in, without ever showing the sign-in page.
#[test]
fn after_expiry_a_navigation_stays_signed_in_without_visiting_sign_in() {
    let s = Stack::start(Settings::default());
    s.sign_in_direct("user_2", "/start");
    s.assert_signed_in_at(&format!("{APP}/start"), "user_2");
    let old = s.browser.cookie(APP_HOST, "__session").unwrap();
    s.wait_for_session_expiry();
    let (handshakes, portal) = (
        s.fake.count("/v1/client/handshake"),
        s.fake.count("/sign-in") + s.fake.count("/test/sign-in"),
    );
    for (i, page) in ["/next", "/later?q=1"].iter().enumerate() {
        if i > 0 {
            // The fresh token expires too; the next navigation renews it again.
            s.wait_for_session_expiry();
        }
        s.goto(&format!("{APP}{page}"));
        s.assert_signed_in_at(&format!("{APP}{page}"), "user_2");
    }
    assert_eq!(
        s.fake.count("/v1/client/handshake") - handshakes,
        2,
        "one bounce per expired navigation\n{}",
        s.debug()
    );
    assert_eq!(
        s.fake.count("/sign-in") + s.fake.count("/test/sign-in"),
        portal,
        "sign-in was visited\n{}",
        s.debug()
    );
    let new = s.browser.cookie(APP_HOST, "__session").unwrap();
    assert_ne!(old, new, "a fresh session token");
    assert!(
        s.app.users().iter().all(|u| u == "user_2"),
        "the app saw a request without the user: {:?}",
        s.app.users()
    );
}

/// (3) A page's fetch() after the token expired gets a plain 401: no
/// redirect (a fetch cannot follow a bounce through FAPI), no handshake.
#[test]
fn a_fetch_after_expiry_gets_401_and_no_redirect() {
    let s = Stack::start(Settings::default());
    s.sign_in_direct("user_3", "/page");
    s.assert_signed_in_at(&format!("{APP}/page"), "user_3");
    // While the token is valid, the page's API calls carry the user.
    let ok = s.browser.fetch("/api/data", true).unwrap();
    assert_eq!((ok.status, ok.redirected), (200, false), "{ok:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&ok.body).unwrap()["user"],
        "user_3"
    );
    s.wait_for_session_expiry();
    let handshakes = s.fake.count("/v1/client/handshake");
    let seen = s.app.count();
    for follow in [true, false] {
        let r = s
            .browser
            .fetch("/api/data", follow)
            .unwrap_or_else(|e| panic!("{e}\n{}", s.debug()));
        assert_eq!(
            (r.status, r.redirected, r.kind.as_str()),
            (401, false, "basic"),
            "{r:?}\n{}",
            s.debug()
        );
    }
    assert_eq!(
        s.fake.count("/v1/client/handshake"),
        handshakes,
        "a fetch started a handshake"
    );
    assert_eq!(
        s.app.count(),
        seen,
        "the app saw an unauthenticated API call"
    );
    // The page itself is still the one the user was on.
    assert_eq!(s.browser.url(), format!("{APP}/page"));
}

/// (4) Signing out on Clerk (`__client_uat=0`) ends at the sign-in page on
/// the next navigation, even while the old session token is still valid.
#[test]
fn sign_out_ends_at_sign_in() {
    let s = Stack::start(Settings {
        session_ttl_secs: 60,
        ..Settings::default()
    });
    s.sign_in_direct("user_4", "/home");
    s.assert_signed_in_at(&format!("{APP}/home"), "user_4");
    let seen = s.app.count();
    s.goto(&format!(
        "https://{FAPI_HOST}/test/sign-out?redirect_url={}",
        fake_clerk::form_encode(&format!("{APP}/home"))
    ));
    s.assert_at_sign_in();
    assert_eq!(
        s.app.count(),
        seen,
        "the app saw a request after sign-out\n{}",
        s.debug()
    );
    assert_eq!(
        s.browser.cookie(APP_HOST, "__client_uat").as_deref(),
        Some("0")
    );
    assert!(
        s.browser
            .cookie(APP_HOST, "__session")
            .is_none_or(|v| v.is_empty()),
        "the payload cleared __session\n{}",
        s.debug()
    );
    // And it stays so.
    s.goto(&format!("{APP}/home"));
    s.assert_at_sign_in();
    assert_eq!(s.app.count(), seen);
}

/// (5) A Frontend API that never sends a payload back: the loop guard
/// stops the bounce after 3 handshakes, the browser ends on a page (no
/// ERR_TOO_MANY_REDIRECTS) and nobody reaches the app.
#[test]
fn a_broken_frontend_api_stops_after_the_loop_guard() {
    let s = Stack::start(Settings {
        broken: Some(fake_clerk::Broken::NoPayload),
        ..Settings::default()
    });
    let started = Instant::now();
    s.sign_in_direct("user_5", "/loop");
    let handshakes = s.fake.count("/v1/client/handshake");
    assert_eq!(
        handshakes,
        3,
        "the loop guard stops at the third bounce\n{}",
        s.debug()
    );
    assert_eq!(s.app.count(), 0, "{}", s.debug());
    assert!(
        s.browser.url().starts_with(SIGN_IN_URL) || s.browser.url() == format!("{APP}/loop"),
        "ends on the sign-in page or jwtgate's 401 page\n{}",
        s.debug()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The guard resets: a while later (the counter cookie lives 2 s) the
    // user can try again, and is again stopped after 3.
    std::thread::sleep(Duration::from_millis(2500));
    s.goto(&format!("{APP}/loop"));
    assert_eq!(s.fake.count("/v1/client/handshake"), 6, "{}", s.debug());
    assert_eq!(s.app.count(), 0);
}

/// (6) A forged handshake token (another key, or a template `cat`) or a
/// forged nonce payload (a session token signed by another key, or a nonce
/// BAPI never issued) signs nobody in.
#[test]
fn a_forged_handshake_token_or_nonce_payload_signs_nobody_in() {
    let s = Stack::start(Settings::default());
    let cases = [
        (Transport::CookieToken, Forge::WrongKey),
        (Transport::QueryToken, Forge::WrongKey),
        (Transport::QueryToken, Forge::Unknown),
        (Transport::CookieNonce, Forge::WrongKey),
        (Transport::QueryNonce, Forge::Unknown),
    ];
    for (transport, forge) in cases {
        s.browser.clear_cookies();
        s.fake.set(|f| {
            f.transport = transport;
            f.forge = Some(forge);
        });
        let handshakes = s.fake.count("/v1/client/handshake");
        s.sign_in_direct("user_6", "/secret");
        let case = format!("{transport:?} {forge:?}");
        assert_eq!(
            s.app.count(),
            0,
            "{case}: the app was reached\n{}",
            s.debug()
        );
        let bounces = s.fake.count("/v1/client/handshake") - handshakes;
        assert!(
            (1..=3).contains(&bounces),
            "{case}: {bounces} handshakes\n{}",
            s.debug()
        );
        let url = s.browser.url();
        assert!(
            url.starts_with(SIGN_IN_URL) || url.starts_with(&format!("{APP}/secret")),
            "{case}: ended at {url}\n{}",
            s.debug()
        );
        if let Some(token) = s
            .browser
            .cookie(APP_HOST, "__session")
            .filter(|t| !t.is_empty())
        {
            assert!(
                !signed_by(&token, s.fake.key()),
                "{case}: a genuine session appeared"
            );
        }
    }
    // The control: the same flow, unforged, does sign in.
    s.browser.clear_cookies();
    s.fake.set(|f| f.forge = None);
    s.sign_in_direct("user_6", "/secret");
    s.assert_signed_in_at(&format!("{APP}/secret"), "user_6");
}

/// Polls `/api/data` with fetch() `n` times, one second apart, from the
/// page; the statuses in order, and how long the slowest took (ms).
fn poll(s: &Stack, n: u32) -> (Vec<u64>, u64) {
    let v = s
        .browser
        .run_async(
            "const [n, done] = [arguments[0], arguments[arguments.length - 1]];\
             (async () => {\
               const out = [];\
               let slowest = 0;\
               for (let i = 0; i < n; i++) {\
                 if (i > 0) await new Promise(r => setTimeout(r, 1000));\
                 const t0 = performance.now();\
                 try { out.push((await fetch('/api/data', {credentials: 'same-origin'})).status); }\
                 catch (e) { out.push(0); }\
                 slowest = Math.max(slowest, performance.now() - t0);\
               }\
               return [out, Math.round(slowest)];\
             })().then(done, e => done(String(e)));",
            json!([n]),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", s.debug()));
    let statuses = v[0]
        .as_array()
        .unwrap_or_else(|| panic!("{v}\n{}", s.debug()))
        .iter()
        .map(|x| x.as_u64().unwrap_or(0))
        .collect();
    (statuses, v[1].as_u64().unwrap_or(0))
}

/// Beyond the SDK (issue 8): a dashboard-like page that polls with fetch()
/// every second and never navigates. Measured here with 5 s session
/// tokens: without help, every poll after the token expired is a 401 until
/// the next navigation (Clerk's SDK has no cure without a `__refresh`
/// cookie). With nginx's `/_jwtgate/renew.js` in the page, each 401 that a
/// navigation would cure renews the cookie through a hidden iframe
/// (Clerk's handshake) and the fetch is repeated once: the page sees no
/// 401. An XHR is not repeated: the one that meets the expiry gets the 401,
/// the next one works.
#[test]
fn a_polling_page_gets_401_after_expiry_unless_it_loads_the_renew_helper() {
    let s = Stack::start(Settings::default());
    s.sign_in_direct("user_7", "/dash");
    s.assert_signed_in_at(&format!("{APP}/dash"), "user_7");

    // Without help: once the token expired, 401 on every poll.
    let (plain, slowest) = poll(&s, 9);
    let first_401 = plain.iter().position(|st| *st == 401);
    println!("polling without the helper: {plain:?}, slowest fetch {slowest} ms");
    let first_401 = first_401.unwrap_or_else(|| panic!("no 401 in {plain:?}\n{}", s.debug()));
    assert!(first_401 >= 2, "{plain:?}: the token lives 5 s");
    assert!(
        plain[first_401..].iter().all(|st| *st == 401),
        "{plain:?}: nothing renews the session without a navigation"
    );
    assert!(plain[..first_401].iter().all(|st| *st == 200), "{plain:?}");

    // With the helper: the expired session is renewed on the first 401
    // (the token expired during the polling above), and on later expiries.
    let loaded = s
        .browser
        .run_async(
            "const done = arguments[arguments.length - 1];\
             const el = document.createElement('script');\
             el.src = '/_jwtgate/renew.js';\
             el.onload = () => done(typeof window.jwtgateRenew);\
             el.onerror = () => done('error');\
             document.head.appendChild(el);",
            json!([]),
        )
        .unwrap();
    assert_eq!(loaded, "function", "{}", s.debug());
    let handshakes = s.fake.count("/v1/client/handshake");
    let (helped, slowest) = poll(&s, 12);
    println!(
        "polling with the helper: {helped:?}, slowest fetch {slowest} ms (one renewal included)"
    );
    assert!(
        helped.iter().all(|st| *st == 200),
        "{helped:?}\n{}",
        s.debug()
    );
    let renewals = s.fake.count("/v1/client/handshake") - handshakes;
    assert!(
        (2..=4).contains(&renewals),
        "{renewals} renewals in 12 s of 5 s tokens\n{}",
        s.debug()
    );
    // The page itself never moved, and the app never saw a request
    // without the user.
    assert_eq!(s.browser.url(), format!("{APP}/dash"));
    assert!(
        s.app.users().iter().all(|u| u == "user_7"),
        "{:?}",
        s.app.users()
    );

    // XHR: the call that meets the expiry gets the 401 and starts the
    // renewal; the next one is signed in.
    s.wait_for_session_expiry();
    let xhr = |s: &Stack| {
        s.browser
            .run_async(
                "const done = arguments[arguments.length - 1];\
                 const x = new XMLHttpRequest();\
                 x.open('GET', '/api/data');\
                 x.onloadend = () => done(x.status);\
                 x.send();",
                json!([]),
            )
            .unwrap()
    };
    assert_eq!(xhr(&s), 401, "{}", s.debug());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(xhr(&s), 200, "{}", s.debug());
}
