//! Running the daemon: threads, the HTTP server, and signals.
//!
//! Threads: may's workers serve HTTP; one refresher thread does all key
//! fetching; the main thread waits for signals. SIGHUP re-reads the
//! config's key material and hands it to the refresher, which swaps it in
//! only if it loads. SIGTERM and SIGINT exit 0 at once: `/auth` is
//! stateless, so there is nothing to drain that nginx would not retry.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

use may_minihttp::HttpServiceFactory;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::Config;
use crate::fetch::Refresher;
use crate::keystore::{Command, KeyStore};
use crate::metrics::Metrics;
use crate::server::{App, AuthServiceFactory};
use crate::systemd;
use crate::verify::Verifier;

/// Coroutine stack size in machine words (64 KiB on 64-bit): room for
/// OpenSSL's RSA verify with a margin.
const STACK_WORDS: usize = 0x2000;

/// Runs until SIGTERM/SIGINT. `config_path` is re-read on SIGHUP (`None`:
/// defaults and environment only).
pub fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), String> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    may::config()
        .set_workers(config.workers)
        .set_stack_size(STACK_WORDS);
    may::config().set_worker_pin(config.pin_workers);

    let store = Arc::new(KeyStore::new(
        config.cache_capacity,
        config.min_refetch,
        config.fetch_timeout,
    ));
    let metrics = Arc::new(Metrics::default());
    let (commands, receiver) = mpsc::channel();
    store.connect_refresher(commands.clone());
    let refresher = Refresher {
        store: store.clone(),
        metrics: metrics.clone(),
        source: config.key_source.clone(),
        refresh_every: config.refresh_every,
        commands: receiver,
    };
    std::thread::Builder::new()
        .name("jwtgate-keys".into())
        .spawn(move || refresher.run())
        .map_err(|e| format!("cannot start the key thread: {e}"))?;

    let app = Arc::new(App {
        verifier: Verifier::from_config(&config, store, config.cache_tokens),
        metrics,
        cookie_suffix: config.cookie_suffix.clone(),
    });
    let _server = AuthServiceFactory(app)
        .start(config.listen)
        .map_err(|e| format!("listen {}: {e}", config.listen))?;
    log::info!(
        "jwtgate {} listening on http://{} with {}",
        env!("CARGO_PKG_VERSION"),
        config.listen,
        config.key_source.describe()
    );

    for signal in signals.forever() {
        match signal {
            SIGHUP => reload(config_path.as_deref(), &commands),
            _ => {
                log::info!("signal {signal}: exiting");
                systemd::notify_stopping();
                let _ = commands.send(Command::Shutdown);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// SIGHUP: re-read the key material; on error keep everything as it is.
fn reload(path: Option<&std::path::Path>, commands: &mpsc::Sender<Command>) {
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
