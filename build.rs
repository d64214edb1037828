//! Records the git commit the binary is built from, for `jwtgate --version`
//! and the `jwtgate_build_info` metric.
//!
//! `JWTGATE_BUILD_COMMIT` (e.g. set by a distribution building from a
//! tarball) wins; otherwise `git rev-parse` when this directory is the top
//! of a git checkout; otherwise nothing, and the version shows no commit.
//! A tarball unpacked inside some other repository does not pick up that
//! repository's commit: the checkout's top must be this crate's directory.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=JWTGATE_BUILD_COMMIT");
    let commit = match std::env::var("JWTGATE_BUILD_COMMIT") {
        Ok(commit) => commit,
        Err(_) => git_commit().unwrap_or_default(),
    };
    // Only [0-9a-zA-Z.-] reaches the binary: the value ends up in a metric
    // label and on a terminal.
    let commit: String = commit
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .take(64)
        .collect();
    println!("cargo:rustc-env=JWTGATE_COMMIT={commit}");
}

/// `git rev-parse --short=12 HEAD`, when the crate is the checkout's top.
/// Registers the files whose change means a new commit.
fn git_commit() -> Option<String> {
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let top = git(&here, &["rev-parse", "--show-toplevel"])?;
    if !same_dir(Path::new(&top), &here) {
        return None;
    }
    let git_dir = PathBuf::from(git(&here, &["rev-parse", "--absolute-git-dir"])?);
    let common = git(&here, &["rev-parse", "--git-common-dir"])
        .map(|d| here.join(d))
        .unwrap_or_else(|| git_dir.clone());
    let mut watch = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(branch) = git(&here, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(common.join(branch));
    }
    // A path that does not exist would make cargo rerun this script on
    // every build; watch only what is there.
    for path in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    git(&here, &["rev-parse", "--short=12", "HEAD"])
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
