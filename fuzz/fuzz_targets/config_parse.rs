//! `settings_from_toml` then `Config::from_settings` on any UTF-8 text.
//!
//! No environment is read. `keys.jwt_key_file` is the one setting that
//! reads a file: whatever path the input names is replaced, before
//! resolution, by this crate's public test key (names ending in `.pem`) or
//! by a path that does not exist, so a run never reads `/dev/zero`, a FIFO
//! or a large file. Nothing is written.
//!
//! Checked: no panic; an accepted config is within the documented ranges.
#![no_main]

use std::path::PathBuf;

use jwtgate::config::{settings_from_toml, Config};
use jwtgate::keys::source::KeySource;
use jwtgate::token::algorithms::AlgorithmSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut settings) = settings_from_toml(text) else {
        return;
    };
    if let Some(path) = &settings.keys.jwt_key_file {
        let fixture = path.extension().is_some_and(|e| e == "pem");
        settings.keys.jwt_key_file = Some(if fixture {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/keys/fuzz-only-rsa2048.pub.pem"
            ))
        } else {
            PathBuf::from("/nonexistent/jwtgate-fuzz/key.pem")
        });
    }
    let clerk_mode = settings.keys.secret_key.is_some()
        || settings.keys.jwt_key.is_some()
        || settings.keys.jwt_key_file.is_some()
        || settings.keys.publishable_key.is_some();
    let Ok(config) = Config::from_settings(settings) else {
        return;
    };
    let v = &config.policy.validation;
    assert!((0..=300_000).contains(&v.leeway_ms), "{config:?}");
    assert!(v.issuer.as_ref().is_none_or(|i| !i.is_empty()));
    assert!(v.authorized_parties.iter().all(|p| !p.is_empty()));
    assert!((512..=65536).contains(&config.policy.max_token_bytes));
    assert!((1..=10_000).contains(&config.cache_capacity));
    assert!(config.workers <= 256);
    assert!(config.gate.cache_tokens <= 10_000_000);
    assert_ne!(config.policy.algorithms, AlgorithmSet::EMPTY);
    if clerk_mode {
        for name in config.policy.algorithms.names() {
            assert!(name.starts_with("RS"), "{name} in Clerk mode");
        }
    }
    if let KeySource::Jwks(source) = &config.key_source {
        // The URL parser ignores leading spaces and controls, tabs and line
        // breaks anywhere, and the scheme's case.
        let url: String = source
            .url
            .trim_start_matches(|c| c <= ' ')
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .collect::<String>()
            .to_ascii_lowercase();
        assert!(
            url.starts_with("https:") || url.starts_with("http:"),
            "{:?}",
            source.url
        );
    }
});
