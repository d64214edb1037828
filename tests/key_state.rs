//! Keys that survive restarts: the state directory (`keys.state_dir`, or
//! systemd's `$STATE_DIRECTORY`), the bound on how old keys may get
//! (`keys.max_stale_secs`), and key age in `/metrics` and `/readyz`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn state_dir_key(dir: &TempDir) -> String {
    format!("state_dir = \"{}\"", dir.0.display())
}

/// A state file as jwtgate writes it, for `url`, fetched `age_secs` ago.
fn state_file(url: &str, keys: &[&Key], age_secs: i64) -> String {
    let jwks: Value = serde_json::from_str(&jwks(keys)).unwrap();
    json!({"version": 1, "url": url, "fetched_at": now() - age_secs, "jwks": jwks}).to_string()
}

/// The daemon keeps the last good JWKS in `$STATE_DIRECTORY` (the first of
/// several, as systemd sets it); restarted while the key server is down,
/// it serves from it at once, with no 503 window.
#[test]
fn a_restart_during_a_key_server_outage_serves_from_the_state_directory() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let state = TempDir::new("state");
    let state_env = format!("{}:/nonexistent/second", state.0.display());
    let token = key.sign(&claims("user_state"));
    {
        let daemon = Daemon::start_with(&jwks_config(&server, ""), |cmd| {
            cmd.env("STATE_DIRECTORY", &state_env);
        });
        daemon.wait_ready();
        assert_eq!(daemon.bearer(&token).status, 200);
        daemon.wait_until(|_| state.path("jwks.json").exists(), "the state file");
    } // SIGKILL: no chance to write anything on the way out
    let file = state.path("jwks.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["url"], server.url());
    assert_eq!(saved["jwks"]["keys"][0]["kid"], "ins_1");
    let names: Vec<_> = std::fs::read_dir(&state.0).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left behind");

    server.set_down(true);
    let started = Instant::now();
    let daemon = Daemon::start_with(&jwks_config(&server, ""), |cmd| {
        cmd.env("STATE_DIRECTORY", &state_env);
    });
    let r = daemon.bearer(&token);
    eprintln!(
        "first /auth after a restart during the outage: {} ({:?} after spawn)",
        r.status,
        started.elapsed()
    );
    assert_eq!((r.status, r.header("x-user-id")), (200, Some("user_state")));
    assert!(
        daemon.log_text().contains("restored 1 key(s)"),
        "{}",
        daemon.log_text()
    );
    daemon.wait_until(
        |d| d.metric("jwtgate_key_fetches_total{outcome=\"error\"}") >= 1.0,
        "the failed fetch",
    );
    assert_eq!(daemon.bearer(&key.sign(&claims("user_2"))).status, 200);
    assert_eq!(daemon.get("/readyz").status, 200);
    let fetched_at = saved["fetched_at"].as_f64().unwrap();
    assert_eq!(
        daemon.metric("jwtgate_last_good_key_fetch_timestamp_seconds"),
        fetched_at
    );
    let age = daemon.metric("jwtgate_key_age_seconds");
    assert!((0.0..60.0).contains(&age), "{age}");
}

/// A state file saved for another `jwks_url` is never trusted: the daemon
/// waits for its own key server (503 meanwhile), then replaces the file.
#[test]
fn a_state_file_for_another_url_is_ignored() {
    let ours = Key::rsa("ins_ours", 2048);
    let theirs = Key::rsa("ins_theirs", 2048);
    let server = KeyServer::start(jwks(&[&ours]));
    server.set_down(true);
    let state = TempDir::new("other-url");
    let other_url = "http://127.0.0.1:9/v1/jwks";
    std::fs::write(
        state.path("jwks.json"),
        state_file(other_url, &[&theirs], 10),
    )
    .unwrap();
    let daemon = Daemon::start(&jwks_config(&server, &state_dir_key(&state)));
    daemon.wait_until(
        |d| d.metric("jwtgate_key_fetches_total{outcome=\"error\"}") >= 1.0,
        "the failed fetch",
    );
    let log = daemon.log_text();
    assert!(
        log.contains("not using the saved keys") && log.contains(other_url),
        "{log}"
    );
    assert_eq!(daemon.bearer(&theirs.sign(&claims("x"))).status, 503);
    assert_eq!(daemon.get("/readyz").status, 503);
    assert!(daemon
        .get("/metrics")
        .body
        .contains("jwtgate_keys_loaded 0\n"));

    server.set_down(false);
    daemon.wait_ready();
    assert_eq!(daemon.bearer(&ours.sign(&claims("u"))).status, 200);
    assert_eq!(
        daemon.bearer(&theirs.sign(&claims("x"))).reason(),
        Some("jwk-kid-mismatch")
    );
    daemon.wait_until(
        |_| {
            std::fs::read_to_string(state.path("jwks.json"))
                .is_ok_and(|t| t.contains(&server.url()))
        },
        "the file rewritten for our URL",
    );
}

/// Without a state directory, keys are not persisted, and the log says so.
#[test]
fn without_a_state_directory_nothing_is_written() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    assert!(daemon
        .log_text()
        .contains("keys are not kept across restarts"));
}

/// Keys older than `keys.max_stale_secs` are not used: a state file past
/// the bound is refused at start; keys that reach it while in use are
/// retired (503, cached decisions included) with an ERROR line, until a
/// fetch succeeds.
#[test]
fn keys_older_than_max_stale_secs_are_not_used() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    server.set_down(true);
    let state = TempDir::new("stale");
    let bound = "refresh_secs = 10\nmax_stale_secs = 60\n";
    let config = jwks_config(&server, &format!("{}\n{bound}", state_dir_key(&state)));
    let token = key.sign(&claims("user_stale"));

    std::fs::write(
        state.path("jwks.json"),
        state_file(&server.url(), &[&key], 61),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    assert_eq!(daemon.bearer(&token).status, 503);
    assert!(
        daemon
            .log_text()
            .contains("over keys.max_stale_secs (60 s): not used"),
        "{}",
        daemon.log_text()
    );
    drop(daemon);

    // 57 s old: usable for 3 more seconds.
    std::fs::write(
        state.path("jwks.json"),
        state_file(&server.url(), &[&key], 57),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    assert_eq!(daemon.bearer(&token).status, 200);
    assert_eq!(daemon.bearer(&token).status, 200, "now cached");
    let age = daemon.metric("jwtgate_key_age_seconds");
    assert!((57.0..60.0).contains(&age), "{age}");
    let started = Instant::now();
    daemon.wait_until(|d| d.bearer(&token).status == 503, "the keys to go stale");
    eprintln!("stale after {:?} (expected about 3 s)", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(daemon.get("/readyz").status, 503);
    daemon.wait_until(
        |d| d.log_text().contains("they are no longer used"),
        "the ERROR line",
    );
    assert!(daemon.log_text().contains("ERROR"));

    server.set_down(false);
    daemon.signal("HUP");
    daemon.wait_until(|d| d.bearer(&token).status == 200, "fresh keys");
    assert_eq!(daemon.get("/readyz").status, 200);
}
