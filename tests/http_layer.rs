//! The HTTP layer (the patched may_minihttp in vendor/, see its PATCHES.md),
//! black-box over real sockets: the real jwtgate binary where the daemon's
//! defaults are what is tested, and examples/hello.rs (the same library,
//! every `HttpConfig` option from the environment, SIGTERM drain, socket
//! activation) where a test needs short timeouts or the stop API directly
//! (the daemon's drain and socket activation are tested in
//! tests/restarts.rs). Each test prints its figures (run with
//! `--nocapture` to see them).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;

fn start_daemon() -> (Key, KeyServer, Daemon) {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    (key, server, daemon)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

/// Reads until the server closes (or 5 s pass): true when it closed.
fn closed_by_server(reader: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    match reader.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn auth_request(token: &str) -> String {
    format!("GET /auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n")
}

/// p50 and p99 (µs) of `n` sequential valid requests on one connection.
fn latency_micros(addr: SocketAddr, token: &str, n: usize) -> (u128, u128) {
    let (mut stream, mut reader) = connect(addr);
    let request = auth_request(token);
    let mut times: Vec<u128> = (0..n)
        .map(|_| {
            let started = Instant::now();
            stream.write_all(request.as_bytes()).unwrap();
            let r = read_response(&mut reader).unwrap();
            assert_eq!(r.status, 200);
            started.elapsed().as_micros()
        })
        .collect();
    times.sort_unstable();
    (times[n / 2], times[n * 99 / 100])
}

#[test]
fn a_post_with_its_body_in_the_same_packet_is_answered_and_the_connection_stays_usable() {
    let (key, _server, daemon) = start_daemon();
    let token = key.sign(&claims("user_post"));
    // What `curl -d 'x=1'` sends, in one write.
    let (mut stream, mut reader) = connect(daemon.addr);
    stream
        .write_all(
            format!(
                "POST /auth HTTP/1.1\r\nHost: t\r\nUser-Agent: curl/8.14.1\r\nAccept: */*\r\n\
                 Authorization: Bearer {token}\r\nContent-Length: 3\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\r\nx=1"
            )
            .as_bytes(),
        )
        .unwrap();
    let first = read_response(&mut reader).unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("x-user-id"), Some("user_post"));
    assert_eq!(first.header("connection"), None, "kept alive");
    // The body was skipped, not read as the next request: the connection
    // serves the next one.
    stream.write_all(auth_request(&token).as_bytes()).unwrap();
    let second = read_response(&mut reader).unwrap();
    assert_eq!(second.status, 200, "{second:?}");

    // The real curl: a POST with -d, then a GET that reuses the connection
    // (num_connects 0).
    let url = format!("http://{}/auth", daemon.addr);
    let bearer = format!("Authorization: Bearer {token}");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
        ])
        .args(["-H", &bearer, "-d", "x=1", &url, "--next"])
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
        ])
        .args(["-H", &bearer, &url])
        .output()
        .expect("curl (Debian's curl package)");
    let out = String::from_utf8_lossy(&out.stdout);
    eprintln!("curl -d 'x=1' then GET on the same connection: {out:?}");
    assert_eq!(out, "200 1\n200 0\n");
}

#[test]
fn a_40_header_browser_request_is_answered() {
    let (key, _server, daemon) = start_daemon();
    let token = key.sign(&claims("user_browser"));
    let mut raw = String::from("GET /auth HTTP/1.1\r\nHost: app.example.com\r\n");
    let browser = [
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
        "Accept-Language: en-US,en;q=0.9",
        "Accept-Encoding: gzip, deflate, br, zstd",
        "Cache-Control: max-age=0",
        "Sec-Ch-Ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"",
        "Sec-Ch-Ua-Mobile: ?0",
        "Sec-Ch-Ua-Platform: \"Linux\"",
        "Sec-Fetch-Dest: document",
        "Sec-Fetch-Mode: navigate",
        "Sec-Fetch-Site: same-origin",
        "Sec-Fetch-User: ?1",
        "Upgrade-Insecure-Requests: 1",
        "Referer: https://app.example.com/",
        "Priority: u=0, i",
        "X-Forwarded-For: 203.0.113.7",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: app.example.com",
        "X-Forwarded-Method: GET",
        "X-Forwarded-Uri: /dashboard?tab=1",
        "X-Real-Ip: 203.0.113.7",
        "X-Request-Id: 5f0c1e2d",
        "Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "Dnt: 1",
    ];
    for line in browser {
        raw.push_str(line);
        raw.push_str("\r\n");
    }
    let mut count = 1 + browser.len();
    while count < 39 {
        raw.push_str(&format!("X-Extra-{count}: v{count}\r\n"));
        count += 1;
    }
    raw.push_str(&format!(
        "Cookie: theme=dark; __client_uat=1700000000; __session={token}\r\n\r\n"
    ));
    count += 1;
    assert_eq!(count, 40);
    let r = request(daemon.addr, &raw).unwrap();
    eprintln!(
        "{count}-header browser request ({} bytes): {}",
        raw.len(),
        r.status
    );
    assert_eq!(
        (r.status, r.header("x-user-id")),
        (200, Some("user_browser"))
    );
}

#[test]
fn sixteen_streams_of_unterminated_headers_cost_bounded_memory_and_valid_requests_keep_their_latency(
) {
    let (key, _server, daemon) = start_daemon();
    let pid = daemon.child.id();
    let token = key.sign(&claims("user_fast"));
    let _ = latency_micros(daemon.addr, &token, 200); // warm up
    let (p50_before, p99_before) = latency_micros(daemon.addr, &token, 2000);
    let rss_before = rss_kib(pid);

    // 16 clients, each streaming 16 MiB of one header line that never ends.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::SeqCst) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let addr = daemon.addr;
    let streams: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut sent = 0usize;
                if stream
                    .write_all(b"GET /auth HTTP/1.1\r\nX-Filler: ")
                    .is_ok()
                {
                    let chunk = vec![b'a'; 64 * 1024];
                    while sent < 16 * 1024 * 1024 && stream.write_all(&chunk).is_ok() {
                        sent += chunk.len();
                    }
                }
                let mut status = String::new();
                let _ = reader.read_line(&mut status);
                (sent, status)
            })
        })
        .collect();
    let (p50_during, p99_during) = latency_micros(daemon.addr, &token, 2000);
    let results: Vec<(usize, String)> = streams.into_iter().map(|t| t.join().unwrap()).collect();
    done.store(true, Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = rss_kib(pid);
    let sent_kib: Vec<usize> = results.iter().map(|(sent, _)| sent / 1024).collect();
    eprintln!(
        "16 x 16 MiB unterminated headers: RSS {rss_before} KiB before, peak {peak} KiB (+{} KiB), \
         {rss_after} KiB after; KiB each client got to send before the server closed: {sent_kib:?}; \
         valid requests p50/p99 {p50_before}/{p99_before} us before, {p50_during}/{p99_during} us during",
        peak.saturating_sub(rss_before)
    );
    for (sent, status) in &results {
        assert!(
            status.starts_with("HTTP/1.1 431 "),
            "refused with 431 after {sent} bytes: {status:?}"
        );
    }
    // Before the patch the same load cost 16 MiB per stream (256 MiB).
    assert!(
        peak < rss_before + 16 * 1024,
        "RSS peak {peak} KiB from {rss_before} KiB"
    );
    assert!(
        p99_during < (p99_before * 10).max(20_000),
        "p99 {p99_during} us during the streams, {p99_before} us before"
    );
    assert_eq!(daemon.bearer(&token).status, 200);
}

#[test]
fn a_chunked_body_is_refused_after_the_answers_owed_to_pipelined_requests() {
    let (key, _server, daemon) = start_daemon();
    let users = ["user_p1", "user_p2", "user_p3"];
    let mut raw = String::new();
    for user in users {
        raw.push_str(&auth_request(&key.sign(&claims(user))));
    }
    let token = key.sign(&claims("user_chunked"));
    raw.push_str(&format!(
        "POST /auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
         Transfer-Encoding: chunked\r\n\r\n1c\r\nGET /auth HTTP/1.1\r\n\r\n\r\n0\r\n\r\n"
    ));
    raw.push_str(&auth_request(&token));
    let (mut stream, mut reader) = connect(daemon.addr);
    stream.write_all(raw.as_bytes()).unwrap();
    for user in users {
        let r = read_response(&mut reader).unwrap();
        assert_eq!((r.status, r.header("x-user-id")), (200, Some(user)));
    }
    let refused = read_response(&mut reader).unwrap();
    eprintln!(
        "3 pipelined GETs, then a chunked POST: 200 200 200 {}",
        refused.status
    );
    assert_eq!(refused.status, 411, "{refused:?}");
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(
        closed_by_server(&mut reader),
        "nothing after the refusal: the chunk is never read as a request"
    );
    assert_eq!(daemon.bearer(&token).status, 200);
}

#[test]
fn connection_close_is_honoured() {
    let (key, _server, daemon) = start_daemon();
    let token = key.sign(&claims("user_close"));
    let (mut stream, mut reader) = connect(daemon.addr);
    // A request saying close, and one pipelined after it.
    stream
        .write_all(
            format!(
                "GET /auth HTTP/1.1\r\nHost: t\r\nConnection: Close\r\nAuthorization: Bearer {token}\r\n\r\n{}",
                auth_request(&token)
            )
            .as_bytes(),
        )
        .unwrap();
    let r = read_response(&mut reader).unwrap();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(
        closed_by_server(&mut reader),
        "closed after the answer; the pipelined request is not served"
    );
}

#[test]
fn http_1_0_closes_unless_it_asked_for_keep_alive() {
    let (key, _server, daemon) = start_daemon();
    let token = key.sign(&claims("user_10"));
    let (mut stream, mut reader) = connect(daemon.addr);
    stream
        .write_all(
            format!("GET /auth HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let r = read_response(&mut reader).unwrap();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(closed_by_server(&mut reader));

    let (mut stream, mut reader) = connect(daemon.addr);
    let keep = format!(
        "GET /auth HTTP/1.0\r\nConnection: keep-alive\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    for _ in 0..2 {
        stream.write_all(keep.as_bytes()).unwrap();
        let r = read_response(&mut reader).unwrap();
        assert_eq!(
            (r.status, r.header("connection")),
            (200, Some("keep-alive"))
        );
    }
}

#[test]
fn a_second_listener_on_the_same_port_fails_with_address_in_use() {
    let (key, _server, daemon) = start_daemon();
    let config = std::fs::read_to_string(&daemon.config).unwrap();
    let dir = TempDir::new("second");
    let second_config = dir.path("jwtgate.toml");
    std::fs::write(&second_config, config).unwrap();
    let out = jwtgate_command()
        .arg("--config")
        .arg(&second_config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last_line = stderr.lines().last().unwrap_or_default().to_string();
    eprintln!(
        "second jwtgate on {}: exit {:?}, {last_line:?}",
        daemon.addr,
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Address already in use"), "{stderr}");
    // Every connection still reaches the first one.
    let token = key.sign(&claims("user_first"));
    let before = daemon.metric("jwtgate_connections_accepted_total");
    for _ in 0..50 {
        assert_eq!(daemon.bearer(&token).status, 200);
    }
    assert!(daemon.metric("jwtgate_connections_accepted_total") >= before + 50.0);

    // SO_REUSEPORT only when asked for (a blue-green hand-over).
    let port = free_port();
    let reuse = [("HELLO_REUSE_PORT", "1")];
    let a = Hello::start(&format!("127.0.0.1:{port}"), &reuse);
    let b = Hello::start(&format!("127.0.0.1:{port}"), &reuse);
    assert_eq!(a.get().status, 200);
    assert_eq!(b.get().status, 200);
}

#[test]
fn idle_and_slow_connections_close_after_their_timeouts() {
    let hello = Hello::start(
        "127.0.0.1:0",
        &[
            ("HELLO_IDLE_TIMEOUT_MS", "600"),
            ("HELLO_HEADER_READ_TIMEOUT_MS", "400"),
        ],
    );
    // Idle after one request: closed after the idle timeout.
    let (mut stream, mut reader) = connect(hello.addr);
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut reader).unwrap().status, 200);
    let started = Instant::now();
    assert!(closed_by_server(&mut reader));
    let idle = started.elapsed();

    // A head that never ends: 408 after the header-read timeout.
    let (mut stream, mut reader) = connect(hello.addr);
    let started = Instant::now();
    stream.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    let r = read_response(&mut reader).unwrap();
    let slow = started.elapsed();
    assert_eq!((r.status, r.header("connection")), (408, Some("close")));
    assert!(closed_by_server(&mut reader));

    // Trickling one byte every 100 ms does not extend it.
    let (mut stream, mut reader) = connect(hello.addr);
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        for _ in 0..30 {
            if stream.write_all(b"a").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let r = read_response(&mut reader).unwrap();
    let trickled = started.elapsed();
    assert_eq!(r.status, 408);
    trickle.join().unwrap();

    // A new connection that sends nothing: closed quietly.
    let (_stream, mut reader) = connect(hello.addr);
    let started = Instant::now();
    assert!(closed_by_server(&mut reader));
    let silent = started.elapsed();
    eprintln!(
        "idle timeout 600 ms: closed after {idle:?}; header-read timeout 400 ms: 408 after {slow:?} \
         (trickled: {trickled:?}), silent new connection closed after {silent:?}"
    );
    for (what, took, limit) in [
        ("idle", idle, 600),
        ("slow head", slow, 400),
        ("trickled head", trickled, 400),
        ("silent", silent, 400),
    ] {
        assert!(
            took >= Duration::from_millis(limit - 100)
                && took < Duration::from_millis(limit + 1500),
            "{what}: {took:?} for a {limit} ms timeout"
        );
    }
    // The defaults of the daemon: a connection idle for 1 s is still served.
    let (key, _server, daemon) = start_daemon();
    let token = key.sign(&claims("user_idle"));
    let (mut stream, mut reader) = connect(daemon.addr);
    stream.write_all(auth_request(&token).as_bytes()).unwrap();
    assert_eq!(read_response(&mut reader).unwrap().status, 200);
    std::thread::sleep(Duration::from_secs(1));
    stream.write_all(auth_request(&token).as_bytes()).unwrap();
    assert_eq!(read_response(&mut reader).unwrap().status, 200);
}

#[test]
fn closing_connections_logs_no_error() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start_with(&jwks_config(&server, ""), |cmd| {
        // As the shipped unit sets it.
        cmd.env("RUST_LOG", "info");
    });
    daemon.wait_ready();
    let token = key.sign(&claims("user_log"));
    let lines_before = daemon.log_text().lines().count();
    // 50 keep-alive connections with one answered request each, closed by
    // the client while idle (as nginx closes its idle upstream connections),
    // then 50 connections closed without a request, 10 reset mid-request and
    // 10 refused with a 400.
    for _ in 0..50 {
        let (mut stream, mut reader) = connect(daemon.addr);
        stream.write_all(auth_request(&token).as_bytes()).unwrap();
        assert_eq!(read_response(&mut reader).unwrap().status, 200);
    }
    for _ in 0..50 {
        drop(TcpStream::connect(daemon.addr).unwrap());
    }
    for _ in 0..10 {
        let stream = TcpStream::connect(daemon.addr).unwrap();
        (&stream).write_all(b"GET /auth HTTP/1.1\r\nHost:").unwrap();
        // SO_LINGER 0: the close is a reset
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
    }
    for _ in 0..10 {
        let r = request(daemon.addr, "GARBAGE\r\n\r\n").unwrap();
        assert_eq!(r.status, 400);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.bearer(&token).status, 200);
    let log = daemon.log_text();
    let new: Vec<&str> = log.lines().skip(lines_before).collect();
    let errors: Vec<&&str> = new.iter().filter(|l| l.contains("ERROR")).collect();
    eprintln!(
        "RUST_LOG=info, 120 connections closed: {} log lines, {} ERROR",
        new.len(),
        errors.len()
    );
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn drain_closes_idle_connections_at_once_and_answers_requests_being_read() {
    let mut hello = Hello::start("127.0.0.1:0", &[("HELLO_DRAIN_MS", "5000")]);
    // 10 idle keep-alive connections, each served once.
    let mut idle: Vec<(TcpStream, BufReader<TcpStream>)> = (0..10)
        .map(|_| {
            let (mut stream, mut reader) = connect(hello.addr);
            stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut reader).unwrap().status, 200);
            (stream, reader)
        })
        .collect();
    // One connection in the middle of a request head.
    let (mut busy, mut busy_reader) = connect(hello.addr);
    busy.write_all(b"GET /first HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let signalled = Instant::now();
    hello.signal("TERM");
    for (_, reader) in &mut idle {
        assert!(closed_by_server(reader), "idle connections close");
    }
    let idle_closed = signalled.elapsed();
    // New connections are refused (the listening socket is closed).
    std::thread::sleep(Duration::from_millis(50));
    let refused = TcpStream::connect(hello.addr).is_err();
    // The head being read ends, with two pipelined requests behind it: all
    // three are answered, each with Connection: close, then the connection
    // closes.
    busy.write_all(b"\r\nGET /second HTTP/1.1\r\n\r\nGET /third HTTP/1.1\r\n\r\n")
        .unwrap();
    let answers: Vec<(u16, Option<String>)> = (0..3)
        .map(|_| {
            let r = read_response(&mut busy_reader).unwrap();
            (r.status, r.header("connection").map(str::to_string))
        })
        .collect();
    assert!(closed_by_server(&mut busy_reader));
    drop((busy, busy_reader, idle));
    let code = hello.wait_exit(Duration::from_secs(5));
    let exited = signalled.elapsed();
    eprintln!(
        "SIGTERM: 10 idle connections closed within {idle_closed:?}; new connection refused: \
         {refused}; request being read answered: {answers:?}; exit {code:?} after {exited:?}\n{}",
        hello.log_text()
    );
    assert!(idle_closed < Duration::from_secs(1), "{idle_closed:?}");
    assert!(refused);
    assert_eq!(answers, vec![(200, Some("close".to_string())); 3]);
    assert_eq!(code, Some(0));
}

#[test]
fn socket_activation_serves_the_passed_socket_and_a_restart_refuses_no_connection() {
    // The parent (this test) holds the listening socket, as systemd does.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A client connects and sends before any server runs: it waits in the
    // backlog.
    let (mut early, mut early_reader) = connect(addr);
    early.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut first = Hello::activated(&listener);
    assert_eq!(read_response(&mut early_reader).unwrap().status, 200);
    // Restart: stop the first (SIGTERM drains it), start the second on the
    // same socket; a client that connects in between is served by the second.
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(5)), Some(0));
    let (mut between, mut between_reader) = connect(addr);
    between.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let second = Hello::activated(&listener);
    let r = read_response(&mut between_reader).unwrap();
    eprintln!(
        "socket activation on {addr}: a request queued before the first server and one sent \
         between the two servers both answered ({})",
        r.status
    );
    assert_eq!(r.status, 200);
    assert_eq!(second.get().status, 200);
}

/// examples/hello.rs, built once by cargo, killed on drop.
struct Hello {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

fn hello_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args(["build", "--example", "hello", "--message-format=json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo build --example hello");
        assert!(out.status.success(), "cargo build --example hello failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find_map(|msg| {
                (msg["target"]["name"] == "hello")
                    .then(|| msg["executable"].as_str().map(PathBuf::from))
                    .flatten()
            })
            .expect("the hello executable in cargo's output")
    })
}

impl Hello {
    fn start(listen: &str, env: &[(&str, &str)]) -> Hello {
        Hello::spawn(env, |cmd| {
            cmd.arg(listen);
        })
    }

    /// Started the way systemd's socket activation starts a service: the
    /// listening socket as fd 3, `LISTEN_FDS=1`, `LISTEN_PID` its pid.
    fn activated(listener: &TcpListener) -> Hello {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = listener.as_raw_fd();
        let addr = listener.local_addr().unwrap();
        let hello = hello_binary().clone();
        let mut started = Hello::spawn(&[], move |cmd| {
            // sh sets LISTEN_PID to its own pid, which `exec` keeps.
            *cmd = Command::new("sh");
            cmd.args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\""])
                .arg(&hello);
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if fd == 3 {
                        libc::fcntl(3, libc::F_SETFD, 0);
                    } else if libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        });
        started.addr = addr;
        started
    }

    fn spawn(env: &[(&str, &str)], customize: impl FnOnce(&mut Command)) -> Hello {
        let dir = TempDir::new("hello");
        let log = dir.path("stderr.log");
        let mut cmd = Command::new(hello_binary());
        customize(&mut cmd);
        cmd.envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("spawn hello");
        let mut hello = Hello {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(addr) = hello
                .log_text()
                .lines()
                .find_map(|l| l.strip_prefix("hello listening on http://"))
            {
                hello.addr = addr.trim().parse().unwrap();
                return hello;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("hello did not start: {}", hello.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self) -> Response {
        request(self.addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap()
    }

    fn signal(&self, name: &str) {
        signal_child(&self.child, name);
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        wait_child(&mut self.child, limit)
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
