//! Running the daemon: threads, the HTTP server, and what the outside world
//! asks of it.
//!
//! Threads: may's workers serve HTTP; one refresher thread per issuer does
//! all key fetching (see [`crate::key_threads`]); with browser sign-in, a
//! small pool exchanges handshake nonces with Clerk's Backend API; the
//! caller's thread waits for [`Control`] messages. The binary
//! turns signals into them ([`signals`]): SIGHUP re-reads the config's key
//! material and hands it to the refresher, which swaps it in only if it
//! loads; SIGTERM and SIGINT stop. A test can drive the same loop
//! in-process by sending the messages itself.
//!
//! The server's life: the listening socket comes first (systemd's, passed
//! by socket activation, or bound here, so a taken port fails the start at
//! once); then the keys the state directory kept; connections are accepted
//! only once keys are usable, or after `http.startup_wait_ms` (meanwhile
//! they wait in the socket's backlog: a restart answers them late rather
//! than 503). On stop the server stops accepting, closes idle keep-alive
//! connections, answers every request it has started to read (the answers
//! say `Connection: close`), and returns when all connections are closed or
//! `http.drain_secs` has passed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may_minihttp::{HttpServiceFactory, ServerHandle};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::browser::exchange::{self, ExchangeSettings, NonceExchanger};
use crate::config::Config;
use crate::gate;
use crate::gate::metrics::Metrics;
use crate::gate::server::AuthServiceFactory;
use crate::gate::Gate;
use crate::key_threads::KeyThreads;
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

/// Runs until [`Control::Stop`] arrives (or every sender is gone), then
/// drains the server (see the module doc). `config_path` is re-read on
/// [`Control::Reload`] (`None`: defaults and environment only).
pub fn run(
    config: Config,
    config_path: Option<PathBuf>,
    controls: Receiver<Control>,
) -> Result<(), String> {
    let (listener, activated) = listen(&config)?;
    may::config()
        .set_workers(config.workers)
        .set_stack_size(STACK_WORDS);
    may::config().set_worker_pin(config.pin_workers);

    let names: Vec<String> = config.issuers.iter().map(|i| i.name.clone()).collect();
    let metrics = Arc::new(Metrics::for_issuers(&names));
    // Keys kept by the last run are restored before anything is served: a
    // restart while a key server is down keeps serving.
    let (verifier, keys) = KeyThreads::start(&config, &metrics)?;

    let reload_now = || reload(config_path.as_deref(), &keys, &metrics);
    if !wait_for_keys(&verifier, config.http.startup_wait, &controls, reload_now) {
        systemd::notify_stopping();
        keys.shutdown();
        return Ok(());
    }

    let addr = listener.local_addr().unwrap_or(config.listen);
    let mut gate = Gate::new(verifier, config.gate.clone(), metrics.clone());
    if let Some(browser) = &config.browser {
        // Its threads are plain OS threads, started before the HTTP
        // runtime; a request's coroutine only waits on its answer.
        let exchanger = NonceExchanger::start(ExchangeSettings {
            api_url: browser.instance.api_url().to_string(),
            secret_key: browser.secret_key.clone(),
            timeout: browser.fetch_timeout,
            threads: exchange::DEFAULT_THREADS,
            queue: exchange::DEFAULT_QUEUE,
        })?;
        gate = gate.with_browser(gate::Browser {
            instance: browser.instance.clone(),
            exchanger,
        });
    }
    let gate = Arc::new(gate);
    let server = AuthServiceFactory(gate)
        .start_with_listener(listener, config.http.server.clone())
        .map_err(|e| format!("listen {addr}: {e}"))?;
    log::info!(
        "jwtgate {} listening on http://{addr}{} with {}",
        env!("CARGO_PKG_VERSION"),
        if activated {
            " (a socket passed by systemd)"
        } else {
            ""
        },
        KeyThreads::describe(&config)
    );

    while let Ok(control) = controls.recv() {
        match control {
            Control::Reload => reload(config_path.as_deref(), &keys, &metrics),
            Control::Stop => break,
        }
    }
    stop(&server, config.http.drain);
    keys.shutdown();
    Ok(())
}

/// The listening socket: the one systemd passed (socket activation), which
/// must be on `listen`, else one bound to `listen` now (with
/// `SO_REUSEPORT` only if `http.reuse_port`). True when it came from
/// systemd.
fn listen(config: &Config) -> Result<(TcpListener, bool), String> {
    if let Some(listener) = systemd::activated_listener()? {
        let addr = listener
            .local_addr()
            .map_err(|e| format!("socket activation: the passed socket: {e}"))?;
        if addr != config.listen {
            return Err(format!(
                "listen: {} but the socket systemd passed listens on {addr} (jwtgate.socket's \
                 ListenStream=): make them the same",
                config.listen
            ));
        }
        return Ok((listener, true));
    }
    match may_minihttp::bind(config.listen, &config.http.server) {
        Ok(listener) => Ok((listener, false)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
            "listen: {}: {e}: another process listens there (another jwtgate? for a \
             blue-green hand-over set http.reuse_port = true in both)",
            config.listen
        )),
        Err(e) => Err(format!("listen: {}: {e}", config.listen)),
    }
}

/// Leaves connections in the listen backlog until every issuer has usable
/// keys, or `bound` has passed (then `/auth` answers 503 until they load),
/// handling reloads meanwhile. False when told to stop first.
fn wait_for_keys(
    verifier: &Verifier,
    bound: Duration,
    controls: &Receiver<Control>,
    mut reload: impl FnMut(),
) -> bool {
    let started = Instant::now();
    let deadline = started + bound;
    loop {
        if verifier.is_usable() {
            log::debug!(
                "keys usable {} ms after start",
                started.elapsed().as_millis()
            );
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            if bound.is_zero() {
                return true; // no wait asked for
            }
            log::warn!(
                "no usable keys {} ms after start (http.startup_wait_ms): accepting \
                 connections; /auth answers 503 until keys load",
                bound.as_millis()
            );
            return true;
        }
        match controls.recv_timeout((deadline - now).min(Duration::from_millis(5))) {
            Ok(Control::Reload) => reload(),
            Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Stop: accept nothing more, close idle connections, answer the requests
/// under way, for at most `drain`.
fn stop(server: &ServerHandle, drain: Duration) {
    systemd::notify_stopping();
    log::info!(
        "stopping: no new connections; answering the requests under way on {} \
         connection(s), for at most {} ms (http.drain_secs)",
        server.live_connections(),
        drain.as_millis()
    );
    let started = Instant::now();
    if server.shutdown(drain) {
        log::info!(
            "stopped after {} ms: every connection closed",
            started.elapsed().as_millis()
        );
    } else {
        log::warn!(
            "stopped at the drain deadline ({} ms, http.drain_secs) with {} connection(s) \
             still open: closing them",
            drain.as_millis(),
            server.live_connections()
        );
    }
}

/// Reload: re-read the key material; on error keep everything as it is.
fn reload(path: Option<&Path>, keys: &KeyThreads, metrics: &Metrics) {
    systemd::notify_reloading();
    log::info!("SIGHUP: reloading key material");
    match Config::load(path) {
        Ok(config) => keys.reload(config),
        Err(e) => {
            log::error!("reload failed: {e}; keeping the current keys");
            metrics.record_reload(false);
            systemd::notify_reloaded(Err((systemd::EINVAL, &e)));
        }
    }
}
