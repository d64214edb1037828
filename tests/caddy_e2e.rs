//! End to end through a real Caddy (Debian's `caddy` package): the shipped
//! `contrib/caddy/Caddyfile` in front of the real `jwtgate` binary (its
//! `/forward` route) and the echoing app, rewritten only for addresses.
//!
//! These tests FAIL, never skip, when Caddy is missing (`apt-get install
//! -y caddy`; `scripts/test` installs it). Set `CADDY=/path/to/caddy` to
//! use another binary.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::echo::{App, Echo};
use common::*;
use serde_json::json;

const SITE_HOST: &str = "app.example.com";

/// Caddy with the shipped Caddyfile, stopped on drop.
struct Caddy {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl Caddy {
    fn start(jwtgate: SocketAddr, app: SocketAddr) -> Caddy {
        let dir = TempDir::new("caddy");
        let port = free_port();
        let shipped = std::fs::read_to_string(repo_path("contrib/caddy/Caddyfile")).unwrap();
        let text = shipped
            .replace("127.0.0.1:7070", &jwtgate.to_string())
            .replace("127.0.0.1:3000", &app.to_string())
            .replace(
                "http://app.example.com:8080",
                &format!("http://{SITE_HOST}:{port}"),
            );
        for (from, what) in [("127.0.0.1:7070", "jwtgate"), ("127.0.0.1:3000", "the app")] {
            assert!(
                shipped.contains(from),
                "the Caddyfile no longer names {what} as {from}"
            );
        }
        let config = dir.path("Caddyfile");
        std::fs::write(&config, text).unwrap();
        let log = dir.path("caddy.log");
        let bin = std::env::var_os("CADDY").map_or(PathBuf::from("caddy"), PathBuf::from);
        let child = Command::new(bin)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&config)
            .env("HOME", &dir.0)
            .env("XDG_DATA_HOME", dir.path("data"))
            .env("XDG_CONFIG_HOME", dir.path("config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("Caddy is required (apt-get install -y caddy, or set CADDY)");
        let caddy = Caddy {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while caddy.get("/public/ping", &[]).is_err() {
            assert!(
                Instant::now() < deadline,
                "Caddy did not start; log:\n{}",
                std::fs::read_to_string(&caddy.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        caddy
    }

    fn get(&self, path: &str, headers: &[String]) -> std::io::Result<Response> {
        let mut raw = format!(
            "GET {path} HTTP/1.1\r\nHost: {SITE_HOST}:{}\r\n",
            self.addr.port()
        );
        for h in headers {
            raw.push_str(h);
            raw.push_str("\r\n");
        }
        raw.push_str("Connection: close\r\n\r\n");
        request(self.addr, &raw)
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What Chrome sends for a top-level navigation: 26 headers in all with
/// Host, the credentials and a client's forged identity headers.
fn browser_headers(credentials: &str) -> Vec<String> {
    let mut h: Vec<String> = [
        "Connection: keep-alive",
        "Cache-Control: max-age=0",
        "sec-ch-ua: \"Chromium\";v=\"156\", \"Not-A.Brand\";v=\"24\"",
        "sec-ch-ua-mobile: ?0",
        "sec-ch-ua-platform: \"Linux\"",
        "Upgrade-Insecure-Requests: 1",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
        "Sec-Fetch-Site: same-origin",
        "Sec-Fetch-Mode: navigate",
        "Sec-Fetch-User: ?1",
        "Sec-Fetch-Dest: document",
        "Referer: http://app.example.com/",
        "Accept-Encoding: gzip, deflate, br, zstd",
        "Accept-Language: en-US,en;q=0.9,de;q=0.8",
        "Priority: u=0, i",
        "DNT: 1",
        "X-Requested-With: none",
        "Pragma: no-cache",
        "If-None-Match: \"abc\"",
        "X-User-Id: attacker",
        "X-Org-Id: attacker",
        "X-Org-Role: org:admin",
    ]
    .map(String::from)
    .to_vec();
    h.push(credentials.to_string());
    h
}

struct Stack {
    key: Key,
    _daemon: Daemon,
    app: App,
    caddy: Caddy,
}

fn stack() -> Stack {
    let key = Key::rsa("ins_1", 2048);
    let daemon = Daemon::start(&format!(
        "[keys]\njwt_key = \"\"\"{}\"\"\"\n[verify]\nissuer = \"{ISSUER}\"\n",
        key.public_pem()
    ));
    daemon.wait_ready();
    let app = App::start();
    let caddy = Caddy::start(daemon.addr, app.addr);
    Stack {
        key,
        _daemon: daemon,
        app,
        caddy,
    }
}

#[test]
fn a_browser_sized_request_reaches_the_app_with_the_verified_identity_only() {
    let s = stack();
    let token = s.key.sign(&claims("user_caddy"));
    let headers = browser_headers(&format!("Cookie: theme=dark; __session={token}; other=1"));
    assert_eq!(headers.len() + 2, 26, "Host and Connection make 26");
    let r = s.caddy.get("/dashboard?x=1", &headers).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let echo = Echo::parse(&r.body);
    echo.assert_identity(&[
        ("X-User-Id", "user_caddy"),
        ("X-Session-Id", "sess_user_caddy"),
    ]);
    assert_eq!(echo.request_line, "GET /dashboard?x=1 HTTP/1.1");
}

#[test]
fn no_token_is_a_401_from_jwtgate_and_never_reaches_the_app() {
    let s = stack();
    let before = s.app.requests();
    let r = s
        .caddy
        .get("/dashboard", &["Accept: application/json".into()])
        .unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let bad = s
        .key
        .sign(&json!({"sub": "user_x", "exp": now() - 600, "iss": ISSUER}));
    let r = s
        .caddy
        .get("/dashboard", &[format!("Authorization: Bearer {bad}")])
        .unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.reason(), Some("token-expired"));
    assert_eq!(s.app.requests(), before, "nothing reached the app");
    let r = s.caddy.get("/public/page", &[]).unwrap();
    assert_eq!(r.status, 200, "public routes need no token");
}

#[test]
fn a_location_rule_gives_403_to_a_signed_in_user_who_fails_it() {
    let s = stack();
    let mut member = claims("user_member");
    member["o"] = json!({"id": "org_1", "slg": "acme", "rol": "member"});
    let mut admin = claims("user_admin");
    admin["o"] = json!({"id": "org_1", "slg": "acme", "rol": "admin"});
    let bearer = |c| format!("Authorization: Bearer {}", s.key.sign(c));
    let before = s.app.requests();
    let r = s.caddy.get("/admin/users", &[bearer(&member)]).unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(s.app.requests(), before);
    let r = s
        .caddy
        .get("/admin/users?role=x&q=1", &[bearer(&admin)])
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    Echo::parse(&r.body).assert_identity(&[
        ("X-User-Id", "user_admin"),
        ("X-Session-Id", "sess_user_admin"),
        ("X-Org-Id", "org_1"),
        ("X-Org-Role", "org:admin"),
        ("X-Org-Slug", "acme"),
    ]);
}
