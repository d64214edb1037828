//! A Clerk instance as the browser flow sees it, from its publishable key
//! and the operator's URLs: where the Frontend API is reached (possibly
//! through a proxy), where users sign in, where the Backend API is, and the
//! per-instance cookie suffix.
//!
//! Mirrors `createAuthenticateContext`'s publishable-key values
//! (clerk-handshake.md §1) and `createRedirect`'s default sign-in URL.

use ::url::Url;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Clerk's Backend API, the default `keys.api_url`.
pub const DEFAULT_API_URL: &str = "https://api.clerk.com";

/// One Clerk instance (production or development).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    production: bool,
    /// The Frontend API host decoded from the publishable key (the SDK's
    /// `originalFrontendApi`): session tokens carry `iss = https://<it>`.
    frontend_api_host: String,
    cookie_suffix: String,
    /// Clerk's `proxyUrl`: an absolute http(s) URL, or a path starting
    /// with `/` resolved against the request's origin.
    proxy_url: Option<String>,
    /// Absolute http(s) URL, or a path resolved against the request's origin.
    sign_in_url: String,
    /// The Backend API base, without a trailing `/`.
    api_url: String,
}

impl Instance {
    /// Builds and checks an instance. `proxy_url` and `sign_in_url` treat
    /// an empty string as unset; the default sign-in URL is the Account
    /// Portal's, `https://accounts.<domain>/sign-in`, as `createRedirect`
    /// builds it. Errors name the configuration key.
    pub fn new(
        publishable_key: &str,
        proxy_url: Option<&str>,
        sign_in_url: Option<&str>,
        api_url: &str,
    ) -> Result<Instance, String> {
        let frontend_api_host = parse_publishable_key(publishable_key)
            .map_err(|e| format!("keys.publishable_key: {e}"))?;
        let proxy_url = match proxy_url.filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => Some(check_url_or_path("browser.proxy_url", p)?),
        };
        let sign_in_url = match sign_in_url {
            None => format!("{}/sign-in", accounts_base_url(&frontend_api_host)),
            Some("") => {
                return Err(
                    "browser.sign_in_url: must not be empty (leave it out for the Account \
                     Portal's sign-in page)"
                        .into(),
                )
            }
            Some(s) => check_url_or_path("browser.sign_in_url", s)?,
        };
        Ok(Instance {
            production: publishable_key.starts_with("pk_live_"),
            cookie_suffix: cookie_suffix(publishable_key),
            frontend_api_host,
            proxy_url,
            sign_in_url,
            api_url: check_api_url(api_url)?,
        })
    }

    /// `pk_live_` keys are production; every other key is development.
    pub fn is_production(&self) -> bool {
        self.production
    }

    /// The Frontend API host from the publishable key, never the proxy.
    pub fn frontend_api_host(&self) -> &str {
        &self.frontend_api_host
    }

    /// The `iss` of this instance's session tokens.
    pub fn issuer(&self) -> String {
        format!("https://{}", self.frontend_api_host)
    }

    /// First 8 characters of base64url(SHA-1(publishable key)).
    pub fn cookie_suffix(&self) -> &str {
        &self.cookie_suffix
    }

    /// The configured proxy URL (absolute, or a `/` path), if any.
    pub fn proxy_url(&self) -> Option<&str> {
        self.proxy_url.as_deref()
    }

    /// The Backend API base URL, without a trailing `/`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The SDK's `frontendApi` for a request from `origin` (e.g.
    /// `https://app.example.com`): the proxy URL (a relative one resolved
    /// by prefixing the origin, as the SDK does), else the key's host.
    /// `None` only for a relative proxy without a known origin.
    pub fn frontend_api(&self, origin: Option<&str>) -> Option<String> {
        match &self.proxy_url {
            Some(p) if p.starts_with('/') => origin.map(|o| format!("{o}{p}")),
            Some(p) => Some(p.clone()),
            None => Some(self.frontend_api_host.clone()),
        }
    }

    /// The sign-in page for a request at `request_url`: `sign_in_url`
    /// resolved against it (so a `/sign-in` path stays on the site).
    pub fn sign_in_url(&self, request_url: &Url) -> Option<Url> {
        request_url.join(&self.sign_in_url).ok()
    }

    /// The sign-in URL as configured (absolute, or a `/` path).
    pub fn sign_in_url_setting(&self) -> &str {
        &self.sign_in_url
    }
}

/// `buildAccountsBaseUrl` [SA]: the Account Portal origin for a Frontend
/// API host: the first `clerk.accountsstage.` becomes `accountsstage.`,
/// then the first `clerk.accounts.` or `clerk.` becomes `accounts.`.
pub fn accounts_base_url(frontend_api: &str) -> String {
    let staged = replace_first(frontend_api, "clerk.accountsstage.", "accountsstage.");
    let host = match staged.find("clerk.") {
        Some(i) if staged[i..].starts_with("clerk.accounts.") => {
            format!(
                "{}accounts.{}",
                &staged[..i],
                &staged[i + "clerk.accounts.".len()..]
            )
        }
        Some(i) => format!("{}accounts.{}", &staged[..i], &staged[i + "clerk.".len()..]),
        None => staged,
    };
    format!("https://{host}")
}

fn replace_first(s: &str, from: &str, to: &str) -> String {
    match s.find(from) {
        Some(i) => format!("{}{to}{}", &s[..i], &s[i + from.len()..]),
        None => s.to_string(),
    }
}

/// An absolute http(s) URL or a path starting with `/`.
fn check_url_or_path(key: &str, value: &str) -> Result<String, String> {
    if value.starts_with('/') {
        if value.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(format!("{key}: {value:?} has spaces or control characters"));
        }
        return Ok(value.to_string());
    }
    let url = Url::parse(value).map_err(|e| {
        format!("{key}: {value:?} is neither an absolute http(s) URL nor a /path: {e}")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{key}: {value:?} is not an http(s) URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{key}: {value:?} must not carry credentials"));
    }
    Ok(value.to_string())
}

/// The Backend API receives the secret key: https, or plain http to a
/// loopback address only (tests run a fake Backend API there).
fn check_api_url(value: &str) -> Result<String, String> {
    let url = Url::parse(value)
        .map_err(|e| format!("keys.api_url: {value:?} is not an absolute URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "keys.api_url: {value:?} is plain http and not on loopback; the secret key \
                 would travel in clear text"
            ))
        }
        other => return Err(format!("keys.api_url: scheme {other:?} is not http(s)")),
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "keys.api_url: {value:?} must be a base URL without query, fragment or credentials"
        ));
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// Whether a URL's host is a loopback address (or `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(::url::Host::Domain(d)) => d == "localhost",
        Some(::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(::url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Decodes a Clerk publishable key (`pk_live_`/`pk_test_` + base64 of
/// `<frontend api host>$`) into the Frontend API host.
pub fn parse_publishable_key(pk: &str) -> Result<String, String> {
    let parts: Vec<&str> = pk.split('_').collect();
    if parts.len() != 3 || parts[0] != "pk" || !matches!(parts[1], "live" | "test") {
        return Err("expected pk_live_... or pk_test_...".into());
    }
    let lenient = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let decoded = lenient
        .decode(parts[2])
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("the part after pk_live_/pk_test_ is not base64 text")?;
    let host = decoded
        .strip_suffix('$')
        .filter(|h| !h.contains('$') && h.contains('.'))
        .ok_or("the decoded key must be a host name ending in one '$'")?;
    if host
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
    {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok(host.to_string())
}

/// Clerk's per-instance cookie suffix: the first 8 characters of the
/// URL-safe base64 of SHA-1(publishable key).
pub fn cookie_suffix(publishable_key: &str) -> String {
    let digest = openssl::sha::sha1(publishable_key.as_bytes());
    URL_SAFE.encode(digest)[..8].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PK_LIVE: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"; // clerk.example.com
    const PK_TEST: &str = "pk_test_aGFwcHktaGlwcG8tMS5jbGVyay5hY2NvdW50cy5kZXYk"; // happy-hippo-1.clerk.accounts.dev

    #[test]
    fn browser_instance_from_publishable_key() {
        let i = Instance::new(PK_LIVE, None, None, DEFAULT_API_URL).unwrap();
        assert!(i.is_production());
        assert_eq!(i.frontend_api_host(), "clerk.example.com");
        assert_eq!(i.issuer(), "https://clerk.example.com");
        assert_eq!(i.cookie_suffix(), "naoXFJnI");
        assert_eq!(
            i.sign_in_url_setting(),
            "https://accounts.example.com/sign-in"
        );
        assert_eq!(
            i.frontend_api(Some("https://app.example.com")).as_deref(),
            Some("clerk.example.com")
        );
        let d = Instance::new(PK_TEST, None, None, "https://api.clerk.com/").unwrap();
        assert!(!d.is_production());
        assert_eq!(
            d.sign_in_url_setting(),
            "https://happy-hippo-1.accounts.dev/sign-in"
        );
        assert_eq!(d.api_url(), "https://api.clerk.com");
    }

    #[test]
    fn browser_accounts_base_url_follows_the_sdk() {
        assert_eq!(
            accounts_base_url("clerk.example.com"),
            "https://accounts.example.com"
        );
        assert_eq!(
            accounts_base_url("happy-hippo-1.clerk.accounts.dev"),
            "https://happy-hippo-1.accounts.dev"
        );
        assert_eq!(
            accounts_base_url("x.clerk.accountsstage.dev"),
            "https://x.accountsstage.dev"
        );
        assert_eq!(
            accounts_base_url("myclerk.example.com"),
            "https://myaccounts.example.com"
        );
        assert_eq!(accounts_base_url("fapi.test"), "https://fapi.test");
    }

    #[test]
    fn browser_proxy_url_absolute_or_relative() {
        let i = Instance::new(PK_LIVE, Some("/__clerk"), None, DEFAULT_API_URL).unwrap();
        assert_eq!(
            i.frontend_api(Some("https://app.example.com")).as_deref(),
            Some("https://app.example.com/__clerk")
        );
        assert_eq!(i.frontend_api(None), None);
        assert_eq!(
            i.issuer(),
            "https://clerk.example.com",
            "iss ignores the proxy"
        );
        let i = Instance::new(
            PK_LIVE,
            Some("http://127.0.0.1:9000/fapi/"),
            None,
            DEFAULT_API_URL,
        )
        .unwrap();
        assert_eq!(
            i.frontend_api(None).as_deref(),
            Some("http://127.0.0.1:9000/fapi/")
        );
        assert_eq!(
            Instance::new(PK_LIVE, Some(""), None, DEFAULT_API_URL)
                .unwrap()
                .proxy_url(),
            None
        );
    }

    #[test]
    fn browser_instance_errors_name_the_key() {
        let err = |p: Option<&str>, s: Option<&str>, a: &str| {
            Instance::new(PK_LIVE, p, s, a).unwrap_err()
        };
        assert!(
            err(Some("clerk.example.com"), None, DEFAULT_API_URL).starts_with("browser.proxy_url")
        );
        assert!(err(Some("ftp://x/y"), None, DEFAULT_API_URL).starts_with("browser.proxy_url"));
        assert!(err(None, Some(""), DEFAULT_API_URL).starts_with("browser.sign_in_url"));
        assert!(
            err(None, Some("https://u:p@x/"), DEFAULT_API_URL).starts_with("browser.sign_in_url")
        );
        assert!(err(None, None, "http://api.example.com").starts_with("keys.api_url"));
        assert!(err(None, None, "https://api.example.com/?x=1").starts_with("keys.api_url"));
        assert!(Instance::new("pk_nope", None, None, DEFAULT_API_URL)
            .unwrap_err()
            .starts_with("keys.publishable_key"));
        for ok in [
            "http://127.0.0.1:8080",
            "http://[::1]:1/",
            "http://localhost:3/api",
        ] {
            assert!(Instance::new(PK_LIVE, None, None, ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn browser_sign_in_url_resolves_against_the_request() {
        let i = Instance::new(PK_LIVE, None, Some("/sign-in"), DEFAULT_API_URL).unwrap();
        let req = Url::parse("https://app.example.com/a/b?x=1").unwrap();
        assert_eq!(
            i.sign_in_url(&req).unwrap().as_str(),
            "https://app.example.com/sign-in"
        );
    }

    #[test]
    fn publishable_keys_decode_as_clerk_computes_them() {
        assert_eq!(
            parse_publishable_key("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k").unwrap(),
            "clerk.example.com"
        );
        assert_eq!(
            parse_publishable_key("pk_test_aGFwcHktaGlwcG8tMS5jbGVyay5hY2NvdW50cy5kZXYk").unwrap(),
            "happy-hippo-1.clerk.accounts.dev"
        );
        for bad in [
            "pk_live_",
            "sk_live_Y2xlcmsuZXhhbXBsZS5jb20k",
            "pk_live_Y2xlcmsuZXhhbXBsZS5jb20",
            "pk_x_Y2xlcmsuZXhhbXBsZS5jb20k",
        ] {
            assert!(parse_publishable_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cookie_suffix_matches_clerks_example() {
        assert_eq!(
            cookie_suffix("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"),
            "naoXFJnI"
        );
    }
}
