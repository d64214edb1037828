//! Command-line parsing and the one-shot commands (`check`, `verify`).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::keys::source::load_into;
use crate::keys::store::KeyStore;
use crate::verify::{Issuer, Verifier};

pub const USAGE: &str = "\
Usage: jwtgate [-c PATH] [COMMAND]
Verifies Clerk session tokens for nginx auth_request.

Commands:
  (none)             run the daemon in the foreground
  check              load the config and the keys, then exit
  verify TOKEN       verify one token and print its claims as JSON; TOKEN may
                     be a pasted \"Bearer <jwt>\", '-' reads it from stdin
  demo               run with a generated key; prints a curl line to try
  help               show this help

Options:
  -c, --config PATH  the TOML config file; without it, built-in defaults and
                     the environment only
  -h, --help         show this help and exit
  -V, --version      show the version and git commit, and exit

Environment:
  JWTGATE_<KEY>      any setting, __ for nesting (JWTGATE_KEYS__JWKS_URL)
  CLERK_SECRET_KEY, CLERK_JWT_KEY, CLERK_PUBLISHABLE_KEY, CLERK_API_URL,
  CLERK_SIGN_IN_URL, CLERK_PROXY_URL
                     Clerk's own variables, as defaults
  RUST_LOG           log level on stderr (debug: one line per decision); a
                     bare level is jwtgate's, libraries stay at warn unless
                     named (RUST_LOG=info,reqwest=debug)

Exit status:
  0 success; 1 verify refused the token (the reason is on stderr);
  2 a usage, config or key error.
";

/// What the libraries log unless `RUST_LOG` names them: warnings and
/// errors. may (the coroutine runtime) logs a line per connection at INFO
/// (its fd added to and removed from epoll): it stays at warn, named so a
/// bare level can never reach it. may_minihttp (vendor/, patched) logs
/// ordinary connection ends at debug, so its warnings and errors (accept
/// failures, a service error or panic) are worth seeing.
const LIBRARY_LOG_FILTERS: &str = "warn,may=warn,may_minihttp=warn";

/// The `env_logger` filters for a `RUST_LOG` value (`None`: unset): a bare
/// level (`info`, `debug`, ...) is jwtgate's own, so `RUST_LOG=info` as the
/// shipped unit sets it, or `debug` for one line per decision, does not
/// turn on the HTTP libraries' lines; `module=level` directives, a library
/// named, pass through as written (and win, being more specific).
pub fn log_filters(rust_log: Option<&str>) -> String {
    let rust_log = rust_log.unwrap_or("info");
    let (directives, regex) = match rust_log.split_once('/') {
        Some((directives, regex)) => (directives, Some(regex)),
        None => (rust_log, None),
    };
    let mut filters = String::from(LIBRARY_LOG_FILTERS);
    for directive in directives.split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        filters.push(',');
        if directive.parse::<log::LevelFilter>().is_ok() {
            filters.push_str("jwtgate=");
        }
        filters.push_str(directive);
    }
    if let Some(regex) = regex {
        filters.push('/');
        filters.push_str(regex);
    }
    filters
}

/// `jwtgate --version`: the version, and the git commit when known.
pub fn version() -> String {
    match crate::gate::metrics::BUILD_COMMIT {
        "" => format!("jwtgate {}", env!("CARGO_PKG_VERSION")),
        commit => format!("jwtgate {} (commit {commit})", env!("CARGO_PKG_VERSION")),
    }
}

/// Writes `text` to stdout. A reader that went away (`jwtgate verify ... |
/// head -1`) is not an error: the output was not wanted any more.
pub fn print_out(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

/// Writes `text` to stderr, ignoring failure (nowhere left to report it).
pub fn print_err(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run,
    Check,
    Verify(String),
    Demo,
    Help,
    Version,
}

/// Parsed arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub command: Command,
}

/// Parses arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut config = None;
    let mut words = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                return Ok(Args {
                    config,
                    command: Command::Help,
                })
            }
            "-V" | "--version" => {
                return Ok(Args {
                    config,
                    command: Command::Version,
                })
            }
            "-c" | "--config" => {
                config = Some(PathBuf::from(args.next().ok_or("--config needs a PATH")?));
            }
            _ if arg.starts_with("--config=") => {
                config = Some(PathBuf::from(&arg["--config=".len()..]));
            }
            _ if arg.starts_with('-') && arg != "-" => return Err(format!("unknown option {arg}")),
            _ => words.push(arg),
        }
    }
    let command = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => Command::Run,
        ["help"] => Command::Help,
        ["check"] => Command::Check,
        ["demo"] => Command::Demo,
        ["verify", token] => Command::Verify(token.to_string()),
        ["verify"] => return Err("verify needs a TOKEN (or - to read stdin)".into()),
        _ => return Err(format!("unknown command: {}", words.join(" "))),
    };
    Ok(Args { config, command })
}

/// Loads every issuer's keys once, as `check` and `verify` need them.
fn load_keys(config: &Config) -> Result<Verifier, String> {
    let several = config.several_issuers();
    let mut issuers = Vec::with_capacity(config.issuers.len());
    for issuer in &config.issuers {
        let store = Arc::new(KeyStore::new(
            config.cache_capacity,
            Duration::from_secs(3600),
            config.fetch_timeout,
        ));
        load_into(&store, &issuer.key_source).map_err(|e| {
            if several {
                format!("issuer {}: {e}", issuer.name)
            } else {
                e
            }
        })?;
        issuers.push(Issuer {
            name: issuer.name.clone(),
            keys: store,
            policy: issuer.policy.clone(),
            headers: issuer.headers.clone(),
            clerk_facts: issuer.clerk_facts,
        });
    }
    Verifier::with_issuers(issuers)
}

/// `jwtgate check`: the summary on success (one line; with several
/// issuers, one more line for each).
pub fn check(config: &Config) -> Result<String, String> {
    let verifier = load_keys(config)?;
    let list = |items: &[String]| {
        if items.is_empty() {
            "(any)".to_string()
        } else {
            items.join(", ")
        }
    };
    if let [issuer] = verifier.issuers() {
        let validation = &issuer.policy.validation;
        return Ok(format!(
            "ok: {} key(s) from {} (kid: {}); listen {}; issuer {}; authorized parties {}",
            issuer.keys.len(),
            config.key_source.describe(),
            issuer.keys.kids().join(", "),
            config.listen,
            validation.issuer.as_deref().unwrap_or("(any)"),
            list(&validation.authorized_parties),
        ));
    }
    let mut out = format!(
        "ok: {} issuers, routed by iss; listen {}",
        verifier.issuers().len(),
        config.listen
    );
    for (issuer, configured) in verifier.issuers().iter().zip(&config.issuers) {
        let validation = &issuer.policy.validation;
        let headers: Vec<String> = issuer.headers.names().map(String::from).collect();
        out.push_str(&format!(
            "\n  {}: {} key(s) from {} (kid: {}); issuer {}; audience {}; authorized parties \
             {}; headers {}",
            issuer.name,
            issuer.keys.len(),
            configured.key_source.describe(),
            issuer.keys.kids().join(", "),
            validation.issuer.as_deref().unwrap_or("(any)"),
            list(&validation.audience),
            list(&validation.authorized_parties),
            if headers.is_empty() {
                "(none)".to_string()
            } else {
                headers.join(", ")
            },
        ));
    }
    Ok(out)
}

/// `jwtgate verify`: `Ok(claims JSON)`, or `Err(reason)` for a bad token.
/// The outer error is a config or key problem.
pub fn verify(config: &Config, token: &str) -> Result<Result<String, String>, String> {
    let token = if token == "-" {
        let mut input = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut input)
            .map_err(|e| format!("reading the token from stdin: {e}"))?;
        bare_token(&input).to_string()
    } else {
        bare_token(token).to_string()
    };
    let verifier = load_keys(config)?;
    Ok(match verifier.verify(&token) {
        Ok(verified) => {
            let claims: serde_json::Value =
                serde_json::from_slice(&verified.payload).unwrap_or_default();
            Ok(serde_json::to_string_pretty(&claims).unwrap_or_default())
        }
        Err(e) => Err(e.reason().to_string()),
    })
}

/// The token in what a user pasted: surrounding whitespace, and a leading
/// `Authorization:` header name and `Bearer` scheme (any case), removed.
fn bare_token(pasted: &str) -> &str {
    fn strip_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
        let head = s.get(..word.len())?;
        head.eq_ignore_ascii_case(word).then(|| &s[word.len()..])
    }
    let mut s = pasted.trim();
    if let Some(rest) = strip_word(s, "authorization:") {
        s = rest.trim_start();
    }
    if let Some(rest) = strip_word(s, "bearer") {
        if rest.starts_with([' ', '\t']) {
            s = rest.trim_start();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn commands_and_config_parse() {
        assert_eq!(
            parse(&[]).unwrap(),
            Args {
                config: None,
                command: Command::Run
            }
        );
        let a = parse(&["--config", "/etc/j.toml", "verify", "-"]).unwrap();
        assert_eq!(a.config, Some(PathBuf::from("/etc/j.toml")));
        assert_eq!(a.command, Command::Verify("-".into()));
        assert_eq!(
            parse(&["check", "--config=x.toml"]).unwrap().command,
            Command::Check
        );
        assert_eq!(parse(&["demo"]).unwrap().command, Command::Demo);
        assert_eq!(parse(&["--version"]).unwrap().command, Command::Version);
        for help in [
            &["help"][..],
            &["-h"],
            &["--help"],
            &["-c", "x.toml", "help"],
        ] {
            assert_eq!(parse(help).unwrap().command, Command::Help, "{help:?}");
        }
        assert_eq!(parse(&["-V"]).unwrap().command, Command::Version);
        assert_eq!(
            parse(&["-c", "j.toml", "check"]).unwrap().config,
            Some(PathBuf::from("j.toml"))
        );
    }

    #[test]
    fn a_pasted_header_or_scheme_is_removed() {
        for pasted in [
            "eyJ.a.b",
            "  eyJ.a.b\n",
            "Bearer eyJ.a.b",
            "bearer\teyJ.a.b\r\n",
            "Authorization: Bearer eyJ.a.b",
            "authorization:BEARER   eyJ.a.b",
        ] {
            assert_eq!(bare_token(pasted), "eyJ.a.b", "{pasted:?}");
        }
        // Not a scheme: left for the verifier to refuse as it is.
        assert_eq!(bare_token("Bearereyj.a.b"), "Bearereyj.a.b");
        assert_eq!(bare_token("Basic dXNlcg=="), "Basic dXNlcg==");
        assert_eq!(bare_token("Bearer"), "Bearer");
        assert_eq!(bare_token(""), "");
        assert_eq!(bare_token("é"), "é");
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["verify"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&["help", "me"]).is_err());
    }

    #[test]
    fn a_bare_log_level_is_jwtgates_own() {
        assert_eq!(
            log_filters(None),
            "warn,may=warn,may_minihttp=warn,jwtgate=info"
        );
        assert_eq!(
            log_filters(Some("debug")),
            "warn,may=warn,may_minihttp=warn,jwtgate=debug"
        );
        assert_eq!(
            log_filters(Some("INFO, reqwest=debug,,may_minihttp=error")),
            "warn,may=warn,may_minihttp=warn,jwtgate=INFO,reqwest=debug,may_minihttp=error"
        );
        assert_eq!(
            log_filters(Some("info/allow")),
            "warn,may=warn,may_minihttp=warn,jwtgate=info/allow"
        );
        assert_eq!(
            log_filters(Some("hyper")),
            "warn,may=warn,may_minihttp=warn,hyper",
            "a module alone is not a level"
        );
    }
}
