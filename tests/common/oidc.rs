//! An OpenID Connect issuer on loopback for the several-issuer tests: a
//! real HTTP/1.1 server that serves the discovery document at
//! `<issuer>/.well-known/openid-configuration` and the JWKS it names at
//! `<issuer>/jwks`, counts requests by path, and can be told to serve a
//! document that names another issuer or another `jwks_uri`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::{jwks, Key};

/// What the discovery document says; `None` fields: the truth.
#[derive(Clone, Debug, Default)]
pub struct Document {
    /// The `issuer` it names.
    pub issuer: Option<String>,
    /// The `jwks_uri` it names.
    pub jwks_uri: Option<String>,
}

#[derive(Default)]
struct State {
    jwks: String,
    document: Document,
    /// Request paths, in order.
    requests: Vec<String>,
}

/// The issuer `http://127.0.0.1:<port>/realms/<realm>`.
pub struct OidcServer {
    pub addr: SocketAddr,
    pub issuer: String,
    state: Arc<Mutex<State>>,
}

impl OidcServer {
    pub fn start(realm: &str, keys: &[&Key]) -> OidcServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}/realms/{realm}");
        let state = Arc::new(Mutex::new(State {
            jwks: jwks(keys),
            ..State::default()
        }));
        let shared = state.clone();
        let (base, path) = (issuer.clone(), format!("/realms/{realm}"));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, base, path) = (shared.clone(), base.clone(), path.clone());
                std::thread::spawn(move || serve(stream, &state, &base, &path));
            }
        });
        OidcServer {
            addr,
            issuer,
            state,
        }
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    pub fn set_keys(&self, keys: &[&Key]) {
        self.state.lock().unwrap().jwks = jwks(keys);
    }

    pub fn set_document(&self, document: Document) {
        self.state.lock().unwrap().document = document;
    }

    /// How many requests asked for `path_end` (`openid-configuration`, `jwks`).
    pub fn count(&self, path_end: &str) -> usize {
        let state = self.state.lock().unwrap();
        state
            .requests
            .iter()
            .filter(|p| p.ends_with(path_end))
            .count()
    }
}

/// Serves one request for the issuer `issuer`, whose URL path is `base`.
fn serve(stream: TcpStream, state: &Mutex<State>, issuer: &str, base: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let (status, body) = {
        let mut state = state.lock().unwrap();
        state.requests.push(path.clone());
        if path == format!("{base}/.well-known/openid-configuration") {
            let doc = &state.document;
            let body = json!({
                "issuer": doc.issuer.clone().unwrap_or_else(|| issuer.to_string()),
                "jwks_uri": doc.jwks_uri.clone().unwrap_or_else(|| format!("{issuer}/jwks")),
                "authorization_endpoint": format!("{issuer}/auth"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            });
            ("200 OK", body.to_string())
        } else if path == format!("{base}/jwks") {
            ("200 OK", state.jwks.clone())
        } else {
            ("404 Not Found", String::new())
        }
    };
    let mut stream = stream;
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}
