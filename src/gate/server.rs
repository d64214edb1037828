//! The HTTP side: routes, and the decision written as a response.
//!
//! Routes: `/auth` (nginx `auth_request`), `/forward` and anything below
//! it (Traefik, Caddy, Envoy: see [`Style`]), `/healthz`, `/readyz`,
//! `/metrics`.
//!
//! may_minihttp gives each connection its own service value and encodes a
//! response right after `call` returns, before the next request on that
//! connection is read. That lets dynamic header lines live in a buffer the
//! service owns (see [`AuthService::header_view`]). The service never
//! returns `Err` (the library would answer 500) and never reads a body: the
//! patched library (vendor/may_minihttp) skips it, and closes the
//! connection after the answer when an announced body has not arrived.

use std::io;
use std::sync::Arc;

use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

use crate::gate::{Call, Decision, Gate, Style};
use crate::verify::now_ms;

/// Makes one [`AuthService`] per accepted connection.
pub struct AuthServiceFactory(pub Arc<Gate>);

impl HttpServiceFactory for AuthServiceFactory {
    type Service = AuthService;

    fn new_service(&self, _id: usize) -> AuthService {
        self.0.metrics().record_connection();
        AuthService {
            gate: self.0.clone(),
            headers: String::with_capacity(256),
        }
    }
}

/// The per-connection service.
pub struct AuthService {
    gate: Arc<Gate>,
    /// Dynamic header lines of the response being built.
    headers: String,
}

impl HttpService for AuthService {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        let path = req.path();
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        match path {
            "/auth" => self.auth(&req, rsp, Style::AuthRequest),
            "/forward" => self.auth(&req, rsp, Style::Forward),
            _ if path.starts_with("/forward/") => self.auth(&req, rsp, Style::Forward),
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
    fn auth(&mut self, req: &Request, rsp: &mut Response, style: Style) {
        self.headers.clear();
        let headers = req.headers().iter().map(|h| (h.name, h.value));
        let call = Call {
            style,
            method: req.method(),
            target: req.path(),
        };
        let decision = self.gate.decide(&call, headers, now_ms());
        let status = decision.status_in(style);
        if status != 200 {
            rsp.status_code(status as usize, reason_phrase(status));
        }
        decision.render_headers_in(style, &mut self.headers);
        if style == Style::Forward && matches!(decision, Decision::Anonymous) {
            // An allow names these too (see `Verifier::push_blank_headers`).
            self.gate.verifier().push_blank_headers(&mut self.headers);
        }
        if !self.headers.is_empty() {
            rsp.header(self.header_view());
        }
        let body = decision.body_in(style);
        if !body.is_empty() {
            rsp.header("Content-Type: application/json");
            rsp.body_vec(body.as_bytes().to_vec());
        }
    }

    fn readyz(&mut self, rsp: &mut Response) {
        let (ready, body) = self.gate.readiness(crate::keys::store::unix_now());
        if !ready {
            rsp.status_code(503, "Service Unavailable");
        }
        rsp.body_vec(body.into_bytes());
    }

    fn metrics(&mut self, rsp: &mut Response) {
        rsp.header("Content-Type: text/plain; version=0.0.4; charset=utf-8");
        let _ = self.gate.metrics().render(rsp.body_mut());
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

fn reason_phrase(status: u16) -> &'static str {
    match status {
        303 => "See Other",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        403 => "Forbidden",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}
