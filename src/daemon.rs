//! Running the daemon: threads, the HTTP server, and what the outside world
//! asks of it.
//!
//! Threads: may's workers serve HTTP; one refresher thread does all key
//! fetching; the caller's thread waits for [`Control`] messages. The binary
//! turns signals into them ([`signals`]): SIGHUP re-reads the config's key
//! material and hands it to the refresher, which swaps it in only if it
//! loads; SIGTERM and SIGINT stop. A test can drive the same loop
//! in-process by sending the messages itself.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

use may_minihttp::HttpServiceFactory;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::Config;
use crate::gate::metrics::Metrics;
use crate::gate::server::AuthServiceFactory;
use crate::gate::Gate;
use crate::keys::refresher::{refetch_trigger, Command, KeyStatus, RefreshEvents, Refresher};
use crate::systemd;
use crate::verify::Verifier;

/// Coroutine stack size in machine words (64 KiB on 64-bit): room for
/// OpenSSL's RSA verify with a margin.
const STACK_WORDS: usize = 0x2000;

/// What the daemon can be asked to do while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Re-read the key material (SIGHUP).
    Reload,
    /// Stop (SIGTERM, SIGINT).
    Stop,
}

/// Turns SIGHUP, SIGTERM and SIGINT into [`Control`] messages, from a
/// thread of its own (signal-hook's iterator blocks: not for a coroutine).
pub fn signals() -> Result<Receiver<Control>, String> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("jwtgate-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let control = if signal == SIGHUP {
                    Control::Reload
                } else {
                    log::info!("signal {signal}: stopping");
                    Control::Stop
                };
                if sender.send(control).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(receiver)
}

/// Runs until [`Control::Stop`] arrives (or every sender is gone).
/// `config_path` is re-read on [`Control::Reload`] (`None`: defaults and
/// environment only).
pub fn run(
    config: Config,
    config_path: Option<PathBuf>,
    controls: Receiver<Control>,
) -> Result<(), String> {
    may::config()
        .set_workers(config.workers)
        .set_stack_size(STACK_WORDS);
    may::config().set_worker_pin(config.pin_workers);

    let store = Arc::new(config.key_store());
    let metrics = Arc::new(Metrics::default());
    let (commands, receiver) = mpsc::channel();
    store.connect_refresher(refetch_trigger(commands.clone()));
    let refresher = Refresher::new(
        store.clone(),
        config.key_source.clone(),
        config.refresh_every,
        receiver,
        Box::new(DaemonEvents(metrics.clone())),
    )
    .with_state(config.state.clone());
    // Keys kept by the last run, before anything is served: a restart
    // while the key server is down keeps serving.
    refresher.restore();
    std::thread::Builder::new()
        .name("jwtgate-keys".into())
        .spawn(move || refresher.run())
        .map_err(|e| format!("cannot start the key thread: {e}"))?;

    let verifier = Verifier::new(store, config.policy.clone());
    let gate = Arc::new(Gate::new(verifier, config.gate.clone(), metrics));
    let _server = AuthServiceFactory(gate)
        .start(config.listen)
        .map_err(|e| format!("listen {}: {e}", config.listen))?;
    log::info!(
        "jwtgate {} listening on http://{} with {}",
        env!("CARGO_PKG_VERSION"),
        config.listen,
        config.key_source.describe()
    );

    while let Ok(control) = controls.recv() {
        match control {
            Control::Reload => reload(config_path.as_deref(), &commands),
            Control::Stop => break,
        }
    }
    systemd::notify_stopping();
    let _ = commands.send(Command::Shutdown);
    Ok(())
}

/// Reports key loads to the metrics and readiness to systemd.
struct DaemonEvents(Arc<Metrics>);

impl RefreshEvents for DaemonEvents {
    fn loaded(&self, ok: bool, keys: KeyStatus) {
        self.0.record_fetch(ok);
        self.0.record_keys(keys.held, keys.fetched_at.unwrap_or(0));
    }

    fn restored(&self, keys: KeyStatus) {
        self.0.record_keys(keys.held, keys.fetched_at.unwrap_or(0));
    }

    fn settled(&self) {
        systemd::notify_ready();
    }
}

/// Reload: re-read the key material; on error keep everything as it is.
fn reload(path: Option<&Path>, commands: &Sender<Command>) {
    systemd::notify_reloading();
    log::info!("SIGHUP: reloading key material");
    match Config::load(path) {
        Ok(config) => {
            let _ = commands.send(Command::Reload(Box::new(config.key_source)));
        }
        Err(e) => {
            log::error!("reload failed: {e}; keeping the current keys");
            systemd::notify_ready();
        }
    }
}
