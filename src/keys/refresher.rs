//! The background thread that keeps keys fresh.
//!
//! All key fetching of the daemon happens here, on one OS thread with
//! reqwest's blocking client (one client for the thread's life, rebuilt
//! only when the source's timeout changes): requests never wait on a
//! socket, only (when a kid is unknown, and bounded) on the
//! [`SyncFlag`](may::sync::SyncFlag) the store fires after a fetch. The
//! refresher reports what it did through [`RefreshEvents`], so it knows
//! nothing of metrics or systemd.
//!
//! Scheduling: after a good fetch the next is `refresh_every` later. After a
//! failed one it retries with backoff (1 s doubling to 60 s, or
//! `refresh_every` if shorter); a key server that answers 429 or sends
//! `Retry-After` gets no request sooner than it asked (bounded by
//! `refresh_every`), unknown kids included. A SIGHUP reload that fails
//! changes nothing of that schedule: while no key is loaded the retries go
//! on at the backoff, not an hour later. The thread also wakes when the
//! keys in use reach `max_stale`, to retire them (see [`KeyStore`]).
//!
//! With a state directory, every good JWKS fetch is written there, and
//! [`Refresher::restore`] reads it back at start.
//!
//! With several issuers each has its own store and refresher thread (see
//! `crate::issuers`); [`Refresher::with_name`] puts the issuer's name in
//! the log lines. An OpenID Connect source rediscovers its `jwks_uri` on
//! every load but an unknown-kid refetch (see [`crate::keys::discovery`]).

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keys::discovery::fetch_oidc;
use crate::keys::source::{fetch_jwks, http_client, FetchError, JwksSource, KeySource};
use crate::keys::state::KeyState;
use crate::keys::store::{unix_now, Installed, KeyStore, RefetchTrigger};

/// What the refresher is asked to do.
#[derive(Debug)]
pub enum Command {
    /// A token named a kid we do not hold.
    RefetchUnknownKid,
    /// SIGHUP: load this key source now, whatever the refetch bound.
    Reload(Box<KeySource>),
    /// Stop the refresher thread.
    Shutdown,
}

/// A refetch trigger for [`KeyStore::connect_refresher`] that sends
/// [`Command::RefetchUnknownKid`] down `commands`.
pub fn refetch_trigger(commands: Sender<Command>) -> RefetchTrigger {
    Box::new(move || commands.send(Command::RefetchUnknownKid).is_ok())
}

/// The store's keys after a load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    /// Keys held.
    pub held: usize,
    /// Unix seconds of the fetch that produced them (`None`: no keys).
    pub fetched_at: Option<u64>,
}

/// What the refresher tells the daemon.
pub trait RefreshEvents: Send {
    /// A load (fetch) ended, `ok` or not; `keys` is the store after it.
    fn loaded(&self, ok: bool, keys: KeyStatus);
    /// Keys came back from the state directory (no fetch).
    fn restored(&self, keys: KeyStatus);
    /// The first load after start, or a SIGHUP reload, is over (either way).
    fn settled(&self);
    /// A SIGHUP reload ended (just before [`settled`](Self::settled)): the
    /// keys now held, or why the new source did not load (the old keys
    /// stay).
    fn reloaded(&self, _outcome: Result<KeyStatus, String>) {}
}

/// The delays between failed fetches: 1 s doubling up to a cap (60 s, or
/// the refresh interval if shorter). A server's `Retry-After` is honoured
/// when longer than the backoff, and bounded by the refresh interval.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    cap: Duration,
    refresh_every: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);

    fn new(refresh_every: Duration) -> Backoff {
        Backoff {
            next: Backoff::FIRST,
            cap: refresh_every.min(Duration::from_secs(60)),
            refresh_every,
        }
    }

    fn reset(&mut self) {
        self.next = Backoff::FIRST;
    }

    /// The delay before retrying after a failure.
    fn after_failure(&mut self, retry_after: Option<Duration>) -> Duration {
        let delay = retry_after
            .map_or(self.next, |told| told.max(self.next))
            .min(self.refresh_every);
        self.next = (self.next * 2).min(self.cap);
        delay
    }
}

/// The background refresher: periodic refresh, unknown-kid refetches and
/// SIGHUP reloads, all on one thread, one fetch at a time.
pub struct Refresher {
    store: Arc<KeyStore>,
    source: KeySource,
    refresh_every: Duration,
    commands: Receiver<Command>,
    events: Box<dyn RefreshEvents>,
    state: Option<KeyState>,
    /// The HTTP client and the timeout it was built with.
    client: Option<(Duration, reqwest::blocking::Client)>,
    /// `"issuer <name>: "` before each log line; empty with one issuer.
    label: String,
    /// An OpenID Connect source's last discovery: its document URL and the
    /// JWKS it named (reused by unknown-kid refetches).
    discovered: Option<(String, JwksSource)>,
}

impl Refresher {
    pub fn new(
        store: Arc<KeyStore>,
        source: KeySource,
        refresh_every: Duration,
        commands: Receiver<Command>,
        events: Box<dyn RefreshEvents>,
    ) -> Refresher {
        Refresher {
            store,
            source,
            refresh_every,
            commands,
            events,
            state: None,
            client: None,
            label: String::new(),
            discovered: None,
        }
    }

    /// Names the issuer in every log line (with several issuers).
    pub fn with_name(mut self, name: &str) -> Refresher {
        self.label = format!("issuer {name}: ");
        self
    }

    /// Keeps every good JWKS in `state` (`None`: keys do not survive a
    /// restart).
    pub fn with_state(mut self, state: Option<KeyState>) -> Refresher {
        self.state = state;
        self
    }

    /// Loads the keys the state directory kept for this source, if they
    /// are for the configured URL and younger than `max_stale`. Meant for
    /// start-up, before any request is served. Returns whether keys were
    /// restored.
    pub fn restore(&self) -> bool {
        let Some(url) = self.source.state_url() else {
            return false;
        };
        let label = &self.label;
        let Some(state) = &self.state else {
            log::info!(
                "{label}keys are not kept across restarts: neither keys.state_dir nor \
                 $STATE_DIRECTORY is set"
            );
            return false;
        };
        let restored = match state.load(url) {
            Ok(Some(restored)) => restored,
            Ok(None) => {
                log::info!("{label}no saved keys in {} yet", state.path().display());
                return false;
            }
            Err(e) => {
                log::warn!("{label}not using the saved keys: {e}");
                return false;
            }
        };
        let path = state.path();
        for refused in &restored.refused {
            log::warn!("{label}refused {refused} from {}", path.display());
        }
        let age = unix_now().saturating_sub(restored.fetched_at);
        if let Some(max) = self.store.max_stale() {
            if age >= max.as_secs() {
                log::error!(
                    "{label}the saved keys in {} are {age} s old, over keys.max_stale_secs \
                     ({} s): not used",
                    path.display(),
                    max.as_secs()
                );
                return false;
            }
        }
        let installed = self
            .store
            .install_jwks_fetched_at(restored.keys, restored.fetched_at);
        log::info!(
            "{label}restored {} key(s) of {url} fetched {age} s ago, from {}",
            installed.held,
            path.display()
        );
        self.events.restored(self.status());
        true
    }

    /// Runs until `Command::Shutdown` or until every sender is gone.
    pub fn run(mut self) {
        let mut backoff = Backoff::new(self.refresh_every);
        let mut next = Instant::now();
        let mut first = true;
        loop {
            let wake = self.store.stale_at().map_or(next, |stale| stale.min(next));
            let wait = wake.saturating_duration_since(Instant::now());
            let reason = match self.commands.recv_timeout(wait) {
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Command::Reload(source)) => {
                    match self.reload(*source) {
                        Ok(()) => {
                            backoff.reset();
                            next = Instant::now() + self.next_refresh();
                        }
                        // The schedule stays: a failed reload neither
                        // pushes the next retry out nor resets the backoff,
                        // unless the key server asked us to wait.
                        Err(e) if e.throttled => {
                            let delay = backoff.after_failure(e.retry_after);
                            next = next.max(self.hold_off(delay));
                        }
                        Err(_) => {}
                    }
                    first = false;
                    self.retire_stale_keys();
                    continue;
                }
                Ok(Command::RefetchUnknownKid) => "unknown kid",
                Err(RecvTimeoutError::Timeout) if Instant::now() < next => {
                    self.retire_stale_keys();
                    continue;
                }
                Err(RecvTimeoutError::Timeout) if first => "start",
                Err(RecvTimeoutError::Timeout) => "scheduled refresh",
            };
            match self.refresh(reason) {
                Ok(()) => {
                    backoff.reset();
                    next = Instant::now() + self.next_refresh();
                }
                Err(e) => {
                    let delay = backoff.after_failure(e.retry_after);
                    next = if e.throttled {
                        self.hold_off(delay)
                    } else {
                        Instant::now() + delay
                    };
                }
            }
            if first {
                first = false;
                self.events.settled();
            }
            self.retire_stale_keys();
        }
    }

    /// No request to the key server for `delay`, unknown kids included;
    /// returns when that ends.
    fn hold_off(&self, delay: Duration) -> Instant {
        let until = Instant::now() + delay;
        self.store.hold_off_until(until);
        log::warn!(
            "{}the key server asked for fewer requests: next fetch in {} s",
            self.label,
            delay.as_secs()
        );
        until
    }

    /// Keys past `max_stale` are no longer used: say so once, loudly.
    fn retire_stale_keys(&self) {
        if let Some(age) = self.store.expire_if_stale() {
            log::error!(
                "{}keys are {age} s old, over keys.max_stale_secs ({} s), and none newer \
                 could be fetched from {}: they are no longer used, and /auth answers 503 \
                 until a fetch succeeds",
                self.label,
                self.store.max_stale().unwrap_or_default().as_secs(),
                self.source.describe()
            );
        }
    }

    /// A PEM key does not change by itself: only SIGHUP reloads it.
    fn next_refresh(&self) -> Duration {
        match self.source {
            KeySource::Pem { .. } => Duration::from_secs(365 * 24 * 3600),
            KeySource::Jwks(_) | KeySource::Oidc(_) => self.refresh_every,
        }
    }

    /// One load of the current source. On failure the old keys stay.
    fn refresh(&mut self, reason: &str) -> Result<(), FetchError> {
        let source = self.source.clone();
        let rediscover = reason != "unknown kid";
        match self.load(&source, rediscover) {
            Ok(installed) => {
                log::info!(
                    "{}loaded {} key(s) from {} ({reason}{})",
                    self.label,
                    installed.held,
                    source.describe(),
                    if installed.changed { "" } else { "; unchanged" }
                );
                Ok(())
            }
            Err(e) => {
                log::error!(
                    "{}key load failed ({reason}): {e}; keeping {} old key(s)",
                    self.label,
                    self.store.len()
                );
                Err(e)
            }
        }
    }

    /// SIGHUP: load the new source; adopt it only if it loads.
    fn reload(&mut self, source: KeySource) -> Result<(), FetchError> {
        let result = match self.load(&source, true) {
            Ok(installed) => {
                log::info!(
                    "{}reload: loaded {} key(s) from {}{}",
                    self.label,
                    installed.held,
                    source.describe(),
                    if installed.changed {
                        ""
                    } else {
                        " (unchanged)"
                    }
                );
                self.source = source;
                Ok(())
            }
            Err(e) => {
                log::error!(
                    "{}reload failed: {e}; keeping {} old key(s) from {}",
                    self.label,
                    self.store.len(),
                    self.source.describe()
                );
                Err(e)
            }
        };
        let outcome = match &result {
            Ok(()) => Ok(self.status()),
            Err(e) => Err(e.to_string()),
        };
        self.events.reloaded(outcome);
        self.events.settled();
        result
    }

    /// Loads `source` into the store, telling the store (for the refetch
    /// bound and its waiters) and the events hook; keeps a good JWKS in the
    /// state directory. An OpenID Connect source rediscovers its JWKS when
    /// `rediscover` (or when it has none yet).
    fn load(&mut self, source: &KeySource, rediscover: bool) -> Result<Installed, FetchError> {
        self.store.fetch_started();
        let result = match source {
            KeySource::Pem { key, .. } => Ok((self.store.install_pem(key.clone()), None)),
            KeySource::Jwks(jwks) => {
                let fetched = match self.client(jwks.timeout) {
                    Ok(client) => fetch_jwks(client, jwks),
                    Err(e) => Err(e),
                };
                fetched.map(|fetched| {
                    let fetched_at = unix_now();
                    let installed = self.store.install_jwks_fetched_at(fetched.keys, fetched_at);
                    (
                        installed,
                        Some((jwks.url.clone(), fetched.body, fetched_at)),
                    )
                })
            }
            KeySource::Oidc(oidc) => {
                // Taken: a failed fetch forgets it, so the next one rediscovers.
                let known = self
                    .discovered
                    .take()
                    .filter(|(url, _)| !rediscover && *url == oidc.discovery_url)
                    .map(|(_, jwks)| jwks);
                let fetched = match self.client(oidc.timeout) {
                    Ok(client) => fetch_oidc(client, oidc, known),
                    Err(e) => Err(e),
                };
                fetched.map(|(jwks, fetched)| {
                    log::debug!("{}{} names {}", self.label, oidc.discovery_url, jwks.url);
                    self.discovered = Some((oidc.discovery_url.clone(), jwks));
                    let fetched_at = unix_now();
                    let installed = self.store.install_jwks_fetched_at(fetched.keys, fetched_at);
                    let url = oidc.discovery_url.clone();
                    (installed, Some((url, fetched.body, fetched_at)))
                })
            }
        };
        self.store.fetch_finished();
        self.events.loaded(result.is_ok(), self.status());
        let (installed, saved) = result?;
        if let (Some(state), Some((url, body, fetched_at))) = (&self.state, saved) {
            if let Err(e) = state.save(&url, &body, fetched_at) {
                log::warn!("{}cannot keep the keys for a restart: {e}", self.label);
            }
        }
        Ok(installed)
    }

    /// The HTTP client, built on first use and again only when the
    /// source's timeout changes.
    fn client(&mut self, timeout: Duration) -> Result<&reqwest::blocking::Client, FetchError> {
        if self.client.as_ref().is_none_or(|(t, _)| *t != timeout) {
            self.client = None; // the old one's runtime thread ends first
            let client = http_client(timeout).map_err(FetchError::new)?;
            self.client = Some((timeout, client));
        }
        match &self.client {
            Some((_, client)) => Ok(client),
            None => Err(FetchError::new("no HTTP client".into())),
        }
    }

    fn status(&self) -> KeyStatus {
        KeyStatus {
            held: self.store.len(),
            fetched_at: self.store.fetched_at(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(S(3600));
        let delays: Vec<u64> = (0..9).map(|_| b.after_failure(None).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.after_failure(None), S(1));
        let mut short = Backoff::new(S(10));
        let delays: Vec<u64> = (0..5)
            .map(|_| short.after_failure(None).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 10]);
    }

    #[test]
    fn retry_after_is_honoured_within_the_refresh_interval() {
        let mut b = Backoff::new(S(600));
        assert_eq!(
            b.after_failure(Some(S(30))),
            S(30),
            "longer than the backoff"
        );
        assert_eq!(
            b.after_failure(Some(S(0))),
            S(2),
            "never sooner than the backoff"
        );
        assert_eq!(
            b.after_failure(Some(S(86_400))),
            S(600),
            "at most the refresh interval"
        );
        assert_eq!(b.after_failure(Some(Duration::MAX)), S(600));
    }
}
