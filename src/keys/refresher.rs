//! The background thread that keeps keys fresh.
//!
//! All key fetching of the daemon happens here, on one OS thread with
//! reqwest's blocking client: requests never wait on a socket, only (when a
//! kid is unknown, and bounded) on the [`SyncFlag`](may::sync::SyncFlag)
//! the store fires after a fetch. The refresher reports what it did through
//! [`RefreshEvents`], so it knows nothing of metrics or systemd.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keys::source::{load_into, KeySource};
use crate::keys::store::{KeyStore, RefetchTrigger};

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

/// What the refresher tells the daemon.
pub trait RefreshEvents: Send {
    /// A load ended; `keys_held` counts the keys in the store after it.
    fn loaded(&self, ok: bool, keys_held: usize);
    /// The first load after start, or a SIGHUP reload, is over (either way).
    fn settled(&self);
}

/// The background refresher: periodic refresh, unknown-kid refetches and
/// SIGHUP reloads, all on one thread, one fetch at a time.
pub struct Refresher {
    pub store: Arc<KeyStore>,
    pub source: KeySource,
    pub refresh_every: Duration,
    pub commands: Receiver<Command>,
    pub events: Box<dyn RefreshEvents>,
}

impl Refresher {
    /// Runs until `Command::Shutdown` or until every sender is gone.
    pub fn run(mut self) {
        let mut backoff = Duration::from_secs(1);
        let mut next = Instant::now();
        let mut first = true;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            let reason = match self.commands.recv_timeout(wait) {
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Command::Reload(source)) => {
                    self.reload(*source);
                    next = Instant::now() + self.next_refresh();
                    continue;
                }
                Ok(Command::RefetchUnknownKid) => "unknown kid",
                Err(RecvTimeoutError::Timeout) if first => "start",
                Err(RecvTimeoutError::Timeout) => "scheduled refresh",
            };
            let ok = self.refresh(reason);
            if first {
                first = false;
                self.events.settled();
            }
            if ok {
                backoff = Duration::from_secs(1);
                next = Instant::now() + self.next_refresh();
            } else {
                next = Instant::now() + backoff;
                backoff = (backoff * 2).min(self.refresh_every.min(Duration::from_secs(60)));
            }
        }
    }

    /// A PEM key does not change by itself: only SIGHUP reloads it.
    fn next_refresh(&self) -> Duration {
        match self.source {
            KeySource::Pem { .. } => Duration::from_secs(365 * 24 * 3600),
            KeySource::Jwks(_) => self.refresh_every,
        }
    }

    /// One load of the current source. On failure the old keys stay.
    fn refresh(&self, reason: &str) -> bool {
        match self.load(&self.source) {
            Ok(n) => {
                log::info!(
                    "loaded {n} key(s) from {} ({reason})",
                    self.source.describe()
                );
                true
            }
            Err(e) => {
                log::error!(
                    "key load failed ({reason}): {e}; keeping {} old key(s)",
                    self.store.len()
                );
                false
            }
        }
    }

    /// SIGHUP: load the new source; adopt it only if it loads.
    fn reload(&mut self, source: KeySource) {
        match self.load(&source) {
            Ok(n) => {
                log::info!("reload: loaded {n} key(s) from {}", source.describe());
                self.source = source;
            }
            Err(e) => log::error!(
                "reload failed: {e}; keeping {} old key(s) from {}",
                self.store.len(),
                self.source.describe()
            ),
        }
        self.events.settled();
    }

    /// Loads `source` into the store, telling the store (for the refetch
    /// bound and its waiters) and the events hook.
    fn load(&self, source: &KeySource) -> Result<usize, String> {
        self.store.fetch_started();
        let result = load_into(&self.store, source);
        self.events.loaded(result.is_ok(), self.store.len());
        self.store.fetch_finished();
        result
    }
}
