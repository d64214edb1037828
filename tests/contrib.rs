//! The example alert rules (`contrib/prometheus/`) and the Grafana dashboard
//! (`contrib/grafana/`) use only metric names and label values that a real
//! jwtgate exports on `/metrics`. (`scripts/test-contrib` checks the rules
//! themselves with promtool.)

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

const RULES: &str = include_str!("../contrib/prometheus/jwtgate.rules.yml");
const RULE_TESTS: &str = include_str!("../contrib/prometheus/jwtgate.rules.test.yml");
const DASHBOARD: &str = include_str!("../contrib/grafana/jwtgate.json");

/// Every `jwtgate_*` or `process_*` metric name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices(['j', 'p']) {
        let rest = &text[start..];
        if !(rest.starts_with("jwtgate_") || rest.starts_with("process_")) {
            continue;
        }
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        names.insert(rest[..end].to_string());
    }
    names
}

/// Every value a selector compares `label` with (`label="x"`, `label!~"a|b"`).
fn label_values(text: &str, label: &str) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    for (at, _) in text.match_indices(label) {
        let rest = &text[at + label.len()..];
        let Some(rest) = ["=~\"", "!~\"", "!=\"", "=\""]
            .iter()
            .find_map(|op| rest.strip_prefix(op))
        else {
            continue;
        };
        let Some(end) = rest.find('"') else { continue };
        values.extend(rest[..end].split('|').map(String::from));
    }
    values
}

/// The exposition of a real daemon, with a PEM key, after a few decisions.
fn scrape() -> String {
    let key = Key::rsa("contrib", 2048);
    let daemon = Daemon::start(&format!(
        "[keys]\njwt_key = \"\"\"{}\"\"\"\n",
        key.public_pem()
    ));
    daemon.wait_ready();
    assert_eq!(
        daemon.bearer(&key.sign(&claims("user_contrib"))).status,
        200
    );
    assert_eq!(daemon.auth(&[]).status, 401);
    daemon.get("/metrics").body
}

#[test]
fn rules_and_dashboard_use_what_jwtgate_exports() {
    let exposition = scrape();
    let mut exported = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            exported.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exported.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut exprs = String::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has a query", panel["title"]);
        for target in targets {
            exprs.push_str(target["expr"].as_str().expect("expr"));
            exprs.push('\n');
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(definition) = variable["definition"].as_str() {
            exprs.push_str(definition);
            exprs.push('\n');
        }
    }
    for (file, text) in [
        ("contrib/prometheus/jwtgate.rules.yml", RULES),
        ("contrib/prometheus/jwtgate.rules.test.yml", RULE_TESTS),
        ("contrib/grafana/jwtgate.json", exprs.as_str()),
    ] {
        let used = metric_names(text);
        assert!(used.len() >= 3, "{file}: {used:?}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics jwtgate does not export: {unknown:?}\nexported: {exported:?}"
        );
        // Label values too: a renamed reason word would silently match nothing.
        for label in ["outcome", "reason", "result"] {
            for value in label_values(text, label) {
                assert!(
                    exposition.contains(&format!("{label}=\"{value}\"")),
                    "{file}: {label}=\"{value}\" is not in /metrics:\n{exposition}"
                );
            }
        }
    }
    // The rules cover what the operations guide promises.
    for alert in [
        "JwtgateDown",
        "JwtgateNoKeys",
        "JwtgateKeysStale",
        "JwtgateKeyFetchFailing",
        "JwtgateUnavailableAnswers",
        "JwtgateDenySpike",
    ] {
        assert!(RULES.contains(&format!("- alert: {alert}\n")), "{alert}");
        assert!(
            RULE_TESTS.contains(&format!("alertname: {alert}\n")),
            "{alert} has a promtool unit test"
        );
    }
}

#[test]
fn the_name_scanner_finds_names_and_label_values() {
    let text = "rate(jwtgate_decisions_total{reason!~\"a|b\"}[5m]) / process_open_fds \
                jwtgate:ratio:rate5m xjwtgate_no";
    let names: Vec<_> = metric_names(text).into_iter().collect();
    assert_eq!(names, ["jwtgate_decisions_total", "process_open_fds"]);
    let values: Vec<_> = label_values(text, "reason").into_iter().collect();
    assert_eq!(values, ["a", "b"]);
}
