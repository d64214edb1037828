//! The issuers at run time: one key store and one refresher thread per
//! issuer, and the verifier that routes tokens between them.
//!
//! Each issuer's refresher fetches, refreshes and saves only its own keys
//! (its own state file, its own refetch bound and backoff), so one issuer's
//! key server being down or slow never holds up another's. systemd hears
//! `READY=1` once every issuer's first load is over (either way), and after
//! a SIGHUP once every issuer's reload is, with what came of them all: the
//! reload succeeded only if every issuer's new key source loaded.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::gate::metrics::Metrics;
use crate::keys::refresher::{refetch_trigger, Command, KeyStatus, RefreshEvents, Refresher};
use crate::sync::lock;
use crate::systemd;
use crate::verify::{Issuer, Verifier};

/// The refresher threads, by issuer.
pub struct KeyThreads {
    /// Each issuer's name and its refresher's commands, in config order.
    issuers: Vec<(String, Sender<Command>)>,
    progress: Arc<Progress>,
}

/// Where the issuers' loads are, for systemd and the reload metric.
struct Progress {
    metrics: Arc<Metrics>,
    /// First loads still to settle before `READY=1`.
    starting: AtomicUsize,
    /// The SIGHUP under way.
    reload: Mutex<Round>,
    /// More than one issuer: outcomes name theirs.
    several: bool,
}

/// One SIGHUP's reloads: how many are still to end, and what the ended
/// ones did.
#[derive(Default)]
struct Round {
    pending: usize,
    held: usize,
    errors: Vec<String>,
}

impl KeyThreads {
    /// Makes a store per issuer, restores the keys each one saved (before
    /// anything is served: a restart while a key server is down keeps
    /// serving), starts the refresher threads, and gives the verifier.
    pub fn start(
        config: &Config,
        metrics: &Arc<Metrics>,
    ) -> Result<(Verifier, KeyThreads), String> {
        let several = config.several_issuers();
        let progress = Arc::new(Progress {
            metrics: metrics.clone(),
            starting: AtomicUsize::new(config.issuers.len()),
            reload: Mutex::new(Round::default()),
            several,
        });
        let mut issuers = Vec::with_capacity(config.issuers.len());
        let mut threads = Vec::with_capacity(config.issuers.len());
        for (index, issuer) in config.issuers.iter().enumerate() {
            let store = Arc::new(config.key_store());
            let (commands, receiver) = mpsc::channel();
            store.connect_refresher(refetch_trigger(commands.clone()));
            let events = IssuerEvents {
                index,
                name: issuer.name.clone(),
                settled_once: AtomicBool::new(false),
                progress: progress.clone(),
            };
            let mut refresher = Refresher::new(
                store.clone(),
                issuer.key_source.clone(),
                config.refresh_every,
                receiver,
                Box::new(events),
            )
            .with_state(issuer.state.clone());
            if several {
                refresher = refresher.with_name(&issuer.name);
            }
            refresher.restore();
            let thread = if several {
                format!("jwtgate-keys-{index}")
            } else {
                "jwtgate-keys".to_string()
            };
            std::thread::Builder::new()
                .name(thread)
                .spawn(move || refresher.run())
                .map_err(|e| format!("cannot start the key thread: {e}"))?;
            threads.push((issuer.name.clone(), commands));
            issuers.push(Issuer {
                name: issuer.name.clone(),
                keys: store,
                policy: issuer.policy.clone(),
                headers: issuer.headers.clone(),
                clerk_facts: issuer.clerk_facts,
            });
        }
        let verifier = Verifier::with_issuers(issuers)?;
        Ok((
            verifier,
            KeyThreads {
                issuers: threads,
                progress,
            },
        ))
    }

    /// What the daemon's start-up line says about the keys.
    pub fn describe(config: &Config) -> String {
        match &config.issuers[..] {
            [one] => one.key_source.describe(),
            all => all
                .iter()
                .map(|i| format!("{} ({})", i.name, i.key_source.describe()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// SIGHUP: hands each issuer its key source from the re-read `config`,
    /// by name. The refreshers load them at once and keep the old keys if
    /// a load fails. Issuers added or removed, and every rule, take a
    /// restart (as `[verify]` always has): said in the log.
    pub fn reload(&self, config: Config) {
        let mut sent = Vec::new();
        for new in config.issuers {
            match self.issuers.iter().find(|(name, _)| *name == new.name) {
                Some((name, commands)) => sent.push((name, commands, new.key_source)),
                None => log::warn!(
                    "reload: issuer {} is new: it needs a restart (systemctl restart jwtgate)",
                    new.name
                ),
            }
        }
        if sent.len() < self.issuers.len() {
            log::warn!(
                "reload: {} issuer(s) are no longer configured: they keep their keys until a \
                 restart",
                self.issuers.len() - sent.len()
            );
        }
        if sent.is_empty() {
            let why = "none of the running issuers is in the new config: restart to apply it";
            log::error!("reload failed: {why}; keeping the current keys");
            self.progress.metrics.record_reload(false);
            systemd::notify_reloaded(Err((systemd::EINVAL, why)));
            return;
        }
        *lock(&self.progress.reload) = Round {
            pending: sent.len(),
            ..Round::default()
        };
        for (name, commands, source) in sent {
            if commands.send(Command::Reload(Box::new(source))).is_err() {
                let gone = Err("its key thread is gone".to_string());
                self.progress.reloaded(name, gone);
            }
        }
    }

    /// Stops every refresher thread.
    pub fn shutdown(&self) {
        for (_, commands) in &self.issuers {
            let _ = commands.send(Command::Shutdown);
        }
    }
}

impl Progress {
    /// An issuer's first load is over: the last one tells systemd.
    fn started(&self) {
        let before = self
            .starting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if before == Ok(1) {
            systemd::notify_ready();
        }
    }

    /// An issuer's reload ended: the last one of the round counts the
    /// reload and tells systemd what came of it.
    fn reloaded(&self, name: &str, outcome: Result<KeyStatus, String>) {
        let mut round = lock(&self.reload);
        match outcome {
            Ok(keys) => round.held += keys.held,
            Err(e) if self.several => round.errors.push(format!("issuer {name}: {e}")),
            Err(e) => round.errors.push(e),
        }
        round.pending = round.pending.saturating_sub(1);
        if round.pending > 0 {
            return;
        }
        let round = std::mem::take(&mut *round);
        self.metrics.record_reload(round.errors.is_empty());
        if round.errors.is_empty() {
            systemd::notify_reloaded(Ok(&format!("{} key(s) loaded", round.held)));
        } else {
            systemd::notify_reloaded(Err((systemd::EIO, &round.errors.join("; "))));
        }
    }
}

/// Reports one issuer's key loads to the metrics, and readiness and
/// reload outcomes (through [`Progress`]) to systemd.
struct IssuerEvents {
    index: usize,
    name: String,
    /// Its first load (or reload) settled.
    settled_once: AtomicBool,
    progress: Arc<Progress>,
}

impl RefreshEvents for IssuerEvents {
    fn loaded(&self, ok: bool, keys: KeyStatus) {
        let metrics = &self.progress.metrics;
        metrics.record_issuer_fetch(self.index, ok);
        let at = keys.fetched_at.unwrap_or(0);
        metrics.record_issuer_keys(self.index, keys.held, at);
    }

    fn restored(&self, keys: KeyStatus) {
        let at = keys.fetched_at.unwrap_or(0);
        self.progress
            .metrics
            .record_issuer_keys(self.index, keys.held, at);
    }

    fn settled(&self) {
        // After a reload, `reloaded` told systemd.
        if !self.settled_once.swap(true, Ordering::AcqRel) {
            self.progress.started();
        }
    }

    fn reloaded(&self, outcome: Result<KeyStatus, String>) {
        self.progress.reloaded(&self.name, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(issuers: usize) -> Progress {
        Progress {
            metrics: Arc::new(Metrics::default()),
            starting: AtomicUsize::new(issuers),
            reload: Mutex::new(Round::default()),
            several: issuers > 1,
        }
    }

    #[test]
    fn ready_once_every_first_load_has_settled() {
        let p = progress(3);
        p.started();
        p.started();
        assert_eq!(p.starting.load(Ordering::SeqCst), 1);
        p.started();
        assert_eq!(p.starting.load(Ordering::SeqCst), 0);
        p.started();
        assert_eq!(p.starting.load(Ordering::SeqCst), 0, "never below zero");
    }

    #[test]
    fn a_reload_succeeds_only_when_every_issuer_loads() {
        let status = |n| KeyStatus {
            held: n,
            fetched_at: Some(1),
        };
        let reloads = |p: &Progress| {
            let mut text = String::new();
            p.metrics.render(&mut text).unwrap();
            text.lines()
                .filter(|l| l.starts_with("jwtgate_reloads_total{"))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let p = progress(2);
        let round = |pending| Round {
            pending,
            ..Round::default()
        };
        *lock(&p.reload) = round(2);
        p.reloaded("a", Ok(status(2)));
        assert_eq!(lock(&p.reload).pending, 1, "the round is not over");
        p.reloaded("b", Err("fetching: HTTP 500".into()));
        assert_eq!(
            reloads(&p),
            [
                "jwtgate_reloads_total{outcome=\"ok\"} 0",
                "jwtgate_reloads_total{outcome=\"error\"} 1"
            ]
        );
        *lock(&p.reload) = round(2);
        p.reloaded("a", Ok(status(2)));
        p.reloaded("b", Ok(status(1)));
        assert_eq!(reloads(&p)[0], "jwtgate_reloads_total{outcome=\"ok\"} 1");
    }
}
