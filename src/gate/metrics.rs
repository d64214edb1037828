//! Prometheus metrics: plain atomics, rendered on `/metrics`.
//!
//! Counting is one relaxed atomic add on the request path; nothing here
//! allocates or locks until a scrape renders the text. A scrape also shows
//! `jwtgate_build_info` and the standard `process_*` metrics, read from
//! `/proc/self` (Linux; left out where it cannot be read).
//!
//! With several issuers ([`Metrics::for_issuers`]) the key families
//! (fetches, keys loaded, their fetch time and age) have one sample per
//! issuer, labelled `issuer="<name>"`, and `jwtgate_issuer_tokens_total`
//! counts each issuer's tokens, valid and refused. The names come from the
//! config (at most 16, each checked), so the labels are bounded. With one
//! issuer there is no label, as before.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::browser::{ExchangeError, Reason as ClerkReason};
use crate::gate::decision::{Decision, RedirectKind, Source};
use crate::rules::Reason;
use crate::token::errors::TokenError;

/// The git commit the binary was built from (see `build.rs`); empty when
/// it was built outside a git checkout.
pub const BUILD_COMMIT: &str = env!("JWTGATE_COMMIT");

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// All counters of one daemon.
pub struct Metrics {
    allowed: AtomicU64,
    denied: [AtomicU64; TokenError::ALL.len()],
    /// Browser sign-outs whose reason is not a token error.
    signed_out: [AtomicU64; ClerkReason::OWN.len()],
    handshakes: [AtomicU64; ClerkReason::OWN.len()],
    exchanges: [AtomicU64; ExchangeError::LABELS.len()],
    reload_ok: AtomicU64,
    reload_error: AtomicU64,
    /// One per issuer (at least one).
    issuers: Vec<IssuerStats>,
    /// The issuers' names, for the `issuer` label; empty with one issuer.
    names: Vec<String>,
    connections: AtomicU64,
    redirects: [AtomicU64; 3],
    anonymous: AtomicU64,
    forbidden: [AtomicU64; Reason::ALL.len()],
    misconfigured: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
    started: StartTime,
}

/// The counters of one issuer.
#[derive(Default)]
struct IssuerStats {
    fetch_ok: AtomicU64,
    fetch_error: AtomicU64,
    /// When the keys in use were fetched (0: no keys).
    keys_fetched_unix: AtomicU64,
    keys_loaded: AtomicU64,
    /// Tokens routed here: valid (cache hits too), refused.
    valid: AtomicU64,
    refused: AtomicU64,
}

impl Default for Metrics {
    /// The metrics of a daemon with one issuer.
    fn default() -> Self {
        Metrics::for_issuers(&[])
    }
}

/// When the metrics were made, i.e. when the daemon started (the unit's
/// `ProcSubset=pid` hides `/proc/stat`, so the kernel's process start time
/// cannot be turned into wall-clock time there).
struct StartTime(f64);

impl Default for StartTime {
    fn default() -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        StartTime(now.map_or(0.0, |d| d.as_secs_f64()))
    }
}

impl Metrics {
    /// The metrics of a daemon with these issuers (by name, in the
    /// verifier's order); with one or none, no `issuer` label.
    pub fn for_issuers(names: &[String]) -> Metrics {
        let count = names.len().max(1);
        Metrics {
            allowed: AtomicU64::default(),
            denied: Default::default(),
            signed_out: Default::default(),
            handshakes: Default::default(),
            exchanges: Default::default(),
            reload_ok: AtomicU64::default(),
            reload_error: AtomicU64::default(),
            issuers: (0..count).map(|_| IssuerStats::default()).collect(),
            names: if names.len() > 1 {
                names.to_vec()
            } else {
                Vec::new()
            },
            connections: AtomicU64::default(),
            redirects: Default::default(),
            anonymous: AtomicU64::default(),
            forbidden: Default::default(),
            misconfigured: AtomicU64::default(),
            cache_hits: AtomicU64::default(),
            cache_misses: AtomicU64::default(),
            latency_buckets: Default::default(),
            latency_count: AtomicU64::default(),
            latency_sum_ns: AtomicU64::default(),
            started: StartTime::default(),
        }
    }

    /// Counts one decision (and, for an allow, its cache result).
    pub fn record_decision(&self, decision: &Decision, elapsed: Duration) {
        match decision {
            Decision::Allow { source, .. } => {
                self.allowed.fetch_add(1, Relaxed);
                self.record_cache(*source == Source::Cache);
            }
            Decision::Deny(e) => {
                self.denied[e.index()].fetch_add(1, Relaxed);
            }
            Decision::SignedOut(s) => match (s.reason.token_error(), s.reason.own_index()) {
                (Some(e), _) => {
                    self.denied[e.index()].fetch_add(1, Relaxed);
                }
                (None, Some(i)) => {
                    self.signed_out[i].fetch_add(1, Relaxed);
                }
                (None, None) => {}
            },
            Decision::Unavailable => {
                self.denied[TokenError::KeysUnavailable.index()].fetch_add(1, Relaxed);
            }
            Decision::Redirect(r) => {
                self.redirects[redirect_index(r.kind)].fetch_add(1, Relaxed);
            }
            Decision::Anonymous => {
                self.anonymous.fetch_add(1, Relaxed);
            }
            Decision::Forbidden(f) => {
                if let Some(i) = Reason::ALL.iter().position(|r| r.as_str() == f.reason) {
                    self.forbidden[i].fetch_add(1, Relaxed);
                }
            }
            Decision::Misconfigured(_) => {
                self.misconfigured.fetch_add(1, Relaxed);
            }
        }
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_ns
            .fetch_add(elapsed.as_nanos() as u64, Relaxed);
    }

    /// A handshake redirect, by the SDK's reason.
    pub fn record_handshake(&self, reason: ClerkReason) {
        if let Some(i) = reason.own_index() {
            self.handshakes[i].fetch_add(1, Relaxed);
        }
    }

    /// A nonce exchange with the Backend API, by its outcome label (one of
    /// [`ExchangeError::LABELS`]).
    pub fn record_exchange(&self, label: &str) {
        if let Some(i) = ExchangeError::LABELS.iter().position(|l| *l == label) {
            self.exchanges[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts one key fetch (of the first issuer).
    pub fn record_fetch(&self, ok: bool) {
        self.record_issuer_fetch(0, ok);
    }

    /// Counts one key fetch of issuer `issuer`.
    pub fn record_issuer_fetch(&self, issuer: usize, ok: bool) {
        if let Some(stats) = self.issuers.get(issuer) {
            let counter = if ok {
                &stats.fetch_ok
            } else {
                &stats.fetch_error
            };
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Counts one reload (SIGHUP): `ok` when the config and the keys
    /// loaded, else the old keys stayed.
    pub fn record_reload(&self, ok: bool) {
        if ok {
            self.reload_ok.fetch_add(1, Relaxed);
        } else {
            self.reload_error.fetch_add(1, Relaxed);
        }
    }

    /// The keys in use (of the first issuer): how many, and the Unix time
    /// of the fetch that produced them (for keys restored from the state
    /// directory, of the fetch that saved them; 0: none).
    pub fn record_keys(&self, keys_loaded: usize, fetched_at_unix: u64) {
        self.record_issuer_keys(0, keys_loaded, fetched_at_unix);
    }

    /// [`Metrics::record_keys`] for issuer `issuer`.
    pub fn record_issuer_keys(&self, issuer: usize, keys_loaded: usize, fetched_at_unix: u64) {
        if let Some(stats) = self.issuers.get(issuer) {
            stats.keys_loaded.store(keys_loaded as u64, Relaxed);
            stats.keys_fetched_unix.store(fetched_at_unix, Relaxed);
        }
    }

    /// A token routed to issuer `issuer` was found valid (verified, or a
    /// cache hit) or refused.
    /// Nothing with one issuer: the family is not rendered then.
    pub fn record_token(&self, issuer: usize, valid: bool) {
        if self.names.is_empty() {
            return;
        }
        if let Some(stats) = self.issuers.get(issuer) {
            let counter = if valid { &stats.valid } else { &stats.refused };
            counter.fetch_add(1, Relaxed);
        }
    }

    /// A granted request: answered from the token cache, or verified.
    fn record_cache(&self, hit: bool) {
        if hit {
            self.cache_hits.fetch_add(1, Relaxed);
        } else {
            self.cache_misses.fetch_add(1, Relaxed);
        }
    }

    pub fn record_connection(&self) {
        self.connections.fetch_add(1, Relaxed);
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Relaxed)
    }

    /// Renders the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, out: &mut impl Write) -> std::fmt::Result {
        let mut decisions = vec![(
            String::from("outcome=\"allow\",reason=\"ok\""),
            self.allowed.load(Relaxed),
        )];
        for e in TokenError::ALL {
            let labels = format!("outcome=\"deny\",reason=\"{}\"", e.reason());
            decisions.push((labels, self.denied[e.index()].load(Relaxed)));
        }
        for (r, n) in ClerkReason::OWN.iter().zip(&self.signed_out) {
            let labels = format!("outcome=\"deny\",reason=\"{}\"", r.as_str());
            decisions.push((labels, n.load(Relaxed)));
        }
        let decisions: Vec<(&str, u64)> = decisions.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        let name = "jwtgate_decisions_total";
        family(
            out,
            name,
            "counter",
            "Auth decisions by outcome and reason.",
            &decisions,
        )?;
        let redirects = [
            ("kind=\"sign-in\"", self.redirects[0].load(Relaxed)),
            ("kind=\"handshake\"", self.redirects[1].load(Relaxed)),
            ("kind=\"return\"", self.redirects[2].load(Relaxed)),
        ];
        let help = "Browser navigations redirected, by kind.";
        family(out, "jwtgate_redirects_total", "counter", help, &redirects)?;
        let handshakes: Vec<(String, u64)> = ClerkReason::OWN
            .iter()
            .zip(&self.handshakes)
            .filter(|(r, _)| r.can_handshake())
            .map(|(r, n)| (format!("reason=\"{}\"", r.as_str()), n.load(Relaxed)))
            .collect();
        let handshakes: Vec<(&str, u64)> =
            handshakes.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        let help = "Handshake redirects through Clerk's Frontend API, by Clerk's reason.";
        family(
            out,
            "jwtgate_handshakes_total",
            "counter",
            help,
            &handshakes,
        )?;
        let exchanges: Vec<(String, u64)> = ExchangeError::LABELS
            .iter()
            .zip(&self.exchanges)
            .map(|(l, n)| (format!("outcome=\"{l}\""), n.load(Relaxed)))
            .collect();
        let exchanges: Vec<(&str, u64)> = exchanges.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        let help = "Handshake nonces exchanged with Clerk's Backend API, by outcome.";
        family(
            out,
            "jwtgate_nonce_exchanges_total",
            "counter",
            help,
            &exchanges,
        )?;
        let forbidden: Vec<(String, u64)> = Reason::ALL
            .iter()
            .map(|r| {
                let labels = format!("reason=\"{}\"", r.as_str());
                (labels, self.forbidden[r.index()].load(Relaxed))
            })
            .collect();
        let forbidden: Vec<(&str, u64)> = forbidden.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        let help = "Signed-in requests refused by a location's rules (403), by reason.";
        family(out, "jwtgate_forbidden_total", "counter", help, &forbidden)?;
        let anonymous = [("", self.anonymous.load(Relaxed))];
        let help = "Requests let through without identity by optional=1.";
        family(out, "jwtgate_anonymous_total", "counter", help, &anonymous)?;
        let misconfigured = [("", self.misconfigured.load(Relaxed))];
        let help = "Requests whose location rules were malformed (500).";
        family(
            out,
            "jwtgate_misconfigured_rules_total",
            "counter",
            help,
            &misconfigured,
        )?;
        let fetches = self.per_issuer(|i| {
            vec![
                ("outcome=\"ok\"", i.fetch_ok.load(Relaxed)),
                ("outcome=\"error\"", i.fetch_error.load(Relaxed)),
            ]
        });
        family(
            out,
            "jwtgate_key_fetches_total",
            "counter",
            "JWKS fetches by outcome.",
            &as_samples(&fetches),
        )?;
        let reloads = [
            ("outcome=\"ok\"", self.reload_ok.load(Relaxed)),
            ("outcome=\"error\"", self.reload_error.load(Relaxed)),
        ];
        let help = "Reloads (SIGHUP) by outcome; on error the old keys stay in use.";
        family(out, "jwtgate_reloads_total", "counter", help, &reloads)?;
        let cache = [
            ("result=\"hit\"", self.cache_hits.load(Relaxed)),
            ("result=\"miss\"", self.cache_misses.load(Relaxed)),
        ];
        let help = "Granted requests by token-cache result.";
        family(out, "jwtgate_token_cache_total", "counter", help, &cache)?;
        let keys = self.per_issuer(|i| vec![("", i.keys_loaded.load(Relaxed))]);
        family(
            out,
            "jwtgate_keys_loaded",
            "gauge",
            "Verification keys held.",
            &as_samples(&keys),
        )?;
        let fetched_at = self.per_issuer(|i| vec![("", i.keys_fetched_unix.load(Relaxed))]);
        let help = "Unix time of the fetch that produced the keys in use (restored keys: \
                    of the fetch that saved them; 0: no keys).";
        family(
            out,
            "jwtgate_last_good_key_fetch_timestamp_seconds",
            "gauge",
            help,
            &as_samples(&fetched_at),
        )?;
        // No sample while no key is held.
        let help = "Age of the keys in use: seconds since the fetch that produced them.";
        let now = crate::keys::store::unix_now();
        let age: Vec<(String, u64)> = fetched_at
            .into_iter()
            .filter(|(_, at)| *at != 0)
            .map(|(labels, at)| (labels, now.saturating_sub(at)))
            .collect();
        family(
            out,
            "jwtgate_key_age_seconds",
            "gauge",
            help,
            &as_samples(&age),
        )?;
        if !self.names.is_empty() {
            let tokens = self.per_issuer(|i| {
                vec![
                    ("result=\"valid\"", i.valid.load(Relaxed)),
                    ("result=\"refused\"", i.refused.load(Relaxed)),
                ]
            });
            let help = "Tokens routed to each issuer (by their iss), valid or refused.";
            let name = "jwtgate_issuer_tokens_total";
            family(out, name, "counter", help, &as_samples(&tokens))?;
        }
        let connections = [("", self.connections())];
        let help = "TCP connections accepted.";
        family(
            out,
            "jwtgate_connections_accepted_total",
            "counter",
            help,
            &connections,
        )?;
        self.render_latency(out)?;
        self.render_build_and_process(out)
    }

    /// `jwtgate_build_info` and the `process_*` families that Prometheus
    /// client libraries export, under the same names and units.
    fn render_build_and_process(&self, out: &mut impl Write) -> std::fmt::Result {
        let name = "jwtgate_build_info";
        writeln!(
            out,
            "# HELP {name} The running binary's version and git commit (always 1)."
        )?;
        writeln!(out, "# TYPE {name} gauge")?;
        let commit = if BUILD_COMMIT.is_empty() {
            "unknown"
        } else {
            BUILD_COMMIT
        };
        let version = env!("CARGO_PKG_VERSION");
        writeln!(out, "{name}{{version=\"{version}\",commit=\"{commit}\"}} 1")?;
        let p = ProcessStats::read();
        let gauges = [
            (
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                p.cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                p.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                p.virtual_bytes,
            ),
            (
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                p.max_fds,
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                Some(self.started.0),
            ),
        ];
        for (name, kind, help, value) in gauges {
            if let Some(value) = value {
                writeln!(out, "# HELP {name} {help}")?;
                writeln!(out, "# TYPE {name} {kind}")?;
                writeln!(out, "{name} {value}")?;
            }
        }
        Ok(())
    }

    /// Samples of every issuer: `sample` gives (labels, value) pairs for
    /// one, to which the `issuer` label is added when there are several.
    fn per_issuer(
        &self,
        sample: impl Fn(&IssuerStats) -> Vec<(&'static str, u64)>,
    ) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (n, stats) in self.issuers.iter().enumerate() {
            for (labels, value) in sample(stats) {
                let labels = match self.names.get(n) {
                    None => labels.to_string(),
                    Some(name) if labels.is_empty() => format!("issuer=\"{}\"", label(name)),
                    Some(name) => format!("issuer=\"{}\",{labels}", label(name)),
                };
                out.push((labels, value));
            }
        }
        out
    }

    fn render_latency(&self, out: &mut impl Write) -> std::fmt::Result {
        let name = "jwtgate_auth_duration_seconds";
        writeln!(out, "# HELP {name} Time to decide one /auth request.")?;
        writeln!(out, "# TYPE {name} histogram")?;
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += count.load(Relaxed);
            writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}")?;
        }
        let total = self.latency_count.load(Relaxed);
        writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}")?;
        let sum = self.latency_sum_ns.load(Relaxed) as f64 / 1e9;
        writeln!(out, "{name}_sum {sum}")?;
        writeln!(out, "{name}_count {total}")
    }
}

fn redirect_index(kind: RedirectKind) -> usize {
    match kind {
        RedirectKind::SignIn => 0,
        RedirectKind::Handshake => 1,
        RedirectKind::Return => 2,
    }
}

/// The process figures of one scrape, each `None` when `/proc` cannot tell.
#[derive(Debug, Default)]
struct ProcessStats {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

impl ProcessStats {
    fn read() -> ProcessStats {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |field: &str| -> Option<f64> {
            let line = status.lines().find_map(|l| l.strip_prefix(field))?;
            let kib: f64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some(kib * 1024.0)
        };
        ProcessStats {
            cpu_seconds: cpu_seconds(),
            resident_bytes: kib("VmRSS:"),
            virtual_bytes: kib("VmSize:"),
            // Less the descriptor that reads the directory.
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count().saturating_sub(1) as f64),
            max_fds: max_fds(),
        }
    }
}

/// utime + stime from `/proc/self/stat`, in clock ticks of 1/100 s (the
/// kernel's fixed USER_HZ for /proc, as Prometheus' own clients assume).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces and ')': skip past the last ')'.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    soft.parse::<u64>().ok().map(|n| n as f64)
}

/// A label value, escaped as the text format wants (names are checked at
/// load, so this is a last guard).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn as_samples(samples: &[(String, u64)]) -> Vec<(&str, u64)> {
    samples.iter().map(|(l, v)| (l.as_str(), *v)).collect()
}

/// One metric family: HELP, TYPE, then a sample per label set.
fn family(
    out: &mut impl Write,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(&str, u64)],
) -> std::fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")?;
    for (labels, value) in samples {
        if labels.is_empty() {
            writeln!(out, "{name} {value}")?;
        } else {
            writeln!(out, "{name}{{{labels}}} {value}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_a_cumulative_histogram() {
        let m = Metrics::default();
        let grant = std::sync::Arc::new(crate::gate::Grant::of_user("u", 0));
        let allow = Decision::allow(grant, Source::Verified);
        m.record_decision(&allow, Duration::from_micros(30));
        m.record_decision(
            &Decision::Deny(TokenError::Expired),
            Duration::from_millis(3),
        );
        m.record_fetch(true);
        m.record_reload(false);
        m.record_keys(2, 1_700_000_000);
        let out = crate::gate::decision::SignedOut {
            reason: ClerkReason::ClientUatButNoSessionToken,
            set_cookies: vec![],
        };
        m.record_decision(
            &Decision::SignedOut(Box::new(out)),
            Duration::from_micros(9),
        );
        m.record_handshake(ClerkReason::DevBrowserMissing);
        m.record_exchange("timeout");
        m.record_exchange("not-a-label");
        let mut text = String::new();
        m.render(&mut text).unwrap();
        assert!(text.contains("jwtgate_decisions_total{outcome=\"allow\",reason=\"ok\"} 1\n"));
        assert!(
            text.contains("jwtgate_decisions_total{outcome=\"deny\",reason=\"token-expired\"} 1\n")
        );
        assert!(text.contains("jwtgate_keys_loaded 2\n"));
        assert!(text.contains("jwtgate_key_fetches_total{outcome=\"ok\"} 1\n"));
        assert!(text.contains("jwtgate_reloads_total{outcome=\"ok\"} 0\n"));
        assert!(text.contains("jwtgate_reloads_total{outcome=\"error\"} 1\n"));
        assert!(text.contains("jwtgate_last_good_key_fetch_timestamp_seconds 1700000000\n"));
        let age = crate::keys::store::unix_now() - 1_700_000_000;
        let line = text
            .lines()
            .find(|l| l.starts_with("jwtgate_key_age_seconds "))
            .unwrap();
        let shown: u64 = line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!((age..=age + 2).contains(&shown), "{line}");
        let empty = Metrics::default();
        let mut none = String::new();
        empty.render(&mut none).unwrap();
        assert!(none.contains("# TYPE jwtgate_key_age_seconds gauge\n"));
        assert!(!none.contains("jwtgate_key_age_seconds 0"));
        assert!(text.contains(
            "jwtgate_decisions_total{outcome=\"deny\",reason=\"client-uat-but-no-session-token\"} 1\n"
        ));
        assert!(text.contains("jwtgate_handshakes_total{reason=\"dev-browser-missing\"} 1\n"));
        assert!(!text.contains("jwtgate_handshakes_total{reason=\"session-token-missing\""));
        assert!(text.contains("jwtgate_nonce_exchanges_total{outcome=\"timeout\"} 1\n"));
        assert!(text.contains("jwtgate_nonce_exchanges_total{outcome=\"ok\"} 0\n"));
        assert!(text.contains("jwtgate_auth_duration_seconds_bucket{le=\"0.00005\"} 2\n"));
        assert!(text.contains("jwtgate_auth_duration_seconds_bucket{le=\"0.005\"} 3\n"));
        assert!(text.contains("jwtgate_auth_duration_seconds_count 3\n"));
    }

    #[test]
    fn several_issuers_label_the_key_families() {
        let m = Metrics::for_issuers(&["clerk.example.com".into(), "partner".into()]);
        m.record_fetch(true);
        m.record_issuer_fetch(1, false);
        m.record_issuer_keys(1, 3, 1_700_000_000);
        m.record_token(1, true);
        m.record_token(1, false);
        m.record_token(1, false);
        m.record_token(7, true); // no such issuer: nothing
        let mut text = String::new();
        m.render(&mut text).unwrap();
        for line in [
            "jwtgate_key_fetches_total{issuer=\"clerk.example.com\",outcome=\"ok\"} 1\n",
            "jwtgate_key_fetches_total{issuer=\"partner\",outcome=\"error\"} 1\n",
            "jwtgate_keys_loaded{issuer=\"clerk.example.com\"} 0\n",
            "jwtgate_keys_loaded{issuer=\"partner\"} 3\n",
            "jwtgate_last_good_key_fetch_timestamp_seconds{issuer=\"partner\"} 1700000000\n",
            "jwtgate_issuer_tokens_total{issuer=\"partner\",result=\"valid\"} 1\n",
            "jwtgate_issuer_tokens_total{issuer=\"partner\",result=\"refused\"} 2\n",
            "jwtgate_issuer_tokens_total{issuer=\"clerk.example.com\",result=\"valid\"} 0\n",
        ] {
            assert!(text.contains(line), "{line}{text}");
        }
        let ages: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("jwtgate_key_age_seconds{"))
            .collect();
        assert_eq!(ages.len(), 1, "only issuers with keys: {ages:?}");
        assert!(ages[0].starts_with("jwtgate_key_age_seconds{issuer=\"partner\"} "));
        // One issuer: no label, no per-issuer family, as before.
        let one = Metrics::for_issuers(&["clerk.example.com".into()]);
        one.record_token(0, true);
        let mut text = String::new();
        one.render(&mut text).unwrap();
        assert!(!text.contains("issuer="), "{text}");
        assert!(!text.contains("jwtgate_issuer_tokens_total"), "{text}");
        assert!(text.contains("jwtgate_keys_loaded 0\n"));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn build_info_and_process_metrics() {
        // Spend a few clock ticks of CPU, so the counter has something to show.
        let spin = std::time::Instant::now();
        while cpu_seconds().unwrap() < 0.02 && spin.elapsed() < Duration::from_secs(5) {
            std::hint::black_box((0..10_000u64).sum::<u64>());
        }
        let mut text = String::new();
        Metrics::default().render(&mut text).unwrap();
        let commit = if BUILD_COMMIT.is_empty() {
            "unknown"
        } else {
            BUILD_COMMIT
        };
        let info = format!(
            "jwtgate_build_info{{version=\"{}\",commit=\"{commit}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&info), "{text}");
        let value = |name: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
            let line = line.unwrap_or_else(|| panic!("no {name} in {text}"));
            line[name.len() + 1..].parse().unwrap()
        };
        // This test process: some memory, some CPU, stdin/out/err open,
        // started within the last minute (the metrics were just made).
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_cpu_seconds_total") > 0.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - value("process_start_time_seconds")).abs() < 60.0);
        for name in [
            "process_cpu_seconds_total",
            "process_open_fds",
            "jwtgate_build_info",
        ] {
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
        }
    }
}
