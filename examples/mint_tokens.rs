//! Mints a pool of distinct, valid Clerk-shaped session tokens for
//! `bench/run.sh` (the cache-miss row) and the matching public key.
//!
//! ```sh
//! cargo run --release --example mint_tokens -- \
//!     --count 100000 --out tokens.txt --public-key jwt.pem \
//!     [--private-key signing.pem] [--issuer URL] [--azp URL] [--ttl-secs N]
//! ```
//!
//! Writes `--count` tokens, one per line, each with its own `sub` and `sid`
//! (`user_<i>`, `sess_<i>`), `iss`, `azp`, `iat`/`nbf` now, `exp` now +
//! `--ttl-secs` (default 7 days) and v2 org claims, RS256-signed with a
//! 2048-bit key; and the public key as PEM (what jwtgate's `jwt_key_file`
//! and Clerk's `jwtKey` take). `--private-key`: sign with this PEM key if
//! the file exists, else generate one and save it there (so several pools
//! share one key); without it a fresh key is used. Signing runs on every CPU.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use serde_json::json;

struct Args {
    count: usize,
    out: PathBuf,
    public_key: PathBuf,
    private_key: Option<PathBuf>,
    issuer: String,
    azp: String,
    ttl_secs: i64,
}

const USAGE: &str = "usage: mint_tokens --count N --out FILE --public-key FILE \
     [--private-key FILE] [--issuer URL] [--azp URL] [--ttl-secs N]";

fn parse_args() -> Result<Args, String> {
    let mut count = None;
    let mut out = None;
    let mut public_key = None;
    let mut private_key = None;
    let mut issuer = "https://clerk.bench.jwtgate.invalid".to_string();
    let mut azp = "https://app.bench.jwtgate.invalid".to_string();
    let mut ttl_secs = 7 * 24 * 3600;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--count" => count = Some(value()?.parse().map_err(|_| "--count: a number")?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--public-key" => public_key = Some(PathBuf::from(value()?)),
            "--private-key" => private_key = Some(PathBuf::from(value()?)),
            "--issuer" => issuer = value()?,
            "--azp" => azp = value()?,
            "--ttl-secs" => ttl_secs = value()?.parse().map_err(|_| "--ttl-secs: a number")?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Args {
        count: count.ok_or("--count is required")?,
        out: out.ok_or("--out is required")?,
        public_key: public_key.ok_or("--public-key is required")?,
        private_key,
        issuer,
        azp,
        ttl_secs,
    })
}

fn signing_key(path: Option<&PathBuf>) -> Result<PKey<Private>, String> {
    if let Some(path) = path.filter(|p| p.exists()) {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return PKey::private_key_from_pem(&pem)
            .map_err(|e| format!("{}: not a PEM private key: {e}", path.display()));
    }
    let key = PKey::from_rsa(Rsa::generate(2048).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if let Some(path) = path {
        let pem = key.private_key_to_pem_pkcs8().map_err(|e| e.to_string())?;
        std::fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(key)
}

fn mint(args: &Args, key: &PKey<Private>, i: usize, now: i64) -> Result<String, String> {
    let claims = json!({
        "sub": format!("user_{i:08}"),
        "sid": format!("sess_{i:08}"),
        "iss": args.issuer,
        "azp": args.azp,
        "iat": now,
        "nbf": now - 10,
        "exp": now + args.ttl_secs,
        "v": 2,
        "fea": "o:dashboard",
        "o": {"id": "org_bench", "slg": "bench", "rol": "admin", "per": "read,manage", "fpm": "3"},
    });
    jwtgate::demo::mint_rs256(key, "bench", &claims)
}

fn run(args: &Args) -> Result<(), String> {
    let key = signing_key(args.private_key.as_ref())?;
    let public = key.public_key_to_pem().map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = args.count.div_ceil(threads).max(1);
    let parts: Vec<Result<String, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.count)
            .step_by(chunk)
            .map(|start| {
                let key = &key;
                s.spawn(move || {
                    let mut text = String::new();
                    for i in start..(start + chunk).min(args.count) {
                        text.push_str(&mint(args, key, i, now)?);
                        text.push('\n');
                    }
                    Ok(text)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a signing thread panicked".into()))
            })
            .collect()
    });
    let mut file =
        std::fs::File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    for part in parts {
        file.write_all(part?.as_bytes())
            .map_err(|e| format!("{}: {e}", args.out.display()))?;
    }
    std::fs::write(&args.public_key, public)
        .map_err(|e| format!("{}: {e}", args.public_key.display()))?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("mint_tokens: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mint_tokens: {e}");
            ExitCode::FAILURE
        }
    }
}
