//! End to end through a real nginx: the shipped `nginx/` configuration in
//! front of the real `jwtgate` binary and a tiny upstream app that echoes
//! the request it received, so the tests see exactly what reached the app.
//!
//! Each test starts its own key server, jwtgate, app and nginx. nginx runs
//! unprivileged from a temp dir (`nginx -p <dir> -c <dir>/nginx.conf -e ...
//! -g 'daemon off;'`); the test copies `nginx/example-site.conf` and the
//! snippets there and rewrites only addresses, ports and paths. The tests
//! of the optional decision cache make the documented two edits on top
//! (see `Decisions::Cached`).
//!
//! These tests need nginx with the auth_request module. They FAIL, never
//! skip, when it is missing: on Debian `apt-get install -y nginx`. Set
//! `NGINX=/path/to/nginx` to use another binary.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::echo::{App, Echo, IDENTITY_HEADERS};
use common::*;
use serde_json::json;

const INSTALL_HINT: &str = "nginx with the auth_request module is required for these tests \
     (they never skip): on Debian/Ubuntu run `apt-get install -y nginx`, \
     or set NGINX=/path/to/nginx";

/// The Host the tests send; the sign-in redirect echoes it.
const HOST: &str = "app.example.com";
const SIGN_IN: &str = "https://accounts.example.com/sign-in";
/// `pk_live_` for clerk.example.com (the tokens' issuer).
const PUBLISHABLE_KEY: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";

// ---------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------

/// A real nginx (master + workers) running the shipped configuration,
/// stopped on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    error_log: PathBuf,
    _dir: TempDir,
}

/// Which auth location the site gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decisions {
    /// jwtgate-auth.conf as shipped: every request asks jwtgate.
    Uncached,
    /// The documented opt-in to nginx's decision cache: the example site
    /// includes jwtgate-cache-zone.conf next to the upstream, and the auth
    /// location has `include jwtgate/jwtgate-cache.conf;` instead of
    /// `proxy_cache off;`.
    Cached,
}

impl Nginx {
    fn start(jwtgate: SocketAddr, app: SocketAddr) -> Nginx {
        Nginx::start_with(jwtgate, app, Decisions::Uncached)
    }

    fn start_with(jwtgate: SocketAddr, app: SocketAddr, decisions: Decisions) -> Nginx {
        let bin = nginx_bin();
        match Command::new(&bin).arg("-V").output() {
            Ok(out) => {
                let version = String::from_utf8_lossy(&out.stderr);
                assert!(
                    version.contains("--with-http_auth_request_module"),
                    "{} lacks the auth_request module:\n{version}\n{INSTALL_HINT}",
                    bin.display()
                );
            }
            Err(e) => panic!("cannot run {}: {e}\n{INSTALL_HINT}", bin.display()),
        }

        let dir = TempDir::new("nginx");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let read = |name: &str| {
            std::fs::read_to_string(repo_path(&format!("nginx/{name}")))
                .unwrap_or_else(|e| panic!("read nginx/{name}: {e}"))
        };
        let d = dir.0.display();

        // The main config at <dir>/nginx.conf and the snippets at
        // <dir>/jwtgate/, the layout the example documents, so its relative
        // includes work unchanged.
        let mut site = read("example-site.conf");
        let f = "example-site.conf";
        // Plain http on a free port: the example's TLS lines go (the
        // browser test runs it with TLS).
        site = replace_directive(&site, "listen", &format!("listen {addr};"), f);
        for tls in ["ssl_certificate", "ssl_certificate_key"] {
            site = replace_directive(&site, tls, "# (no TLS in this test)", f);
        }
        site = replace_once(
            &site,
            "server 127.0.0.1:8080;",
            &format!("server {app};"),
            f,
        );
        site = replace_once(
            &site,
            "pid /run/nginx.pid;",
            &format!("pid {d}/nginx.pid;"),
            f,
        );
        site = replace_once(
            &site,
            "/var/log/nginx/error.log",
            &format!("{d}/error.log"),
            f,
        );
        site = replace_once(
            &site,
            "/var/log/nginx/access.log",
            &format!("{d}/access.log"),
            f,
        );
        // Debian's compiled-in temp paths are under /var/lib/nginx.
        let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|t| format!("\n    {t}_temp_path {d}/temp/{t};"))
            .collect();
        site = replace_once(&site, "http {", &format!("http {{{temp_paths}"), f);
        if decisions == Decisions::Cached {
            let upstream = "include jwtgate/jwtgate-upstream.conf;";
            site = replace_once(
                &site,
                upstream,
                &format!("{upstream}\n    include jwtgate/jwtgate-cache-zone.conf;"),
                f,
            );
        }
        std::fs::write(dir.path("nginx.conf"), site).unwrap();

        std::fs::create_dir_all(dir.path("jwtgate")).unwrap();
        std::fs::create_dir_all(dir.path("temp")).unwrap();
        let upstream = replace_once(
            &read("jwtgate-upstream.conf"),
            "server 127.0.0.1:7070;",
            &format!("server {jwtgate};"),
            "jwtgate-upstream.conf",
        );
        std::fs::write(dir.path("jwtgate/jwtgate-upstream.conf"), upstream).unwrap();
        for name in [
            "jwtgate-auth.conf",
            "jwtgate-auth-location.conf",
            "jwtgate-protect.conf",
            "jwtgate-identity.conf",
            "jwtgate-public.conf",
            "jwtgate-cache.conf",
        ] {
            let mut text = read(name);
            if name == "jwtgate-auth-location.conf" && decisions == Decisions::Cached {
                text = replace_once(
                    &text,
                    "proxy_cache off;",
                    "include jwtgate/jwtgate-cache.conf;",
                    name,
                );
            }
            std::fs::write(dir.path(&format!("jwtgate/{name}")), text).unwrap();
        }
        // The cache directory: nginx creates it (mode 0700) at startup.
        let zone = replace_once(
            &read("jwtgate-cache-zone.conf"),
            "/run/nginx-jwtgate-cache",
            &format!("{d}/cache"),
            "jwtgate-cache-zone.conf",
        );
        std::fs::write(dir.path("jwtgate/jwtgate-cache-zone.conf"), zone).unwrap();

        let error_log = dir.path("error.log");
        let conf = dir.path("nginx.conf");
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
        let test = run(&["-t"]).output().expect("nginx -t");
        assert!(
            test.status.success(),
            "nginx -t rejected the config:\n{}\n{}",
            String::from_utf8_lossy(&test.stderr),
            std::fs::read_to_string(&conf).unwrap()
        );

        let child = run(&["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path("stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}\n{INSTALL_HINT}", bin.display()));
        let mut nginx = Nginx {
            child,
            addr,
            error_log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited at startup ({status}):\n{}", nginx.logs());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return nginx;
            }
            assert!(
                Instant::now() < deadline,
                "nginx never listened on {addr}:\n{}",
                nginx.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        let stderr = std::fs::read_to_string(self._dir.path("stderr.log")).unwrap_or_default();
        let errors = std::fs::read_to_string(&self.error_log).unwrap_or_default();
        format!("--- nginx stderr ---\n{stderr}--- nginx error.log ---\n{errors}")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM makes the master stop its workers too; SIGKILL would
        // orphan them (and their listening socket).
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

struct Stack {
    // Dropped in this order: nginx first, then the daemon.
    nginx: Nginx,
    jwtgate: Daemon,
    app: App,
    key: Key,
    _keys: KeyServer,
}

impl Stack {
    fn start() -> Stack {
        Stack::start_with(Decisions::Uncached, &[])
    }

    /// With nginx's decision cache (`Decisions::Cached`), and jwtgate with
    /// `verify.leeway_secs = 0`: it refuses a token from its exp on, so a
    /// 200 for an expired token could only come from nginx's cache.
    fn start_cached() -> Stack {
        Stack::start_with(Decisions::Cached, &[("JWTGATE_VERIFY__LEEWAY_SECS", "0")])
    }

    /// jwtgate with browser sign-in on: a publishable key for
    /// clerk.example.com beside the secret key (so the default sign-in page
    /// is https://accounts.example.com/sign-in and the Frontend API
    /// https://clerk.example.com); no Backend API is needed here.
    fn start_browser(decisions: Decisions) -> Stack {
        Stack::start_with(
            decisions,
            &[
                ("JWTGATE_KEYS__PUBLISHABLE_KEY", PUBLISHABLE_KEY),
                ("JWTGATE_KEYS__API_URL", "http://127.0.0.1:9"),
                ("JWTGATE_VERIFY__LEEWAY_SECS", "0"),
            ],
        )
    }

    fn start_with(decisions: Decisions, jwtgate_env: &[(&str, &str)]) -> Stack {
        let key = Key::rsa("kid-nginx", 2048);
        let keys = KeyServer::start(jwks(&[&key]));
        let jwtgate = Daemon::start_with(&jwks_config(&keys, ""), |cmd| {
            cmd.envs(jwtgate_env.iter().copied());
        });
        jwtgate.wait_ready();
        let app = App::start();
        let nginx = Nginx::start_with(jwtgate.addr, app.addr, decisions);
        Stack {
            nginx,
            jwtgate,
            app,
            key,
            _keys: keys,
        }
    }

    fn token(&self, user: &str) -> String {
        self.key.sign(&claims(user))
    }

    /// A token for `user` that expires at `exp` (Unix seconds).
    fn token_expiring(&self, user: &str, exp: i64) -> String {
        let mut c = claims(user);
        c["exp"] = json!(exp);
        self.key.sign(&c)
    }

    /// Every `/auth` request jwtgate has answered, whatever the outcome
    /// (the sum of `jwtgate_decisions_total`). jwtgate counts a decision
    /// before it sends the answer, so this is exact right after a response.
    fn decisions(&self) -> u64 {
        let text = self.jwtgate.get("/metrics").body;
        text.lines()
            .filter(|l| l.starts_with("jwtgate_decisions_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    /// jwtgate's 200s so far.
    fn allowed(&self) -> u64 {
        self.jwtgate
            .metric("jwtgate_decisions_total{outcome=\"allow\",reason=\"ok\"}") as u64
    }

    /// One request on a new connection: `method path`, Host, then `headers`
    /// (lines without CRLF), then `body` with a Content-Length if not empty.
    fn send(&self, method: &str, path: &str, headers: &[&str], body: &str) -> Response {
        let raw = raw_request(method, path, headers, body);
        request(self.nginx.addr, &raw)
            .unwrap_or_else(|e| panic!("{method} {path} via nginx: {e}\n{}", self.nginx.logs()))
    }

    fn get(&self, path: &str, headers: &[&str]) -> Response {
        self.send("GET", path, headers, "")
    }

    /// Asserts a 200 from the app and returns what the app saw.
    fn app_saw(&self, rsp: &Response) -> Echo {
        assert_eq!(
            rsp.status,
            200,
            "expected the app's page: {rsp:#?}\n{}",
            self.nginx.logs()
        );
        Echo::parse(&rsp.body)
    }
}

fn raw_request(method: &str, path: &str, headers: &[&str], body: &str) -> String {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n");
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    if !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw
}

fn strs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

const API_ACCEPT: &str = "Accept: application/json";
const BROWSER_ACCEPT: &str =
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn valid_tokens_reach_the_app_with_the_identity_headers() {
    let s = Stack::start();
    let token = s.token("user_1");

    // Authorization: Bearer (an API client).
    let echo = s.app_saw(&s.get("/dashboard?tab=1", &[&bearer(&token), API_ACCEPT]));
    assert_eq!(echo.request_line, "GET /dashboard?tab=1 HTTP/1.1");
    echo.assert_identity(&[("X-User-Id", "user_1"), ("X-Session-Id", "sess_user_1")]);
    assert_eq!(
        echo.header("Host"),
        Some(HOST),
        "the app still gets the client's Host"
    );
    assert_eq!(
        echo.header("Authorization"),
        Some(bearer(&token)[15..].trim())
    );

    // The __session cookie (a browser), among other cookies.
    let cookie = format!("Cookie: theme=dark; __session={token}; __client_uat=1700000000");
    let echo = s.app_saw(&s.get("/dashboard", &[&cookie, BROWSER_ACCEPT]));
    echo.assert_identity(&[("X-User-Id", "user_1"), ("X-Session-Id", "sess_user_1")]);

    // A v2 token with an active organization and an actor (impersonation).
    let mut c = claims("user_2");
    c["fea"] = json!("o:dashboard");
    c["o"] =
        json!({"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3"});
    c["act"] = json!({"sub": "user_support"});
    let echo = s.app_saw(&s.get("/orgs/acme", &[&bearer(&s.key.sign(&c))]));
    echo.assert_identity(&[
        ("X-User-Id", "user_2"),
        ("X-Session-Id", "sess_user_2"),
        ("X-Org-Id", "org_1"),
        ("X-Org-Role", "org:admin"),
        ("X-Org-Slug", "acme"),
        (
            "X-Org-Permissions",
            "org:dashboard:read,org:dashboard:manage",
        ),
        ("X-Actor-Id", "user_support"),
    ]);
    assert_eq!(s.app.requests(), 3);
}

#[test]
fn location_rules_give_403_to_signed_in_users_who_fail_them() {
    let s = Stack::start();
    let mut member = claims("user_member");
    member["o"] = json!({"id": "org_1", "slg": "acme", "rol": "member"});
    let mut admin = claims("user_admin");
    admin["o"] = json!({"id": "org_1", "slg": "acme", "rol": "admin"});
    admin["fva"] = json!([3, 30]);
    let (member, admin) = (s.key.sign(&member), s.key.sign(&admin));
    let before = s.app.requests();

    let r = s.get("/admin/users", &[&bearer(&member), API_ACCEPT]);
    assert_eq!(r.status, 403, "{r:#?}\n{}", s.nginx.logs());
    assert_eq!(r.header("x-jwtgate-reason"), Some("missing-role"));
    let r = s.get(
        "/admin/users",
        &[&bearer(&s.token("user_none")), API_ACCEPT],
    );
    assert_eq!(r.status, 403, "no organization: still signed in, so 403");
    let r = s.get("/admin/users", &[API_ACCEPT]);
    assert_eq!(r.status, 401, "no token is a 401 under rules too");
    assert_eq!(s.app.requests(), before, "nothing reached the app");
    let echo = s.app_saw(&s.get("/admin/users", &[&bearer(&admin), API_ACCEPT]));
    assert_eq!(echo.header("X-Org-Role"), Some("org:admin"));

    // reverify=strict: the second factor 30 minutes ago is too long ago;
    // the 403's body is Clerk's error JSON for its frontend SDKs.
    let r = s.get("/account/security/", &[&bearer(&admin), API_ACCEPT]);
    assert_eq!(r.status, 403, "{r:#?}");
    assert_eq!(
        r.header("x-jwtgate-reason"),
        Some("reverification-required")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["clerk_error"]["reason"], "reverification-error");
    assert_eq!(body["clerk_error"]["metadata"]["reverification"], "strict");
    let mut recent = claims("user_recent");
    recent["fva"] = json!([3, 2]);
    s.app_saw(&s.get("/account/security/", &[&bearer(&s.key.sign(&recent))]));
}

/// A control byte in someone else's cookie (nginx passes it on) must not
/// cost the user the request: the HTTP layer blanks it and the session
/// cookie still counts.
#[test]
fn a_control_byte_in_another_cookie_does_not_hide_the_session() {
    let s = Stack::start();
    let token = s.token("user_ctl");
    // (A NUL byte nginx refuses itself, with a 400.)
    for bad in ["x=\u{1}", "x=a\u{7f}b", "x=\u{1b}[31m"] {
        let cookie = format!("Cookie: {bad}; __session={token}");
        let r = s.get("/dashboard", &[&cookie, API_ACCEPT]);
        let echo = s.app_saw(&r);
        assert_eq!(echo.header("X-User-Id"), Some("user_ctl"), "{bad:?}");
    }
}

#[test]
fn client_sent_identity_headers_never_reach_the_app() {
    let s = Stack::start();
    let forged: Vec<String> = IDENTITY_HEADERS
        .iter()
        .map(|h| format!("{h}: attacker"))
        .chain([
            // Twice, lower case, and with underscores (some frameworks map
            // X_User_Id and X-User-Id to the same variable).
            "x-user-id: attacker2_attacker".into(),
            "X-Org-Role: org:attacker".into(),
            "X_User_Id: attacker".into(),
            "X_Org_Role: org:attacker".into(),
        ])
        .collect();
    let with = |extra: String| -> Vec<String> { forged.iter().cloned().chain([extra]).collect() };

    // A valid token without an organization: X-User-Id/X-Session-Id are
    // replaced by the token's, and the org/actor headers are removed, not
    // passed through.
    let lines = with(bearer(&s.token("user_1")));
    let echo = s.app_saw(&s.get("/account", &strs(&lines)));
    echo.assert_identity(&[("X-User-Id", "user_1"), ("X-Session-Id", "sess_user_1")]);

    // The same with the cookie and a POST.
    let lines = with(format!("Cookie: __session={}", s.token("user_3")));
    let echo = s.app_saw(&s.send("POST", "/account", &strs(&lines), "x=1"));
    echo.assert_identity(&[("X-User-Id", "user_3"), ("X-Session-Id", "sess_user_3")]);

    // A public location has no auth: the example strips every identity
    // header there (jwtgate-public.conf), with or without a token.
    let echo = s.app_saw(&s.get("/public/pricing", &strs(&forged)));
    assert_eq!(echo.request_line, "GET /public/pricing HTTP/1.1");
    echo.assert_identity(&[]);
    let lines = with(bearer(&s.token("user_1")));
    s.app_saw(&s.get("/public/pricing", &strs(&lines)))
        .assert_identity(&[]);

    // Forged headers with no token are simply refused.
    assert_eq!(s.get("/account", &strs(&forged)).status, 401);
    assert_eq!(s.app.requests(), 4);
}

/// `application/x-www-form-urlencoded`, as jwtgate (and the SDK's
/// `URLSearchParams`) encodes `redirect_url`.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn missing_or_invalid_tokens_get_401_for_api_clients_and_sign_in_for_browsers() {
    let s = Stack::start_browser(Decisions::Uncached);

    // No token, API client (and a client that sends no Accept at all, and a
    // page's fetch() that asks for HTML).
    let fetch = ["Sec-Fetch-Dest: empty", "Accept: text/html"];
    let api: [&[&str]; 4] = [&[API_ACCEPT], &["Accept: */*"], &["X-Nothing: 1"], &fetch];
    for headers in api {
        let rsp = s.get("/api/items", headers);
        assert_eq!(rsp.status, 401, "{headers:?}: {rsp:#?}");
        assert_eq!(rsp.header("WWW-Authenticate"), Some("Bearer"), "{rsp:#?}");
        assert_eq!(rsp.header_count("WWW-Authenticate"), 1);
        assert_eq!(rsp.header("Location"), None);
    }

    // No token, a browser navigating: 307 to sign-in, back to the original
    // URL afterwards. jwtgate computes the Location and percent-encodes the
    // whole URL into redirect_url, so the "&" of the query (and an encoded
    // one) survive the round trip (nginx alone could not encode it).
    let page = "/dashboard?tab=billing&q=a%26b";
    let sign_in = format!(
        "{SIGN_IN}?redirect_url={}",
        form_encode(&format!("http://{HOST}{page}"))
    );
    let rsp = s.get(page, &[BROWSER_ACCEPT]);
    assert_eq!(rsp.status, 307, "{rsp:#?}\n{}", s.nginx.logs());
    assert_eq!(rsp.header("Location"), Some(sign_in.as_str()));
    assert_eq!(rsp.header("Cache-Control"), Some("no-store"));
    assert_eq!(
        sign_in,
        format!(
            "{SIGN_IN}?redirect_url=http%3A%2F%2F{HOST}%2Fdashboard%3Ftab%3Dbilling%26q%3Da%2526b"
        )
    );
    // A form POST gets 303, so the sign-in page is fetched with GET.
    let rsp = s.send(
        "POST",
        "/form",
        &[BROWSER_ACCEPT, "Sec-Fetch-Dest: document"],
        "x=1",
    );
    assert_eq!(rsp.status, 303, "{rsp:#?}");
    assert!(rsp.header("Location").unwrap().starts_with(SIGN_IN));

    // Invalid tokens: signed by another key under the same kid, expired,
    // and garbage. API clients get 401 with RFC 6750's invalid_token
    // (nginx copies jwtgate's challenge); browsers (who also hold Clerk's
    // __client_uat) go to sign-in, except with the expired token: Clerk's
    // handshake renews that one.
    let forger = Key {
        kid: s.key.kid.clone(),
        private: Key::rsa("x", 2048).private,
    };
    let mut expired = claims("user_1");
    expired["exp"] = json!(now() - 600);
    expired["nbf"] = json!(now() - 1200);
    expired["iat"] = json!(now() - 1200);
    let invalid = [
        (forger.sign(&claims("user_1")), "token-invalid-signature"),
        (
            s.key.sign(&expired),
            "session-token-expired-refresh-non-eligible-no-refresh-cookie",
        ),
        ("not.a.jwt".to_string(), "token-invalid"),
    ];
    let uat = now() - 1300;
    for (token, reason) in &invalid {
        let rsp = s.get("/api/items", &[&bearer(token), API_ACCEPT]);
        assert_eq!(rsp.status, 401, "{rsp:#?}");
        assert_eq!(rsp.header_count("WWW-Authenticate"), 1);
        let challenge = rsp.header("WWW-Authenticate").unwrap();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
            "{challenge}"
        );
        assert_eq!(rsp.reason(), Some(*reason));

        let cookie = format!("Cookie: __session={token}; __client_uat={uat}");
        let rsp = s.get("/dashboard", &[&cookie, BROWSER_ACCEPT]);
        assert_eq!(rsp.status, 307, "{rsp:#?}");
        let location = rsp.header("Location").unwrap();
        if reason.starts_with("session-token-expired") {
            let handshake = format!(
                "https://clerk.example.com/v1/client/handshake?redirect_url={}\
                 &__clerk_api_version=2026-05-12&suffixed_cookies=false&__clerk_hs_reason={reason}\
                 &format=nonce&__session={token}",
                form_encode(&format!("http://{HOST}/dashboard"))
            );
            assert_eq!(location, handshake);
            assert_eq!(
                rsp.header("Set-Cookie"),
                Some("__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2")
            );
        } else {
            assert!(location.starts_with(SIGN_IN), "{location}");
            assert_eq!(rsp.header("Set-Cookie"), None);
        }
    }

    // The auth location itself is internal.
    let rsp = s.get("/_jwtgate", &[&bearer(&s.token("user_1"))]);
    assert_eq!(rsp.status, 404, "{rsp:#?}");

    assert_eq!(s.app.requests(), 0, "nothing may reach the app");
}

#[test]
fn without_browser_sign_in_a_browser_keeps_the_401() {
    // Tokens only (no publishable key): nobody is redirected, and nginx
    // sends no cookie.
    let s = Stack::start();
    let rsp = s.get("/dashboard", &[BROWSER_ACCEPT, "Sec-Fetch-Dest: document"]);
    assert_eq!(rsp.status, 401, "{rsp:#?}");
    assert_eq!(rsp.header("WWW-Authenticate"), Some("Bearer"));
    assert_eq!(rsp.header("Location"), None);
    assert_eq!(rsp.header("Set-Cookie"), None);
    assert_eq!(s.app.requests(), 0);
}

#[test]
fn a_browser_sized_request_passes() {
    let s = Stack::start();
    let token = s.token("user_1");
    // A ~4 KiB cookie jar with the session in the middle.
    let filler = |n: usize| -> String {
        (0..n)
            .map(|i| format!("pref_{i}={}", "v".repeat(90)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let cookie = format!(
        "Cookie: {}; __session={token}; __client_uat=1700000000; {}",
        filler(18),
        filler(18)
    );
    assert!(cookie.len() > 4096, "{}", cookie.len());
    let mut headers: Vec<String> = vec![
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/126.0.0.0 Safari/537.36"
            .into(),
        BROWSER_ACCEPT.into(),
        "Accept-Language: en-US,en;q=0.9,de;q=0.8".into(),
        "Accept-Encoding: gzip, deflate, br, zstd".into(),
        "Cache-Control: max-age=0".into(),
        "Connection: keep-alive".into(),
        "Upgrade-Insecure-Requests: 1".into(),
        "Sec-Fetch-Dest: document".into(),
        "Sec-Fetch-Mode: navigate".into(),
        "Sec-Fetch-Site: same-origin".into(),
        "Sec-Fetch-User: ?1".into(),
        "Sec-Ch-Ua: \"Chromium\";v=\"126\", \"Not.A/Brand\";v=\"24\"".into(),
        "Sec-Ch-Ua-Mobile: ?0".into(),
        "Sec-Ch-Ua-Platform: \"Linux\"".into(),
        "Referer: http://app.example.com/".into(),
        "DNT: 1".into(),
        "Priority: u=0, i".into(),
        "If-None-Match: \"abc123\"".into(),
        "If-Modified-Since: Tue, 01 Jul 2025 00:00:00 GMT".into(),
        "X-Requested-With: XMLHttpRequest".into(),
        "X-Forwarded-For: 203.0.113.9".into(),
        "Origin: http://app.example.com".into(),
        cookie.clone(),
    ];
    assert!(headers.len() >= 20);
    let echo = s.app_saw(&s.get("/dashboard", &strs(&headers)));
    echo.assert_identity(&[("X-User-Id", "user_1"), ("X-Session-Id", "sess_user_1")]);
    assert_eq!(echo.header("Cookie"), Some(&cookie["Cookie: ".len()..]));
    assert_eq!(echo.header("Sec-Fetch-Mode"), Some("navigate"));

    // The same with the token in Authorization and a ~12 KiB cookie line
    // (nginx allows 16 KiB per line in the example; jwtgate gets it all).
    headers.pop();
    headers.push(format!("Cookie: {}", filler(120)));
    headers.push(bearer(&token));
    assert!(headers.last().unwrap().len() < 12 * 1024);
    let echo = s.app_saw(&s.get("/dashboard", &strs(&headers)));
    echo.assert_identity(&[("X-User-Id", "user_1"), ("X-Session-Id", "sess_user_1")]);
}

#[test]
fn a_post_with_a_body_is_authorized_promptly_and_the_body_reaches_the_app() {
    let s = Stack::start();
    let token = s.token("user_1");
    let body = format!("{{\"items\":[{}]}}", vec!["\"x\""; 3000].join(","));
    let started = Instant::now();
    let rsp = s.send(
        "POST",
        "/api/items",
        &[
            &bearer(&token),
            "Content-Type: application/json",
            API_ACCEPT,
        ],
        &body,
    );
    let elapsed = started.elapsed();
    let echo = s.app_saw(&rsp);
    assert!(elapsed < Duration::from_secs(2), "POST took {elapsed:?}");
    assert_eq!(echo.request_line, "POST /api/items HTTP/1.1");
    assert_eq!(
        echo.header("Content-Length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(echo.body, body);
    echo.assert_identity(&[("X-User-Id", "user_1"), ("X-Session-Id", "sess_user_1")]);

    // A chunked body: nginx reads it, then sends it on with a Content-Length.
    let chunked = format!(
        "PUT /api/items/1 HTTP/1.1\r\nHost: {HOST}\r\n{}\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        bearer(&token)
    );
    let started = Instant::now();
    let rsp = request(s.nginx.addr, &chunked).expect("chunked PUT");
    let echo = s.app_saw(&rsp);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(echo.request_line, "PUT /api/items/1 HTTP/1.1");
    assert_eq!(echo.body, "hello world");

    // A POST without a valid token is refused before the body matters.
    let started = Instant::now();
    let rsp = s.send("POST", "/api/items", &[API_ACCEPT], &body);
    assert_eq!(rsp.status, 401);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(s.app.requests(), 2);
}

#[test]
fn nginx_reuses_its_connections_to_jwtgate() {
    let s = Stack::start();
    let token = s.token("user_1");
    let auth = bearer(&token);
    let cookie = format!("Cookie: __session={token}");
    let before = s.jwtgate.metric("jwtgate_connections_accepted_total");

    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 50;
    let mut statuses = std::collections::BTreeMap::new();
    for client in 0..CLIENTS {
        let stream = TcpStream::connect(s.nginx.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        for i in 0..PER_CLIENT {
            // A mix of what nginx sends jwtgate: bearer and cookie tokens,
            // POSTs with bodies, and refusals.
            let (raw, want) = match i % 4 {
                0 => (raw_request("GET", "/a", &[&auth], ""), 200),
                1 => (raw_request("GET", "/b", &[&cookie], ""), 200),
                2 => (raw_request("POST", "/c", &[&auth], "{\"n\":1}"), 200),
                _ => (raw_request("GET", "/d", &[API_ACCEPT], ""), 401),
            };
            writer.write_all(raw.as_bytes()).unwrap();
            let rsp = read_response(&mut reader)
                .unwrap_or_else(|e| panic!("client {client} request {i}: {e}\n{}", s.nginx.logs()));
            assert_eq!(rsp.status, want, "client {client} request {i}: {rsp:#?}");
            *statuses.entry(rsp.status).or_insert(0) += 1;
        }
    }
    // The metrics request itself is one more accepted connection.
    let after = s.jwtgate.metric("jwtgate_connections_accepted_total");
    let from_nginx = after - before - 1.0;
    let total = CLIENTS * PER_CLIENT;
    println!(
        "{total} requests through nginx ({statuses:?}) -> {from_nginx} connections accepted by jwtgate"
    );
    assert!(
        (1.0..=10.0).contains(&from_nginx),
        "{total} auth subrequests cost {from_nginx} jwtgate connections (expected <= 10)\n{}",
        s.nginx.logs()
    );
    assert_eq!(s.app.requests(), statuses[&200]);
}

#[test]
fn jwtgate_down_fails_closed_with_500() {
    let mut s = Stack::start();
    let token = s.token("user_1");
    s.app_saw(&s.get("/dashboard", &[&bearer(&token)]));

    let _ = s.jwtgate.child.kill();
    let _ = s.jwtgate.child.wait();

    // Whatever the client sends, nothing gets through: nginx's 502 from the
    // dead upstream becomes a 500 (not 401, so no sign-in loop either).
    let cookie = format!("Cookie: __session={token}");
    for headers in [
        vec![bearer(&token)],
        vec![cookie, BROWSER_ACCEPT.to_string()],
        vec![BROWSER_ACCEPT.to_string()],
        vec!["X-User-Id: user_1".to_string()],
    ] {
        let started = Instant::now();
        let rsp = s.get("/dashboard", &strs(&headers));
        assert_eq!(rsp.status, 500, "{headers:?}: {rsp:#?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(s.app.requests(), 1);
    let log = std::fs::read_to_string(&s.nginx.error_log).unwrap();
    assert!(log.contains("auth request unexpected status: 502"), "{log}");
}

#[test]
fn no_keys_loaded_fails_closed_with_500() {
    let key = Key::rsa("kid-nginx", 2048);
    let keys = KeyServer::start(jwks(&[&key]));
    keys.set_down(true);
    let jwtgate = Daemon::start(&jwks_config(&keys, ""));
    assert_eq!(jwtgate.get("/readyz").status, 503);
    let app = App::start();
    let nginx = Nginx::start(jwtgate.addr, app.addr);

    let rsp = request(
        nginx.addr,
        &raw_request(
            "GET",
            "/dashboard",
            &[&bearer(&key.sign(&claims("user_1")))],
            "",
        ),
    )
    .unwrap();
    assert_eq!(
        rsp.status, 500,
        "jwtgate's 503 must not let anyone in: {rsp:#?}"
    );
    assert_eq!(app.requests(), 0);
    let log = std::fs::read_to_string(&nginx.error_log).unwrap();
    assert!(log.contains("auth request unexpected status: 503"), "{log}");
}

// ---------------------------------------------------------------------------
// The optional decision cache (jwtgate-cache.conf)
// ---------------------------------------------------------------------------

/// Headers for user A and for user B, carried the same way.
type Carrier = (Vec<String>, Vec<String>);

#[test]
fn cached_decisions_are_never_shared_between_credentials() {
    let s = Stack::start_cached();
    let (a, b) = (s.token("user_a"), s.token("user_b"));
    let suffixed = "__session_Zm9vYmFy";
    let carriers: Vec<Carrier> = vec![
        // Bearer tokens.
        (vec![bearer(&a)], vec![bearer(&b)]),
        // The same cookie name with different values, among the same other
        // cookies.
        (
            vec![format!("Cookie: theme=dark; __session={a}")],
            vec![format!("Cookie: theme=dark; __session={b}")],
        ),
        // Clerk's suffixed cookie and no plain __session: a key built from
        // $cookie___session would be the same for both users here.
        (
            vec![format!("Cookie: theme=dark; {suffixed}={a}")],
            vec![format!("Cookie: theme=dark; {suffixed}={b}")],
        ),
        // The session in a second Cookie line (nginx joins the lines).
        (
            vec![
                format!("Cookie: {suffixed}={a}"),
                "Cookie: theme=dark".into(),
            ],
            vec![
                format!("Cookie: {suffixed}={b}"),
                "Cookie: theme=dark".into(),
            ],
        ),
        // Both carriers: jwtgate goes by the header.
        (
            vec![bearer(&a), format!("Cookie: __session={b}")],
            vec![bearer(&b), format!("Cookie: __session={a}")],
        ),
    ];

    let before = s.decisions();
    for round in 0..3 {
        for (i, (for_a, for_b)) in carriers.iter().enumerate() {
            for (headers, user) in [(for_a, "user_a"), (for_b, "user_b")] {
                let echo = s.app_saw(&s.get("/same/page", &strs(headers)));
                let context = format!("round {round}, carrier {i}, {user}");
                assert_eq!(echo.header("X-User-Id"), Some(user), "{context}");
                let sid = format!("sess_{user}");
                assert_eq!(echo.header("X-Session-Id"), Some(sid.as_str()), "{context}");
            }
        }
    }
    // jwtgate was asked once per distinct (Authorization, Cookie): rounds 2
    // and 3 were answered from nginx's cache, so the identities above were
    // checked on real cache hits, user after user on the same URL.
    assert_eq!(s.decisions() - before, 2 * carriers.len() as u64);

    // With all those 200s cached, requests without a usable credential are
    // still asked about and refused, every time: nothing at all, only the
    // other cookie, empty session cookies, a Bearer without a token, another
    // auth scheme.
    let anonymous: [&[&str]; 6] = [
        &[],
        &["Cookie: theme=dark"],
        &["Cookie: theme=dark; __session="],
        &["Cookie: theme=dark; __session_Zm9vYmFy="],
        &["Authorization: Bearer"],
        &["Authorization: Basic dXNlcjpwYXNz", "Cookie: theme=dark"],
    ];
    let before = s.decisions();
    for round in 0..2 {
        for headers in anonymous {
            let rsp = s.get("/same/page", headers);
            assert_eq!(rsp.status, 401, "round {round}, {headers:?}: {rsp:#?}");
        }
    }
    assert_eq!(s.decisions() - before, 2 * anonymous.len() as u64);
    assert_eq!(s.app.requests(), 3 * 2 * carriers.len());
}

#[test]
fn a_cached_decision_dies_at_the_tokens_exp() {
    let mut s = Stack::start_cached();
    let exp = now() + 3;
    let short = bearer(&s.token_expiring("user_short", exp));
    let long = bearer(&s.token("user_long"));

    let allowed = s.allowed();
    for (i, headers) in [&short, &short, &short, &long, &long].iter().enumerate() {
        let echo = s.app_saw(&s.get("/page", &[headers]));
        let user = if i < 3 { "user_short" } else { "user_long" };
        assert_eq!(echo.header("X-User-Id"), Some(user));
    }
    // One 200 from jwtgate per token; the repeats were served by nginx.
    assert_eq!(s.allowed() - allowed, 2);

    // jwtgate answers `X-Accel-Expires: @<exp>` and nginx serves an entry
    // through the second it names: from exp + 1 on, the entry is dead.
    while now() < exp + 1 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let decisions = s.decisions();
    for _ in 0..2 {
        let rsp = s.get("/page", &[&short]);
        assert_eq!(rsp.status, 401, "an expired token was let in: {rsp:#?}");
        assert_eq!(rsp.reason(), Some("token-expired"), "{rsp:#?}");
    }
    assert_eq!(
        s.decisions() - decisions,
        2,
        "jwtgate must have been asked (and its 401 not cached)"
    );

    // jwtgate down: the expired entry is not served as stale (500, as
    // without a cache: fail closed), a live one still is, until its exp.
    let _ = s.jwtgate.child.kill();
    let _ = s.jwtgate.child.wait();
    let rsp = s.get("/page", &[&short]);
    assert_eq!(rsp.status, 500, "{rsp:#?}");
    let echo = s.app_saw(&s.get("/page", &[&long]));
    assert_eq!(echo.header("X-User-Id"), Some("user_long"));
    assert_eq!(s.get("/page", &[API_ACCEPT]).status, 500);
    assert_eq!(s.app.requests(), 6);
}

#[test]
fn refusals_are_never_cached() {
    let s = Stack::start_cached();
    let forger = Key {
        kid: s.key.kid.clone(),
        private: Key::rsa("x", 2048).private,
    };
    let forged = forger.sign(&claims("user_1"));
    let refused = [
        bearer("not.a.jwt"),
        bearer(&forged),
        format!("Cookie: __session={forged}"),
    ];
    let before = s.decisions();
    for round in 0..2 {
        for headers in &refused {
            let rsp = s.get("/page", &[headers, API_ACCEPT]);
            assert_eq!(rsp.status, 401, "round {round}: {rsp:#?}");
        }
    }
    assert_eq!(
        s.decisions() - before,
        2 * refused.len() as u64,
        "jwtgate must see every refused request"
    );
    assert_eq!(s.app.requests(), 0);
}

#[test]
fn browser_cookies_reach_the_browser_one_by_one_and_are_never_cached() {
    let s = Stack::start_browser(Decisions::Cached);
    let uat = format!("__client_uat={}", now() - 30);
    let token = s.token("user_1");

    // Clerk's __client_uat without a session, on a navigation: 307 to
    // Clerk's handshake with the loop counter cookie, not cached.
    for _ in 0..2 {
        let rsp = s.get(
            "/dash?x=1",
            &[
                &format!("Cookie: {uat}"),
                BROWSER_ACCEPT,
                "Sec-Fetch-Dest: document",
            ],
        );
        assert_eq!(rsp.status, 307, "{rsp:#?}\n{}", s.nginx.logs());
        let location = rsp.header("Location").unwrap();
        assert!(
            location.starts_with(
                "https://clerk.example.com/v1/client/handshake?redirect_url=http%3A%2F%2Fapp.example.com%2Fdash%3Fx%3D1&"
            ),
            "{location}"
        );
        assert_eq!(rsp.header("Cache-Control"), Some("no-store"));
        assert_eq!(
            rsp.header("Set-Cookie"),
            Some("__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2")
        );
    }

    // A valid session with a stale handshake nonce cookie, on a fetch():
    // allowed, and the nonce cleared with four Set-Cookie headers on the
    // app's answer (host-only and on example.com, which this host shares
    // with the Frontend API), each one whole. Such a 200 is never stored:
    // jwtgate is asked every time.
    let stale = format!("Cookie: __session={token}; {uat}; __clerk_handshake_nonce=stale");
    let before = s.decisions();
    for _ in 0..3 {
        let rsp = s.get("/api/x", &[&stale, API_ACCEPT, "Sec-Fetch-Dest: empty"]);
        s.app_saw(&rsp)
            .assert_identity(&[("X-User-Id", "user_1"), ("X-Session-Id", "sess_user_1")]);
        let cookies: Vec<&str> = rsp
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            cookies,
            [
                "__clerk_handshake=; Path=/; Max-Age=0",
                "__clerk_handshake=; Path=/; Domain=example.com; Max-Age=0",
                "__clerk_handshake_nonce=; Path=/; Max-Age=0",
                "__clerk_handshake_nonce=; Path=/; Domain=example.com; Max-Age=0",
            ],
            "{rsp:#?}"
        );
    }
    assert_eq!(s.decisions() - before, 3, "a 200 with cookies was cached");

    // The control: the same session without the stale cookie is cached
    // (one decision for three requests) and sets no cookie.
    let clean = format!("Cookie: __session={token}; {uat}");
    let before = s.decisions();
    for _ in 0..3 {
        let rsp = s.get("/api/x", &[&clean, API_ACCEPT, "Sec-Fetch-Dest: empty"]);
        s.app_saw(&rsp);
        assert_eq!(rsp.header("Set-Cookie"), None);
    }
    assert_eq!(s.decisions() - before, 1);
}

/// A stand-in for jwtgate that answers every request with the status it is
/// set to, `X-User-Id: user_fake` and an `X-Accel-Expires` a minute ahead,
/// whatever the status.
struct FakeAuth {
    addr: SocketAddr,
    status: Arc<std::sync::atomic::AtomicU16>,
    requests: Arc<AtomicUsize>,
}

impl FakeAuth {
    fn start() -> FakeAuth {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = FakeAuth {
            addr: listener.local_addr().unwrap(),
            status: Arc::new(200.into()),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let (status, requests) = (fake.status.clone(), fake.requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (status, requests) = (status.clone(), requests.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    loop {
                        // Request line and headers; nginx sends no body here.
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        requests.fetch_add(1, Ordering::SeqCst);
                        let status = status.load(Ordering::SeqCst);
                        let response = format!(
                            "HTTP/1.1 {status} Fake\r\nContent-Length: 0\r\n\
                             X-User-Id: user_fake\r\nX-Accel-Expires: @{}\r\n\r\n",
                            now() + 60
                        );
                        if writer.write_all(response.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        fake
    }

    fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

#[test]
fn only_200s_are_stored_even_when_other_statuses_carry_x_accel_expires() {
    // X-Accel-Expires overrides proxy_cache_valid's list of statuses; the
    // cache config must keep non-200 answers out by itself
    // ($jwtgate_cache_skip), not rely on jwtgate sending the header only
    // with 200.
    let fake = FakeAuth::start();
    let app = App::start();
    let nginx = Nginx::start_with(fake.addr, app.addr, Decisions::Cached);
    let get = || {
        let raw = raw_request(
            "GET",
            "/page",
            &["Authorization: Bearer same", API_ACCEPT],
            "",
        );
        request(nginx.addr, &raw).unwrap_or_else(|e| panic!("{e}\n{}", nginx.logs()))
    };
    // (auth status, what the client gets)
    for (status, client) in [(401, 401), (403, 403), (503, 500), (401, 401)] {
        fake.set_status(status);
        let before = fake.requests();
        for _ in 0..3 {
            assert_eq!(get().status, client, "auth server answered {status}");
        }
        assert_eq!(
            fake.requests() - before,
            3,
            "a {status} was served from the cache"
        );
    }
    // The control: the same answer as a 200 is stored, so the test above
    // would have seen caching.
    fake.set_status(200);
    let before = fake.requests();
    for _ in 0..3 {
        let rsp = get();
        assert_eq!(rsp.status, 200, "{rsp:#?}");
        assert_eq!(
            Echo::parse(&rsp.body).header("X-User-Id"),
            Some("user_fake")
        );
    }
    assert_eq!(fake.requests() - before, 1);
    assert_eq!(app.requests(), 3);
}

#[test]
fn concurrent_first_requests_for_one_token_each_get_its_identity() {
    // proxy_cache_lock: the requests of a page that arrive together with a
    // token nginx has not seen yet mostly wait for the first answer
    // (bounded by proxy_cache_lock_timeout) instead of all asking jwtgate.
    let s = Stack::start_cached();
    const N: usize = 8;
    for round in 0..3 {
        let user = format!("user_{round}");
        let raw = raw_request("GET", "/page", &[&bearer(&s.token(&user))], "");
        let barrier = Arc::new(std::sync::Barrier::new(N));
        let allowed = s.allowed();
        let threads: Vec<_> = (0..N)
            .map(|_| {
                let (raw, barrier, addr) = (raw.clone(), barrier.clone(), s.nginx.addr);
                std::thread::spawn(move || {
                    barrier.wait();
                    let started = Instant::now();
                    let rsp = request(addr, &raw);
                    (rsp, started.elapsed())
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for t in threads {
            let (rsp, elapsed) = t.join().unwrap();
            let echo = s.app_saw(&rsp.unwrap());
            assert_eq!(echo.header("X-User-Id"), Some(user.as_str()));
            slowest = slowest.max(elapsed);
        }
        let asked = s.allowed() - allowed;
        println!(
            "{N} concurrent first requests: jwtgate asked {asked} time(s), slowest {slowest:?}"
        );
        assert!((1..=N as u64).contains(&asked));
        assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    }
}
