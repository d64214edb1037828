//! Graceful stop and zero-loss restarts (issue 9, part 2), with real
//! processes: the jwtgate binary, a real nginx with the shipped snippets,
//! a real key server on loopback, and socket activation done the way
//! systemd does it: this test is the parent that holds the listening
//! socket, and each jwtgate gets it as fd 3 with `LISTEN_FDS=1` and
//! `LISTEN_PID` its own pid (`sh -c 'LISTEN_PID=$$ ... exec jwtgate'`: the
//! shell's pid is the one jwtgate keeps). Each test prints its figures (run
//! with `--nocapture` to see them).
//!
//! nginx is required (they FAIL, never skip, without it): on Debian
//! `apt-get install -y nginx`.

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// The test's listening socket, as systemd's jwtgate.socket would hold it
/// (backlog raised to systemd's default, SOMAXCONN).
fn held_socket() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) on a socket this test owns.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 4096) }, 0);
    listener
}

/// One jwtgate process, killed on drop. Its stderr goes to `log`.
struct Jwtgate {
    child: Child,
    log: PathBuf,
    spawned: Instant,
}

/// How a jwtgate is started.
enum Listen<'a> {
    /// It binds `listen` from its config itself.
    Bind,
    /// Socket activation: this socket as fd 3, `LISTEN_FDS=1`, `LISTEN_PID`
    /// its pid.
    Activated(&'a TcpListener),
    /// `LISTEN_FDS=1` with this socket as fd 3, but `LISTEN_PID` of another
    /// process.
    ActivatedForOther(&'a TcpListener),
}

impl Jwtgate {
    fn spawn(bin: &Path, config: &Path, log: PathBuf, how: Listen, env: &[(&str, &str)]) -> Self {
        let mut cmd = match how {
            Listen::Bind => Command::new(bin),
            Listen::Activated(_) | Listen::ActivatedForOther(_) => {
                let script = match how {
                    Listen::Activated(_) => "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"",
                    _ => "LISTEN_PID=1 LISTEN_FDS=1 exec \"$0\" \"$@\"",
                };
                let mut cmd = Command::new("sh");
                cmd.args(["-c", script]).arg(bin);
                cmd
            }
        };
        if let Listen::Activated(socket) | Listen::ActivatedForOther(socket) = how {
            let fd = socket.as_raw_fd();
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if fd == 3 {
                        // dup2 onto itself would keep close-on-exec
                        if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        for (name, _) in std::env::vars() {
            if name.starts_with("JWTGATE_")
                || name.starts_with("CLERK_")
                || name.starts_with("LISTEN_")
                || name == "NOTIFY_SOCKET"
                || name == "STATE_DIRECTORY"
            {
                cmd.env_remove(name);
            }
        }
        cmd.arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let spawned = Instant::now();
        let child = cmd.spawn().expect("spawn jwtgate");
        Jwtgate {
            child,
            log,
            spawned,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (10 s at most) for the "listening on" line: the server accepts
    /// from then on. How long after the spawn it came.
    fn wait_listening(&mut self) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log_text().contains(" listening on http://") {
                return self.spawned.elapsed();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("jwtgate exited ({status}):\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("jwtgate never listened:\n{}", self.log_text());
    }

    fn signal(&self, name: &str) {
        signal_child(&self.child, name);
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        wait_child(&mut self.child, limit)
    }
}

impl Drop for Jwtgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for the restart tests: the JWKS key server, keys kept in
/// `state`, and `extra` lines at the top level. No `[http]` section unless
/// `extra_http` says so (the baseline binary does not know it).
fn config_file(
    dir: &TempDir,
    listen: SocketAddr,
    keys: &KeyServer,
    state: &Path,
    extra_http: &str,
) -> PathBuf {
    let path = dir.path("jwtgate.toml");
    let http = if extra_http.is_empty() {
        String::new()
    } else {
        format!("[http]\n{extra_http}\n")
    };
    std::fs::write(
        &path,
        format!(
            "listen = \"{listen}\"\nworkers = 1\n{}{http}",
            jwks_config(keys, &format!("state_dir = \"{}\"", state.display()))
        ),
    )
    .unwrap();
    path
}

// ---------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------

/// nginx (master + one worker) with the shipped auth snippets in front of
/// jwtgate, serving a static page behind `auth_request`. Stopped on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    fn start(jwtgate: SocketAddr) -> Nginx {
        let bin = nginx_bin();
        let dir = TempDir::new("restarts-nginx");
        let d = dir.0.display().to_string();
        std::fs::create_dir_all(dir.path("jwtgate")).unwrap();
        std::fs::create_dir_all(dir.path("html")).unwrap();
        std::fs::write(dir.path("html/index.html"), "protected page\n").unwrap();
        for name in [
            "jwtgate-auth.conf",
            "jwtgate-auth-location.conf",
            "jwtgate-protect.conf",
            "jwtgate-identity.conf",
        ] {
            std::fs::copy(
                repo_path(&format!("nginx/{name}")),
                dir.path(&format!("jwtgate/{name}")),
            )
            .unwrap();
        }
        let upstream = std::fs::read_to_string(repo_path("nginx/jwtgate-upstream.conf")).unwrap();
        assert_eq!(upstream.matches("server 127.0.0.1:7070;").count(), 1);
        let upstream = upstream.replace("server 127.0.0.1:7070;", &format!("server {jwtgate};"));
        std::fs::write(dir.path("jwtgate/jwtgate-upstream.conf"), upstream).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|t| format!("    {t}_temp_path {d}/temp_{t};\n"))
            .collect();
        std::fs::write(
            dir.path("nginx.conf"),
            format!(
                "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n    access_log off;\n{temp}    include jwtgate/jwtgate-upstream.conf;\n\
                 \x20   server {{\n        listen {addr};\n        include jwtgate/jwtgate-auth.conf;\n\
                 \x20       location / {{\n            include jwtgate/jwtgate-protect.conf;\n\
                 \x20           root {d}/html;\n        }}\n    }}\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new(&bin)
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(dir.path("nginx.conf"))
            .arg("-e")
            .arg(dir.path("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path("stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "nginx ({}): {e}; it is required: apt-get install -y nginx",
                    bin.display()
                )
            });
        let mut nginx = Nginx { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}):\n{}", nginx.logs());
            }
            assert!(
                Instant::now() < deadline,
                "nginx never listened:\n{}",
                nginx.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
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
// Load
// ---------------------------------------------------------------------------

/// What the clients saw: requests answered 200, everything else (with what
/// it was), and the slow requests (over 20 ms: when they started, how long
/// they took).
#[derive(Default)]
struct Seen {
    ok: u64,
    failures: Vec<String>,
    slow: Vec<(Instant, Duration)>,
}

/// `clients` threads, each sending `GET /` with a bearer token through
/// nginx on a keep-alive connection (a new one when nginx closes it), until
/// stopped.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(nginx: SocketAddr, token: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let request = format!(
            "GET / HTTP/1.1\r\nHost: app.example.com\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        let threads = (0..clients)
            .map(|_| {
                let (stop, seen, request) = (stop.clone(), seen.clone(), request.clone());
                std::thread::spawn(move || {
                    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let result = (|| {
                            if conn.is_none() {
                                let stream = TcpStream::connect(nginx)?;
                                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                                let reader = BufReader::new(stream.try_clone()?);
                                conn = Some((stream, reader));
                            }
                            let (stream, reader) = conn.as_mut().unwrap();
                            stream.write_all(request.as_bytes())?;
                            read_response(reader)
                        })();
                        let took = started.elapsed();
                        let mut seen = seen.lock().unwrap();
                        if took > Duration::from_millis(20) {
                            seen.slow.push((started, took));
                        }
                        match result {
                            Ok(r) if r.status == 200 => {
                                seen.ok += 1;
                                if r.header("connection") == Some("close") {
                                    conn = None;
                                }
                            }
                            Ok(r) => {
                                seen.failures.push(format!("status {}", r.status));
                                conn = None;
                            }
                            Err(e) => {
                                seen.failures.push(format!("{e}"));
                                conn = None;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            seen,
            threads,
        }
    }

    fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.seen)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

/// One restart as `systemctl restart` does it: SIGTERM, wait for the exit,
/// start the next. What it took.
struct Restart {
    signalled: Instant,
    stop: Duration,
    start: Duration,
    exit: Option<i32>,
}

/// `n` restarts of jwtgate under load through nginx; with `socket`, by
/// socket activation, else each process binds `listen` itself. The key
/// server goes down after the first half: the later ones start from the
/// state directory.
fn restarts_under_load(
    bin: &Path,
    socket: Option<&TcpListener>,
    n: usize,
) -> (Vec<Restart>, Seen, f64) {
    let key = Key::rsa("ins_restarts", 2048);
    let keys = KeyServer::start(jwks(&[&key]));
    let dir = TempDir::new("restarts");
    let state = TempDir::new("restarts-state");
    let listen = match socket {
        Some(s) => s.local_addr().unwrap(),
        None => format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    };
    let config = config_file(&dir, listen, &keys, &state.0, "");
    let how = || match socket {
        Some(s) => Listen::Activated(s),
        None => Listen::Bind,
    };
    let mut jwtgate = Jwtgate::spawn(bin, &config, dir.path("jwtgate-0.log"), how(), &[]);
    jwtgate.wait_listening();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state.path("jwks.json").exists() {
        assert!(
            Instant::now() < deadline,
            "no state file:\n{}",
            jwtgate.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let nginx = Nginx::start(listen);
    let token = key.sign(&claims("user_restarts"));
    let page = request(
        nginx.addr,
        &format!("GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n"),
    )
    .unwrap();
    assert_eq!(page.status, 200, "{}", nginx.logs());

    let load = Load::start(nginx.addr, &token, 4);
    let began = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let mut restarts = Vec::new();
    for i in 1..=n {
        if i == n / 2 + 1 {
            keys.set_down(true);
        }
        let signalled = Instant::now();
        jwtgate.signal("TERM");
        let exit = jwtgate.wait_exit(Duration::from_secs(10));
        let stop = signalled.elapsed();
        let previous = std::mem::replace(
            &mut jwtgate,
            Jwtgate::spawn(
                bin,
                &config,
                dir.path(&format!("jwtgate-{i}.log")),
                how(),
                &[],
            ),
        );
        let log = previous.log_text();
        drop(previous);
        assert!(!log.contains("panicked"), "{log}");
        // RUST_LOG=info, as the unit sets it: no line per connection from
        // may ("add fd to epoll select") nor may_minihttp.
        assert!(
            !log.contains(" may::") && !log.contains(" may_minihttp"),
            "{log}"
        );
        let start = jwtgate.wait_listening();
        restarts.push(Restart {
            signalled,
            stop,
            start,
            exit,
        });
        std::thread::sleep(Duration::from_millis(300));
    }
    let seen = load.finish();
    let secs = began.elapsed().as_secs_f64();
    if !seen.failures.is_empty() {
        eprintln!(
            "nginx:\n{}",
            nginx
                .logs()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    (restarts, seen, secs)
}

/// Prints the figures of a restart run.
fn report(what: &str, restarts: &[Restart], seen: &Seen, secs: f64) {
    let total = seen.ok + seen.failures.len() as u64;
    eprintln!(
        "{what}: {} restarts in {secs:.1} s under load (4 clients through nginx): {total} requests, \
         {} failed",
        restarts.len(),
        seen.failures.len()
    );
    for (i, r) in restarts.iter().enumerate() {
        let window_end = r.signalled + r.stop + r.start + Duration::from_millis(300);
        let longest = seen
            .slow
            .iter()
            .filter(|(at, _)| *at >= r.signalled && *at < window_end)
            .map(|(_, took)| *took)
            .max()
            .unwrap_or_default();
        eprintln!(
            "  restart {:2}: SIGTERM to exit {:4} ms (exit {:?}), spawn to accepting {:4} ms, \
             longest request {:4} ms",
            i + 1,
            r.stop.as_millis(),
            r.exit,
            r.start.as_millis(),
            longest.as_millis()
        );
    }
    let mut failures: Vec<&String> = seen.failures.iter().collect();
    failures.sort();
    failures.dedup();
    if !failures.is_empty() {
        eprintln!("  failures: {failures:?}");
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// `systemctl restart` with jwtgate.socket: ten restarts (SIGTERM, exit,
/// start) under load through nginx; the second half while the key server
/// is down (the state directory's keys). Not one request fails.
#[test]
fn restarts_under_load_through_nginx_with_socket_activation_lose_no_request() {
    let socket = held_socket();
    let (restarts, seen, secs) = restarts_under_load(Path::new(BIN), Some(&socket), 10);
    report("socket activation", &restarts, &seen, secs);
    assert!(
        restarts.iter().all(|r| r.exit == Some(0)),
        "every stop exits 0"
    );
    assert!(seen.ok > 500, "only {} requests", seen.ok);
    assert!(seen.failures.is_empty(), "{:?}", seen.failures);
}

/// The baseline, for the figures: SIGTERM then start, each
/// process binding the port itself (no socket activation): the connections
/// nginx makes between the two are refused (nginx answers 500). Run with
/// `--ignored`; `JWTGATE_BASELINE_BIN=<path>` measures another build (the
/// one before graceful stop).
#[test]
#[ignore = "a measurement, not a check: restarts without socket activation lose requests"]
fn baseline_restarts_without_socket_activation() {
    let bin = std::env::var_os("JWTGATE_BASELINE_BIN")
        .filter(|b| !b.is_empty())
        .map_or_else(|| PathBuf::from(BIN), PathBuf::from);
    let (restarts, seen, secs) = restarts_under_load(&bin, None, 10);
    report(
        &format!("without socket activation ({})", bin.display()),
        &restarts,
        &seen,
        secs,
    );
}

/// SIGTERM with requests in flight: idle keep-alive connections close at
/// once, new connections are refused (no socket activation here), every
/// request that had started to arrive is answered (with `Connection:
/// close`), pipelined ones included, and the process exits 0 when the
/// drain deadline cuts the one connection that never finishes its request.
#[test]
fn sigterm_answers_every_request_in_flight_then_exits_zero_within_the_drain_deadline() {
    let key = Key::rsa("ins_drain", 2048);
    let keys = KeyServer::start(jwks(&[&key]));
    let dir = TempDir::new("drain");
    let state = TempDir::new("drain-state");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = config_file(&dir, listen, &keys, &state.0, "drain_secs = 2");
    let mut jwtgate = Jwtgate::spawn(Path::new(BIN), &config, dir.path("log"), Listen::Bind, &[]);
    jwtgate.wait_listening();
    let token = key.sign(&claims("user_drain"));
    let auth = format!("GET /auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n");
    let connect = || {
        let stream = TcpStream::connect(listen).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    };
    // 10 idle keep-alive connections, each served once.
    let mut idle: Vec<_> = (0..10)
        .map(|_| {
            let (mut stream, mut reader) = connect();
            stream.write_all(auth.as_bytes()).unwrap();
            assert_eq!(read_response(&mut reader).unwrap().status, 200);
            (stream, reader)
        })
        .collect();
    // 5 connections in the middle of a request head.
    let (head, rest) = auth.split_at(auth.len() - 2);
    let mut arriving: Vec<_> = (0..5)
        .map(|_| {
            let (mut stream, reader) = connect();
            stream.write_all(head.as_bytes()).unwrap();
            (stream, reader)
        })
        .collect();
    // One with two whole pipelined requests answered and a third arriving.
    let mut pipelined = connect();
    pipelined
        .0
        .write_all(format!("{auth}{auth}{head}").as_bytes())
        .unwrap();
    for _ in 0..2 {
        assert_eq!(read_response(&mut pipelined.1).unwrap().status, 200);
    }
    // One that never finishes its head: only the drain deadline ends it.
    let (mut stuck, _stuck_reader) = connect();
    stuck
        .write_all(b"GET /auth HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let signalled = Instant::now();
    jwtgate.signal("TERM");
    let mut idle_closed = Duration::ZERO;
    for (_, reader) in &mut idle {
        assert!(
            read_response(reader).is_err(),
            "an idle connection is closed"
        );
        idle_closed = signalled.elapsed();
    }
    std::thread::sleep(Duration::from_millis(50));
    let refused = TcpStream::connect(listen).is_err();
    // The requests under way arrive whole now: each is answered.
    let mut answers = Vec::new();
    arriving.push(pipelined);
    for (stream, reader) in &mut arriving {
        stream.write_all(rest.as_bytes()).unwrap();
        let r = read_response(reader).unwrap();
        answers.push((r.status, r.header("connection").map(str::to_string)));
        assert!(read_response(reader).is_err(), "closed after the answer");
    }
    let answered = signalled.elapsed();
    let code = jwtgate.wait_exit(Duration::from_secs(5));
    let exited = signalled.elapsed();
    let log = jwtgate.log_text();
    eprintln!(
        "SIGTERM with 10 idle, 6 arriving and 1 stuck connection(s): idle closed within \
         {idle_closed:?}, new connections refused: {refused}, the 6 requests under way answered \
         {answers:?} within {answered:?}; exit {code:?} after {exited:?} (drain_secs = 2)"
    );
    assert!(idle_closed < Duration::from_millis(500), "{idle_closed:?}");
    assert!(refused);
    assert_eq!(answers, vec![(200, Some("close".to_string())); 6]);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        exited >= Duration::from_millis(1900) && exited < Duration::from_millis(3500),
        "the drain deadline: {exited:?}"
    );
    assert!(
        log.contains(
            "stopped at the drain deadline (2000 ms, http.drain_secs) with 1 connection(s)"
        ),
        "{log}"
    );
    drop(stuck);
}

/// A start with no keys at all holds connections (they wait in the backlog)
/// until keys load, answered 200 as soon as they do; if they do not load
/// within `http.startup_wait_ms`, 503 as before. A start during a key-server
/// outage with keys in the state directory serves at once.
#[test]
fn a_start_holds_connections_until_keys_load_within_the_startup_wait() {
    let key = Key::rsa("ins_start", 2048);
    let keys = KeyServer::start(jwks(&[&key]));
    let token = key.sign(&claims("user_start"));
    let auth = format!("GET /auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n");
    let socket = held_socket();
    let addr = socket.local_addr().unwrap();
    // A request sent before jwtgate runs at all (it waits in the backlog).
    let first = |dir: &TempDir, state: &Path, wait_ms: u64, back_after: Option<Duration>| {
        let wait = format!("startup_wait_ms = {wait_ms}");
        let config = config_file(dir, addr, &keys, state, &wait);
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(auth.as_bytes()).unwrap();
        let jwtgate = Jwtgate::spawn(
            Path::new(BIN),
            &config,
            dir.path("log"),
            Listen::Activated(&socket),
            &[],
        );
        if let Some(after) = back_after {
            std::thread::sleep(after);
            keys.set_down(false);
        }
        let r = read_response(&mut BufReader::new(stream)).unwrap();
        (r.status, jwtgate.spawned.elapsed(), jwtgate)
    };

    // No keys anywhere, the key server down: held for the bound, then 503.
    keys.set_down(true);
    let dir = TempDir::new("start-none");
    let empty = TempDir::new("start-none-state");
    let (status, held, _j) = first(&dir, &empty.0, 1500, None);
    eprintln!("start with no keys: the first request answered {status} after {held:?} (startup_wait_ms = 1500)");
    assert_eq!(status, 503);
    assert!(
        held >= Duration::from_millis(1400) && held < Duration::from_millis(3000),
        "{held:?}"
    );
    drop(_j);

    // The key server comes back within the bound: 200, not 503 (the
    // refresher's retry is 1 s after the first failure).
    let dir = TempDir::new("start-back");
    let state = TempDir::new("start-back-state");
    let (status, held, j) = first(&dir, &state.0, 3000, Some(Duration::from_millis(300)));
    eprintln!("start while the key server is down for 300 ms: the first request answered {status} after {held:?}");
    assert_eq!(status, 200, "{}", j.log_text());
    assert!(
        held < Duration::from_millis(2500),
        "when keys load, not at the bound: {held:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !state.path("jwks.json").exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(j);

    // During an outage, with the state directory's keys: at once.
    keys.set_down(true);
    let dir = TempDir::new("start-state");
    let (status, held, j) = first(&dir, &state.0, 3000, None);
    eprintln!("start during an outage with a state file: the first request answered {status} after {held:?}");
    assert_eq!(status, 200, "{}", j.log_text());
    assert!(
        held < Duration::from_millis(1500),
        "at once, not at the bound: {held:?}"
    );
}

/// A second process on the same port fails with "address in use", naming
/// `listen`, unless both opt in to `http.reuse_port`: then a blue-green
/// hand-over (start the new one, wait until it accepts, stop the old one)
/// loses no request.
#[test]
fn a_second_process_on_the_port_fails_unless_reuse_port() {
    let key = Key::rsa("ins_port", 2048);
    let keys = KeyServer::start(jwks(&[&key]));
    let token = key.sign(&claims("user_port"));
    let state = TempDir::new("port-state");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = TempDir::new("port");
    let config = config_file(&dir, listen, &keys, &state.0, "");
    let mut first = Jwtgate::spawn(
        Path::new(BIN),
        &config,
        dir.path("first.log"),
        Listen::Bind,
        &[],
    );
    first.wait_listening();
    let out = jwtgate_command()
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    eprintln!(
        "a second jwtgate on {listen}: exit {:?}, {last:?}",
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        last.starts_with(&format!(
            "jwtgate: listen: {listen}: Address already in use"
        )),
        "{stderr}"
    );
    drop(first);

    // Both with reuse_port: a blue-green hand-over, five times under load
    // through nginx: start the next, wait until it accepts, stop the old.
    let reuse = TempDir::new("port-reuse");
    let config = config_file(&reuse, listen, &keys, &state.0, "reuse_port = true");
    let mut blue = Jwtgate::spawn(
        Path::new(BIN),
        &config,
        reuse.path("0.log"),
        Listen::Bind,
        &[],
    );
    blue.wait_listening();
    let nginx = Nginx::start(listen);
    let load = Load::start(nginx.addr, &token, 4);
    std::thread::sleep(Duration::from_millis(200));
    let mut stops = Vec::new();
    for i in 1..=5 {
        let log = reuse.path(&format!("{i}.log"));
        let mut green = Jwtgate::spawn(Path::new(BIN), &config, log, Listen::Bind, &[]);
        green.wait_listening();
        std::thread::sleep(Duration::from_millis(100));
        let signalled = Instant::now();
        blue.signal("TERM");
        assert_eq!(blue.wait_exit(Duration::from_secs(10)), Some(0));
        stops.push(signalled.elapsed().as_millis());
        blue = green;
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = load.finish();
    eprintln!(
        "reuse_port = true: 5 blue-green hand-overs under load through nginx: {} requests, {} \
         failed {:?}; SIGTERM to exit of the old one (ms): {stops:?}",
        seen.ok + seen.failures.len() as u64,
        seen.failures.len(),
        seen.failures.iter().take(5).collect::<Vec<_>>()
    );
    assert!(seen.ok > 200, "only {} requests", seen.ok);
    assert!(seen.failures.is_empty(), "{:?}", seen.failures);
}

/// Socket activation's edges: `LISTEN_PID` of another process is not ours
/// (jwtgate binds `listen` itself), and a passed socket on another address
/// than `listen` stops the start naming both.
#[test]
fn socket_activation_checks_the_pid_and_the_address() {
    let key = Key::rsa("ins_edge", 2048);
    let keys = KeyServer::start(jwks(&[&key]));
    let state = TempDir::new("edge-state");
    let socket = held_socket();
    let passed = socket.local_addr().unwrap();
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = TempDir::new("edge");
    let config = config_file(&dir, listen, &keys, &state.0, "");

    let mut other = Jwtgate::spawn(
        Path::new(BIN),
        &config,
        dir.path("other.log"),
        Listen::ActivatedForOther(&socket),
        &[],
    );
    other.wait_listening();
    let log = other.log_text();
    assert!(
        log.contains("LISTEN_FDS is meant for process 1, not this one"),
        "{log}"
    );
    assert!(
        log.contains(&format!("listening on http://{listen} with")),
        "{log}"
    );
    drop(other);

    let mut mismatch = Jwtgate::spawn(
        Path::new(BIN),
        &config,
        dir.path("mismatch.log"),
        Listen::Activated(&socket),
        &[],
    );
    assert_eq!(mismatch.wait_exit(Duration::from_secs(10)), Some(2));
    let log = mismatch.log_text();
    eprintln!("socket activation on another address: {}", log.trim());
    assert!(
        log.contains(&format!(
            "listen: {listen} but the socket systemd passed listens on {passed}"
        )),
        "{log}"
    );
}

/// A reload that fails (a broken config file, or keys that do not load)
/// keeps the old keys, is counted in `jwtgate_reloads_total{outcome}`, and
/// tells systemd: READY=1 (the reload is over) with STATUS= and ERRNO=.
#[test]
fn reload_outcomes_reach_metrics_and_systemd() {
    let key = Key::rsa("ins_reload", 2048);
    let keys = KeyServer::start(jwks(&[&key]));
    let token = key.sign(&claims("user_reload"));
    let state = TempDir::new("reload-state");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = TempDir::new("reload");
    let config = config_file(&dir, listen, &keys, &state.0, "");
    let notify_path = dir.path("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 1024];
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
    };
    let notify_env = notify_path.to_str().unwrap();
    let mut jwtgate = Jwtgate::spawn(
        Path::new(BIN),
        &config,
        dir.path("log"),
        Listen::Bind,
        &[("NOTIFY_SOCKET", notify_env)],
    );
    jwtgate.wait_listening();
    assert_eq!(recv(), "READY=1");
    let reloads = || {
        let text = request(listen, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap()
            .body;
        let count = |outcome: &str| -> u64 {
            let prefix = format!("jwtgate_reloads_total{{outcome=\"{outcome}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
                .parse()
                .unwrap()
        };
        (count("ok"), count("error"))
    };
    assert_eq!(reloads(), (0, 0));
    let mut messages = Vec::new();
    let mut reload = || {
        jwtgate.signal("HUP");
        let reloading = recv();
        assert!(
            reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{reloading:?}"
        );
        let done = recv();
        messages.push(done.replace('\n', " | "));
        done
    };
    assert_eq!(
        reload(),
        "READY=1\nSTATUS=reloaded: 1 key(s) loaded\nERRNO=0"
    );
    // A broken config file: EINVAL, the old keys stay.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\n[keys\n")).unwrap();
    let done = reload();
    assert!(
        done.starts_with("READY=1\nSTATUS=reload failed, serving the old keys: config"),
        "{done:?}"
    );
    assert!(done.ends_with("\nERRNO=22"), "{done:?}");
    // The key server down: EIO.
    std::fs::write(&config, good).unwrap();
    keys.set_down(true);
    let done = reload();
    assert!(
        done.starts_with("READY=1\nSTATUS=reload failed, serving the old keys: "),
        "{done:?}"
    );
    assert!(done.ends_with("\nERRNO=5"), "{done:?}");
    assert_eq!(reloads(), (1, 2));
    let auth = format!("GET /auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n");
    assert_eq!(
        request(listen, &auth).unwrap().status,
        200,
        "the old keys serve"
    );
    // A good one clears the errno.
    keys.set_down(false);
    assert_eq!(
        reload(),
        "READY=1\nSTATUS=reloaded: 1 key(s) loaded\nERRNO=0"
    );
    assert_eq!(reloads(), (2, 2));
    jwtgate.signal("TERM");
    assert_eq!(recv(), "STOPPING=1");
    assert_eq!(jwtgate.wait_exit(Duration::from_secs(10)), Some(0));
    eprintln!("reloads: {messages:#?}; jwtgate_reloads_total ok 2, error 2");
}
