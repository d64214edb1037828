//! The upstream app of the proxy end-to-end tests: a minimal HTTP/1.1
//! server that echoes each request it gets, so a test sees exactly what a
//! proxy (nginx, Caddy) let through to the app.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The identity headers jwtgate hands to an app.
pub const IDENTITY_HEADERS: [&str; 7] = [
    "X-User-Id",
    "X-Session-Id",
    "X-Org-Id",
    "X-Org-Role",
    "X-Org-Slug",
    "X-Org-Permissions",
    "X-Actor-Id",
];

/// A minimal HTTP/1.1 app on loopback (keepalive, Content-Length bodies).
/// It answers every request with 200 and a body that echoes the request:
/// the request line, each header as `name: value`, an empty line, then the
/// request body.
pub struct App {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl App {
    pub fn start() -> App {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || serve_app(stream, &counter));
            }
        });
        App { addr, requests }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve_app(stream: TcpStream, counter: &AtomicUsize) {
    // nginx's pooled connections idle for up to 60 s; don't keep threads
    // around longer than a test run.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut echo = format!("{}\n", request_line.trim_end());
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if name.eq_ignore_ascii_case("transfer-encoding") {
                    // nginx buffers request bodies and sends Content-Length;
                    // this app does not speak chunked.
                    echo.push_str("!! chunked request body\n");
                }
            }
            echo.push_str(line);
            echo.push('\n');
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        echo.push('\n');
        echo.push_str(&String::from_utf8_lossy(&body));
        counter.fetch_add(1, Ordering::SeqCst);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{echo}",
            echo.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// What the app saw, parsed back from its echo.
#[derive(Debug)]
pub struct Echo {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Echo {
    pub fn parse(page: &str) -> Echo {
        let (head, body) = page.split_once("\n\n").expect("an echo page from the app");
        let mut lines = head.lines();
        let request_line = lines.next().unwrap().to_string();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap_or((l, ""));
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        Echo {
            request_line,
            headers,
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = values.next().map(|(_, v)| v.as_str());
        assert!(
            values.next().is_none(),
            "app got {name} more than once: {self:#?}"
        );
        first
    }

    /// Asserts the identity headers the app got: exactly `expected`
    /// (name, value) pairs, and none of the other identity headers (an
    /// empty one counts as none: Caddy's copy of an empty answer header).
    pub fn assert_identity(&self, expected: &[(&str, &str)]) {
        for name in IDENTITY_HEADERS {
            let want = expected.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
            assert_eq!(
                self.header(name).filter(|v| !v.is_empty()),
                want,
                "{name} at the app; echo: {self:#?}"
            );
        }
        for (name, value) in &self.headers {
            assert!(
                !name.contains('_') && !value.contains("attacker") && !value.contains("{http."),
                "a client-supplied identity header reached the app: {name}: {value}"
            );
        }
    }
}
