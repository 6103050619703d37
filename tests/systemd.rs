//! `systemd/s3gate.service`: `systemd-analyze verify` accepts it without a
//! warning (scripts/test installs Debian's systemd when it is missing), and
//! it asks for what the binary does: `Type=notify`, reload by SIGHUP, the
//! config under /etc/s3gate/, and the hardening list.
// Tests fail loudly (unwrapping is how they say what broke), may print
// timings, cast small test values, and keep their helpers undocumented.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    unreachable_pub,
    missing_docs
)]

use std::path::Path;
use std::process::Command;

const UNIT: &str = include_str!("../systemd/s3gate.service");

/// `systemd-analyze verify` on `text` as a unit file named s3gate.service,
/// the binary path pointed at the one cargo built: (success, stderr).
fn verify(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("s3gate.service");
    let text = text.replace("/usr/local/bin/s3gate", env!("CARGO_BIN_EXE_s3gate"));
    std::fs::write(&unit, text).unwrap();
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze is required: apt-get install systemd (scripts/test does)"
    );
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_without_a_warning() {
    let (ok, stderr) = verify(UNIT);
    assert!(ok && stderr.trim().is_empty(), "{stderr}");
    // The check can fail: a mistyped value is a warning, a missing binary an error.
    let (_, stderr) = verify(&UNIT.replace("Type=notify", "Type=notfy"));
    assert!(stderr.contains("Failed to parse service type"), "{stderr}");
    let (ok, _) = verify(&UNIT.replace(
        "ExecStart=/usr/local/bin/s3gate",
        "ExecStart=/nonexistent/s3gate",
    ));
    assert!(!ok);
}

#[test]
fn the_unit_notifies_reloads_and_is_hardened() {
    let lines: Vec<&str> = UNIT.lines().map(str::trim).collect();
    for directive in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/local/bin/s3gate serve --config /etc/s3gate/s3gate.toml",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
    ] {
        assert!(lines.contains(&directive), "missing {directive:?}");
    }
    assert!(lines.iter().any(|l| l.starts_with("LimitNOFILE=")));
}
