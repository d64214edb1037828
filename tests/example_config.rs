//! `jwtgate.example.toml` (also the Debian package's
//! /etc/jwtgate/jwtgate.toml) stays true: it names every setting jwtgate
//! knows, its "#key = value" lines are exactly the built-in defaults, its
//! "# example" lines parse, and `jwtgate check` runs with it and a PEM key.
//!
//! `[[issuers]]`, an array of tables, has no entry by default, so the
//! example shows it commented out (`#[[issuers]]`); its lines are read as
//! that table's, and uncommented with it they make one entry with the
//! defaults.

mod common;

use std::collections::BTreeSet;

use common::*;
use jwtgate::config::{settings_from_toml, IssuerSettings, Settings};

/// The commented-out header of the array of tables.
const ISSUERS: &str = "#[[issuers]]";

const EXAMPLE: &str = include_str!("../jwtgate.example.toml");

/// One `#key = value` line of the example, with the table it sits in.
struct Line {
    table: String,
    key: String,
    text: String,
    example: bool,
}

/// The table headers (`[keys]`) and the commented settings of the example.
fn parse_example() -> (Vec<String>, Vec<Line>) {
    let mut tables = Vec::new();
    let mut lines = Vec::new();
    let mut table = String::new();
    for raw in EXAMPLE.lines() {
        let header = raw
            .strip_prefix('#')
            .filter(|_| raw == ISSUERS)
            .unwrap_or(raw);
        if header.starts_with('[') {
            table = header.trim_matches(['[', ']']).to_string();
            tables.push(header.to_string());
            continue;
        }
        let Some(setting) = raw.strip_prefix('#') else {
            assert!(raw.trim().is_empty(), "only comments and tables: {raw:?}");
            continue;
        };
        let Some((key, _)) = setting.split_once(" = ") else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        lines.push(Line {
            table: table.clone(),
            key: key.to_string(),
            text: setting.to_string(),
            example: setting.trim_end().ends_with("# example"),
        });
    }
    (tables, lines)
}

/// The settings a table accepts, from the parser's own "unknown field"
/// message, so a setting added to the code but not to the example fails here.
fn known_keys(header: &str) -> BTreeSet<String> {
    let probe = format!("{header}\nzz_not_a_setting = 1\n");
    let err = settings_from_toml(&probe).expect_err("an unknown key is refused");
    // serde: "expected `a`", "expected `a` or `b`", "expected one of `a`, ...",
    // then " for key `table`".
    let list = err
        .split_once("`zz_not_a_setting`, expected ")
        .map(|(_, rest)| rest.split(" for key ").next().unwrap_or(rest))
        .unwrap_or_else(|| panic!("no list of keys in {err:?}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

#[test]
fn the_example_names_every_setting() {
    let (tables, lines) = parse_example();
    let documented = |table: &str| -> BTreeSet<String> {
        lines
            .iter()
            .filter(|l| l.table == table)
            .map(|l| l.key.clone())
            .collect()
    };
    let table_names: BTreeSet<String> = tables
        .iter()
        .map(|t| t.trim_matches(['[', ']']).to_string())
        .collect();
    let top: BTreeSet<String> = known_keys("").difference(&table_names).cloned().collect();
    assert_eq!(documented(""), top, "top-level settings");
    for header in &tables {
        let table = header.trim_matches(['[', ']']);
        assert_eq!(
            documented(table),
            known_keys(header),
            "settings of {header}"
        );
    }
}

#[test]
fn the_commented_values_are_the_defaults() {
    let (_, lines) = parse_example();
    // Uncomment every default line (not the examples) in place, and the
    // [[issuers]] header with them.
    let uncommented: String = EXAMPLE
        .lines()
        .map(|raw| {
            let is_default = lines
                .iter()
                .any(|l| !l.example && raw.strip_prefix('#') == Some(l.text.as_str()));
            if is_default || raw == ISSUERS {
                &raw[1..]
            } else {
                raw
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let defaults = lines.iter().filter(|l| !l.example).count();
    assert!(defaults >= 10, "{defaults} default lines");
    let mut parsed = settings_from_toml(&uncommented).unwrap_or_else(|e| panic!("{e}"));
    let entries = std::mem::take(&mut parsed.issuers);
    assert_eq!(entries.len(), 1, "one [[issuers]] entry");
    assert_eq!(
        format!("{:#?}", entries[0]),
        format!("{:#?}", IssuerSettings::default()),
        "a \"#key = value\" line of [[issuers]] in jwtgate.example.toml is not the built-in default"
    );
    assert_eq!(
        format!("{parsed:#?}"),
        format!("{:#?}", Settings::default()),
        "a \"#key = value\" line in jwtgate.example.toml is not the built-in default"
    );
    // Each example line parses and has the type the setting wants.
    for line in lines.iter().filter(|l| l.example) {
        let header = match line.table.as_str() {
            "" => String::new(),
            "issuers" => "[[issuers]]\n".to_string(),
            table => format!("[{table}]\n"),
        };
        let toml = format!("{header}{}\n", line.text);
        if let Err(e) = settings_from_toml(&toml) {
            panic!("example line {:?}: {e}", line.text);
        }
    }
}

#[test]
fn jwtgate_check_runs_with_the_example_and_a_pem_key() {
    let key = Key::rsa("example", 2048);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/jwtgate.example.toml");
    let out = jwtgate_command()
        .args(["--config", path, "check"])
        .env("CLERK_JWT_KEY", key.public_pem())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("ok: 1 key(s) from PEM key from keys.jwt_key"),
        "{stdout}"
    );
    assert!(stdout.contains("listen 127.0.0.1:7070"), "{stdout}");
    // Without a key source the example is refused, naming what to set.
    let out = jwtgate_command()
        .args(["--config", path, "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keys: no key source"));
}

#[test]
fn the_readme_config_overview_parses() {
    // The README's Configuration section shows a TOML overview meant to be
    // copied: it must parse, with known keys of the right types.
    let readme = include_str!("../README.md");
    let section = &readme[readme.find("## Configuration").expect("section")..];
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a toml block");
    let settings = settings_from_toml(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    assert_eq!(
        settings.keys.jwt_key_file.as_deref(),
        Some(std::path::Path::new("/etc/jwtgate/clerk.pem"))
    );
}
