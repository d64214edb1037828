//! Checks for the shipped systemd units: `systemd/jwtgate.service`, its
//! socket `systemd/jwtgate.socket` (socket activation), and the
//! `systemd/notify-reload.conf` drop-in for systemd 253+.
//!
//! These tests need `systemd-analyze` (version 250 or newer, for
//! `security --offline`).  They FAIL, never skip, when it is missing: on
//! Debian install it with `apt-get install -y systemd`.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{self, Command, Output};

/// Highest acceptable "Overall exposure level" from `systemd-analyze security`.
const MAX_EXPOSURE: f64 = 1.5;
const UNIT_NAME: &str = "jwtgate.service";
/// The ExecStart= line the unit ships with; the verify test rewrites it.
const SHIPPED_EXEC_START: &str =
    "ExecStart=/usr/local/bin/jwtgate --config /etc/jwtgate/jwtgate.toml";

fn unit_path() -> PathBuf {
    systemd_file(UNIT_NAME)
}

fn systemd_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name)
}

fn read_unit() -> String {
    let path = unit_path();
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read unit file {}: {e}", path.display()))
}

/// Runs `systemd-analyze <args>`, panicking loudly if the tool is missing.
fn systemd_analyze(args: &[&str]) -> Output {
    let result = Command::new("systemd-analyze")
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_LOG_COLOR", "0")
        .env("SYSTEMD_PAGER", "")
        .output();
    match result {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "\n\n`systemd-analyze` is not installed (or not on PATH), so the systemd unit \
             cannot be checked.\nInstall Debian's `systemd` package: \
             `sudo apt-get install -y systemd`\n\n"
        ),
        Err(e) => panic!("failed to run `systemd-analyze {}`: {e}", args.join(" ")),
    }
}

fn describe(cmd: &str, out: &Output) -> String {
    format!(
        "`{cmd}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    )
}

/// A per-test temporary directory (temp dir + pid + test name), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("jwtgate-{test}-{}", process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every `Key=value` assignment in `[section]`, in file order.
fn assignments<'a>(unit: &'a str, section: &str, key: &str) -> Vec<&'a str> {
    let header = format!("[{section}]");
    let mut in_section = false;
    let mut values = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            in_section = line == header;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == key {
                values.push(v.trim());
            }
        }
    }
    values
}

fn single(unit: &str, key: &str) -> String {
    let values = assignments(unit, "Service", key);
    assert_eq!(
        values.len(),
        1,
        "expected exactly one {key}= in [Service], found {values:?}"
    );
    values[0].to_string()
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let version = systemd_analyze(&["--version"]);
    assert!(
        version.status.success(),
        "{}",
        describe("systemd-analyze --version", &version)
    );
    eprintln!(
        "using {}",
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or("?")
    );

    // `verify` insists that the ExecStart= binary exists, so check a copy
    // that points at the binary cargo just built.
    let unit = read_unit();
    assert_eq!(
        unit.lines()
            .filter(|l| l.trim() == SHIPPED_EXEC_START)
            .count(),
        1,
        "unit must contain exactly one `{SHIPPED_EXEC_START}` line"
    );
    let bin = env!("CARGO_BIN_EXE_jwtgate");
    assert!(
        Path::new(bin).is_file(),
        "built binary {bin} does not exist"
    );
    // Quote the path and escape systemd specifiers in case the target dir is unusual.
    let exec_start = format!(
        "ExecStart=\"{}\" --config /etc/jwtgate/jwtgate.toml",
        bin.replace('%', "%%")
    );
    let patched: String = unit
        .lines()
        .map(|l| {
            if l.trim() == SHIPPED_EXEC_START {
                exec_start.as_str()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";

    let tmp = TempDir::new("verify");
    let copy = tmp.0.join(UNIT_NAME);
    fs::write(&copy, patched).unwrap_or_else(|e| panic!("cannot write {}: {e}", copy.display()));
    let copy_str = copy.to_str().expect("temp path is not UTF-8");
    // The socket next to it, as installed: the service Wants= it.
    let socket = tmp.0.join("jwtgate.socket");
    fs::copy(systemd_file("jwtgate.socket"), &socket).unwrap();
    let socket_str = socket.to_str().expect("temp path is not UTF-8");

    let out = systemd_analyze(&["verify", socket_str, copy_str]);
    let report = describe(
        &format!("systemd-analyze verify {socket_str} {copy_str}"),
        &out,
    );
    assert!(out.status.success(), "{report}");

    // verify exits 0 even for unknown keys or unparsable values; those show
    // up as warnings on stderr, prefixed with the unit's path or name.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("jwtgate") || l.contains(copy_str))
        .collect();
    assert!(
        about_unit.is_empty(),
        "systemd-analyze verify warned about the unit:\n{}\n\n{report}",
        about_unit.join("\n")
    );
    if !stderr.trim().is_empty() {
        eprintln!("note: unrelated systemd-analyze verify output:\n{stderr}");
    }
}

#[test]
fn unit_security_exposure_is_low() {
    let path = unit_path();
    let path_str = path.to_str().expect("unit path is not UTF-8");
    let cmd = format!("systemd-analyze security --offline=true {path_str}");
    let out = systemd_analyze(&["security", "--no-pager", "--offline=true", path_str]);
    let report = describe(&cmd, &out);
    assert!(out.status.success(), "{report}");

    // e.g. "→ Overall exposure level for jwtgate.service: 1.1 OK 🙂"
    let marker = format!("Overall exposure level for {UNIT_NAME}:");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = stdout
        .lines()
        .find_map(|l| l.split_once(marker.as_str()).map(|(_, rest)| rest))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no parsable `{marker} X.Y` line\n{report}"));
    eprintln!("{UNIT_NAME} exposure: {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} is above {MAX_EXPOSURE}\n{report}"
    );
}

#[test]
fn unit_keeps_required_settings() {
    let unit = read_unit();

    assert_eq!(
        single(&unit, "Type"),
        "notify",
        "daemon uses sd_notify READY=1"
    );
    assert_eq!(single(&unit, "NotifyAccess"), "main");

    let reload = single(&unit, "ExecReload");
    assert!(
        reload.contains("kill") && reload.contains("-HUP") && reload.contains("$MAINPID"),
        "ExecReload= must send SIGHUP to the main process, got {reload:?}"
    );

    // Keys survive restarts: jwtgate reads $STATE_DIRECTORY.
    assert_eq!(single(&unit, "StateDirectory"), "jwtgate");

    let memory_max = single(&unit, "MemoryMax");
    assert!(!memory_max.is_empty(), "MemoryMax= must set a limit");

    // RestrictAddressFamilies=: evaluate the assignments like systemd does
    // (empty resets; "~" would turn it into a deny list, which is not wanted).
    let mut families: Vec<&str> = Vec::new();
    let raf = assignments(&unit, "Service", "RestrictAddressFamilies");
    assert!(!raf.is_empty(), "RestrictAddressFamilies= must be set");
    for value in raf {
        assert!(
            !value.starts_with('~'),
            "RestrictAddressFamilies= should be an allow list, got {value:?}"
        );
        if value.is_empty() || value == "none" {
            families.clear();
        } else {
            families.extend(value.split_whitespace());
        }
    }
    // Outbound HTTPS key fetches need INET/INET6; the notify socket needs UNIX.
    for needed in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(
            families.contains(&needed),
            "RestrictAddressFamilies= must allow {needed}, has {families:?}"
        );
    }

    // Nothing may cut the daemon off from the JWKS endpoint.
    for value in assignments(&unit, "Service", "PrivateNetwork") {
        assert!(
            !matches!(value, "yes" | "true" | "1" | "on"),
            "PrivateNetwork= would block the JWKS fetch"
        );
    }
    for value in assignments(&unit, "Service", "IPAddressDeny") {
        assert!(
            !value
                .split_whitespace()
                .any(|v| v == "any" || v == "0.0.0.0/0" || v == "::/0"),
            "IPAddressDeny={value} would block the JWKS fetch"
        );
    }
}

/// The value of `key` in `[section]`: exactly one assignment.
fn single_in(unit: &str, section: &str, key: &str) -> String {
    let values = assignments(unit, section, key);
    assert_eq!(
        values.len(),
        1,
        "expected exactly one {key}= in [{section}], found {values:?}"
    );
    values[0].to_string()
}

#[test]
fn the_socket_listens_where_jwtgate_and_nginx_expect_it() {
    let socket = fs::read_to_string(systemd_file("jwtgate.socket")).unwrap();
    let listen = single_in(&socket, "Socket", "ListenStream");
    // jwtgate refuses a passed socket on another address than `listen`.
    assert_eq!(listen, jwtgate::config::Settings::default().listen);
    let upstream = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx/jwtgate-upstream.conf"),
    )
    .unwrap();
    assert!(
        upstream.contains(&format!("server {listen};")),
        "nginx/jwtgate-upstream.conf points at {listen}"
    );
    // One socket only (jwtgate serves one), not shared with SO_REUSEPORT,
    // passed as is (not one connection per process).
    assert_eq!(single_in(&socket, "Socket", "ReusePort"), "no");
    assert!(assignments(&socket, "Socket", "Accept")
        .iter()
        .all(|v| *v == "no"));
    assert_eq!(single_in(&socket, "Install", "WantedBy"), "sockets.target");

    // The service takes it when it is there, and works without it.
    let unit = read_unit();
    assert!(assignments(&unit, "Unit", "Wants").contains(&"jwtgate.socket"));
    assert!(assignments(&unit, "Unit", "After").contains(&"jwtgate.socket"));
    assert!(assignments(&unit, "Unit", "Requires").is_empty());
    // The drain (http.drain_secs, default 5 s) ends before systemd's SIGKILL.
    let stop = single(&unit, "TimeoutStopSec");
    let stop_secs: u64 = stop.trim_end_matches('s').parse().unwrap();
    let drain = jwtgate::config::Settings::default().http.drain_secs;
    assert!(
        drain < stop_secs,
        "drain_secs {drain} vs TimeoutStopSec={stop}"
    );
}

#[test]
fn the_notify_reload_drop_in_replaces_the_kill_command() {
    let dropin = fs::read_to_string(systemd_file("notify-reload.conf")).unwrap();
    assert_eq!(single(&dropin, "Type"), "notify-reload");
    // An empty ExecReload= resets the unit's kill command: systemd's own
    // SIGHUP is the one reload.
    assert_eq!(single(&dropin, "ExecReload"), "");
    assert!(assignments(&dropin, "Service", "ReloadSignal").is_empty());
    // systemd 252 does not know Type=notify-reload: there the package does
    // not install the drop-in (packaging/deb/postinst checks the version);
    // where systemd-analyze is 253 or newer, the unit with it verifies.
    let version = systemd_analyze(&["--version"]);
    let major: u32 = String::from_utf8_lossy(&version.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("systemd-analyze --version: systemd NNN");
    let postinst =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/deb/postinst"))
            .unwrap();
    assert!(
        postinst.contains("-ge 253"),
        "the package checks for systemd 253"
    );
    if major < 253 {
        eprintln!("systemd {major}: the notify-reload drop-in is not verified here (253+ only)");
        return;
    }
    let tmp = TempDir::new("dropin");
    let bin = env!("CARGO_BIN_EXE_jwtgate");
    let unit = read_unit().replace("/usr/local/bin/jwtgate", bin);
    fs::write(tmp.0.join(UNIT_NAME), unit).unwrap();
    fs::create_dir_all(tmp.0.join("jwtgate.service.d")).unwrap();
    fs::write(tmp.0.join("jwtgate.service.d/notify-reload.conf"), dropin).unwrap();
    let path = tmp.0.join(UNIT_NAME);
    let out = systemd_analyze(&["verify", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("jwtgate"),
        "{}",
        describe("systemd-analyze verify (with the drop-in)", &out)
    );
}
