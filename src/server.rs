//! The HTTP side: routes, the `/auth` decision and its response.
//!
//! may_minihttp gives each connection its own service value and encodes a
//! response right after `call` returns, before the next request on that
//! connection is read. That lets dynamic header lines live in a buffer the
//! service owns (see [`AuthService::header_view`]). The service never
//! returns `Err` (the library would answer 500 with the error text) and
//! never calls `Request::body()` (it panics on a bad Content-Length, and
//! nginx may announce a body it never sends).

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

use crate::errors::TokenError;
use crate::extract::{find_token, Carrier};
use crate::metrics::Metrics;
use crate::verify::{now_ms, Source, Verifier};

/// What every connection shares.
pub struct App {
    pub verifier: Verifier,
    pub metrics: Arc<Metrics>,
    pub cookie_suffix: Option<String>,
}

impl App {
    /// The `/auth` decision for a request's headers: returns the status
    /// (200, 401 or 503) and appends the response header lines to `out`.
    /// Counts it in the metrics and logs it at debug level. Independent of
    /// the HTTP library, so the fuzz target and the server share it.
    pub fn decide<'a>(
        &self,
        headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
        now_ms: i64,
        out: &mut String,
    ) -> u16 {
        let started = Instant::now();
        let found = find_token(headers.clone(), self.cookie_suffix.as_deref());
        let carrier = found.as_ref().ok().map(|(_, carrier)| *carrier);
        let result = found.and_then(|(token, _)| self.verifier.authorize(token, now_ms, out));
        if log::log_enabled!(log::Level::Debug) {
            log_decision(headers, &result, carrier, out);
        }
        let status = match result {
            Ok(source) => {
                self.metrics.record_cache(source == Source::Cache);
                200
            }
            Err(TokenError::KeysUnavailable) => {
                out.push_str("Retry-After: 5");
                503
            }
            Err(TokenError::Missing) => {
                out.push_str("WWW-Authenticate: Bearer");
                401
            }
            Err(e) => {
                let _ = write!(
                    out,
                    "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"{}\"",
                    e.reason()
                );
                401
            }
        };
        self.metrics
            .record_decision(result.map(|_| ()), started.elapsed());
        status
    }
}

/// Makes one [`AuthService`] per accepted connection.
pub struct AuthServiceFactory(pub Arc<App>);

impl HttpServiceFactory for AuthServiceFactory {
    type Service = AuthService;

    fn new_service(&self, _id: usize) -> AuthService {
        self.0.metrics.record_connection();
        AuthService {
            app: self.0.clone(),
            headers: String::with_capacity(256),
        }
    }
}

/// The per-connection service.
pub struct AuthService {
    app: Arc<App>,
    /// Dynamic header lines of the response being built.
    headers: String,
}

impl HttpService for AuthService {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        let path = req.path();
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        match path {
            "/auth" => self.auth(&req, rsp),
            "/healthz" => {
                rsp.body("ok\n");
            }
            "/readyz" => self.readyz(rsp),
            "/metrics" => self.metrics(rsp),
            _ => {
                rsp.status_code(404, "Not Found");
            }
        }
        Ok(())
    }
}

impl AuthService {
    fn auth(&mut self, req: &Request, rsp: &mut Response) {
        self.headers.clear();
        let headers = req.headers().iter().map(|h| (h.name, h.value));
        match self.app.decide(headers, now_ms(), &mut self.headers) {
            200 => {}
            503 => {
                rsp.status_code(503, "Service Unavailable");
            }
            _ => {
                rsp.status_code(401, "Unauthorized");
            }
        }
        if declares_body(req) {
            // nginx may forward a client's Content-Length without the body;
            // answer now, and ask the peer not to reuse a connection whose
            // framing is in doubt.
            self.headers.push_str("\r\nConnection: close");
        }
        rsp.header(self.header_view());
    }

    fn readyz(&mut self, rsp: &mut Response) {
        if self.app.verifier.keys.is_empty() {
            rsp.status_code(503, "Service Unavailable");
            rsp.body("no keys loaded\n");
        } else {
            rsp.body("ready\n");
        }
    }

    fn metrics(&mut self, rsp: &mut Response) {
        rsp.header("Content-Type: text/plain; version=0.0.4; charset=utf-8");
        let _ = self.app.metrics.render(rsp.body_mut());
    }

    /// The dynamic header lines as the `&'static str` may_minihttp wants.
    fn header_view(&self) -> &'static str {
        // SAFETY: the string points into `self.headers`, which lives as long
        // as this per-connection service. may_minihttp copies every header
        // into its write buffer (`response::encode`) right after `call`
        // returns and before it calls `call` again; `self.headers` is only
        // changed inside `call`. So the bytes are alive and unchanged for as
        // long as the response holds the reference. The pipelined-request
        // test in tests/http.rs checks this with different users.
        unsafe { &*(self.headers.as_str() as *const str) }
    }
}

/// The one debug line per decision: outcome, who or why, and the original
/// request nginx forwarded (values escaped, so a client cannot forge lines).
fn log_decision<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
    result: &Result<Source, TokenError>,
    carrier: Option<Carrier>,
    response_headers: &str,
) {
    let header = |name: &str| {
        headers
            .clone()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(String::from("-"), |(_, v)| {
                String::from_utf8_lossy(v).escape_debug().to_string()
            })
    };
    let (method, uri) = (header("x-original-method"), header("x-original-uri"));
    let carrier = carrier.map_or("-", Carrier::name);
    match result {
        Ok(source) => log::debug!(
            "allow sub={} sid={} carrier={carrier} cached={} method={method} uri={uri}",
            header_value(response_headers, "X-User-Id").unwrap_or("-"),
            header_value(response_headers, "X-Session-Id").unwrap_or("-"),
            *source == Source::Cache,
        ),
        Err(e) => log::debug!("deny reason={e} carrier={carrier} method={method} uri={uri}"),
    }
}

/// A value from a rendered header block (values there are checked safe).
fn header_value<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    block
        .split("\r\n")
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
}

fn declares_body(req: &Request) -> bool {
    req.headers().iter().any(|h| {
        (h.name.eq_ignore_ascii_case("content-length") && h.value.iter().any(|b| *b != b'0'))
            || h.name.eq_ignore_ascii_case("transfer-encoding")
    })
}
