//! Several issuers, black-box: the real binary with two Clerk instances (a
//! PEM key and a JWKS behind the secret key) and an OpenID Connect issuer
//! whose discovery document and JWKS a real HTTP server on loopback serves
//! (`common::oidc`). Tokens go to the keys and rules of the issuer their
//! `iss` names and no other; claims become headers; what a hostile issuer
//! document or claim value can do is refused.

mod common;

use std::time::Duration;

use common::oidc::{Document, OidcServer};
use common::*;
use serde_json::{json, Value};

const STAFF: &str = "https://staff.clerk.example";
const AUDIENCE: &str = "api://orders";

/// The three issuers and their keys.
struct Issuers {
    clerk: Key,
    staff: Key,
    partner: Key,
    staff_jwks: KeyServer,
    oidc: OidcServer,
}

impl Issuers {
    fn start() -> Issuers {
        let (clerk, staff, partner) = (
            Key::rsa("ins_clerk", 2048),
            Key::rsa("ins_staff", 2048),
            Key::rsa("partner_1", 2048),
        );
        let staff_jwks = KeyServer::start(jwks(&[&staff]));
        let oidc = OidcServer::start("partner", &[&partner]);
        Issuers {
            clerk,
            staff,
            partner,
            staff_jwks,
            oidc,
        }
    }

    /// Top level: Clerk with a PEM key; then Clerk "staff" (JWKS with the
    /// secret key) and the OpenID Connect issuer "partner".
    fn config(&self, state_dir: &std::path::Path) -> String {
        format!(
            "[keys]\njwt_key = \"\"\"{}\"\"\"\nstate_dir = {state_dir:?}\nmin_refetch_secs = 1\n\
             fetch_timeout_ms = 1000\n\
             [verify]\nissuer = \"{ISSUER}\"\nheaders = {{ \"X-Email\" = \"email\" }}\n\
             [[issuers]]\nname = \"staff\"\nsecret_key = \"{SECRET}\"\njwks_url = \"{}\"\n\
             issuer = \"{STAFF}\"\n\
             [[issuers]]\nname = \"partner\"\nissuer = \"{}\"\naudience = \"{AUDIENCE}\"\n\
             headers = {{ \"X-Email\" = \"email\", \"X-Groups\" = \"groups\", \
             \"X-Team\" = \"org.team\", \"X-Roles\" = [\"https://partner.example/roles\"] }}\n",
            self.clerk.public_pem(),
            self.staff_jwks.url(),
            self.oidc.issuer,
        )
    }
}

/// Fresh claims for `iss`, with `extra` merged in.
fn claims_for(iss: &str, extra: Value) -> Value {
    let mut c = claims("user_1");
    c["iss"] = json!(iss);
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

fn start(issuers: &Issuers) -> (Daemon, TempDir) {
    let state = TempDir::new("issuers-state");
    let d = Daemon::start(&issuers.config(&state.0));
    d.wait_ready();
    (d, state)
}

#[test]
fn tokens_are_routed_to_their_issuers_keys_and_rules() {
    let i = Issuers::start();
    let (d, state) = start(&i);

    // Each issuer's own tokens pass, and say whose they are.
    let r = d.bearer(
        &i.clerk
            .sign(&claims_for(ISSUER, json!({"email": "a@clerk.example"}))),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("X-Issuer"), Some("clerk.example.com"));
    assert_eq!(r.header("X-Email"), Some("a@clerk.example"));
    assert_eq!(
        r.header("X-Groups"),
        Some(""),
        "the partner's headers, empty"
    );
    let r = d.bearer(&i.staff.sign(&claims_for(STAFF, json!({}))));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("X-Issuer"), Some("staff"));
    assert_eq!(r.header("X-Email"), Some(""));
    let partner = claims_for(
        &i.oidc.issuer,
        json!({
            "aud": ["other", AUDIENCE], "email": "p@partner.example",
            "groups": ["admins", "dev-ops", 42], "org": {"team": "blue", "x": {"y": 1}},
            "https://partner.example/roles": ["reader", "writer"],
        }),
    );
    let r = d.bearer(&i.partner.sign(&partner));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("X-User-Id"), Some("user_1"));
    assert_eq!(r.header("X-Issuer"), Some("partner"));
    assert_eq!(r.header("X-Email"), Some("p@partner.example"));
    assert_eq!(r.header("X-Groups"), Some("admins,dev-ops,42"));
    assert_eq!(r.header("X-Team"), Some("blue"));
    assert_eq!(r.header("X-Roles"), Some("reader,writer"));

    // A token claiming one issuer is judged by that issuer's keys alone.
    let refused = |token: String, reason: &str| {
        let r = d.bearer(&token);
        assert_eq!((r.status, r.reason()), (401, Some(reason)), "{r:?}");
    };
    // staff's iss, the partner's kid and key: no such kid at staff.
    refused(
        i.partner.sign(&claims_for(STAFF, json!({}))),
        "jwk-kid-mismatch",
    );
    // the partner's iss, staff's kid and key.
    let mut p = partner.clone();
    p["email"] = json!("x@y");
    refused(i.staff.sign(&p), "jwk-kid-mismatch");
    // the top level's iss (a PEM key, any kid), signed by staff.
    refused(
        i.staff.sign(&claims_for(ISSUER, json!({}))),
        "token-invalid-signature",
    );
    // ... and by their rules: the partner's audience.
    let mut wrong = partner.clone();
    wrong["aud"] = json!("api://billing");
    refused(i.partner.sign(&wrong), "token-invalid-audience");
    wrong.as_object_mut().unwrap().remove("aud");
    refused(i.partner.sign(&wrong), "token-invalid-audience");
    // An iss that names none of them, or none at all.
    for iss in [
        json!("https://evil.example"),
        json!(format!("{STAFF}/")),
        json!(7),
    ] {
        let mut c = claims_for(STAFF, json!({}));
        c["iss"] = iss;
        refused(i.staff.sign(&c), "token-unknown-issuer");
    }
    let mut none = claims_for(STAFF, json!({}));
    none.as_object_mut().unwrap().remove("iss");
    refused(i.staff.sign(&none), "token-unknown-issuer");

    // Metrics per issuer, and the new reason.
    assert_eq!(
        d.metric("jwtgate_decisions_total{outcome=\"deny\",reason=\"token-unknown-issuer\"}"),
        4.0
    );
    for name in ["staff", "partner"] {
        assert_eq!(
            d.metric(&format!("jwtgate_keys_loaded{{issuer=\"{name}\"}}")),
            1.0
        );
        assert!(
            d.metric(&format!(
                "jwtgate_key_fetches_total{{issuer=\"{name}\",outcome=\"ok\"}}"
            )) >= 1.0
        );
    }
    assert_eq!(
        d.metric("jwtgate_keys_loaded{issuer=\"clerk.example.com\"}"),
        1.0
    );
    assert_eq!(
        d.metric("jwtgate_issuer_tokens_total{issuer=\"partner\",result=\"valid\"}"),
        1.0
    );
    assert_eq!(
        d.metric("jwtgate_issuer_tokens_total{issuer=\"partner\",result=\"refused\"}"),
        3.0
    );
    // /readyz names each issuer.
    let ready = d.get("/readyz");
    assert_eq!(ready.status, 200);
    for line in [
        "clerk.example.com: ready: 1 key(s)",
        "staff: ready: 1 key(s)",
        "partner: ready: 1 key(s)",
    ] {
        assert!(ready.body.contains(line), "{}", ready.body);
    }
    // Each JWKS issuer has its own state file; the PEM key needs none.
    let mut files: Vec<String> = std::fs::read_dir(&state.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["jwks-partner.json", "jwks-staff.json"]);
    let saved = std::fs::read_to_string(state.path("jwks-partner.json")).unwrap();
    assert!(
        saved.contains(&format!("\"url\":\"{}\"", i.oidc.discovery_url())),
        "{saved}"
    );
    let log = d.log_text();
    assert!(log.contains("issuer partner: loaded 1 key(s)"), "{log}");
}

#[test]
fn claim_headers_refuse_hostile_values_and_survive_deep_json() {
    let i = Issuers::start();
    let (d, _state) = start(&i);
    let partner = |extra: Value| {
        let mut c = claims_for(&i.oidc.issuer, extra);
        c["aud"] = json!(AUDIENCE);
        d.bearer(&i.partner.sign(&c))
    };
    for (extra, reason) in [
        (
            json!({"email": "a@x\r\nX-User-Id: admin"}),
            "token-unsafe-claim-value",
        ),
        (json!({"email": "a@x\n"}), "token-unsafe-claim-value"),
        (json!({"email": " a@x"}), "token-unsafe-claim-value"),
        (
            json!({"groups": ["ok", "bad\u{1}"]}),
            "token-unsafe-claim-value",
        ),
        (json!({"groups": ["a,b"]}), "token-unsafe-claim-value"),
        (json!({"groups": ["a", ""]}), "token-unsafe-claim-value"),
        (
            json!({"groups": vec!["group"; 300]}),
            "token-unsafe-claim-value",
        ),
        (
            json!({"org": {"team": "x\u{7f}"}}),
            "token-unsafe-claim-value",
        ),
        (
            json!({"email": "x".repeat(1025)}),
            "token-unsafe-claim-value",
        ),
        (
            json!({"groups": [{"name": "admins"}]}),
            "token-invalid-claim",
        ),
        (json!({"groups": [["admins"]]}), "token-invalid-claim"),
        (json!({"org": {"team": {"id": 1}}}), "token-invalid-claim"),
    ] {
        let r = partner(extra.clone());
        assert_eq!((r.status, r.reason()), (401, Some(reason)), "{extra}");
    }
    // A mapped claim given twice: the token is malformed.
    let c = claims_for(&i.oidc.issuer, json!({"aud": AUDIENCE, "email": "a@x"}));
    let text = c.to_string().replacen('{', "{\"email\":\"admin@x\",", 1);
    let header = json!({"alg": "RS256", "kid": "partner_1", "typ": "JWT"});
    let raw = raw_signed(&i.partner, &header, &text);
    let r = d.bearer(&raw);
    assert_eq!(
        (r.status, r.reason()),
        (401, Some("token-invalid")),
        "{r:?}"
    );
    // Deeply nested claims nobody maps cost nothing (the coroutine stack is small).
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let text = claims_for(&i.oidc.issuer, json!({"aud": AUDIENCE, "email": "a@x"}))
        .to_string()
        .replacen('{', &format!("{{\"deep\":{deep},"), 1);
    let r = d.bearer(&raw_signed(&i.partner, &header, &text));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("X-Email"), Some("a@x"));
    // Absent, null and empty claims: the headers are there, empty.
    let r = partner(json!({"email": null, "groups": [], "org": "none"}));
    assert_eq!(r.status, 200, "{r:?}");
    for name in ["X-Email", "X-Groups", "X-Team", "X-Roles"] {
        assert_eq!(r.header(name), Some(""), "{name}");
        assert_eq!(r.header_count(name), 1, "{name}");
    }
    // The forward style (Traefik, Caddy) gets the same.
    let mut c = claims_for(&i.oidc.issuer, json!({"aud": AUDIENCE, "groups": ["g"]}));
    c["sid"] = json!(null);
    let token = i.partner.sign(&c);
    let r = request(
        d.addr,
        &format!("GET /forward HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n"),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("X-Groups"), Some("g"));
    assert_eq!(r.header("X-Email"), Some(""));
    // optional=1 without a token: every header an allow could carry, empty
    // (Caddy 2.6 would pass a missing one on as its placeholder text).
    let r = request(
        d.addr,
        "GET /forward?optional=1 HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    for name in [
        "X-User-Id",
        "X-Issuer",
        "X-Email",
        "X-Groups",
        "X-Team",
        "X-Roles",
    ] {
        assert_eq!(r.header(name), Some(""), "{name}: {r:?}");
    }
}

/// Signs the payload text as it is (duplicate keys and all).
fn raw_signed(key: &Key, header: &Value, payload: &str) -> String {
    use openssl::hash::MessageDigest;
    use openssl::sign::Signer;
    let input = format!("{}.{}", b64(&header.to_string()), b64(payload));
    let mut signer = Signer::new(MessageDigest::sha256(), &key.private).unwrap();
    let sig = signer.sign_oneshot_to_vec(input.as_bytes()).unwrap();
    format!("{input}.{}", base64_url(&sig))
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn rules_see_the_issuer_and_clerk_claims_only_from_clerk() {
    let i = Issuers::start();
    let (d, _state) = start(&i);
    let auth = |path: &str, token: &str| {
        request(
            d.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n"),
        )
        .unwrap()
    };
    let admin = json!({"v": 1, "org_id": "org_1", "org_role": "org:admin"});
    let clerk = i.clerk.sign(&claims_for(ISSUER, admin.clone()));
    let mut p = claims_for(&i.oidc.issuer, admin);
    p["aud"] = json!(AUDIENCE);
    let partner = i.partner.sign(&p);
    assert_eq!(auth("/auth?role=org:admin", &clerk).status, 200);
    // The partner's org_role claim is not a Clerk role.
    let r = auth("/auth?role=org:admin", &partner);
    assert_eq!(
        (r.status, r.header("X-Jwtgate-Reason")),
        (403, Some("missing-role"))
    );
    // issuer= names who may come in.
    assert_eq!(auth("/auth?issuer=partner", &partner).status, 200);
    let r = auth("/auth?issuer=partner", &clerk);
    assert_eq!(
        (r.status, r.header("X-Jwtgate-Reason")),
        (403, Some("wrong-issuer"))
    );
    assert_eq!(
        auth("/auth?issuer=clerk.example.com&role=admin", &clerk).status,
        200
    );
    assert_eq!(
        d.metric("jwtgate_forbidden_total{reason=\"wrong-issuer\"}"),
        1.0
    );
}

#[test]
fn discovery_is_checked_reused_for_unknown_kids_and_redone_on_refresh() {
    let partner = Key::rsa("p1", 2048);
    let oidc = OidcServer::start("solo", &[&partner]);
    // The document names another issuer: its keys are never used.
    oidc.set_document(Document {
        issuer: Some("https://evil.example".into()),
        ..Document::default()
    });
    let d = Daemon::start(&format!(
        "[keys]\nmin_refetch_secs = 1\nfetch_timeout_ms = 1000\n\
         [[issuers]]\nissuer = \"{}\"\naudience = \"{AUDIENCE}\"\n",
        oidc.issuer
    ));
    let token = |key: &Key| {
        let mut c = claims_for(&oidc.issuer, json!({}));
        c["aud"] = json!(AUDIENCE);
        key.sign(&c)
    };
    d.wait_until(|d| d.log_text().contains("is for issuer"), "the refusal");
    assert_eq!(d.get("/readyz").status, 503);
    assert_eq!(d.bearer(&token(&partner)).status, 503);
    assert_eq!(
        oidc.count("/jwks"),
        0,
        "the JWKS it named was never fetched"
    );
    let log = d.log_text();
    assert!(
        log.contains(
            "the discovery document is for issuer \"https://evil.example\", not the configured"
        ),
        "{log}"
    );
    // A jwks_uri off loopback over plain http is refused too.
    oidc.set_document(Document {
        jwks_uri: Some("http://keys.example/jwks".into()),
        ..Document::default()
    });
    d.signal("HUP");
    d.wait_until(
        |d| d.log_text().contains("is not https://"),
        "the jwks_uri refusal",
    );
    assert_eq!(oidc.count("/jwks"), 0);
    // The true document: keys load (SIGHUP rediscovers).
    oidc.set_document(Document::default());
    d.signal("HUP");
    d.wait_until(
        |d| d.log_text().contains("reload: loaded 1 key(s)"),
        "the reload",
    );
    d.wait_ready();
    assert_eq!(d.bearer(&token(&partner)).status, 200);
    let (discoveries, fetches) = (oidc.count("openid-configuration"), oidc.count("/jwks"));
    assert!(fetches >= 1);
    // A new kid: the JWKS discovered last time is fetched again, the
    // document is not.
    let rotated = Key::rsa("p2", 2048);
    oidc.set_keys(&[&partner, &rotated]);
    std::thread::sleep(Duration::from_millis(1100)); // past min_refetch_secs
    assert_eq!(d.bearer(&token(&rotated)).status, 200);
    assert_eq!(oidc.count("/jwks"), fetches + 1);
    assert_eq!(oidc.count("openid-configuration"), discoveries);
    // SIGHUP rediscovers.
    d.signal("HUP");
    d.wait_until(
        |_| oidc.count("openid-configuration") == discoveries + 1,
        "a rediscovery",
    );
}

#[test]
fn check_lists_every_issuer_and_config_errors_name_the_entry() {
    let i = Issuers::start();
    let state = TempDir::new("issuers-check");
    let config = state.path("jwtgate.toml");
    std::fs::write(&config, i.config(&state.0)).unwrap();
    let out = jwtgate_command()
        .args(["--config", config.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("ok: 3 issuers, routed by iss; listen 127.0.0.1:7070\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n  clerk.example.com: 1 key(s) from PEM key from keys.jwt_key"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("\n  partner: 1 key(s) from OpenID Connect discovery {} (kid: partner_1); issuer {}; audience {AUDIENCE}; authorized parties (any); headers X-Email, X-Groups, X-Roles, X-Team", i.oidc.discovery_url(), i.oidc.issuer)), "{stdout}");
    // `verify` routes as the daemon does.
    let mut c = claims_for(&i.oidc.issuer, json!({"aud": AUDIENCE}));
    c["sub"] = json!("user_partner");
    let out = jwtgate_command()
        .args(["--config", config.to_str().unwrap(), "verify"])
        .arg(i.partner.sign(&c))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("user_partner"));

    let fails = |toml: &str, expected: &str| {
        std::fs::write(&config, toml).unwrap();
        let out = jwtgate_command()
            .args(["--config", config.to_str().unwrap(), "check"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.starts_with(&format!("jwtgate: {expected}")),
            "{stderr}"
        );
    };
    let top = "[keys]\npublishable_key = \"pk_live_Y2xlcmsuZXhhbXBsZS5jb20k\"\n".to_string();
    fails(
        &format!("{top}[[issuers]]\nissuer = \"https://a.example\"\naudience = \"x\"\n[[issuers]]\nissuer = \"https://login.example\"\n"),
        "issuers[1].audience: required for an OpenID Connect issuer",
    );
    fails(
        &format!("{top}[[issuers]]\nissuer = \"http://login.example\"\naudience = \"x\"\n"),
        "issuers[0].issuer: \"http://login.example\": an OpenID Connect issuer is an https:// URL",
    );
    fails(
        &format!("{top}[[issuers]]\nissuer = \"https://a.example\"\naudience = \"x\"\nheaders = {{ \"X-Org-Id\" = \"org\" }}\n"),
        "issuers[0].headers.X-Org-Id: X-Org-Id is reserved",
    );
    fails(
        &format!("{top}[[issuers]]\nissuer = \"https://clerk.example.com\"\naudience = \"x\"\nname = \"again\"\n"),
        "issuers[0].issuer: \"https://clerk.example.com\" is also the issuer of [keys]",
    );
    fails(
        &format!("{top}[[issuers]]\nissuer = \"https://a.example\"\naudeince = \"x\"\n"),
        "config: unknown field `audeince`",
    );
    // The environment cannot add or change an entry.
    std::fs::write(&config, &top).unwrap();
    let out = jwtgate_command()
        .args(["--config", config.to_str().unwrap(), "check"])
        .env("JWTGATE_ISSUERS__0__ISSUER", "https://x.example")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("come from the config file only"));
}

/// A real nginx running the shipped snippets (`jwtgate-auth.conf` in the
/// server, `jwtgate-protect.conf` in the location) with the README's
/// "Issuers" block for extra headers as the protected location; stopped on
/// drop.
struct Nginx {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    dir: TempDir,
}

impl Nginx {
    fn start(jwtgate: std::net::SocketAddr, app: std::net::SocketAddr) -> Nginx {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("\n## Issuers\n").expect("an Issuers section")..];
        let location = section
            .split("```nginx\n")
            .nth(1)
            .and_then(|rest| rest.split("\n```").next())
            .expect("an nginx block in the Issuers section");
        let dir = TempDir::new("issuers-nginx");
        let d = dir.0.display();
        std::fs::create_dir_all(dir.path("jwtgate")).unwrap();
        std::fs::create_dir_all(dir.path("temp")).unwrap();
        // Every snippet, where the example site keeps them (they include
        // one another by that path).
        for entry in std::fs::read_dir(repo_path("nginx")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if name.starts_with("jwtgate-") && name.ends_with(".conf") {
                std::fs::copy(&path, dir.path(&format!("jwtgate/{name}"))).unwrap();
            }
        }
        let port = free_port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|t| format!("    {t}_temp_path {d}/temp/{t};\n"))
            .collect();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n{temp}    access_log off;\n\
             upstream jwtgate {{ server {jwtgate}; keepalive 4; }}\n\
             upstream app {{ server {app}; }}\n\
             server {{\n    listen {addr};\n    include jwtgate/jwtgate-auth.conf;\n{location}\n}}\n}}\n"
        );
        let path = dir.path("nginx.conf");
        std::fs::write(&path, &conf).unwrap();
        let bin = nginx_bin();
        let run = |extra: &[&str]| {
            let mut cmd = std::process::Command::new(&bin);
            cmd.arg("-p").arg(&dir.0).arg("-c").arg(&path);
            cmd.arg("-e").arg(dir.path("error.log")).args(extra);
            cmd
        };
        let test = run(&["-t"])
            .output()
            .expect("nginx (apt-get install -y nginx)");
        assert!(
            test.status.success(),
            "nginx -t: {}\n{conf}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = run(&["-g", "daemon off;"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Nginx { child, addr, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too.
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

#[test]
fn the_readmes_nginx_block_passes_the_extra_headers_and_drops_the_clients_own() {
    let i = Issuers::start();
    let (d, _state) = start(&i);
    let app = common::echo::App::start();
    let nginx = Nginx::start(d.addr, app.addr);
    let get = |token: &str| {
        let raw = format!(
            "GET /page HTTP/1.1\r\nHost: app.example.com\r\nAuthorization: Bearer {token}\r\n\
             X-Email: spoof@attacker.example\r\nX-Groups: admins\r\nX-Issuer: staff\r\n\
             Connection: close\r\n\r\n"
        );
        let r = request(nginx.addr, &raw).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        common::echo::Echo::parse(&r.body)
    };
    let mut p = claims_for(
        &i.oidc.issuer,
        json!({"aud": AUDIENCE, "email": "p@partner.example", "groups": ["g1", "g2"]}),
    );
    p["sub"] = json!("user_partner");
    let echo = get(&i.partner.sign(&p));
    assert_eq!(echo.header("X-User-Id"), Some("user_partner"));
    assert_eq!(echo.header("X-Issuer"), Some("partner"));
    assert_eq!(echo.header("X-Email"), Some("p@partner.example"));
    assert_eq!(echo.header("X-Groups"), Some("g1,g2"));
    // A Clerk token without those claims: the headers are empty, so nginx
    // sends none, and the client's own never pass.
    let echo = get(&i.clerk.sign(&claims("user_clerk")));
    assert_eq!(echo.header("X-User-Id"), Some("user_clerk"));
    assert_eq!(echo.header("X-Issuer"), Some("clerk.example.com"));
    assert_eq!(echo.header("X-Email"), None, "{echo:#?}");
    assert_eq!(echo.header("X-Groups"), None, "{echo:#?}");
    assert_eq!(app.requests(), 2);
}
