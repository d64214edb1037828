//! Limits, timeouts and listening options of a server.

use std::time::Duration;

/// How a server listens, what it accepts from a client, and how long it
/// waits. `HttpConfig::default()` is what [`HttpServiceFactory::start`] and
/// [`HttpServer::start`] use.
///
/// Every limit bounds the memory or time one connection can take:
///
/// | field | default | over the limit |
/// |---|---|---|
/// | `max_headers` | 64 | `431 Request Header Fields Too Large`, connection closed |
/// | `max_header_bytes` | 32 KiB | `431`, connection closed |
/// | `max_body_bytes` | 1 MiB | `413 Content Too Large`, connection closed |
/// | `header_read_timeout` | 10 s | `408 Request Timeout` (or a quiet close if nothing was sent), connection closed |
/// | `idle_timeout` | 75 s | an idle keep-alive connection is closed |
///
/// ```
/// use std::time::Duration;
/// use may_minihttp::HttpConfig;
///
/// let config = HttpConfig::default()
///     .with_max_headers(100)
///     .with_idle_timeout(Some(Duration::from_secs(120)));
/// assert_eq!(config.max_header_bytes, 32 * 1024);
/// ```
///
/// [`HttpServiceFactory::start`]: crate::HttpServiceFactory::start
/// [`HttpServer::start`]: crate::HttpServer::start
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Most header lines a request may have (at least 1).
    pub max_headers: usize,
    /// Most bytes of a request head: request line and header lines with
    /// their line ends, up to and including the empty line.
    pub max_header_bytes: usize,
    /// Largest `Content-Length` accepted. A body is never parsed as a
    /// request: it is given to the service through [`Request::body`] and
    /// whatever the service leaves is skipped. Request bodies with a
    /// `Transfer-Encoding` are refused with `411 Length Required`.
    ///
    /// [`Request::body`]: crate::Request::body
    pub max_body_bytes: u64,
    /// How long a keep-alive connection may wait for its next request, or a
    /// blocked response write for progress. `None`: forever. Keep it above
    /// the keep-alive timeout of the proxy in front (nginx's upstream
    /// `keepalive_timeout` is 60 s), so that the proxy, not the server,
    /// closes idle connections.
    pub idle_timeout: Option<Duration>,
    /// How long a request may take to arrive, from its first byte (or from
    /// the accept of a new connection) to the end of its head; also the most
    /// a body read may wait for data. `None`: forever.
    pub header_read_timeout: Option<Duration>,
    /// Set `SO_REUSEPORT` on the listening socket, so that several
    /// processes can listen on one port (a blue-green hand-over). Off by
    /// default: a second process then fails with "address in use".
    pub reuse_port: bool,
    /// The `listen(2)` backlog of a socket this crate binds.
    pub backlog: i32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_headers: 64,
            max_header_bytes: 32 * 1024,
            max_body_bytes: 1024 * 1024,
            idle_timeout: Some(Duration::from_secs(75)),
            header_read_timeout: Some(Duration::from_secs(10)),
            reuse_port: false,
            backlog: 1024,
        }
    }
}

impl HttpConfig {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`max_headers`](Self::max_headers).
    pub fn with_max_headers(mut self, n: usize) -> Self {
        self.max_headers = n;
        self
    }

    /// Sets [`max_header_bytes`](Self::max_header_bytes).
    pub fn with_max_header_bytes(mut self, n: usize) -> Self {
        self.max_header_bytes = n;
        self
    }

    /// Sets [`max_body_bytes`](Self::max_body_bytes).
    pub fn with_max_body_bytes(mut self, n: u64) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`header_read_timeout`](Self::header_read_timeout).
    pub fn with_header_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`reuse_port`](Self::reuse_port).
    pub fn with_reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Sets [`backlog`](Self::backlog).
    pub fn with_backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// The values the server really uses: at least one header and a head of
    /// at least 256 bytes.
    pub(crate) fn sanitized(mut self) -> Self {
        self.max_headers = self.max_headers.clamp(1, 65_536);
        self.max_header_bytes = self.max_header_bytes.max(256);
        self
    }
}
