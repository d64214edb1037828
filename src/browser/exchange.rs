//! The nonce exchange with Clerk's Backend API (clerk-handshake.md §4.3):
//! `GET <api_url>/v1/clients/handshake_payload?nonce=<nonce>` with
//! `Authorization: Bearer <secret key>`, answered by `200`,
//! `Content-Type: application/json` exactly (the SDK parses anything else
//! as text and fails) and `{"directives":["<set-cookie>", ...]}`.
//!
//! The exchange is network I/O caused by a request, so it never runs on an
//! HTTP worker: a small pool of OS threads (one shared blocking reqwest
//! client, no redirects) takes jobs from a bounded queue; the request's
//! coroutine waits on a `may` channel, which parks the coroutine and not
//! its worker thread. One deadline (`keys.fetch_timeout_ms`) covers the
//! whole exchange: time in the queue, connecting, headers and body. The
//! body is bounded in size. Every failure is an [`ExchangeError`], never a
//! panic; the decision treats it as an empty payload, as the SDK does.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::url::Url;
use serde::Deserialize;

use super::instance::is_loopback;
use super::url::CLERK_API_VERSION;

/// Largest payload read, in bytes (a payload of ten directives is ~6 KB).
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;
/// Exchanges running at once (the pool's threads).
pub const DEFAULT_THREADS: usize = 2;
/// Exchanges waiting for a thread; more are refused at once.
pub const DEFAULT_QUEUE: usize = 32;

/// How the pool is set up.
#[derive(Clone)]
pub struct ExchangeSettings {
    /// The Backend API base, e.g. `https://api.clerk.com`.
    pub api_url: String,
    pub secret_key: String,
    /// Deadline of one whole exchange.
    pub timeout: Duration,
    pub threads: usize,
    pub queue: usize,
}

impl std::fmt::Debug for ExchangeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeSettings")
            .field("api_url", &self.api_url)
            .field("secret_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("threads", &self.threads)
            .field("queue", &self.queue)
            .finish()
    }
}

/// Why an exchange yielded no payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// The Backend API answered with this non-2xx status (404: unknown or used nonce).
    Status(u16),
    /// Not `Content-Type: application/json` exactly, or not
    /// `{"directives": [strings]}`.
    BadResponse,
    /// The payload is over [`MAX_PAYLOAD_BYTES`].
    TooLarge,
    /// Could not connect, or the connection failed.
    Network,
    /// The deadline passed (in the queue or on the wire).
    Timeout,
    /// The queue is full (or the pool has stopped): refused at once.
    Overloaded,
}

impl ExchangeError {
    /// Every metric label an exchange can end with, `ok` first.
    pub const LABELS: [&'static str; 7] = [
        "ok",
        "status",
        "bad-response",
        "too-large",
        "network",
        "timeout",
        "overloaded",
    ];

    /// The metric label of this failure (one of [`ExchangeError::LABELS`]).
    pub fn label(self) -> &'static str {
        match self {
            ExchangeError::Status(_) => "status",
            ExchangeError::BadResponse => "bad-response",
            ExchangeError::TooLarge => "too-large",
            ExchangeError::Network => "network",
            ExchangeError::Timeout => "timeout",
            ExchangeError::Overloaded => "overloaded",
        }
    }
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Status(code) => write!(f, "Backend API answered HTTP {code}"),
            other => f.write_str(other.label()),
        }
    }
}

/// The metric label of an exchange's result.
pub fn label(result: &Result<Vec<String>, ExchangeError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    }
}

type Reply = Result<Vec<String>, ExchangeError>;

struct Job {
    url: Url,
    deadline: Instant,
    reply: may::sync::mpsc::Sender<Reply>,
}

/// The exchange pool. Dropping it stops the threads once their current
/// exchange ends.
pub struct NonceExchanger {
    jobs: SyncSender<Job>,
    endpoint: Url,
    timeout: Duration,
}

impl NonceExchanger {
    /// Starts the pool. Refuses an `api_url` that is not https (or plain
    /// http to a loopback address): the secret key travels in every request.
    pub fn start(settings: ExchangeSettings) -> Result<NonceExchanger, String> {
        let base = settings.api_url.trim_end_matches('/');
        let endpoint = Url::parse(&format!("{base}/v1/clients/handshake_payload"))
            .map_err(|e| format!("keys.api_url: {:?}: {e}", settings.api_url))?;
        match endpoint.scheme() {
            "https" => {}
            "http" if is_loopback(&endpoint) => {}
            _ => {
                return Err(format!(
                    "keys.api_url: {:?} must be https (or plain http to loopback): the secret key travels in it",
                    settings.api_url
                ))
            }
        }
        if settings.secret_key.is_empty() {
            return Err("keys.secret_key: the nonce exchange needs the secret key".into());
        }
        let client = crate::keys::source::http_client(settings.timeout)?;
        let (jobs, queue) = sync_channel::<Job>(settings.queue);
        let queue = Arc::new(Mutex::new(queue));
        let secret = Arc::new(settings.secret_key);
        for i in 0..settings.threads.max(1) {
            let (queue, client, secret) = (queue.clone(), client.clone(), secret.clone());
            std::thread::Builder::new()
                .name(format!("jwtgate-exchange-{i}"))
                .spawn(move || worker(&queue, &client, &secret))
                .map_err(|e| format!("cannot start the nonce exchange thread: {e}"))?;
        }
        Ok(NonceExchanger {
            jobs,
            endpoint,
            timeout: settings.timeout,
        })
    }

    /// Exchanges a nonce for the payload's `Set-Cookie` directives. Waits at
    /// most the deadline; from a `may` coroutine it parks the coroutine
    /// only (from a plain thread, it blocks that thread).
    pub fn exchange(&self, nonce: &str) -> Result<Vec<String>, ExchangeError> {
        let deadline = Instant::now() + self.timeout;
        let mut url = self.endpoint.clone();
        url.query_pairs_mut().append_pair("nonce", nonce);
        let (reply, answer) = may::sync::mpsc::channel();
        match self.jobs.try_send(Job {
            url,
            deadline,
            reply,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                return Err(ExchangeError::Overloaded)
            }
        }
        answer
            .recv_timeout(self.timeout)
            .unwrap_or(Err(ExchangeError::Timeout))
    }
}

fn worker(queue: &Mutex<Receiver<Job>>, client: &reqwest::blocking::Client, secret: &str) {
    loop {
        let job = {
            let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return, // the exchanger is gone
            }
        };
        let result = if Instant::now() >= job.deadline {
            Err(ExchangeError::Timeout)
        } else {
            fetch(client, job.url, secret, job.deadline)
        };
        if let Err(e) = &result {
            log::warn!("handshake nonce exchange failed: {e}");
        }
        // The waiter may have given up; then nobody listens, which is fine.
        let _ = job.reply.send(result);
    }
}

#[derive(Deserialize)]
struct Payload {
    directives: Vec<String>,
}

fn fetch(
    client: &reqwest::blocking::Client,
    url: Url,
    secret: &str,
    deadline: Instant,
) -> Result<Vec<String>, ExchangeError> {
    // A failure once the deadline has passed is the deadline's doing.
    let failed = || {
        if Instant::now() >= deadline {
            ExchangeError::Timeout
        } else {
            ExchangeError::Network
        }
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    let response = client
        .get(url)
        .bearer_auth(secret)
        .header("Clerk-API-Version", CLERK_API_VERSION)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(remaining)
        .send()
        .map_err(|e| {
            if e.is_timeout() {
                ExchangeError::Timeout
            } else {
                failed()
            }
        })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) || status == 204 {
        return Err(ExchangeError::Status(status));
    }
    let mut types = response
        .headers()
        .get_all(reqwest::header::CONTENT_TYPE)
        .iter();
    match (types.next(), types.next()) {
        (Some(t), None) if t.as_bytes() == b"application/json" => {}
        _ => return Err(ExchangeError::BadResponse),
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_PAYLOAD_BYTES)
    {
        return Err(ExchangeError::TooLarge);
    }
    let mut body = Vec::new();
    response
        .take(MAX_PAYLOAD_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|_| failed())?;
    if body.len() as u64 > MAX_PAYLOAD_BYTES {
        return Err(ExchangeError::TooLarge);
    }
    serde_json::from_slice::<Payload>(&body)
        .map(|p| p.directives)
        .map_err(|_| ExchangeError::BadResponse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fake Backend API on loopback: each connection gets `answer(head)`
    /// after `delay`. Returns the base URL and the request heads seen.
    fn fake_bapi(
        delay: Duration,
        answer: fn(&str) -> Vec<u8>,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    log.lock().unwrap().push(head.clone());
                    std::thread::sleep(delay);
                    let _ = stream.write_all(&answer(&head));
                });
            }
        });
        (format!("http://{addr}"), seen)
    }

    fn json(body: &str, content_type: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn good(_: &str) -> Vec<u8> {
        json(
            r#"{"directives":["__session=a.b.c; Path=/","__client_uat=1; Path=/"],"extra":1}"#,
            "application/json",
        )
    }

    fn settings(api_url: &str, timeout_ms: u64) -> ExchangeSettings {
        ExchangeSettings {
            api_url: api_url.to_string(),
            secret_key: "sk_test_secret".into(),
            timeout: Duration::from_millis(timeout_ms),
            threads: 2,
            queue: 8,
        }
    }

    #[test]
    fn browser_exchange_sends_what_the_sdk_sends() {
        let (url, seen) = fake_bapi(Duration::ZERO, good);
        let x = NonceExchanger::start(settings(&format!("{url}/"), 2000)).unwrap();
        assert_eq!(
            x.exchange("n 1&2").unwrap(),
            ["__session=a.b.c; Path=/", "__client_uat=1; Path=/"]
        );
        let head = seen.lock().unwrap()[0].to_ascii_lowercase();
        assert!(
            head.starts_with("get /v1/clients/handshake_payload?nonce=n+1%262 http/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("authorization: bearer sk_test_secret\r\n"),
            "{head}"
        );
        assert!(head.contains("clerk-api-version: 2026-05-12\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
    }

    #[test]
    fn browser_exchange_failures_are_errors() {
        type Answer = fn(&str) -> Vec<u8>;
        let cases: [(Answer, ExchangeError); 6] = [
            (
                |_| {
                    json(
                        r#"{"directives":["a=b"]}"#,
                        "application/json; charset=utf-8",
                    )
                },
                ExchangeError::BadResponse,
            ),
            (
                |_| {
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".to_vec()
                },
                ExchangeError::Status(404),
            ),
            (
                |_| json(r#"{"directives":"x"}"#, "application/json"),
                ExchangeError::BadResponse,
            ),
            (
                |_| json(r#"{"directives":[1]}"#, "application/json"),
                ExchangeError::BadResponse,
            ),
            (
                |_| {
                    json(
                        &format!(r#"{{"directives":["{}"]}}"#, "a".repeat(70_000)),
                        "application/json",
                    )
                },
                ExchangeError::TooLarge,
            ),
            (
                |_| {
                    b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n".to_vec()
                },
                ExchangeError::Status(302),
            ),
        ];
        for (answer, want) in cases {
            let (url, _) = fake_bapi(Duration::ZERO, answer);
            let x = NonceExchanger::start(settings(&url, 2000)).unwrap();
            assert_eq!(x.exchange("n"), Err(want));
        }
        // Nobody listening.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let x = NonceExchanger::start(settings(&format!("http://127.0.0.1:{port}"), 2000)).unwrap();
        assert_eq!(x.exchange("n"), Err(ExchangeError::Network));
    }

    #[test]
    fn browser_exchange_has_one_deadline() {
        let (url, _) = fake_bapi(Duration::from_secs(3), good);
        let x = NonceExchanger::start(settings(&url, 300)).unwrap();
        let started = Instant::now();
        assert_eq!(x.exchange("n"), Err(ExchangeError::Timeout));
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn browser_exchange_deadline_covers_a_dripping_body() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n",
                );
                for _ in 0..40 {
                    std::thread::sleep(Duration::from_millis(150));
                    if stream.write_all(b" ").is_err() {
                        return;
                    }
                }
            }
        });
        let x = NonceExchanger::start(settings(&url, 500)).unwrap();
        let started = Instant::now();
        assert_eq!(x.exchange("n"), Err(ExchangeError::Timeout));
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn browser_exchange_queue_is_bounded() {
        let (url, _) = fake_bapi(Duration::from_millis(800), good);
        let mut s = settings(&url, 3000);
        s.threads = 1;
        s.queue = 1;
        let x = Arc::new(NonceExchanger::start(s).unwrap());
        let overloaded = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (x, overloaded) = (x.clone(), overloaded.clone());
                std::thread::spawn(move || {
                    if x.exchange("n") == Err(ExchangeError::Overloaded) {
                        overloaded.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // One running, one queued: the other two are refused at once.
        assert!(overloaded.load(Ordering::Relaxed) >= 2);
    }

    #[test]
    fn browser_exchange_refuses_plain_http_off_loopback() {
        for bad in ["http://api.example.com", "ftp://127.0.0.1", "not a url"] {
            assert!(NonceExchanger::start(settings(bad, 100)).is_err(), "{bad}");
        }
        let mut s = settings("https://api.clerk.com", 100);
        s.secret_key.clear();
        assert!(NonceExchanger::start(s).is_err());
    }

    #[test]
    fn browser_exchange_parks_coroutines_not_workers() {
        // Four coroutines per may worker thread each wait on a slow
        // exchange; if waiting blocked a worker thread, no worker would be
        // left to run the ticker below until the exchanges end.
        let waiting = 4 * may::config().get_workers().max(1);
        let (url, _) = fake_bapi(Duration::from_millis(700), good);
        let mut s = settings(&url, 3000);
        s.threads = waiting;
        let x = Arc::new(NonceExchanger::start(s).unwrap());
        let waiters: Vec<_> = (0..waiting)
            .map(|_| {
                let x = x.clone();
                may::go!(move || x.exchange("n").map(|d| d.len()))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let ticker = may::go!(move || {
            for _ in 0..5 {
                may::coroutine::sleep(Duration::from_millis(10));
            }
            started.elapsed()
        });
        let ticked = ticker.join().unwrap();
        assert!(
            ticked < Duration::from_millis(400),
            "ticker took {ticked:?}"
        );
        for w in waiters {
            assert_eq!(w.join().unwrap(), Ok(2));
        }
    }
}
