//! systemd: `Type=notify` (and `Type=notify-reload`) notifications, and the
//! listening socket of socket activation.
//!
//! Notifications: READY=1 once keys are loaded (or the first load failed
//! and `/auth` answers 503); on SIGHUP, RELOADING=1 with MONOTONIC_USEC=
//! (what `Type=notify-reload`, systemd 253+, requires; systemd 252 ignores
//! the extra field), then READY=1 with a STATUS= that says how the reload
//! went and ERRNO= (0 when it worked, so a failure's errno does not stay);
//! STOPPING=1 on SIGTERM. Without `NOTIFY_SOCKET` each call does nothing.
//!
//! Socket activation ([`activated_listener`]): systemd (or any parent that
//! follows its protocol) passes the listening socket as fd 3 with
//! `LISTEN_FDS=1` and `LISTEN_PID=<our pid>`. The socket outlives the
//! process, so connections that arrive while jwtgate restarts wait in its
//! backlog instead of being refused.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};

use sd_notify::NotifyState;

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// errno for a reload whose config did not load.
pub const EINVAL: u32 = libc::EINVAL as u32;
/// errno for a reload whose keys did not load.
pub const EIO: u32 = libc::EIO as u32;

pub fn notify_ready() {
    send(&[NotifyState::Ready]);
}

pub fn notify_reloading() {
    let status = NotifyState::Status("reloading the key material");
    // systemd 253+ wants the monotonic time with RELOADING=1.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, status]),
        Err(_) => send(&[NotifyState::Reloading, status]),
    }
}

/// The end of a reload: READY=1 with what came of it. `Err((errno,
/// message))` for a failed one (the old keys stay in use).
pub fn notify_reloaded(outcome: Result<&str, (u32, &str)>) {
    let (status, errno) = match outcome {
        Ok(what) => (format!("reloaded: {what}"), 0),
        Err((errno, why)) => (format!("reload failed, serving the old keys: {why}"), errno),
    };
    let status = one_line(&status);
    send(&[
        NotifyState::Ready,
        NotifyState::Status(&status),
        NotifyState::Errno(errno),
    ]);
}

pub fn notify_stopping() {
    send(&[NotifyState::Stopping]);
}

/// A STATUS= value is one line of at most a few hundred bytes.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > 400 {
        let mut end = 400;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("sd_notify failed: {e}");
    }
}

/// The listening socket systemd passed, if `LISTEN_PID` is this process
/// and `LISTEN_FDS` says one socket was passed. Takes fd 3, checks that it
/// is a listening TCP socket, marks it close-on-exec, and removes
/// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment
/// (they are for this process only). Call it before other threads read the
/// environment.
pub fn activated_listener() -> Result<Option<TcpListener>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    if pid.is_none() && fds.is_none() {
        return Ok(None);
    }
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    let (Some(pid), Some(fds)) = (pid, fds) else {
        log::warn!("only one of LISTEN_PID and LISTEN_FDS is set: no socket activation");
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        log::warn!(
            "LISTEN_FDS is meant for process {pid}, not this one ({}): no socket activation",
            std::process::id()
        );
        return Ok(None);
    }
    match fds.trim().parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(1) => listening_socket(LISTEN_FDS_START).map(Some),
        Ok(n) => Err(format!(
            "socket activation: systemd passed {n} sockets (LISTEN_FDS={n}); jwtgate serves \
             one: give jwtgate.socket a single ListenStream="
        )),
        Err(_) => Err(format!(
            "socket activation: LISTEN_FDS={fds:?} is not a number"
        )),
    }
}

/// `fd` as a listener, if it is a listening TCP socket.
fn listening_socket(fd: RawFd) -> Result<TcpListener, String> {
    let not_tcp = |why: &str| {
        format!(
            "socket activation: fd {fd} {why}; jwtgate.socket needs ListenStream=<address>:<port>"
        )
    };
    // SAFETY: plain syscalls on an fd number; nothing is dereferenced but
    // the local option buffers, sized as the calls are told.
    unsafe {
        if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) < 0 {
            return Err(not_tcp("is not open"));
        }
        let option = |name: libc::c_int| -> Option<libc::c_int> {
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            let ok = libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                &mut value as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            ) == 0;
            ok.then_some(value)
        };
        match option(libc::SO_DOMAIN) {
            Some(libc::AF_INET | libc::AF_INET6) => {}
            Some(_) => return Err(not_tcp("is not an IPv4 or IPv6 socket")),
            None => return Err(not_tcp("is not a socket")),
        }
        if option(libc::SO_TYPE) != Some(libc::SOCK_STREAM) {
            return Err(not_tcp("is not a stream (TCP) socket"));
        }
        if option(libc::SO_ACCEPTCONN) != Some(1) {
            return Err(not_tcp("is not listening"));
        }
        // SAFETY: systemd's protocol hands fd 3 to this process, and
        // nothing else in it owns the fd.
        Ok(TcpListener::from_raw_fd(fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_listening_tcp_socket_is_taken() {
        use std::os::fd::{AsRawFd, IntoRawFd};
        let file = std::fs::File::open("/dev/null").unwrap();
        let err = listening_socket(file.as_raw_fd()).unwrap_err();
        assert!(err.contains("is not a socket"), "{err}");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = listening_socket(udp.as_raw_fd()).unwrap_err();
        assert!(err.contains("not a stream"), "{err}");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = std::net::TcpStream::connect(addr).unwrap();
        let err = listening_socket(stream.as_raw_fd()).unwrap_err();
        assert!(err.contains("is not listening"), "{err}");
        assert!(listening_socket(1 << 20)
            .unwrap_err()
            .contains("is not open"));
        let taken = listening_socket(listener.into_raw_fd()).unwrap();
        assert_eq!(taken.local_addr().unwrap(), addr);
    }

    #[test]
    fn status_lines_are_one_bounded_line() {
        assert_eq!(one_line("a\nb\rc"), "a b c");
        let long = "é".repeat(300);
        let line = one_line(&long);
        assert!(line.len() <= 400 && line.chars().all(|c| c == 'é'));
    }
}
