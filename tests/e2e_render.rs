//! The rendered files work on a real Debian host with systemd as PID 1: the
//! demo host's desired state, copied onto a fresh systemd-nspawn target, makes
//! users and directories, starts the agent after its auth check, beats, has
//! its timers scheduled, takes the journal caps without complaint, and
//! `systemctl stop` ends every process the agent started.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_render: <reason>`.

#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;
#[path = "common/repo.rs"]
mod repo;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;

#[test]
fn e2e_render() {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_render: {reason}");
        return;
    }
    let states = repo::render_all(&repo::root());
    let demo = states
        .iter()
        .find(|s| s.host == "demo")
        .expect("the example has a demo host");

    // Stage the files with their modes, pack them, unpack them on the target.
    let stage = tempfile::tempdir().unwrap();
    for (path, f) in &demo.files {
        let dest = stage.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, &f.bytes).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(f.mode.0)).unwrap();
    }
    let tar = Command::new("tar")
        .args(["-cz", "--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(stage.path())
        .args(["etc", "usr", "opt", "var"])
        .output()
        .unwrap();
    assert!(
        tar.status.success(),
        "{}",
        String::from_utf8_lossy(&tar.stderr)
    );
    let packed = base64::engine::general_purpose::STANDARD.encode(&tar.stdout);

    let t = nspawn::Target::boot("render").unwrap_or_else(|e| panic!("boot: {e}"));
    t.ssh_ok(&format!("echo {packed} | base64 -d | tar -xz -C /"))
        .unwrap();
    let chowns: Vec<String> = demo
        .files
        .iter()
        .filter(|(_, f)| f.owner != "root")
        .map(|(p, f)| format!("chown {}:{} {p}", f.owner, f.group))
        .collect();
    let units: Vec<&str> = demo
        .units
        .values()
        .filter(|u| u.enable)
        .map(|u| u.name.as_str())
        .collect();
    let activate = format!(
        "set -e; systemd-sysusers /etc/sysusers.d/provision.conf; systemd-tmpfiles --create /etc/tmpfiles.d/provision.conf; {}; systemctl daemon-reload; systemctl restart systemd-journald; systemctl enable --now {}",
        chowns.join("; "),
        units.join(" ")
    );
    t.ssh_ok(&activate).unwrap();

    // The agent runs, as its own user, after its auth check passed.
    wait_for(&t, "systemctl is-active agent-scheduler.service", "active");
    assert_eq!(
        t.ssh_ok("systemctl show -p User --value agent-scheduler.service")
            .unwrap()
            .trim(),
        "agent"
    );
    let pre = t
        .ssh_ok("systemctl show -p ExecStartPre agent-scheduler.service")
        .unwrap();
    assert!(
        pre.contains("agents/scheduler/auth-check") && pre.contains("code=exited ; status=0 "),
        "the auth check ran before start and passed: {pre}"
    );
    // It beats: the heartbeat file named by $PROVISION_HEARTBEAT appears.
    wait_for(
        &t,
        "test -e /var/lib/provision-agents/scheduler/heartbeat && echo beat",
        "beat",
    );
    // Its timers are loaded and scheduled.
    let timers = t.ssh_ok("systemctl list-timers --all --no-pager").unwrap();
    assert!(
        timers.contains("agent-scheduler-heartbeat.timer")
            && timers.contains("agent-scheduler-rotate-calendar.timer"),
        "{timers}"
    );
    // The heartbeat checker passes for a fresh beat.
    t.ssh_ok("systemctl start agent-scheduler-heartbeat.service")
        .unwrap();
    // journald took the drop-in without an unknown key.
    let journald = t.ssh_ok("journalctl -u systemd-journald --no-pager; systemd-analyze cat-config systemd/journald.conf").unwrap();
    assert!(
        !journald.to_lowercase().contains("unknown key"),
        "{journald}"
    );
    assert!(journald.contains("SystemMaxUse=200M"), "{journald}");
    // KillMode=control-group: stopping the agent ends its children too.
    assert!(
        !t.ssh_ok("pgrep -u agent -f 'sleep 60' || true")
            .unwrap()
            .trim()
            .is_empty(),
        "the agent has a child process"
    );
    t.ssh_ok("systemctl stop agent-scheduler.service").unwrap();
    assert_eq!(
        t.ssh_ok("pgrep -u agent || true").unwrap().trim(),
        "",
        "no process of the agent survives its stop"
    );
    // WORKSTATE.md was written in the working directory, next to AGENTS.md.
    t.ssh_ok("test -s /var/lib/agents/scheduler/AGENTS.md && test -f /var/lib/agents/scheduler/WORKSTATE.md").unwrap();
}

fn wait_for(t: &nspawn::Target, cmd: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = t.ssh(cmd);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if text == want {
            return;
        }
        if Instant::now() > deadline {
            let status = t.ssh_ok("systemctl status --no-pager agent-scheduler.service; journalctl -n 50 --no-pager").unwrap_or_default();
            panic!("`{cmd}` gave {text:?}, not {want:?}, after 30 s:\n{status}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
