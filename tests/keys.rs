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
/// failed), RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on exit.
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
        assert_eq!(recv(), "READY=1");
        daemon.signal("TERM");
        assert_eq!(recv(), "STOPPING=1");
    }
}
