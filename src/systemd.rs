//! systemd `Type=notify` support: READY=1 once keys are loaded (or the
//! first load failed and `/auth` answers 503), RELOADING=1 on SIGHUP,
//! STOPPING=1 on exit. Without `NOTIFY_SOCKET` each call does nothing.

use sd_notify::NotifyState;

pub fn notify_ready() {
    send(&[NotifyState::Ready]);
}

pub fn notify_reloading() {
    // systemd 253+ wants the monotonic time with RELOADING=1.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn notify_stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("sd_notify failed: {e}");
    }
}
