//! The HTTP side under abuse: the daemon stays up and correct, valid
//! requests stay fast while slow clients hold connections, and memory stays
//! bounded. A request the HTTP layer (vendor/may_minihttp) refuses gets a
//! 4xx answer and the connection is closed: never a panic, a hang for
//! others, a silent drop or a 500. (tests/http_layer.rs covers the HTTP
//! layer's limits, timeouts and closing rules one by one.)

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

fn start() -> (Key, KeyServer, Daemon) {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    (key, server, daemon)
}

/// Resident memory of the daemon, in KiB.
fn rss_kib(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Sends raw bytes and returns what came back before the server closed
/// (or the timeout): "" means closed without an answer.
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn assert_healthy(daemon: &Daemon, key: &Key) {
    let r = daemon.bearer(&key.sign(&claims("user_ok")));
    assert_eq!((r.status, r.header("x-user-id")), (200, Some("user_ok")));
    assert!(
        !daemon.log_text().contains("panicked"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn malformed_requests_are_refused_and_nothing_breaks() {
    let (key, _server, daemon) = start();
    let mut many_headers = String::from("GET /auth HTTP/1.1\r\n");
    for i in 0..40 {
        many_headers.push_str(&format!("X-H{i}: v\r\n"));
    }
    many_headers.push_str("\r\n");
    let mut too_many_headers = String::from("GET /auth HTTP/1.1\r\n");
    for i in 0..65 {
        too_many_headers.push_str(&format!("X-H{i}: v\r\n"));
    }
    too_many_headers.push_str("\r\n");
    // (request, the status line's start); every one is answered, then closed
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("40 headers", many_headers.into_bytes(), "HTTP/1.1 401 "),
        ("65 headers", too_many_headers.into_bytes(), "HTTP/1.1 431 "),
        (
            "garbage request line",
            b"GARBAGE\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
        ("no path", b"GET\r\n\r\n".to_vec(), "HTTP/1.1 400 "),
        (
            "binary",
            (0u8..=255).cycle().take(4096).collect(),
            "HTTP/1.1 400 ",
        ),
        (
            "bad header name",
            b"GET /auth HTTP/1.1\r\nBad Header: x\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
        (
            "NUL in header value",
            b"GET /auth HTTP/1.1\r\nAuthorization: Bearer a\0b\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
        (
            "HTTP/9",
            b"GET /auth HTTP/9.9\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
    ];
    for (name, bytes, status) in cases {
        let answer = send_raw(daemon.addr, &bytes);
        assert!(answer.starts_with(status), "{name}: {answer:?}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{name}: {answer:?}");
        if !status.contains(" 401 ") {
            assert!(
                answer.contains("\r\nConnection: close\r\n"),
                "{name}: {answer:?}"
            );
        }
        assert_healthy(&daemon, &key);
    }
}

#[test]
fn bodies_never_stall_the_answer_nor_become_requests() {
    let (key, _server, daemon) = start();
    let token = key.sign(&claims("user_b"));
    let head = format!("POST /auth HTTP/1.1\r\nAuthorization: Bearer {token}\r\n");
    // (request, status, whether the connection is closed after the answer).
    // jwtgate never reads a body: the HTTP layer skips it; one that has not
    // arrived when the answer is ready is not waited for (the connection
    // then closes, since its framing is in doubt). Chunked bodies are
    // refused, so a body is never parsed as the next request.
    let cases = [
        (
            format!("{head}Content-Length: 11\r\n\r\nhello world"),
            200,
            false,
        ),
        (format!("{head}Content-Length: 999999\r\n\r\n"), 200, true),
        (format!("{head}Content-Length: 2000000\r\n\r\n"), 413, true),
        (format!("{head}Content-Length: abc\r\n\r\n"), 400, true),
        (
            format!("{head}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            411,
            true,
        ),
    ];
    for (request, status, closes) in cases {
        let started = Instant::now();
        let mut stream = TcpStream::connect(daemon.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let r = read_response(&mut reader).unwrap();
        assert_eq!(r.status, status, "{request:?}: {r:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "{request:?}");
        assert_eq!(
            r.header("connection") == Some("close"),
            closes,
            "{request:?}: {r:?}"
        );
        // the same connection: closed, or still serving (the body was not
        // read as a request)
        let _ = stream.write_all(
            format!("GET /auth HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes(),
        );
        match read_response(&mut reader) {
            Ok(next) => {
                assert!(!closes, "{request:?}: answered after Connection: close");
                assert_eq!(next.status, 200, "{request:?}: {next:?}");
            }
            Err(_) => assert!(closes, "{request:?}: the connection died"),
        }
        assert_healthy(&daemon, &key);
    }
}

/// p99 of `n` sequential valid requests over one keep-alive connection.
fn p99_micros(addr: SocketAddr, token: &str, n: usize) -> u128 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let request = format!("GET /auth HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n");
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
    times[n * 99 / 100]
}

#[test]
fn slow_clients_do_not_delay_valid_requests() {
    let (key, _server, daemon) = start();
    let token = key.sign(&claims("user_fast"));
    let baseline = p99_micros(daemon.addr, &token, 2000);
    // 200 slowloris connections, each a partial request that trickles on.
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(daemon.addr).unwrap();
            s.write_all(b"GET /auth HTTP/1.1\r\nAuthorization: Bearer ")
                .unwrap();
            s
        })
        .collect();
    let trickle = std::thread::spawn(move || {
        for _ in 0..20 {
            for s in &mut slow {
                let _ = s.write_all(b"a");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        slow
    });
    let loaded = p99_micros(daemon.addr, &token, 2000);
    let slow = trickle.join().unwrap();
    eprintln!("p99 without slow clients {baseline} us, with 200 slow clients {loaded} us");
    assert!(
        loaded < 20_000,
        "p99 {loaded} us with 200 slow connections open"
    );
    assert!(
        loaded < baseline * 10 + 2_000,
        "p99 {loaded} us vs {baseline} us without"
    );
    drop(slow);
    assert_healthy(&daemon, &key);
}

#[test]
fn connection_floods_leave_it_serving_with_bounded_memory() {
    let (key, _server, daemon) = start();
    assert_healthy(&daemon, &key);
    let before = rss_kib(&daemon);
    for _round in 0..5 {
        let conns: Vec<TcpStream> = (0..400)
            .filter_map(|_| TcpStream::connect(daemon.addr).ok())
            .collect();
        assert!(conns.len() >= 300, "accepted {}", conns.len());
        drop(conns);
    }
    // Idle open connections, then a burst of requests over them.
    let token = key.sign(&claims("user_flood"));
    let raw = format!("GET /auth HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n");
    let mut conns: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(daemon.addr).unwrap())
        .collect();
    for c in &mut conns {
        c.write_all(raw.as_bytes()).unwrap();
    }
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = read_response(&mut std::io::BufReader::new(c.try_clone().unwrap())).unwrap();
        assert_eq!(r.status, 200);
    }
    drop(conns);
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib(&daemon);
    eprintln!("RSS before {before} KiB, after 2,300 connections {after} KiB");
    assert!(
        after < before + 48 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    assert_healthy(&daemon, &key);
}

/// An unterminated header block is refused at 32 KiB (the HTTP layer's
/// `max_header_bytes`) with 431: streaming 16 MiB of it costs no memory.
/// tests/http_layer.rs runs 16 of these at once while measuring latency.
#[test]
fn unterminated_header_block_is_refused_with_bounded_memory() {
    let (key, _server, daemon) = start();
    let before = rss_kib(&daemon);
    let mut stream = TcpStream::connect(daemon.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /auth HTTP/1.1\r\nX-Filler: ")
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    for _ in 0..(16 * 16) {
        if stream.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let during = rss_kib(&daemon);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let after = rss_kib(&daemon);
    eprintln!(
        "unterminated header block ({} KiB sent before the server closed): RSS {before} -> {during} -> {after} KiB",
        sent / 1024
    );
    assert!(
        answer.starts_with("HTTP/1.1 431 "),
        "refused with 431: {answer:?}"
    );
    assert!(
        during < before + 4 * 1024,
        "memory stays bounded: {before} -> {during} KiB"
    );
    assert_healthy(&daemon, &key);
}
