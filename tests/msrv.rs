//! The minimum supported Rust version is true.
//!
//! `rust-version` in Cargo.toml must equal the newest `rust-version` that any
//! dependency locked in Cargo.lock declares for this platform: lower would
//! promise a toolchain the dependencies refuse, higher would refuse one
//! that works. (Only one toolchain is installed on the CI machine and none
//! can be downloaded, so this is checked from the dependencies' own
//! declarations; when the installed rustc is that same version, as it is
//! now, CI's build is also a build with the MSRV, and the test says so.)
//! The README must state the same version.

use std::process::Command;

use serde_json::Value;

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// `major.minor` (`1.88.0` and `1.88` are the same MSRV).
fn minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rust_version_is_what_the_locked_dependencies_need() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_info = run(&rustc, &["-vV"]);
    let host = rustc_info
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("host triple");
    let installed = rustc_info
        .lines()
        .find_map(|l| l.strip_prefix("release: "))
        .expect("rustc release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata: Value = serde_json::from_str(&run(
        &cargo,
        &[
            "metadata",
            "--locked",
            "--offline",
            "--format-version",
            "1",
            "--filter-platform",
            host,
        ],
    ))
    .unwrap();
    let in_graph: Vec<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let mut ours = None;
    let mut needed: Option<(String, String)> = None;
    for package in metadata["packages"].as_array().unwrap() {
        if !in_graph.contains(&package["id"].as_str().unwrap()) {
            continue;
        }
        let name = package["name"].as_str().unwrap().to_string();
        let Some(rv) = package["rust_version"].as_str() else {
            continue;
        };
        if name == "jwtgate" {
            ours = Some(rv.to_string());
        } else if needed
            .as_ref()
            .is_none_or(|(v, _)| version_key(rv) > version_key(v))
        {
            needed = Some((rv.to_string(), format!("{name} {}", package["version"])));
        }
    }
    let ours = ours.expect("Cargo.toml sets rust-version");
    let (needed, by) = needed.expect("some dependency declares a rust-version");
    assert_eq!(
        minor(&ours),
        minor(&needed),
        "Cargo.toml says rust-version = {ours}, but the locked dependencies need {needed} ({by})"
    );
    let readme = include_str!("../README.md");
    let stated = format!("Rust {}", minor(&ours));
    assert!(
        readme.contains(&format!("{stated} or newer")),
        "the README states the MSRV as \"{stated} or newer\""
    );
    assert!(
        version_key(installed) >= version_key(&ours),
        "rustc {installed} is older than rust-version {ours}"
    );
    if minor(installed) == minor(&ours) {
        println!(
            "rustc {installed} is the MSRV {ours} (needed by {by}): this build is an MSRV build"
        );
    } else {
        println!("rust-version {ours} (needed by {by}); this build uses rustc {installed}");
    }
}
