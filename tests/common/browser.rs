//! A real browser for tests: Debian's `chromium`, headless, driven by
//! `chromedriver` over WebDriver (its HTTP JSON API, with reqwest).
//!
//! Host names are mapped to loopback ports with Chromium's
//! `--host-resolver-rules`, port included (`MAP app.test:443
//! 127.0.0.1:<port>`), so the browser sees real-looking `https://app.test/`
//! URLs on the default port: cookies, `Host`, Origin and Referer look as in
//! production. Every other name resolves to nothing. Certificates are the
//! test's own self-signed ones, accepted with `--ignore-certificate-errors`
//! (and WebDriver's `acceptInsecureCerts`).
//!
//! Every call has a timeout; chromedriver runs in its own process group,
//! which is killed (chromium with it) when the [`Browser`] is dropped.
//! Binaries: `CHROMEDRIVER` (default `/usr/bin/chromedriver`) and `CHROMIUM`
//! (default `/usr/bin/chromium`); `apt-get install chromium chromium-driver`.
//!
//! Include it from a test crate root that also has `mod common;`:
//! `#[path = "common/browser.rs"] mod browser;`
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{free_port, TempDir};

const INSTALL_HINT: &str = "the browser tests need Debian's chromium and chromium-driver \
     (they never skip): apt-get install -y chromium chromium-driver, or set \
     CHROMIUM=/path/to/chromium and CHROMEDRIVER=/path/to/chromedriver";

/// Page loads and scripts give up after this long.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// A cookie as the browser holds it.
#[derive(Debug, Clone)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    pub http_only: bool,
    pub secure: bool,
    /// Seconds since the epoch; `None` for a session cookie.
    pub expires: Option<f64>,
}

/// What a `fetch()` run in the page got.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub redirected: bool,
    pub url: String,
    pub kind: String,
    pub body: String,
}

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    log: PathBuf,
    _profile: TempDir,
}

fn bin(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// `--host-resolver-rules` mapping each `host` (port 443) to `addr`, and
/// every other name to nothing.
pub fn resolver_rules(hosts: &[(&str, SocketAddr)]) -> String {
    let mut rules: Vec<String> = hosts
        .iter()
        .map(|(h, a)| format!("MAP {h}:443 {a}"))
        .collect();
    rules.push("EXCLUDE 127.0.0.1".into());
    rules.push("MAP * ~NOTFOUND".into());
    rules.join(", ")
}

impl Browser {
    /// Starts chromedriver and a headless chromium session in a fresh
    /// profile, with `hosts` mapped (see [`resolver_rules`]).
    pub fn start(hosts: &[(&str, SocketAddr)]) -> Browser {
        let driver_bin = bin("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = bin("CHROMIUM", "/usr/bin/chromium");
        assert!(
            chromium.exists(),
            "{} is missing: {INSTALL_HINT}",
            chromium.display()
        );
        let profile = TempDir::new("chromium");
        let log = profile.path("chromedriver.log");
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Drop kills chromedriver and chromium
            // together, whatever state a failed test left them in.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}\n{INSTALL_HINT}", driver_bin.display()));
        let http = reqwest::blocking::Client::builder()
            .timeout(PAGE_TIMEOUT + Duration::from_secs(15))
            .no_proxy()
            .build()
            .unwrap();
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http,
            log,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                panic!("chromedriver exited at start ({status})\n{INSTALL_HINT}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver never listened on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let user_data = browser._profile.path("profile");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--ignore-certificate-errors".into(),
            "--window-size=1024,768".into(),
            format!("--user-data-dir={}", user_data.display()),
            format!("--host-resolver-rules={}", resolver_rules(hosts)),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": PAGE_TIMEOUT.as_millis() as u64,
                         "script": PAGE_TIMEOUT.as_millis() as u64, "implicit": 0},
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
        }}});
        let v = browser
            .call("POST", "/session", Some(caps))
            .unwrap_or_else(|e| panic!("new WebDriver session: {e}\n{INSTALL_HINT}"));
        browser.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {v}"))
            .to_string();
        browser
    }

    /// One WebDriver command; `Err` carries WebDriver's error text.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body.unwrap_or(json!({})).to_string()),
        };
        let rsp = req.send().map_err(|e| format!("{method} {path}: {e}"))?;
        let status = rsp.status();
        let text = rsp
            .text()
            .map_err(|e| format!("{method} {path}: reading the answer: {e}"))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{method} {path}: bad JSON: {e}: {text:.200}"))?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!(
                "{method} {path}: {} {}: {}",
                status,
                value["error"].as_str().unwrap_or(""),
                value["message"].as_str().unwrap_or("")
            ));
        }
        Ok(value)
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Navigates (a top-level navigation, like typing the URL) and waits
    /// for the load. `Err` on a network error page, e.g. too many redirects.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .map(|_| ())
    }

    /// The current top-level URL.
    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn run(&self, script: &str, args: Value) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs an async script: it must call `arguments[arguments.length - 1]`.
    pub fn run_async(&self, script: &str, args: Value) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.run(
            "return document.body ? document.body.innerText : '';",
            json!([]),
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    /// The page's `document.title`.
    pub fn title(&self) -> String {
        self.run("return document.title;", json!([]))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Clicks the element with this id and waits for the navigation it
    /// starts (up to [`PAGE_TIMEOUT`]): until the URL changes, then until
    /// the new document has loaded.
    pub fn click_and_wait(&self, id: &str) -> Result<(), String> {
        let before = self.url();
        let marker = format!("m{}", crate::common::now());
        self.run(
            "window.__jwtgate_marker = arguments[1]; document.getElementById(arguments[0]).click();",
            json!([id, marker]),
        )?;
        let deadline = Instant::now() + PAGE_TIMEOUT;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let state = self.run(
                "return [document.readyState, window.__jwtgate_marker || null];",
                json!([]),
            );
            if let Ok(v) = state {
                if v[0] == "complete" && v[1].is_null() {
                    return Ok(());
                }
            }
        }
        Err(format!("no navigation after clicking #{id} on {before}"))
    }

    /// `fetch(url)` from the page (same-origin credentials, redirects
    /// followed unless `follow` is false), as a page's own script would.
    pub fn fetch(&self, url: &str, follow: bool) -> Result<Fetched, String> {
        let v = self.run_async(
            "const done = arguments[arguments.length - 1];\
             fetch(arguments[0], {credentials: 'same-origin', redirect: arguments[1] ? 'follow' : 'manual'})\
               .then(async r => done({status: r.status, redirected: r.redirected, url: r.url, type: r.type,\
                                      body: await r.text()}))\
               .catch(e => done({error: String(e)}));",
            json!([url, follow]),
        )?;
        if let Some(e) = v["error"].as_str() {
            return Err(format!("fetch({url}): {e}"));
        }
        Ok(Fetched {
            status: v["status"].as_u64().unwrap_or(0) as u16,
            redirected: v["redirected"].as_bool().unwrap_or(false),
            url: v["url"].as_str().unwrap_or("").to_string(),
            kind: v["type"].as_str().unwrap_or("").to_string(),
            body: v["body"].as_str().unwrap_or("").to_string(),
        })
    }

    /// Every cookie in the profile, all hosts, HttpOnly ones included
    /// (DevTools `Storage.getCookies` through chromedriver).
    pub fn all_cookies(&self) -> Vec<Cookie> {
        let v = self
            .cmd(
                "POST",
                "/goog/cdp/execute",
                Some(json!({"cmd": "Storage.getCookies", "params": {}})),
            )
            .or_else(|_| {
                self.cmd(
                    "POST",
                    "/goog/cdp/execute",
                    Some(json!({"cmd": "Network.getAllCookies", "params": {}})),
                )
            })
            .unwrap_or_else(|e| panic!("reading cookies: {e}"));
        v["cookies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| Cookie {
                        name: c["name"].as_str().unwrap_or("").into(),
                        value: c["value"].as_str().unwrap_or("").into(),
                        domain: c["domain"].as_str().unwrap_or("").into(),
                        path: c["path"].as_str().unwrap_or("").into(),
                        http_only: c["httpOnly"].as_bool().unwrap_or(false),
                        secure: c["secure"].as_bool().unwrap_or(false),
                        expires: c["expires"]
                            .as_f64()
                            .filter(|e| *e > 0.0 && !c["session"].as_bool().unwrap_or(false)),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cookies a request to `https://<host>/` would carry (domain match,
    /// path ignored).
    pub fn cookies_for(&self, host: &str) -> Vec<Cookie> {
        self.all_cookies()
            .into_iter()
            .filter(|c| {
                let d = c.domain.trim_start_matches('.');
                if c.domain.starts_with('.') {
                    host == d || host.ends_with(&format!(".{d}"))
                } else {
                    host == d
                }
            })
            .collect()
    }

    /// The value of cookie `name` sent to `host`, if any.
    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.cookies_for(host)
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
    }

    /// Removes every cookie of the profile.
    pub fn clear_cookies(&self) {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": "Network.clearBrowserCookies", "params": {}})),
        )
        .unwrap_or_else(|e| panic!("clearing cookies: {e}"));
    }

    /// chromedriver's log (for failure messages).
    pub fn driver_log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text[text.floor_char_boundary_compat(start)..].to_string()
    }
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for String {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Closes chromium cleanly (bounded by the client's timeout).
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        // Then the whole process group, by its id (chromedriver's pid).
        let pgid = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &pgid]).status();
        let _ = self.driver.wait();
    }
}
