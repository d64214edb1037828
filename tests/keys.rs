//! Key handling of the running daemon: rotation, the unknown-kid refetch
//! bound, key-server outages, SIGHUP reloads (good and broken), SIGTERM.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// `jwks_config` allows one unknown-kid refetch per 2 s.
const MIN_REFETCH: Duration = Duration::from_secs(2);

#[test]
fn fetch_sends_the_secret_and_user_agent() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    let headers = server.last_headers.lock().unwrap().clone();
    assert_eq!(
        headers.get("authorization").map(String::as_str),
        Some(&*format!("Bearer {SECRET}"))
    );
    assert!(headers["user-agent"].starts_with("jwtgate/"), "{headers:?}");
}

#[test]
fn wrong_secret_is_an_outage_with_a_clear_log_line() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let config = jwks_config(&server, "").replace(SECRET, "sk_test_wrong");
    let daemon = Daemon::start(&config);
    daemon.wait_until(
        |d| d.log_text().contains("HTTP 401"),
        "a logged 401 from the key server",
    );
    assert_eq!(daemon.get("/readyz").status, 503);
    assert_eq!(daemon.bearer(&key.sign(&claims("u"))).status, 503);
}

#[test]
fn rotation_new_kid_is_fetched_on_first_use() {
    let old = Key::rsa("ins_old", 2048);
    let new = Key::rsa("ins_new", 2048);
    let server = KeyServer::start(jwks(&[&old]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    assert_eq!(server.fetches(), 1);
    server.set_keys(&[&old, &new]);
    std::thread::sleep(MIN_REFETCH + Duration::from_millis(200));
    let r = daemon.bearer(&new.sign(&claims("user_new")));
    assert_eq!(
        (r.status, r.header("x-user-id")),
        (200, Some("user_new")),
        "{r:?}"
    );
    assert_eq!(server.fetches(), 2, "one refetch for the new kid");
    assert_eq!(daemon.bearer(&new.sign(&claims("again"))).status, 200);
    assert_eq!(daemon.bearer(&old.sign(&claims("old"))).status, 200);
    assert_eq!(server.fetches(), 2, "known kids never refetch");
    assert_eq!(daemon.metric("jwtgate_keys_loaded"), 2.0);
}

#[test]
fn a_flood_of_unknown_kids_costs_a_handful_of_fetches() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    let started = Instant::now();
    let refused = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (daemon, key, refused) = (&daemon, &key, &refused);
            s.spawn(move || {
                for i in 0..125 {
                    let header = json!({"alg": "RS256", "kid": format!("kid-{t}-{i}-{}", now()), "typ": "JWT"});
                    let r = daemon.bearer(&key.sign_with(&header, &claims("u")));
                    if (r.status, r.reason()) == (401, Some("jwk-kid-mismatch")) {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    assert_eq!(
        refused.load(Ordering::Relaxed),
        1000,
        "every random kid is refused"
    );
    let allowed = 2 + (elapsed.as_secs_f64() / MIN_REFETCH.as_secs_f64()).ceil() as usize;
    assert!(
        server.fetches() <= allowed,
        "{} fetches for 1000 unknown kids in {elapsed:?} (bound {allowed})",
        server.fetches()
    );
    assert_eq!(
        daemon.bearer(&key.sign(&claims("ok"))).status,
        200,
        "known kid still fine"
    );
}

#[test]
fn outage_keeps_the_cached_keys_working() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    server.set_down(true);
    std::thread::sleep(MIN_REFETCH + Duration::from_millis(200));
    // An unknown kid makes the daemon refetch; the fetch fails.
    let stranger = Key::rsa("ins_unknown", 2048);
    assert_eq!(
        daemon.bearer(&stranger.sign(&claims("x"))).reason(),
        Some("jwk-kid-mismatch")
    );
    daemon.wait_until(
        |d| d.metric("jwtgate_key_fetches_total{outcome=\"error\"}") >= 1.0,
        "a failed fetch",
    );
    let r = daemon.bearer(&key.sign(&claims("user_c")));
    assert_eq!((r.status, r.header("x-user-id")), (200, Some("user_c")));
    assert_eq!(daemon.get("/readyz").status, 200);
    assert_eq!(daemon.metric("jwtgate_keys_loaded"), 1.0);
}

#[test]
fn sighup_refetches_at_once_and_drops_removed_keys() {
    let old = Key::rsa("ins_old", 2048);
    let new = Key::rsa("ins_new", 2048);
    let server = KeyServer::start(jwks(&[&old]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    server.set_keys(&[&new]);
    daemon.signal("HUP"); // well within min_refetch_secs: SIGHUP ignores the bound
    daemon.wait_until(|_| server.fetches() == 2, "the reload fetch");
    daemon.wait_until(
        |d| d.bearer(&new.sign(&claims("n"))).status == 200,
        "new key in use",
    );
    let r = daemon.bearer(&old.sign(&claims("o")));
    assert_eq!(
        (r.status, r.reason()),
        (401, Some("jwk-kid-mismatch")),
        "removed key is gone"
    );
}

#[test]
fn sighup_with_a_broken_key_source_keeps_the_old_keys() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    let token = key.sign(&claims("user_k"));
    let original = std::fs::read_to_string(&daemon.config).unwrap();

    // 1. A config that no longer parses.
    std::fs::write(&daemon.config, format!("{original}\nbogus_key = 1\n")).unwrap();
    daemon.signal("HUP");
    daemon.wait_until(
        |d| {
            d.log_text()
                .contains("reload failed: config: unknown field")
        },
        "reload error",
    );
    assert_eq!(daemon.bearer(&token).status, 200);

    // 2. A config whose key server is unreachable.
    let dead = format!("http://127.0.0.1:{}/v1/jwks", free_port());
    std::fs::write(&daemon.config, original.replace(&server.url(), &dead)).unwrap();
    daemon.signal("HUP");
    daemon.wait_until(
        |d| d.log_text().contains("reload failed: fetching"),
        "fetch error",
    );
    assert_eq!(daemon.bearer(&token).status, 200);

    // 3. A key server that answers with garbage.
    std::fs::write(&daemon.config, &original).unwrap();
    *server.body.lock().unwrap() = "{\"keys\": 5}".into();
    daemon.signal("HUP");
    daemon.wait_until(
        |d| d.log_text().contains("not a JWKS document"),
        "parse error",
    );
    assert_eq!(daemon.bearer(&token).status, 200);
    assert_eq!(daemon.get("/readyz").status, 200);
    assert!(!daemon.log_text().contains("panicked"));
}

#[test]
fn sighup_reloads_a_pem_key_file() {
    let first = Key::rsa("a", 2048);
    let second = Key::rsa("b", 2048);
    let dir = TempDir::new("pem");
    let pem = dir.path("clerk.pem");
    std::fs::write(&pem, first.public_pem()).unwrap();
    let config = format!(
        "[keys]\njwt_key_file = \"{}\"\n[verify]\nissuer = \"{ISSUER}\"\n",
        pem.display()
    );
    let daemon = Daemon::start(&config);
    daemon.wait_ready();
    assert_eq!(daemon.bearer(&first.sign(&claims("p1"))).status, 200);
    std::fs::write(&pem, second.public_pem()).unwrap();
    daemon.signal("HUP");
    daemon.wait_until(
        |d| d.bearer(&second.sign(&claims("p2"))).status == 200,
        "new PEM",
    );
    assert_eq!(
        daemon.bearer(&first.sign(&claims("p1"))).reason(),
        Some("token-invalid-signature")
    );
    // A broken PEM keeps the current one.
    std::fs::write(
        &pem,
        "-----BEGIN PUBLIC KEY-----\nbroken\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    daemon.signal("HUP");
    daemon.wait_until(
        |d| d.log_text().contains("reload failed: keys.jwt_key_file"),
        "PEM error",
    );
    assert_eq!(daemon.bearer(&second.sign(&claims("p3"))).status, 200);
}

#[test]
fn sigterm_and_sigint_exit_zero_promptly() {
    let key = Key::rsa("ins_1", 2048);
    for signal in ["TERM", "INT"] {
        let config = format!("[keys]\njwt_key = \"\"\"{}\"\"\"\n", key.public_pem());
        let mut daemon = Daemon::start(&config);
        daemon.wait_ready();
        let started = Instant::now();
        daemon.signal(signal);
        assert_eq!(
            daemon.wait_exit(Duration::from_secs(3)),
            Some(0),
            "SIG{signal}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "SIG{signal} took {:?}",
            started.elapsed()
        );
    }
}

/// systemd `Type=notify`: READY=1 once keys are loaded (or the first load
/// failed), RELOADING=1 then READY=1 (with STATUS= and ERRNO=, EIO for keys
/// that did not load) around SIGHUP, STOPPING=1 on exit.
#[test]
fn systemd_notifications_follow_the_key_state() {
    use std::os::unix::net::UnixDatagram;
    let key = Key::rsa("ins_1", 2048);
    for key_server_up in [true, false] {
        let server = KeyServer::start(jwks(&[&key]));
        server.set_down(!key_server_up);
        let dir = TempDir::new("notify");
        let socket_path = dir.path("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let recv = || {
            let mut buf = [0u8; 512];
            let n = socket.recv(&mut buf).expect("a notification");
            String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
        };
        let daemon = Daemon::start_with(&jwks_config(&server, ""), |cmd| {
            cmd.env("NOTIFY_SOCKET", &socket_path);
        });
        assert_eq!(recv(), "READY=1");
        let want_ready = if key_server_up { 200 } else { 503 };
        assert_eq!(
            daemon.get("/readyz").status,
            want_ready,
            "READY=1 comes after the first load"
        );
        daemon.signal("HUP");
        let reloading = recv();
        assert!(
            reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{reloading:?}"
        );
        // READY=1 ends the reload (Type=notify-reload), with its outcome.
        let reloaded = recv();
        let want = if key_server_up {
            "READY=1\nSTATUS=reloaded: 1 key(s) loaded\nERRNO=0"
        } else {
            "READY=1\nSTATUS=reload failed, serving the old keys: "
        };
        assert!(reloaded.starts_with(want), "{reloaded:?}");
        assert_eq!(
            reloaded.ends_with("ERRNO=5"),
            !key_server_up,
            "{reloaded:?}"
        );
        daemon.signal("TERM");
        assert_eq!(recv(), "STOPPING=1");
    }
}

// ------------------------------------------------ faults of issue 9 --

/// Polls `/auth` with `token` every 50 ms until it answers 200; how long
/// that took, or `None` after `limit`.
fn time_until_allowed(daemon: &Daemon, token: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if daemon.bearer(token).status == 200 {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A SIGHUP while no key was ever loaded, during the outage, must not push
/// the next retry out to `refresh_secs` (an hour): once the key server is
/// back, keys arrive within the retry backoff (at most 4 s this early).
#[test]
fn a_keyless_sighup_during_an_outage_recovers_within_the_backoff() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    server.set_down(true);
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_until(
        |d| d.metric("jwtgate_key_fetches_total{outcome=\"error\"}") >= 1.0,
        "the first failed fetch",
    );
    daemon.signal("HUP");
    daemon.wait_until(
        |d| d.log_text().contains("reload failed"),
        "the failed reload",
    );
    server.set_down(false);
    let token = key.sign(&claims("user_back"));
    let took = time_until_allowed(&daemon, &token, Duration::from_secs(30));
    eprintln!("keys back {took:?} after the key server returned");
    let took = took.expect("keys within 30 s of the key server's return");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A key server that sends its headers and then one body byte per 400 ms
/// (so each read succeeds well within a per-read timeout) must not hold a
/// fetch past its deadline (`fetch_timeout_ms`, 1 s here): neither a reload
/// nor `jwtgate check`. The old keys stay, and the next reload works.
#[test]
fn a_dripping_key_server_cannot_stall_fetches_or_reloads() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    server.set_mode(Mode::Drip(Duration::from_millis(400)));

    let started = Instant::now();
    daemon.signal("HUP");
    daemon.wait_until(
        |d| d.log_text().contains("reload failed"),
        "the reload to fail",
    );
    let reload = started.elapsed();
    let log = daemon.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("reload failed"))
        .unwrap_or_default();
    eprintln!("reload against a dripping key server ended after {reload:?}: {line}");
    // The deadline is 1 s; the old per-read timeout took minutes. The bound
    // leaves room for a loaded machine (CI runs tests in parallel).
    assert!(reload < Duration::from_secs(6), "{reload:?}");
    assert_eq!(daemon.bearer(&key.sign(&claims("u"))).status, 200);

    let dir = TempDir::new("drip");
    let config = dir.path("jwtgate.toml");
    std::fs::write(&config, jwks_config(&server, "")).unwrap();
    let started = Instant::now();
    let out = jwtgate_command()
        .args(["--config", config.to_str().unwrap(), "check"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let check = started.elapsed();
    eprintln!("`jwtgate check` against a dripping key server: {check:?}");
    assert_eq!(out.status.code(), Some(2));
    assert!(check < Duration::from_secs(6), "{check:?}");

    server.set_mode(Mode::Normal);
    let fetches = server.fetches();
    daemon.signal("HUP");
    daemon.wait_until(|_| server.fetches() > fetches, "the next reload's fetch");
    daemon.wait_until(
        |d| d.log_text().contains("reload: loaded"),
        "the next reload to load",
    );
}

/// HTTP 429 with `Retry-After: 3`: no request reaches the key server
/// sooner, not even for unknown kids (allowed one per 2 s otherwise), and
/// the retry comes soon after.
#[test]
fn too_many_requests_and_retry_after_are_honoured() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    server.set_mode(Mode::TooMany(Some("3".into())));
    std::thread::sleep(MIN_REFETCH + Duration::from_millis(100));
    let stranger = Key::rsa("ins_unknown", 2048);
    let unknown = stranger.sign(&claims("x"));
    assert_eq!(daemon.bearer(&unknown).reason(), Some("jwk-kid-mismatch"));
    daemon.wait_until(|_| server.fetches() == 2, "the refetch that gets 429");
    let throttled_at = server.arrivals()[1];
    // Unknown kids keep coming for 3.5 s.
    while throttled_at.elapsed() < Duration::from_millis(3500) {
        assert_eq!(daemon.bearer(&unknown).status, 401);
        std::thread::sleep(Duration::from_millis(100));
    }
    server.set_mode(Mode::Normal);
    daemon.wait_until(|_| server.fetches() >= 3, "the retry");
    let gaps: Vec<Duration> = server
        .arrivals()
        .windows(2)
        .skip(1)
        .map(|w| w[1] - w[0])
        .collect();
    eprintln!("gaps after the 429: {gaps:?}");
    assert!(
        gaps[0] >= Duration::from_secs(3),
        "a request {:?} after `Retry-After: 3`",
        gaps[0]
    );
    assert!(gaps[0] < Duration::from_millis(4500), "{:?}", gaps[0]);
}

/// A refetch that returns the same JWKS (an unknown kid, a SIGHUP) leaves
/// the key set as it was, so verified tokens stay cached.
#[test]
fn an_unchanged_jwks_keeps_the_token_cache() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    let token = key.sign(&claims("user_cached"));
    let hits = |d: &Daemon| d.metric("jwtgate_token_cache_total{result=\"hit\"}");
    assert_eq!(daemon.bearer(&token).status, 200);
    assert_eq!(daemon.bearer(&token).status, 200);
    assert_eq!(hits(&daemon), 1.0);

    std::thread::sleep(MIN_REFETCH + Duration::from_millis(100));
    let random = json!({"alg": "RS256", "kid": "random-kid-1", "typ": "JWT"});
    assert_eq!(
        daemon
            .bearer(&key.sign_with(&random, &claims("x")))
            .reason(),
        Some("jwk-kid-mismatch")
    );
    assert_eq!(server.fetches(), 2, "the unknown kid refetched");
    assert_eq!(daemon.bearer(&token).status, 200);
    let after_refetch = hits(&daemon);

    daemon.signal("HUP");
    daemon.wait_until(|_| server.fetches() == 3, "the reload fetch");
    daemon.wait_until(|d| d.log_text().contains("reload: loaded"), "the reload");
    assert_eq!(daemon.bearer(&token).status, 200);
    let after_reload = hits(&daemon);
    eprintln!("cache hits: 1 before, {after_refetch} after an unknown-kid refetch, {after_reload} after a SIGHUP");
    assert_eq!((after_refetch, after_reload), (2.0, 3.0));
}
