//! The issuers: the top-level `[keys]`/`[verify]` one, and `[[issuers]]`.
//!
//! ```toml
//! [keys]                       # the first issuer (a Clerk instance), as always
//! publishable_key = "pk_live_..."
//!
//! [[issuers]]                  # a second Clerk instance: its public JWKS
//! name = "staff"
//! publishable_key = "pk_live_..."
//!
//! [[issuers]]                  # any OpenID Connect issuer: keys by discovery
//! name = "partner"
//! issuer = "https://login.partner.example"
//! audience = "api://orders"
//! headers = { "X-Email" = "email", "X-Groups" = "groups" }
//! ```
//!
//! An entry takes the key sources of `[keys]` and the rules of `[verify]`.
//! Its kind follows from its key source: a Clerk key (`publishable_key`,
//! `secret_key`, `jwt_key`, `jwt_key_file`) makes a Clerk instance, as at
//! the top level; `jwks_url` alone a static JWKS; none at all an OpenID
//! Connect issuer, whose keys come from its discovery document. Every
//! entry needs an exact issuer (given, or from its publishable key), since
//! tokens are routed by `iss`, and a non-Clerk one an audience (or
//! `allow_any_audience`). The top-level issuer keeps today's rules when it
//! is alone; next to `[[issuers]]` it needs an issuer too. The settings of
//! `[keys]` about fetching (`refresh_secs`, `fetch_timeout_ms`, `state_dir`,
//! ...) and `verify.max_token_bytes` and `verify.allow_pending` apply to
//! every issuer.
//!
//! Errors name the key as written: `keys.jwks_url`, `verify.audience`, or
//! `issuers[1].audience` (0-based, in file order).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{in_range, parse_publishable_key, read_key_file, OneOrMany, Settings};
use crate::keys::discovery::OidcSource;
use crate::keys::jwk::VerifyingKey;
use crate::keys::source::{is_private_url, JwksSource, KeySource};
use crate::keys::state::KeyState;
use crate::token::algorithms::{Algorithm, AlgorithmSet};
use crate::token::claim_headers::{ClaimHeaders, PathSpec, MAX_MAPPED_HEADERS};
use crate::token::claims::Validation;
use crate::verify::Policy;

/// Most issuers, the top-level one included (each has a key thread, and
/// the names label metrics).
pub const MAX_ISSUERS: usize = 16;

/// The name of the top-level issuer when it has no issuer URL to take one
/// from (it is then the only issuer).
pub const DEFAULT_NAME: &str = "default";

/// `[[issuers]]`: one more issuer, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerSettings {
    /// For logs, metrics, `X-Issuer` and its state file; default: the
    /// issuer's host.
    pub name: Option<String>,
    pub publishable_key: Option<String>,
    pub secret_key: Option<String>,
    pub jwt_key: Option<String>,
    pub jwt_key_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub authorized_parties: Vec<String>,
    pub algorithms: Option<Vec<String>>,
    pub leeway_secs: u64,
    pub audience: Option<OneOrMany>,
    pub allow_any_audience: bool,
    /// Claims to response headers: `{ "X-Email" = "email" }`.
    pub headers: BTreeMap<String, OneOrMany>,
}

impl Default for IssuerSettings {
    fn default() -> Self {
        IssuerSettings {
            name: None,
            publishable_key: None,
            secret_key: None,
            jwt_key: None,
            jwt_key_file: None,
            jwks_url: None,
            issuer: None,
            authorized_parties: vec![],
            algorithms: None,
            leeway_secs: 5,
            audience: None,
            allow_any_audience: false,
            headers: BTreeMap::new(),
        }
    }
}

/// What an issuer is, from its key source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerKind {
    /// A Clerk key: secret, PEM or publishable.
    Clerk,
    /// A plain `jwks_url`.
    Jwks,
    /// No key source: OpenID Connect discovery from the issuer.
    Oidc,
}

/// One issuer, resolved.
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    pub name: String,
    pub kind: IssuerKind,
    pub key_source: KeySource,
    /// Where its JWKS is kept across restarts (`None`: nowhere, or a PEM key).
    pub state: Option<KeyState>,
    pub policy: Policy,
    pub headers: ClaimHeaders,
    /// Per-location rules read Clerk's claims from its tokens: a Clerk
    /// instance, or the only issuer (as before `[[issuers]]`); not another
    /// issuer next to others (see [`crate::verify::Issuer::clerk_facts`]).
    pub clerk_facts: bool,
}

/// What every issuer shares.
pub(super) struct Shared<'a> {
    pub api_url: &'a str,
    pub fetch_timeout: Duration,
    pub state_dir: Option<&'a Path>,
    pub max_token_bytes: usize,
    pub allow_pending: bool,
}

/// One issuer's settings, from the top level or from `[[issuers]]`.
struct Entry<'a> {
    /// Key prefixes for errors: `keys.`/`verify.`, or `issuers[i].` both.
    at_keys: String,
    at_verify: String,
    /// Where the entry is, for errors that name another: `[keys]`, `issuers[i]`.
    place: String,
    top: bool,
    name: Option<&'a str>,
    publishable_key: Option<&'a str>,
    secret_key: Option<&'a str>,
    jwt_key: Option<&'a str>,
    jwt_key_file: Option<&'a Path>,
    jwks_url: Option<&'a str>,
    issuer: Option<&'a str>,
    authorized_parties: &'a [String],
    algorithms: Option<&'a [String]>,
    leeway_secs: u64,
    audience: Option<&'a OneOrMany>,
    allow_any_audience: bool,
    headers: &'a BTreeMap<String, OneOrMany>,
}

impl<'a> Entry<'a> {
    fn top(s: &'a Settings) -> Entry<'a> {
        let (k, v) = (&s.keys, &s.verify);
        Entry {
            at_keys: "keys.".into(),
            at_verify: "verify.".into(),
            place: "[keys]".into(),
            top: true,
            name: None,
            publishable_key: k.publishable_key.as_deref(),
            secret_key: k.secret_key.as_deref(),
            jwt_key: k.jwt_key.as_deref(),
            jwt_key_file: k.jwt_key_file.as_deref(),
            jwks_url: k.jwks_url.as_deref(),
            issuer: v.issuer.as_deref(),
            authorized_parties: &v.authorized_parties,
            algorithms: v.algorithms.as_deref(),
            leeway_secs: v.leeway_secs,
            audience: v.audience.as_ref(),
            allow_any_audience: v.allow_any_audience,
            headers: &v.headers,
        }
    }

    fn listed(index: usize, e: &'a IssuerSettings) -> Entry<'a> {
        Entry {
            at_keys: format!("issuers[{index}]."),
            at_verify: format!("issuers[{index}]."),
            place: format!("issuers[{index}]"),
            top: false,
            name: e.name.as_deref(),
            publishable_key: e.publishable_key.as_deref(),
            secret_key: e.secret_key.as_deref(),
            jwt_key: e.jwt_key.as_deref(),
            jwt_key_file: e.jwt_key_file.as_deref(),
            jwks_url: e.jwks_url.as_deref(),
            issuer: e.issuer.as_deref(),
            authorized_parties: &e.authorized_parties,
            algorithms: e.algorithms.as_deref(),
            leeway_secs: e.leeway_secs,
            audience: e.audience.as_ref(),
            allow_any_audience: e.allow_any_audience,
            headers: &e.headers,
        }
    }

    /// A secret, PEM or publishable key is set.
    fn clerk_mode(&self) -> bool {
        self.secret_key.is_some()
            || self.jwt_key.is_some()
            || self.jwt_key_file.is_some()
            || self.publishable_key.is_some()
    }

    fn kind(&self) -> IssuerKind {
        if self.clerk_mode() {
            IssuerKind::Clerk
        } else if self.jwks_url.is_some() {
            IssuerKind::Jwks
        } else {
            IssuerKind::Oidc
        }
    }

    /// Top level only: a rule of `[verify]` that belongs to an issuer is set.
    fn rule_set(&self) -> Option<&'static str> {
        [
            ("issuer", self.issuer.is_some()),
            ("audience", self.audience.is_some()),
            ("allow_any_audience", self.allow_any_audience),
            ("authorized_parties", !self.authorized_parties.is_empty()),
            ("algorithms", self.algorithms.is_some()),
            ("headers", !self.headers.is_empty()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }
}

/// Every issuer, in order: the top-level one (when it has a key source,
/// or when there is nothing else), then `[[issuers]]`.
pub(super) fn resolve_issuers(s: &Settings, shared: &Shared) -> Result<Vec<IssuerConfig>, String> {
    let top = Entry::top(s);
    let top_counts = top.kind() != IssuerKind::Oidc || s.issuers.is_empty();
    let count = s.issuers.len() + usize::from(top_counts);
    if count > MAX_ISSUERS {
        return Err(format!(
            "issuers: {count} issuers; at most {MAX_ISSUERS}, the [keys] one included"
        ));
    }
    let several = count > 1;
    let mut entries = Vec::with_capacity(count);
    if top_counts {
        entries.push(top);
    } else if let Some(key) = top.rule_set() {
        return Err(format!(
            "verify.{key}: set, but [keys] names no key source, so there is no top-level \
             issuer for it: with [[issuers]], put it in the entry it is for"
        ));
    }
    entries.extend(
        s.issuers
            .iter()
            .enumerate()
            .map(|(i, e)| Entry::listed(i, e)),
    );
    let mut issuers: Vec<IssuerConfig> = Vec::with_capacity(count);
    for (entry, n) in entries.iter().zip(0..) {
        let resolved = resolve_issuer(entry, shared, several)?;
        if let Some(previous) = entries[..n]
            .iter()
            .zip(&issuers)
            .find(|(_, other)| other.name == resolved.name)
        {
            // The top-level issuer comes first: the clash is an entry's.
            return Err(format!(
                "{}name: {:?} is already the name of {} (a name defaults to the issuer's \
                 host): set a name of its own",
                entry.at_verify, resolved.name, previous.0.place
            ));
        }
        if several {
            let own = resolved.policy.validation.issuer.as_deref();
            if let Some(previous) = entries[..n]
                .iter()
                .zip(&issuers)
                .find(|(_, other)| other.policy.validation.issuer.as_deref() == own)
            {
                return Err(format!(
                    "{}issuer: {:?} is also the issuer of {}: a token goes to the one issuer \
                     its iss names, so each issuer is listed once",
                    entry.at_verify,
                    own.unwrap_or_default(),
                    previous.0.place
                ));
            }
        }
        issuers.push(resolved);
        // Every grant names every mapped header: bounded in all.
        let mut names: Vec<String> = Vec::new();
        for name in issuers.iter().flat_map(|i| i.headers.names()) {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                names.push(name.to_string());
            }
        }
        if names.len() > MAX_MAPPED_HEADERS {
            return Err(format!(
                "{}headers: {} different header names in all issuers' headers; at most \
                 {MAX_MAPPED_HEADERS} (every answer carries each of them)",
                entry.at_verify,
                names.len()
            ));
        }
    }
    Ok(issuers)
}

fn resolve_issuer(e: &Entry, shared: &Shared, several: bool) -> Result<IssuerConfig, String> {
    let (at_keys, at_verify) = (&e.at_keys, &e.at_verify);
    in_range(&format!("{at_verify}leeway_secs"), e.leeway_secs, 0, 300)?;
    let frontend_api = match e.publishable_key {
        Some(pk) => Some(
            parse_publishable_key(pk).map_err(|err| format!("{at_keys}publishable_key: {err}"))?,
        ),
        None => None,
    };
    let kind = e.kind();
    if kind == IssuerKind::Oidc && e.top {
        return Err(
            "keys: no key source; set keys.jwt_key, keys.jwt_key_file, keys.jwks_url, \
             keys.secret_key or keys.publishable_key (or CLERK_JWT_KEY, CLERK_SECRET_KEY, \
             CLERK_PUBLISHABLE_KEY)"
                .into(),
        );
    }
    let issuer = match (e.issuer, &frontend_api) {
        (Some(""), _) => return Err(format!("{at_verify}issuer: must not be empty")),
        (Some(iss), _) => Some(iss.to_string()),
        (None, Some(host)) => Some(format!("https://{host}")),
        (None, None) => None,
    };
    let key_source = match (kind, &issuer) {
        (IssuerKind::Oidc, Some(iss)) => KeySource::Oidc(
            OidcSource::new(iss, shared.fetch_timeout)
                .map_err(|err| format!("{at_verify}issuer: {err}"))?,
        ),
        (IssuerKind::Oidc, None) => {
            return Err(format!(
                "{at_verify}issuer: required: an entry without a key source is an OpenID \
                 Connect issuer, whose keys are found from its issuer URL (or set \
                 publishable_key, jwt_key, jwt_key_file, secret_key or jwks_url)"
            ))
        }
        _ => resolve_key_source(
            e,
            frontend_api.as_deref(),
            shared.api_url,
            shared.fetch_timeout,
        )?,
    };
    if issuer.is_none() {
        if kind == IssuerKind::Jwks && e.top {
            return Err(
                "verify.issuer: required with a plain keys.jwks_url (no Clerk secret, \
                 publishable or PEM key): without it a token from anyone that key server \
                 signs for would pass"
                    .into(),
            );
        }
        if !e.top {
            return Err(format!(
                "{at_verify}issuer: required: tokens are routed to an issuer by their iss \
                 (for a Clerk instance, publishable_key gives it)"
            ));
        }
        if several {
            return Err(
                "verify.issuer: required with [[issuers]]: tokens are routed to an issuer by \
                 their iss (set it, or keys.publishable_key)"
                    .into(),
            );
        }
    }
    let audience = resolve_audience(e, kind)?;
    if e.authorized_parties.iter().any(String::is_empty) {
        return Err(format!(
            "{at_verify}authorized_parties: entries must not be empty"
        ));
    }
    let algorithms = resolve_algorithms(e.algorithms, kind == IssuerKind::Clerk, at_verify)?;
    let headers = ClaimHeaders::new(e.headers.iter().map(|(name, path)| {
        let spec = match path {
            OneOrMany::One(dotted) => PathSpec::Dotted(dotted.clone()),
            OneOrMany::Many(names) => PathSpec::Names(names.clone()),
        };
        (name.clone(), spec)
    }))
    .map_err(|(name, why)| {
        if name.is_empty() {
            format!("{at_verify}headers: {why}")
        } else {
            format!("{at_verify}headers.{name}: {why}")
        }
    })?;
    let name = resolve_name(e, issuer.as_deref())?;
    let state = match (&key_source, shared.state_dir) {
        (KeySource::Pem { .. }, _) | (_, None) => None,
        (_, Some(dir)) if e.top => Some(KeyState::new(dir.to_path_buf())),
        (_, Some(dir)) => Some(KeyState::for_issuer(dir.to_path_buf(), &name)),
    };
    Ok(IssuerConfig {
        name,
        kind,
        key_source,
        state,
        policy: Policy {
            validation: Validation {
                issuer,
                authorized_parties: e.authorized_parties.to_vec(),
                audience,
                leeway_ms: e.leeway_secs as i64 * 1000,
                allow_pending: shared.allow_pending,
            },
            max_token_bytes: shared.max_token_bytes,
            algorithms,
        },
        headers,
        clerk_facts: kind == IssuerKind::Clerk || !several,
    })
}

/// The given name, checked; else the issuer's host; else (the top-level
/// issuer alone, with no issuer URL) [`DEFAULT_NAME`].
fn resolve_name(e: &Entry, issuer: Option<&str>) -> Result<String, String> {
    if let Some(name) = e.name {
        check_name(name).map_err(|why| format!("{}name: {why}", e.at_verify))?;
        return Ok(name.to_string());
    }
    let host = issuer
        .and_then(|iss| url::Url::parse(iss).ok())
        .and_then(|url| url.host_str().map(str::to_string))
        .filter(|host| check_name(host).is_ok());
    match host {
        Some(host) => Ok(host),
        None if e.top => Ok(DEFAULT_NAME.to_string()),
        None => Err(format!(
            "{}name: required: the issuer {:?} has no host name to name it by",
            e.at_verify,
            issuer.unwrap_or_default()
        )),
    }
}

/// A name: 1 to 64 ASCII letters, digits, `-`, `_` and `.`, starting with
/// a letter or digit (safe in a file name, a metric label and a header).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a name: 1 to 64 ASCII letters, digits, '-', '_' and '.', \
             starting with a letter or digit"
        ))
    }
}

/// The audiences a token's `aud` must name (empty: not checked). A
/// non-Clerk issuer needs one, or the explicit `allow_any_audience`: an
/// issuer such as Google or Auth0 signs tokens for every application it
/// serves.
fn resolve_audience(e: &Entry, kind: IssuerKind) -> Result<Vec<String>, String> {
    let at = &e.at_verify;
    match (e.audience, e.allow_any_audience) {
        (Some(_), true) => Err(format!(
            "{at}audience and {at}allow_any_audience: set one, not both"
        )),
        (Some(audience), false) => {
            let list = audience.to_vec();
            if list.is_empty() {
                return Err(format!(
                    "{at}audience: must not be empty (to accept any audience, set \
                     {at}allow_any_audience = true)"
                ));
            }
            if list.iter().any(String::is_empty) {
                return Err(format!("{at}audience: entries must not be empty"));
            }
            Ok(list)
        }
        (None, true) => Ok(vec![]),
        (None, false) if kind == IssuerKind::Clerk => Ok(vec![]),
        (None, false) if e.top => Err(
            "verify.audience: required with a plain keys.jwks_url: the aud your tokens carry \
             (a string or a list), or verify.allow_any_audience = true to accept tokens the \
             issuer made for any application"
                .into(),
        ),
        (None, false) => Err(format!(
            "{at}audience: required for {}: the aud your tokens carry (a string or a list), \
             or {at}allow_any_audience = true to accept tokens the issuer made for any \
             application",
            if kind == IssuerKind::Oidc {
                "an OpenID Connect issuer"
            } else {
                "a static JWKS issuer (jwks_url without a Clerk key)"
            }
        )),
    }
}

/// Clerk mode (a secret, PEM or publishable key) accepts what Clerk's SDKs
/// accept, the RS family; another issuer every algorithm jwtgate
/// implements, each still bound to its key type.
fn resolve_algorithms(
    names: Option<&[String]>,
    clerk: bool,
    at: &str,
) -> Result<AlgorithmSet, String> {
    let default = if clerk {
        AlgorithmSet::CLERK
    } else {
        AlgorithmSet::ALL
    };
    let Some(names) = names else {
        return Ok(default);
    };
    let mut set = AlgorithmSet::EMPTY;
    for name in names {
        let alg = Algorithm::from_name(name).ok_or_else(|| {
            format!(
                "{at}algorithms: {name:?} is not one of {}",
                AlgorithmSet::ALL.names().join(", ")
            )
        })?;
        if !default.contains(alg) {
            return Err(format!(
                "{at}algorithms: {name} is not allowed in Clerk mode (RS256, RS384, RS512)"
            ));
        }
        set = set.with(alg);
    }
    if set == AlgorithmSet::EMPTY {
        return Err(format!("{at}algorithms: must not be empty"));
    }
    Ok(set)
}

fn resolve_key_source(
    e: &Entry,
    frontend_api: Option<&str>,
    api_url: &str,
    timeout: Duration,
) -> Result<KeySource, String> {
    let at = &e.at_keys;
    let pem = match (e.jwt_key, e.jwt_key_file) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{at}jwt_key and {at}jwt_key_file: set one, not both"
            ))
        }
        (Some(text), None) => Some((text.to_string(), format!("{at}jwt_key"))),
        (None, Some(path)) => {
            let text = read_key_file(path)
                .map_err(|err| format!("{at}jwt_key_file: {}: {err}", path.display()))?;
            Some((text, format!("{at}jwt_key_file ({})", path.display())))
        }
        (None, None) => None,
    };
    if let Some((text, origin)) = pem {
        let key = VerifyingKey::from_pem(&text).map_err(|err| format!("{origin}: {err}"))?;
        return Ok(KeySource::Pem { key, origin });
    }
    let url = match (e.jwks_url, e.secret_key, frontend_api) {
        (Some(url), _, _) => url.to_string(),
        (None, Some(_), _) => format!("{}/v1/jwks", api_url.trim_end_matches('/')),
        (None, None, Some(host)) => format!("https://{host}/.well-known/jwks.json"),
        (None, None, None) => {
            return Err(format!(
                "{at}jwks_url: no key source (this cannot happen: report it)"
            ))
        }
    };
    let (url, private) = check_jwks_url(&url, at)?;
    if let Some(secret) = e.secret_key {
        if secret.is_empty() || secret.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!(
                "{at}secret_key: must be a non-empty token without spaces"
            ));
        }
        if !private {
            return Err(format!(
                "{at}secret_key: would be sent in clear to {at}jwks_url {url}: the secret \
                 goes over https only (plain http only to loopback)"
            ));
        }
    } else if !private {
        log::warn!(
            "{at}jwks_url {url} is plain http and not on loopback: keys can be tampered \
             with in transit"
        );
    }
    Ok(KeySource::Jwks(JwksSource {
        url,
        secret_key: e.secret_key.map(str::to_string),
        timeout,
    }))
}

/// Checks a key URL; gives its parsed form and `true` when nothing on the
/// network can read or change the exchange (https, or plain http to
/// loopback).
fn check_jwks_url(url: &str, at: &str) -> Result<(String, bool), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{at}jwks_url: {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{at}jwks_url: scheme {:?} is not http or https",
            parsed.scheme()
        ));
    }
    // The parsed form: what is fetched, logged and keyed in the state file
    // (the parser drops edge whitespace and normalises case).
    Ok((parsed.to_string(), is_private_url(&parsed)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{settings_from_toml, Config};

    const PK_A: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"; // clerk.example.com
    const PK_B: &str = "pk_test_aGFwcHktaGlwcG8tMS5jbGVyay5hY2NvdW50cy5kZXYk"; // happy-hippo-1...

    fn load(toml: &str) -> Result<Config, String> {
        Config::from_settings(settings_from_toml(toml)?)
    }

    fn err(toml: &str) -> String {
        load(toml)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{toml}"))
    }

    #[test]
    fn the_top_level_issuer_comes_first_and_entries_follow_in_order() {
        let dir = std::env::temp_dir();
        let c = load(&format!(
            "[keys]\npublishable_key = \"{PK_A}\"\nstate_dir = {dir:?}\n\
             [[issuers]]\npublishable_key = \"{PK_B}\"\nheaders = {{ \"X-Email\" = \"email\" }}\n\
             [[issuers]]\nname = \"partner\"\nissuer = \"https://login.partner.example\"\naudience = \"api://orders\"\n\
             headers = {{ \"X-Groups\" = \"groups\", \"X-Roles\" = [\"https://partner.example/roles\"] }}\n\
             [[issuers]]\nissuer = \"https://static.example/\"\njwks_url = \"https://static.example/keys\"\nallow_any_audience = true\nleeway_secs = 0\n"
        ))
        .unwrap();
        assert!(c.several_issuers());
        let summary: Vec<(&str, IssuerKind, Option<&str>)> = c
            .issuers
            .iter()
            .map(|i| {
                (
                    i.name.as_str(),
                    i.kind,
                    i.policy.validation.issuer.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "clerk.example.com",
                    IssuerKind::Clerk,
                    Some("https://clerk.example.com")
                ),
                (
                    "happy-hippo-1.clerk.accounts.dev",
                    IssuerKind::Clerk,
                    Some("https://happy-hippo-1.clerk.accounts.dev")
                ),
                (
                    "partner",
                    IssuerKind::Oidc,
                    Some("https://login.partner.example")
                ),
                (
                    "static.example",
                    IssuerKind::Jwks,
                    Some("https://static.example/")
                ),
            ]
        );
        // The first issuer is the one of the single-issuer fields.
        assert_eq!(
            c.policy.validation.issuer.as_deref(),
            Some("https://clerk.example.com")
        );
        assert_eq!(c.key_source.describe(), c.issuers[0].key_source.describe());
        assert_eq!(c.state, Some(KeyState::new(dir.clone())));
        // Each its own state file.
        let files: Vec<PathBuf> = c
            .issuers
            .iter()
            .map(|i| i.state.as_ref().unwrap().path())
            .collect();
        assert_eq!(
            files,
            [
                dir.join("jwks.json"),
                dir.join("jwks-happy-hippo-1.clerk.accounts.dev.json"),
                dir.join("jwks-partner.json"),
                dir.join("jwks-static.example.json"),
            ]
        );
        match &c.issuers[2].key_source {
            KeySource::Oidc(o) => assert_eq!(
                o.discovery_url,
                "https://login.partner.example/.well-known/openid-configuration"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.issuers[2].policy.validation.audience, ["api://orders"]);
        assert_eq!(c.issuers[2].policy.algorithms, AlgorithmSet::ALL);
        assert_eq!(c.issuers[1].policy.algorithms, AlgorithmSet::CLERK);
        assert_eq!(c.issuers[3].policy.validation.leeway_ms, 0);
        assert_eq!(c.issuers[0].policy.validation.leeway_ms, 5000);
        let names: Vec<&str> = c.issuers[2].headers.names().collect();
        assert_eq!(names, ["X-Groups", "X-Roles"]);
        // Browser sign-in and the cookie suffix stay with the top level.
        assert_eq!(c.gate.cookie_suffix.as_deref(), Some("naoXFJnI"));
    }

    #[test]
    fn issuers_alone_and_one_is_not_routed() {
        let c = load(
            "[[issuers]]\nname = \"idp\"\nissuer = \"http://127.0.0.1:9/realms/x\"\naudience = [\"a\", \"b\"]\n",
        )
        .unwrap();
        assert!(!c.several_issuers());
        assert!(matches!(c.key_source, KeySource::Oidc(_)));
        assert_eq!(c.policy.validation.audience, ["a", "b"]);
        // Today's single-issuer config is the same as ever.
        let c = load(&format!("[keys]\npublishable_key = \"{PK_A}\"\n")).unwrap();
        assert_eq!(c.issuers.len(), 1);
        assert_eq!(c.issuers[0].name, "clerk.example.com");
        let c =
            load("[keys]\njwks_url = \"https://x.example/jwks\"\nsecret_key = \"s\"\n").unwrap();
        assert_eq!(c.issuers[0].name, DEFAULT_NAME);
        assert_eq!(c.policy.validation.issuer, None);
    }

    #[test]
    fn errors_name_the_key_with_the_entry() {
        let oidc = "[[issuers]]\nissuer = \"https://login.example.com\"\n";
        assert!(
            err(&format!("[keys]\npublishable_key = \"{PK_A}\"\n{oidc}"))
                .starts_with("issuers[0].audience: required for an OpenID Connect issuer")
        );
        assert!(err(&format!(
            "[keys]\npublishable_key = \"{PK_A}\"\n{oidc}audience = \"a\"\n{oidc}audience = \"a\"\nname = \"two\"\n"
        ))
        .starts_with("issuers[1].issuer: \"https://login.example.com\" is also the issuer of issuers[0]"));
        assert!(err(&format!(
            "[keys]\npublishable_key = \"{PK_A}\"\n[[issuers]]\npublishable_key = \"{PK_A}\"\nname = \"again\"\n"
        ))
        .starts_with("issuers[0].issuer: \"https://clerk.example.com\" is also the issuer of [keys]"));
        assert!(err(&format!(
            "{oidc}audience = \"a\"\n[[issuers]]\nissuer = \"https://login.example.com/other\"\naudience = \"a\"\n"
        ))
        .starts_with("issuers[1].name: \"login.example.com\" is already the name of issuers[0]"));
        assert!(err(
            "[[issuers]]\njwks_url = \"https://k.example/keys\"\nissuer = \"https://k.example\"\n"
        )
        .starts_with("issuers[0].audience: required for a static JWKS issuer"));
        assert!(err("[[issuers]]\njwt_key_file = \"/nonexistent\"\n")
            .starts_with("issuers[0].jwt_key_file: /nonexistent"));
        let pem = String::from_utf8(
            openssl::rsa::Rsa::generate(2048)
                .unwrap()
                .public_key_to_pem()
                .unwrap(),
        )
        .unwrap();
        assert!(err(&format!("[[issuers]]\njwt_key = \"\"\"{pem}\"\"\"\n"))
            .starts_with("issuers[0].issuer: required: tokens are routed"));
        assert!(err(&format!(
            "[keys]\njwt_key = \"\"\"{pem}\"\"\"\n{oidc}audience = \"a\"\n"
        ))
        .starts_with("verify.issuer: required with [[issuers]]"));
        assert!(err("[[issuers]]\nissuer = \"http://login.example.com\"\naudience = \"a\"\n")
            .starts_with("issuers[0].issuer: \"http://login.example.com\": an OpenID Connect issuer is an https:// URL"));
        assert!(err("[[issuers]]\naudience = \"a\"\n").starts_with("issuers[0].issuer: required"));
        assert!(err(&format!("{oidc}audience = \"a\"\nname = \"../x\"\n"))
            .starts_with("issuers[0].name: \"../x\" is not a name"));
        assert!(err(&format!(
            "{oidc}audience = \"a\"\nheaders = {{ \"X-User-Id\" = \"email\" }}\n"
        ))
        .starts_with("issuers[0].headers.X-User-Id: X-User-Id is reserved"));
        assert!(err(&format!(
            "{oidc}audience = \"a\"\nheaders = {{ \"X-A\" = \"a..b\" }}\n"
        ))
        .starts_with("issuers[0].headers.X-A: \"a..b\""));
        assert!(err(&format!(
            "[keys]\npublishable_key = \"{PK_A}\"\n[verify]\nheaders = {{ \"Connection\" = \"x\" }}\n"
        ))
        .starts_with("verify.headers.Connection: Connection is reserved"));
        assert!(err(&format!(
            "[verify]\naudience = \"a\"\n{oidc}audience = \"a\"\n"
        ))
        .starts_with("verify.audience: set, but [keys] names no key source"));
        assert!(err(&format!("{oidc}audience = \"a\"\nleeway_secs = 301\n"))
            .starts_with("issuers[0].leeway_secs: 301 is out of range"));
        assert!(err(&format!(
            "[[issuers]]\npublishable_key = \"{PK_A}\"\nalgorithms = [\"ES256\"]\n"
        ))
        .starts_with("issuers[0].algorithms: ES256 is not allowed in Clerk mode"));
        assert!(err("[[issuers]]\nsecret_key = \"s\"\njwks_url = \"http://k.example/jwks\"\nissuer = \"i\"\n")
            .starts_with("issuers[0].secret_key: would be sent in clear to issuers[0].jwks_url"));
        assert!(err(&format!(
            "{oidc}audience = \"a\"\nallow_any_audience = true\n"
        ))
        .starts_with("issuers[0].audience and issuers[0].allow_any_audience: set one, not both"));
        assert!(err(&format!("{oidc}audiences = \"a\"\n")).contains("unknown field `audiences`"));
        assert!(err("[[issuers]]\nissuer = \"urn:partner\"\njwks_url = \"https://k.example/\"\naudience = \"a\"\n")
            .starts_with("issuers[0].name: required: the issuer \"urn:partner\" has no host"));
        let mapping = |from: usize| -> String {
            let pairs: Vec<String> = (from..from + 20)
                .map(|n| format!("\"X-C{n}\" = \"c{n}\""))
                .collect();
            format!("headers = {{ {} }}\n", pairs.join(", "))
        };
        let two = |a: usize, b: usize| {
            format!(
                "{oidc}audience = \"a\"\nname = \"one\"\n{}[[issuers]]\n\
                 issuer = \"https://two.example\"\naudience = \"a\"\n{}",
                mapping(a),
                mapping(b)
            )
        };
        assert!(load(&two(0, 12)).is_ok(), "32 names in all");
        assert!(err(&two(0, 13)).starts_with("issuers[1].headers: 33 different header names"));
        let many: String = (0..MAX_ISSUERS)
            .map(|i| format!("[[issuers]]\nissuer = \"https://i{i}.example\"\naudience = \"a\"\n"))
            .collect();
        assert!(load(&many).is_ok());
        assert!(
            err(&format!("[keys]\npublishable_key = \"{PK_A}\"\n{many}"))
                .starts_with("issuers: 17 issuers; at most 16")
        );
    }

    #[test]
    fn the_environment_cannot_address_an_entry() {
        let vars = [("JWTGATE_ISSUERS__0__NAME", "x")].map(|(n, v)| (n.into(), v.into()));
        let e = crate::config::jwtgate_variables(vars.into_iter()).unwrap_err();
        assert!(
            e.contains("[[issuers]] entries come from the config file only"),
            "{e}"
        );
    }
}
