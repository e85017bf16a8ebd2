//! Every generated unit, timer and drop-in is valid for the systemd the
//! targets run (Debian 12, systemd 252): `systemd-analyze verify` reports no
//! unknown key, unknown section or parse error; the sysusers and tmpfiles
//! configurations apply cleanly to an empty root.

use std::path::Path;
use std::process::Command;

#[path = "common/repo.rs"]
mod repo;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn write_all(dir: &Path, state: &provision::desired::DesiredState) {
    for (path, f) in &state.files {
        let dest = dir.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, &f.bytes).unwrap();
    }
}

/// Lines of systemd's output that mean the file itself is wrong (as opposed to
/// "command not executable", which only says the agent is not installed here).
fn problems(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            [
                "unknown key",
                "unknown section",
                "unknown lvalue",
                "failed to parse",
                "invalid",
                "bad-setting",
                "missing '='",
                "assignment outside of section",
                "unbalanced quoting",
                "ignoring",
            ]
            .iter()
            .any(|p| l.contains(p))
        })
        .collect()
}

#[test]
fn units_and_timers_pass_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        skip(
            "units_and_timers_pass_systemd_analyze_verify: systemd-analyze is not installed (the README's test command installs it)",
        );
        return;
    }
    let mut checked = 0;
    for state in repo::render_all(&repo::root()) {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path(), &state);
        let units: Vec<String> = state
            .files
            .keys()
            .filter(|p| p.starts_with("/etc/systemd/system/"))
            .map(|p| {
                dir.path()
                    .join(p.trim_start_matches('/'))
                    .display()
                    .to_string()
            })
            .collect();
        assert!(!units.is_empty());
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .args(&units)
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            problems(&text).is_empty(),
            "host {}: systemd-analyze verify found:\n{text}",
            state.host
        );
        checked += units.len();
    }
    assert!(checked >= 20, "verified {checked} units");
}

#[test]
fn the_verifier_does_catch_a_bad_unit() {
    if !have("systemd-analyze") {
        skip("the_verifier_does_catch_a_bad_unit: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.service");
    std::fs::write(
        &bad,
        "[Service]\nExecStart=/bin/true\nKillMod=control-group\n[Bogus]\nX=1\n",
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(problems(&text).len(), 2, "{text}");
}

#[test]
fn journald_drop_in_uses_only_known_keys() {
    // systemd-analyze cannot verify journald.conf; these are the [Journal] keys of journald.conf(5) in systemd 252.
    const KNOWN: &[&str] = &[
        "SystemMaxUse",
        "SystemKeepFree",
        "SystemMaxFileSize",
        "MaxRetentionSec",
    ];
    let mut seen = 0;
    for state in repo::render_all(&repo::root()) {
        let Some(f) = state
            .files
            .get("/etc/systemd/journald.conf.d/50-provision.conf")
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&f.bytes);
        let mut section = None;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            if line.starts_with('[') {
                section = Some(line);
                continue;
            }
            assert_eq!(section, Some("[Journal]"), "{line}");
            let key = line.split('=').next().unwrap();
            assert!(KNOWN.contains(&key), "unknown journald key {key}");
            seen += 1;
        }
    }
    assert!(seen >= 9, "{seen}");
}

#[test]
fn sysusers_and_tmpfiles_apply_to_an_empty_root() {
    if !have("systemd-sysusers") || !have("systemd-tmpfiles") {
        skip(
            "sysusers_and_tmpfiles_apply_to_an_empty_root: systemd-sysusers/systemd-tmpfiles missing",
        );
        return;
    }
    if unsafe_not_root() {
        skip(
            "sysusers_and_tmpfiles_apply_to_an_empty_root: needs root to chown in the temporary root",
        );
        return;
    }
    for state in repo::render_all(&repo::root()) {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        for f in ["passwd", "group"] {
            std::fs::copy(Path::new("/etc").join(f), root.path().join("etc").join(f)).unwrap();
        }
        write_all(root.path(), &state);
        let sysusers = Command::new("systemd-sysusers")
            .arg(format!("--root={}", root.path().display()))
            .arg(root.path().join("etc/sysusers.d/provision.conf"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&sysusers.stderr);
        assert!(
            sysusers.status.success() && problems(&err).is_empty(),
            "{}: sysusers: {err}",
            state.host
        );
        let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
        assert!(
            passwd.lines().any(|l| l.starts_with("agent:")),
            "{}: agent user created",
            state.host
        );
        let tmpfiles = Command::new("systemd-tmpfiles")
            .arg(format!("--root={}", root.path().display()))
            .arg("--create")
            .arg(root.path().join("etc/tmpfiles.d/provision.conf"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&tmpfiles.stderr);
        assert!(
            tmpfiles.status.success() && problems(&err).is_empty(),
            "{}: tmpfiles: {err}",
            state.host
        );
        for line in String::from_utf8_lossy(&state.files["/etc/tmpfiles.d/provision.conf"].bytes)
            .lines()
            .filter(|l| l.starts_with("d "))
        {
            let path = line.split_whitespace().nth(1).unwrap();
            assert!(
                root.path().join(path.trim_start_matches('/')).is_dir(),
                "{path} created"
            );
        }
    }
}

fn unsafe_not_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        .unwrap_or(true)
}

/// Says why a test did not run, past the test harness's output capture, so a
/// skip is never silent.
fn skip(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {message}");
}
