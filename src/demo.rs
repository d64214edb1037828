//! `jwtgate demo`: a daemon with a freshly generated RSA key and a valid
//! token to try it with; no Clerk account needed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use serde_json::{json, Value};

use crate::config::{read_settings, Config};
use crate::verify::now_ms;

/// Signs `claims` as an RS256 JWT with a Clerk-shaped header.
pub fn mint_rs256(key: &PKey<Private>, kid: &str, claims: &Value) -> Result<String, String> {
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), key).map_err(|e| e.to_string())?;
    let signature = signer
        .sign_oneshot_to_vec(signing_input.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// Builds the demo config (defaults, environment, and the new key) and a token.
pub fn prepare() -> Result<(Config, String), String> {
    let rsa = Rsa::generate(2048).map_err(|e| e.to_string())?;
    let key = PKey::from_rsa(rsa).map_err(|e| e.to_string())?;
    let pem = key.public_key_to_pem().map_err(|e| e.to_string())?;
    let mut settings = read_settings(None)?;
    settings.keys.jwt_key = Some(String::from_utf8_lossy(&pem).into_owned());
    settings.keys.jwt_key_file = None;
    settings.verify.issuer = Some("https://demo.jwtgate.invalid".into());
    settings.verify.authorized_parties.clear();
    let config = Config::from_settings(settings)?;
    let now = now_ms() / 1000;
    let claims = json!({
        "sub": "user_demo", "sid": "sess_demo", "iss": "https://demo.jwtgate.invalid",
        "azp": "http://localhost:3000", "iat": now, "nbf": now - 10, "exp": now + 3600, "v": 2,
        "fea": "o:dashboard", "o": {"id": "org_demo", "slg": "demo", "rol": "admin", "per": "read,manage", "fpm": "3"}
    });
    let token = mint_rs256(&key, "demo", &claims)?;
    Ok((config, token))
}

/// The lines printed before the daemon starts.
pub fn instructions(config: &Config, token: &str) -> String {
    let url = format!("http://{}/auth", config.listen);
    format!(
        "jwtgate demo: a fresh RSA key, valid for this run only.\n\
         \n  # 200 with X-User-Id, X-Session-Id and org headers (token valid 1 hour):\n  \
         curl -i -H 'Authorization: Bearer {token}' {url}\n\
         \n  # 401 with WWW-Authenticate: Bearer\n  curl -i {url}\n"
    )
}
