//! The daemon run in-process: `daemon::run` takes its stop and reload
//! requests as [`Control`] messages, so a test can start it, use it and
//! stop it without signals or a child process.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{claims, free_port, request, Key};
use jwtgate::config::{settings_from_toml, Config};
use jwtgate::{daemon, Control};

#[test]
fn run_serves_until_told_to_stop() {
    let key = Key::rsa("ins_1", 2048);
    let port = free_port();
    let toml = format!(
        "listen = \"127.0.0.1:{port}\"\n[keys]\njwt_key = \"\"\"{}\"\"\"\n",
        key.public_pem()
    );
    let config = Config::from_settings(settings_from_toml(&toml).unwrap()).unwrap();
    let (controls, receiver) = mpsc::channel();
    let daemon = std::thread::spawn(move || daemon::run(config, None, receiver));

    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let token = key.sign(&claims("user_in_process"));
    let raw = format!("GET /auth HTTP/1.1\r\nHost: j\r\nAuthorization: Bearer {token}\r\n\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    let response = loop {
        match request(addr, &raw) {
            Ok(r) if r.status == 200 => break r,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("the in-process daemon never allowed the token: {other:?}"),
        }
    };
    assert_eq!(response.header("X-User-Id"), Some("user_in_process"));

    controls.send(Control::Reload).unwrap();
    controls.send(Control::Stop).unwrap();
    let result = daemon.join().expect("the daemon thread panicked");
    assert_eq!(result, Ok(()));
}
