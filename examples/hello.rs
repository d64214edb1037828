//! The ceiling for `bench/run.sh`: a may_minihttp server set up exactly as
//! jwtgate's daemon sets up its workers (one per CPU, unpinned, the same
//! coroutine stack), that answers every request 200 with `Content-Length: 0`
//! and a static `X-User-Id` header, i.e. a `/auth` "allow" without any token
//! work. Also the auth server of the bench's "nginx auth_request -> hello"
//! row. It uses the patched may_minihttp of `vendor/` (the bench compares it
//! with `bench/stock-hello`, the same server on stock may_minihttp 0.1.11).
//!
//! It is also the library side of the HTTP layer's daemon wiring
//! (`tests/http_layer.rs`): the limits and timeouts come from the
//! environment, it can serve a socket passed by systemd's socket activation,
//! and SIGTERM drains it gracefully.
//!
//! ```sh
//! cargo run --release --example hello -- 127.0.0.1:7071
//! ```
//!
//! Settings: the first argument (or `HELLO_LISTEN`) is the address,
//! default `127.0.0.1:7071`; `HELLO_WORKERS` the worker count (0, the
//! default, is one per CPU, as jwtgate's `workers = 0`). The HTTP layer's
//! `HttpConfig` (defaults when unset): `HELLO_MAX_HEADERS`,
//! `HELLO_MAX_HEADER_BYTES`, `HELLO_MAX_BODY_BYTES`, `HELLO_IDLE_TIMEOUT_MS`,
//! `HELLO_HEADER_READ_TIMEOUT_MS`, `HELLO_REUSE_PORT=1`. With `LISTEN_FDS=1`
//! and `LISTEN_PID` = its pid (systemd's socket activation) it serves fd 3
//! instead of binding. SIGTERM or SIGINT: stop accepting, drain (idle
//! connections close, every further answer says `Connection: close`), wait
//! for the connections up to `HELLO_DRAIN_MS` (default 10000), then exit 0
//! (1 if some were still open). Logs with `RUST_LOG` (default `warn`).

use std::io;
use std::os::fd::FromRawFd;
use std::time::Duration;

use may_minihttp::{HttpConfig, HttpService, HttpServiceFactory, Request, Response};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Same as jwtgate's `daemon::STACK_WORDS` (64 KiB on 64-bit).
const STACK_WORDS: usize = 0x2000;

struct Hello;

impl HttpService for Hello {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        rsp.header("X-User-Id: user_hello");
        Ok(())
    }
}

struct HelloFactory;

impl HttpServiceFactory for HelloFactory {
    type Service = Hello;

    fn new_service(&self, _id: usize) -> Hello {
        Hello
    }
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}: a number, not {value:?}")),
    )
}

fn config_from_env() -> HttpConfig {
    let mut config = HttpConfig::default();
    if let Some(n) = env_number("HELLO_MAX_HEADERS") {
        config.max_headers = n;
    }
    if let Some(n) = env_number("HELLO_MAX_HEADER_BYTES") {
        config.max_header_bytes = n;
    }
    if let Some(n) = env_number("HELLO_MAX_BODY_BYTES") {
        config.max_body_bytes = n;
    }
    if let Some(ms) = env_number("HELLO_IDLE_TIMEOUT_MS") {
        config.idle_timeout = Some(Duration::from_millis(ms));
    }
    if let Some(ms) = env_number("HELLO_HEADER_READ_TIMEOUT_MS") {
        config.header_read_timeout = Some(Duration::from_millis(ms));
    }
    config.reuse_port = std::env::var("HELLO_REUSE_PORT").is_ok_and(|v| v == "1");
    config
}

/// The listening socket systemd passed (fd 3), if `LISTEN_FDS` and
/// `LISTEN_PID` say it is for this process.
fn activated_listener() -> Option<std::net::TcpListener> {
    let pid: u32 = env_number("LISTEN_PID")?;
    let fds: u32 = env_number("LISTEN_FDS")?;
    if pid != std::process::id() || fds != 1 {
        return None;
    }
    // SAFETY: systemd's protocol gives this process fd 3, a listening
    // socket, and nothing else owns it.
    Some(unsafe { std::net::TcpListener::from_raw_fd(3) })
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let listen = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("HELLO_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:7071".to_string());
    let workers = env_number("HELLO_WORKERS").unwrap_or(0);
    let drain = Duration::from_millis(env_number("HELLO_DRAIN_MS").unwrap_or(10_000));
    let mut signals = Signals::new([SIGTERM, SIGINT]).expect("signal handlers");
    // As in jwtgate's daemon::run with `workers` and `pin_workers = false`.
    may::config()
        .set_workers(workers)
        .set_stack_size(STACK_WORDS);
    may::config().set_worker_pin(false);
    let config = config_from_env();
    let server = match activated_listener() {
        Some(listener) => HelloFactory.start_with_listener(listener, config),
        None => HelloFactory.start_with_config(listen.as_str(), config),
    }
    .unwrap_or_else(|e| {
        eprintln!("hello: listen {listen}: {e}");
        std::process::exit(2);
    });
    eprintln!("hello listening on http://{}", server.local_addr());
    if let Some(signal) = signals.forever().next() {
        eprintln!(
            "hello: signal {signal}: draining {} connection(s)",
            server.live_connections()
        );
        let closed = server.shutdown(drain);
        eprintln!(
            "hello: drained, {} connection(s) left",
            server.live_connections()
        );
        std::process::exit(if closed { 0 } else { 1 });
    }
}
