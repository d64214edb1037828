//! Keys that survive restarts: the last good JWKS, kept in a state
//! directory (`keys.state_dir`, by default systemd's `$STATE_DIRECTORY`).
//!
//! After every good fetch the refresher writes the document as served,
//! wrapped with where and when it was fetched:
//!
//! ```json
//! {"version":1,"url":"https://api.clerk.com/v1/jwks","fetched_at":1767225600,"jwks":{"keys":[...]}}
//! ```
//!
//! The write is atomic (a temporary file in the same directory, fsync,
//! rename over `jwks.json`, fsync of the directory; mode 0600), so a crash
//! leaves the old file or the new one, never half of one. At start the
//! daemon reads it before the first fetch, so a restart while the key
//! server is down keeps serving. A file is trusted only for the `url` it
//! names: keys saved for another `jwks_url` (another issuer, perhaps) are
//! ignored. It is bounded like a fetched JWKS and parsed by the same parser;
//! how old it may be is the refresher's call (`keys.max_stale_secs`).
//!
//! With several issuers each has its own file: the first (top-level
//! `[keys]`) issuer keeps `jwks.json`, an `[[issuers]]` entry uses
//! `jwks-<name>.json` (names are checked at load: letters, digits, `-`,
//! `_` and `.`, so they make safe file names). For an OpenID Connect issuer the
//! `url` is its discovery document's.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::keys::jwk::{parse_jwks, VerifyingKey};
use crate::keys::source::MAX_JWKS_BYTES;

/// The file in the state directory.
pub const STATE_FILE: &str = "jwks.json";

/// Largest state file read: a JWKS at its bound plus the wrapper.
const MAX_STATE_BYTES: u64 = MAX_JWKS_BYTES + 16 * 1024;

/// The format written; another version is ignored.
const VERSION: u32 = 1;

/// The state directory of one key source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    dir: PathBuf,
    /// The file's name in `dir`.
    file: String,
}

/// Keys read back from the state directory.
pub struct Restored {
    pub keys: Vec<VerifyingKey>,
    /// Unix seconds of the fetch that saved them.
    pub fetched_at: u64,
    /// Keys of the document that were refused (logged by the caller).
    pub refused: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapper {
    version: u32,
    url: String,
    fetched_at: u64,
    jwks: Value,
}

impl KeyState {
    /// The state of the first issuer: `<dir>/jwks.json`.
    pub fn new(dir: PathBuf) -> KeyState {
        KeyState {
            dir,
            file: STATE_FILE.to_string(),
        }
    }

    /// The state of the issuer named `name`: `<dir>/jwks-<name>.json`.
    /// `name` must be a safe file name part (the config checks it: ASCII
    /// letters and digits, then also `-`, `_` and `.`); anything else falls
    /// back to a hash of it.
    pub fn for_issuer(dir: PathBuf, name: &str) -> KeyState {
        let safe = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        let part = if safe {
            name.to_string()
        } else {
            let digest = openssl::sha::sha256(name.as_bytes());
            digest[..8].iter().map(|b| format!("{b:02x}")).collect()
        };
        KeyState {
            dir,
            file: format!("jwks-{part}.json"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    /// Atomically replaces the state file with `jwks` (the document as
    /// served, already parsed once) fetched from `url` at `fetched_at`.
    pub fn save(&self, url: &str, jwks: &[u8], fetched_at: u64) -> Result<(), String> {
        let url_json = serde_json::to_string(url).map_err(|e| e.to_string())?;
        let mut doc = Vec::with_capacity(jwks.len() + url_json.len() + 64);
        doc.extend_from_slice(
            format!(
                "{{\"version\":{VERSION},\"url\":{url_json},\"fetched_at\":{fetched_at},\"jwks\":"
            )
            .as_bytes(),
        );
        // `jwks` parsed as one JSON value, so it splices in as one.
        doc.extend_from_slice(jwks.trim_ascii());
        doc.extend_from_slice(b"}\n");
        let path = self.path();
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", self.file, std::process::id()));
        let written = write_synced(&tmp, &doc)
            .and_then(|()| fs::rename(&tmp, &path))
            .and_then(|()| File::open(&self.dir)?.sync_all());
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads the state file for `url`. `Ok(None)`: there is none. An error
    /// says why a file that is there cannot be used (another URL, too
    /// large, not a state file, no usable key).
    pub fn load(&self, url: &str) -> Result<Option<Restored>, String> {
        let path = self.path();
        let fail = |why: String| format!("{}: {why}", path.display());
        // Looked at before opening: opening a FIFO would wait for a writer.
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(e.to_string())),
        };
        if !meta.is_file() || meta.len() > MAX_STATE_BYTES {
            return Err(fail(format!(
                "not a regular file of at most {MAX_STATE_BYTES} bytes"
            )));
        }
        let file = File::open(&path).map_err(|e| fail(e.to_string()))?;
        let mut text = Vec::new();
        file.take(MAX_STATE_BYTES)
            .read_to_end(&mut text)
            .map_err(|e| fail(e.to_string()))?;
        let wrapper: Wrapper = serde_json::from_slice(&text)
            .map_err(|e| fail(format!("not a jwtgate state file: {e}")))?;
        if wrapper.version != VERSION {
            return Err(fail(format!(
                "state file version {} (this jwtgate writes {VERSION})",
                wrapper.version
            )));
        }
        if wrapper.url != url {
            return Err(fail(format!(
                "keys saved from {}, not from keys.jwks_url {url}",
                wrapper.url.escape_debug()
            )));
        }
        let jwks = serde_json::to_vec(&wrapper.jwks).map_err(|e| fail(e.to_string()))?;
        let parsed = parse_jwks(&jwks).map_err(fail)?;
        if parsed.keys.is_empty() {
            return Err(fail("no usable signing key".into()));
        }
        Ok(Some(Restored {
            keys: parsed.keys,
            fetched_at: wrapper.fetched_at,
            refused: parsed.refused,
        }))
    }
}

/// Writes `bytes` to a new file at `path` (mode 0600) and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let _ = fs::remove_file(path); // a leftover of a crash
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jwtgate-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn jwks_text(kid: &str) -> String {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        serde_json::json!({"keys": [{
            "kty": "RSA", "kid": kid, "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        }]})
        .to_string()
    }

    #[test]
    fn saves_atomically_and_loads_only_for_its_url() {
        let dir = scratch("roundtrip");
        let state = KeyState::new(dir.clone());
        assert!(state.load("https://a/jwks").unwrap().is_none());
        let url = "https://a/jwks?x=\"1\"";
        state
            .save(
                url,
                format!("  {}\n", jwks_text("k1")).as_bytes(),
                1_700_000_000,
            )
            .unwrap();
        let mode = fs::metadata(state.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let restored = state.load(url).unwrap().unwrap();
        assert_eq!(restored.fetched_at, 1_700_000_000);
        assert_eq!(restored.keys[0].kid(), Some("k1"));
        let err = state.load("https://b/jwks").err().unwrap();
        assert!(
            err.contains("not from keys.jwks_url https://b/jwks"),
            "{err}"
        );
        // A second save replaces the file and leaves no temporary behind.
        state
            .save(url, jwks_text("k2").as_bytes(), 1_700_000_100)
            .unwrap();
        assert_eq!(state.load(url).unwrap().unwrap().keys[0].kid(), Some("k2"));
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [STATE_FILE]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_what_is_not_a_good_state_file() {
        let dir = scratch("bad");
        let state = KeyState::new(dir.clone());
        let url = "https://a/jwks";
        let key = jwks_text("k1");
        for (text, why) in [
            ("{}".to_string(), "not a jwtgate state file"),
            (
                format!("{{\"version\":2,\"url\":\"{url}\",\"fetched_at\":1,\"jwks\":{key}}}"),
                "version 2",
            ),
            (
                format!(
                    "{{\"version\":1,\"url\":\"{url}\",\"fetched_at\":1,\"jwks\":{{\"keys\":[]}}}}"
                ),
                "no usable signing key",
            ),
            (
                format!(
                    "{{\"version\":1,\"url\":\"{url}\",\"fetched_at\":1,\"jwks\":{{\"keys\":5}}}}"
                ),
                "not a JWKS document",
            ),
            (
                format!(
                    "{{\"version\":1,\"url\":\"{url}\",\"fetched_at\":1,\"jwks\":{key},\"x\":1}}"
                ),
                "unknown field",
            ),
            (" ".repeat(MAX_STATE_BYTES as usize + 1), "at most"),
        ] {
            fs::write(state.path(), &text).unwrap();
            let err = state.load(url).err().unwrap();
            assert!(err.contains(why), "{why}: {err}");
        }
        fs::remove_file(state.path()).unwrap();
        fs::create_dir(state.path()).unwrap();
        assert!(state.load(url).is_err(), "a directory is not a state file");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_issuer_has_its_own_file() {
        let dir = scratch("issuers");
        let first = KeyState::new(dir.clone());
        let partner = KeyState::for_issuer(dir.clone(), "partner");
        assert_eq!(partner.path(), dir.join("jwks-partner.json"));
        let url = "https://a/jwks";
        first.save(url, jwks_text("k1").as_bytes(), 1).unwrap();
        partner.save(url, jwks_text("k2").as_bytes(), 2).unwrap();
        assert_eq!(first.load(url).unwrap().unwrap().keys[0].kid(), Some("k1"));
        assert_eq!(
            partner.load(url).unwrap().unwrap().keys[0].kid(),
            Some("k2")
        );
        assert_eq!(
            KeyState::for_issuer(dir.clone(), "login.example.com").path(),
            dir.join("jwks-login.example.com.json")
        );
        for hostile in ["../x", "a/b", "", ".", "..", ".hidden", "a b", "\u{0}"] {
            let state = KeyState::for_issuer(dir.clone(), hostile);
            let name = state
                .path()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            assert_eq!(state.path().parent(), Some(dir.as_path()), "{hostile:?}");
            assert!(name.starts_with("jwks-") && name.len() == 26, "{name}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_save_leaves_nothing_behind() {
        let state = KeyState::new(PathBuf::from("/nonexistent/jwtgate-state"));
        let err = state.save("https://a/jwks", b"{}", 1).unwrap_err();
        assert!(
            err.starts_with("/nonexistent/jwtgate-state/jwks.json"),
            "{err}"
        );
    }
}
