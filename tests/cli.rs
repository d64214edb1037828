//! The command line: `check`, `verify`, `demo`, `--version`, and config
//! errors that name the bad key.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = jwtgate_command();
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_config(dir: &TempDir, toml: &str) -> String {
    let path = dir.path("jwtgate.toml");
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

#[test]
fn version_and_help() {
    let out = run(&["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), expected_version());
    let out = run(&["--help"], &[]);
    assert!(text(&out.stdout).contains("verify TOKEN"));
    let out = run(&["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown command: frobnicate"));
}

#[test]
fn check_loads_the_keys_and_reports_them() {
    let key = Key::rsa("ins_check", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let dir = TempDir::new("check");
    let config = write_config(&dir, &jwks_config(&server, ""));
    let out = run(&["--config", &config, "check"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(line.starts_with("ok: 1 key(s) from JWKS"), "{line}");
    assert!(line.contains("kid: ins_check"), "{line}");
    server.set_down(true);
    let out = run(&["--config", &config, "check"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("HTTP 500"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn config_errors_name_the_key() {
    let dir = TempDir::new("cfgerr");
    let pem_key = Key::rsa("p", 2048).public_pem();
    // (config file, environment, what the error must name)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "[keys]\njwks_url = \"https://x/jwks\"\ncache_capacity = \"lots\"\n".into(),
            vec![],
            "cache_capacity",
        ),
        (
            "[keys]\njwks_url = \"https://x/jwks\"\ntypo_key = 1\n".into(),
            vec![],
            "typo_key",
        ),
        (
            "[verify]\nleeway_secs = 5\n".into(),
            vec![],
            "keys: no key source",
        ),
        ("[keys\n".into(), vec![], "TOML parse error at line 1"),
        (
            "[keys]\njwks_url = \"https://x/jwks\"\nrefresh_secs = 1\n".into(),
            vec![],
            "keys.refresh_secs",
        ),
        (
            "[keys]\njwt_key = \"garbage\"\n".into(),
            vec![],
            "keys.jwt_key",
        ),
        (
            "[keys]\njwt_key_file = \"/nonexistent/clerk.pem\"\n".into(),
            vec![],
            "keys.jwt_key_file",
        ),
        (
            "listen = \"not-an-address\"\n[keys]\njwks_url = \"https://x\"\n".into(),
            vec![],
            "listen",
        ),
        (
            String::new(),
            vec![("JWTGATE_KEYS__FETCH_TIMEOUT_MS", "5")],
            "keys.fetch_timeout_ms",
        ),
        (String::new(), vec![("JWTGATE_NOPE", "1")], "nope"),
        (
            String::new(),
            vec![("CLERK_PUBLISHABLE_KEY", "pk_live_bad")],
            "keys.publishable_key",
        ),
        (
            format!("[keys]\njwt_key = \"\"\"{pem_key}\"\"\"\njwt_key_file = \"/x\"\n"),
            vec![],
            "keys.jwt_key and keys.jwt_key_file",
        ),
        // The secret only over https (plain http only to loopback): refused
        // before any connection is made.
        (
            "[keys]\njwks_url = \"http://192.0.2.1/v1/jwks\"\nsecret_key = \"sk_test_x\"\n".into(),
            vec![],
            "keys.secret_key: would be sent in clear to keys.jwks_url http://192.0.2.1/v1/jwks",
        ),
        (
            String::new(),
            vec![
                ("CLERK_SECRET_KEY", "sk_test_x"),
                ("JWTGATE_KEYS__JWKS_URL", "http://jwks.internal/v1/jwks"),
            ],
            "keys.secret_key",
        ),
        (
            "[keys]\nsecret_key = \"sk_test_x\"\nmax_stale_secs = 600\n".into(),
            vec![],
            "keys.max_stale_secs: 600 must be more than keys.refresh_secs (3600)",
        ),
        (
            "[keys]\nsecret_key = \"sk_test_x\"\nstate_dir = \"/nonexistent/state\"\n".into(),
            vec![],
            "keys.state_dir: /nonexistent/state",
        ),
        (
            String::new(),
            vec![
                ("CLERK_SECRET_KEY", "sk_test_x"),
                ("STATE_DIRECTORY", "/nonexistent/state:/x"),
            ],
            "keys.state_dir: /nonexistent/state",
        ),
    ];
    for (toml, env, want) in cases {
        let config = write_config(&dir, &toml);
        let out = run(&["--config", &config, "check"], &env);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml} {env:?}: {err}");
        assert!(
            err.starts_with("jwtgate: ") && err.contains(want),
            "want {want:?} in {err:?}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "one clear line: {err}");
    }
    let out = run(&["--config", "/nonexistent.toml", "check"], &[]);
    assert!(text(&out.stderr).contains("/nonexistent.toml: not found"));
}

#[test]
fn environment_configures_everything() {
    let key = Key::rsa("ins_env", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let out = run(
        &["check"],
        &[
            ("JWTGATE_KEYS__JWKS_URL", &server.url()),
            ("CLERK_SECRET_KEY", SECRET),
            (
                "JWTGATE_VERIFY__AUTHORIZED_PARTIES",
                "https://a.example,https://b.example",
            ),
            ("JWTGATE_VERIFY__ISSUER", ISSUER),
        ],
    );
    let line = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        line.contains("authorized parties https://a.example, https://b.example"),
        "{line}"
    );
    assert!(line.contains(&format!("issuer {ISSUER}")), "{line}");
}

#[test]
fn verify_prints_claims_or_the_reason() {
    let key = Key::rsa("ins_v", 2048);
    let dir = TempDir::new("verify");
    let config = write_config(
        &dir,
        &format!("[keys]\njwt_key = \"\"\"{}\"\"\"\n", key.public_pem()),
    );
    let token = key.sign(&claims("user_cli"));
    let out = run(&["--config", &config, "verify", &token], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], "user_cli");

    let mut expired = common::claims("user_old");
    expired["exp"] = (now() - 3600).into();
    let out = run(&["--config", &config, "verify", &key.sign(&expired)], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).trim(), "token-expired");
    assert!(out.stdout.is_empty());

    // TOKEN "-" reads stdin.
    let mut child = jwtgate_command()
        .args(["--config", &config, "verify", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("\"user_cli\""));

    // `jwtgate verify ... | head -1`: a reader that went away is no panic.
    let mut child = jwtgate_command()
        .args(["--config", &config, "verify", &token])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before jwtgate writes
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_prints_a_curl_line_whose_token_works() {
    let port = free_port();
    let mut child = jwtgate_command()
        .arg("demo")
        .env("JWTGATE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut token = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while token.is_none() && Instant::now() < deadline {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line
            .trim()
            .strip_prefix("curl -i -H 'Authorization: Bearer ")
        {
            token = rest.split('\'').next().map(str::to_string);
            assert!(
                rest.contains(&format!("http://127.0.0.1:{port}/auth")),
                "{line}"
            );
        }
    }
    let token = token.expect("a curl line with a token");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let get = |raw: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match request(addr, raw) {
                Ok(r) => return r,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    let ok = get(&format!(
        "GET /auth HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    ));
    assert_eq!(
        (ok.status, ok.header("x-user-id")),
        (200, Some("user_demo"))
    );
    assert_eq!(ok.header("x-org-role"), Some("org:admin"));
    let denied = get("GET /auth HTTP/1.1\r\n\r\n");
    assert_eq!(
        (denied.status, denied.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Kubernetes gives every pod `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_...`
/// variables for each Service; for a Service named `jwtgate` (or
/// `jwtgate-...`) they start with `JWTGATE_`. They must not stop jwtgate,
/// while a real typo in a `JWTGATE_*` name still does.
#[test]
fn kubernetes_service_variables_are_not_config_but_typos_are_reported() {
    let key = Key::rsa("ins_k8s", 2048);
    let dir = TempDir::new("k8s");
    let config = write_config(
        &dir,
        &format!("[keys]\njwt_key = \"\"\"{}\"\"\"\n", key.public_pem()),
    );
    let kubernetes = [
        ("JWTGATE_SERVICE_HOST", "10.96.0.12"),
        ("JWTGATE_SERVICE_PORT", "7070"),
        ("JWTGATE_SERVICE_PORT_HTTP", "7070"),
        ("JWTGATE_PORT", "tcp://10.96.0.12:7070"),
        ("JWTGATE_PORT_7070_TCP", "tcp://10.96.0.12:7070"),
        ("JWTGATE_PORT_7070_TCP_PROTO", "tcp"),
        ("JWTGATE_PORT_7070_TCP_PORT", "7070"),
        ("JWTGATE_PORT_7070_TCP_ADDR", "10.96.0.12"),
        ("JWTGATE_METRICS_SERVICE_HOST", "fd00::12"),
        ("JWTGATE_METRICS_PORT", "tcp://[fd00::12]:9090"),
        ("JWTGATE_METRICS_PORT_9090_TCP_ADDR", "fd00::12"),
    ];
    let out = run(&["--config", &config, "check"], &kubernetes);
    assert!(out.status.success(), "{}", text(&out.stderr));

    for (typo, value, named) in [
        ("JWTGATE_KEYS__JWKS_ULR", "https://x/jwks", "jwks_ulr"),
        ("JWTGATE_LISTEN_PORT", "7070", "listen_port"),
        ("JWTGATE_SERVICE_HOST", "not an address", "service_host"),
        ("JWTGATE_PORT", "7070", "port"),
        (
            "JWTGATE_VERIFY_ISSUER",
            "https://clerk.example.com",
            "verify_issuer",
        ),
    ] {
        let mut env = kubernetes.to_vec();
        env.retain(|(k, _)| *k != typo);
        env.push((typo, value));
        let out = run(&["--config", &config, "check"], &env);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{typo}={value}: {err}");
        assert!(err.contains(&format!("`{named}`")), "{typo}: {err}");
    }
}

/// `RUST_LOG=info` or `debug` (as the shipped unit or an operator sets it)
/// turns on jwtgate's own lines, not those of the HTTP libraries; naming a
/// library still does.
#[test]
fn log_levels_leave_the_libraries_quiet_unless_named() {
    let key = Key::rsa("ins_log", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let dir = TempDir::new("logs");
    let config = write_config(&dir, &jwks_config(&server, ""));
    let library_lines = |rust_log: &str| {
        let out = run(&["--config", &config, "check"], &[("RUST_LOG", rust_log)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        // env_logger's lines: `[<time> <LEVEL> <module path>] <message>`
        text(&out.stderr)
            .lines()
            .filter_map(|l| l.strip_prefix('[')?.split(']').next())
            .filter_map(|head| head.split_whitespace().nth(2))
            .filter(|module| !module.starts_with("jwtgate"))
            .count()
    };
    let quiet = (library_lines("info"), library_lines("debug"));
    let named = library_lines("info,reqwest=debug,hyper_util=debug");
    eprintln!(
        "library log lines: {} at info, {} at debug, {named} when named",
        quiet.0, quiet.1
    );
    assert_eq!(quiet, (0, 0));
    assert!(named > 0, "naming a library turns its lines on");

    // The daemon as the shipped unit runs it: 50 keep-alive connections
    // that each ask once and close (as nginx does when idle).
    let daemon = Daemon::start_with(&jwks_config(&server, ""), |cmd| {
        cmd.env("RUST_LOG", "info");
    });
    daemon.wait_ready();
    for _ in 0..50 {
        let mut stream = std::net::TcpStream::connect(daemon.addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        read_response(&mut BufReader::new(&stream)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = daemon.log_text();
    let foreign: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.strip_prefix('[')
                .and_then(|l| l.split(']').next())
                .and_then(|head| head.split_whitespace().nth(2))
                .is_some_and(|module| !module.starts_with("jwtgate"))
        })
        .collect();
    eprintln!(
        "daemon at RUST_LOG=info, 50 connections: {} library lines",
        foreign.len()
    );
    assert!(foreign.is_empty(), "{foreign:?}");
}

/// `jwtgate <version>`, plus `(commit <12 hex digits>)` when the tests run
/// in a git checkout (as in CI), which build.rs must then have recorded.
fn expected_version() -> String {
    let version = format!("jwtgate {}", env!("CARGO_PKG_VERSION"));
    let repo = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(repo)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| text(&o.stdout).trim().to_string())
    };
    let top = git(&["rev-parse", "--show-toplevel"]).map(std::path::PathBuf::from);
    let is_top =
        top.and_then(|t| t.canonicalize().ok()) == std::path::Path::new(repo).canonicalize().ok();
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) if is_top && std::env::var_os("JWTGATE_BUILD_COMMIT").is_none() => {
            format!("{version} (commit {commit})")
        }
        _ => version,
    }
}

#[test]
fn help_subcommand_and_short_options() {
    let help = run(&["--help"], &[]);
    assert!(help.status.success());
    for (args, what) in [(&["help"][..], "help"), (&["-h"], "-h")] {
        let out = run(args, &[]);
        assert!(out.status.success(), "{what}");
        assert_eq!(out.stdout, help.stdout, "{what} shows the same help");
    }
    let help = text(&help.stdout);
    for option in [
        "-c, --config PATH",
        "-h, --help",
        "-V, --version",
        "\n  help ",
    ] {
        assert!(help.contains(option), "--help shows {option:?}:\n{help}");
    }
    let out = run(&["-V"], &[]);
    assert_eq!(text(&out.stdout).trim(), expected_version());
    // The README's "Command line" section shows this very text.
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("```text\n{help}```")),
        "README.md's Command line block differs from jwtgate --help:\n{help}"
    );
}

#[test]
fn verify_takes_a_pasted_bearer_header_and_a_closed_pipe() {
    let key = Key::rsa("ins_paste", 2048);
    let dir = TempDir::new("paste");
    let config = write_config(
        &dir,
        &format!("[keys]\njwt_key = \"\"\"{}\"\"\"\n", key.public_pem()),
    );
    let token = key.sign(&claims("user_paste"));
    for pasted in [
        format!("Bearer {token}"),
        format!("  bearer   {token}\n"),
        format!("Authorization: Bearer {token}"),
    ] {
        let out = run(&["-c", &config, "verify", &pasted], &[]);
        assert!(out.status.success(), "{pasted:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("\"user_paste\""));
    }
    let out = run(&["-c", &config, "verify", &format!("Basic {token}")], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).trim(), "token-invalid");

    // `jwtgate verify ... | head -1` once head has exited: stdout is a pipe
    // whose reader is gone, so every write fails with EPIPE.
    for args in [
        vec!["-c", config.as_str(), "verify", token.as_str()],
        vec!["-c", config.as_str(), "check"],
        vec!["--help"],
        vec!["--version"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = jwtgate_command()
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
