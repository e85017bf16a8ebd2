//! Faults during apply, against real Debian targets (systemd-nspawn): a
//! connection cut during the upload and during the switch, a switch job
//! killed half-way, a full disk, two applies at once, an unreachable host
//! among several, a wrong host key. Each leaves the host at its old
//! generation or its new one, never in between, and is reported.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_faults::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use fleet::{Fleet, agent, wait_line};

fn setup(test: &str, body: &str) -> Option<(nspawn::Target, Fleet)> {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_faults::{test}: {reason}");
        return None;
    }
    let t = nspawn::Target::boot(test).unwrap_or_else(|e| panic!("boot: {e}"));
    let f = Fleet::new();
    f.agent_script("alpha", "v1");
    f.host("t", &format!("root@{}", t.addr), 22, &t.host_key, body);
    Some((t, f))
}

/// An agent whose auth check takes `secs`, so its start (and the switch
/// that starts it) takes that long.
fn slow_agent(secs: u32) -> String {
    agent("alpha", "").replace("exit 0", &format!("sleep {secs}; exit 0"))
}

/// Cuts provision's SSH connection to the target: kills the ssh processes
/// that talk to this test's own target address (started by this test's
/// provision run), by PID.
fn cut(t: &nspawn::Target) {
    let pids = ssh_pids(t);
    assert!(!pids.is_empty(), "no ssh process to {} to cut", t.addr);
    signal(&pids, "-9");
}

/// Polls `cmd` on the target until it succeeds or `timeout` passes
/// (bounded); whether it did.
fn wait_for_ok(t: &nspawn::Target, cmd: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if t.ssh(cmd).status.success() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// No provision temporary file is left anywhere it writes.
fn no_leftovers(t: &nspawn::Target) {
    assert_eq!(
        t.sh(
            "find /etc /opt /usr/local /var/lib/agents /var/lib/provision -xdev \
             \\( -name '.provision-new.*' -o -name '.in.*' -o -name .incoming \\) 2>/dev/null | wc -l"
        ),
        "0"
    );
}

fn wait_child(child: &mut std::process::Child, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("provision did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything a finished run printed: its stdout, then the rest of its
/// stderr (read by `Fleet::spawn`'s thread until the pipe closes, bounded).
fn output(child: std::process::Child, rx: &std::sync::mpsc::Receiver<String>) -> String {
    let out = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        text.push('\n');
        text.push_str(&line);
    }
    text
}

#[test]
fn connection_cut_during_upload_leaves_the_old_generation() {
    let body = agent("alpha", "") + "\n    file \"/opt/big.bin\" source=\"big.bin\" mode=0o644";
    let Some((t, f)) = setup("cutup", &body) else {
        return;
    };
    // Random bytes do not compress: the upload takes a while.
    let mut big = vec![0u8; 96 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(f.path().join("big.bin"), &big).unwrap();

    let (mut child, rx) = f.spawn(&["apply", "--yes"]);
    wait_line(&rx, "uploading", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(150));
    cut(&t);
    let code = wait_child(&mut child, Duration::from_secs(60));
    let report = output(child, &rx);
    assert_ne!(code, 0, "{report}");
    assert!(report.contains("connection"), "{report}");

    // The old generation (none): nothing switched, no journal, no temp files.
    assert_eq!(
        t.ssh("test -e /var/lib/provision/current || test -e /var/lib/provision/switching || test -e /opt/big.bin || test -e /etc/systemd/system/agent-alpha.service").status.code(),
        Some(1)
    );
    no_leftovers(&t);

    // Running again converges.
    f.run(&["apply", "--yes"]).expect(0);
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");
    assert_eq!(t.sh("wc -c < /opt/big.bin"), (96 << 20).to_string());
    f.run(&["plan", "--detailed-exitcode"]).expect(0);
}

/// An `unreachable` route for a test subnet, removed when dropped: while a
/// test's link is down, nothing to that subnet follows the default route.
struct Unreachable(String);

impl Unreachable {
    fn add(net: &str) -> Self {
        let ok = Command::new("ip")
            .args(["route", "add", "unreachable", net, "metric", "4000"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot add an unreachable route for {net}");
        Unreachable(net.to_string())
    }
}

impl Drop for Unreachable {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["route", "del", "unreachable", &self.0, "metric", "4000"])
            .status();
    }
}

/// A test's link taken down, brought back up when dropped.
struct LinkDown(String);

impl LinkDown {
    fn take(link: &str) -> Self {
        let ok = Command::new("ip")
            .args(["link", "set", link, "down"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot take {link} down");
        LinkDown(link.to_string())
    }
}

impl Drop for LinkDown {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "set", &self.0, "up"])
            .status();
    }
}

/// The ssh processes of provision's runs to `t`.
fn ssh_pids(t: &nspawn::Target) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-f", &format!("@{}( |$)", t.addr.replace('.', "\\."))])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn signal(pids: &[String], sig: &str) {
    for pid in pids {
        let _ = Command::new("kill").args([sig, pid]).status();
    }
}

/// Holds provision's upload to `t` half-way: stops its ssh processes (the
/// connections stay open and silent) at a moment the host is receiving the
/// contents, seen as a partial file in its store's incoming directory.
/// Bounded tries; returns the stopped processes.
fn hold_mid_upload(t: &nspawn::Target) -> Vec<String> {
    for _ in 0..200 {
        let pids = ssh_pids(t);
        signal(&pids, "-STOP");
        if !pids.is_empty()
            && t.sh("ls -A /var/lib/provision/store/.incoming 2>/dev/null | wc -l") != "0"
        {
            return pids;
        }
        signal(&pids, "-CONT");
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the upload was never caught half-way");
}

/// The size of `big_upload`'s file.
const BIG: usize = 256 << 20;

/// A fleet whose apply uploads a 256 MiB file (random bytes: they do not
/// compress), so that an upload lasts long enough to be interrupted.
fn big_upload(test: &str) -> Option<(nspawn::Target, Fleet)> {
    let body = agent("alpha", "") + "\n    file \"/opt/big.bin\" source=\"big.bin\" mode=0o644";
    let (t, f) = setup(test, &body)?;
    let mut big = vec![0u8; BIG];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(f.path().join("big.bin"), &big).unwrap();
    Some((t, f))
}

/// The host ended the stalled apply session: its lock is free, and nothing
/// of the upload is left.
fn session_ended(t: &nspawn::Target) {
    assert_eq!(
        t.sh("flock -n /var/lib/provision/lock true && echo free || echo held"),
        "free"
    );
    assert_eq!(
        t.sh("ls -A /var/lib/provision/store | grep -c '^\\.in' || true; test -e /var/lib/provision/incoming && echo incoming || true"),
        "0"
    );
    assert!(
        t.sh("journalctl -t provision --no-pager -q")
            .contains("no input for 20 s, the connection is gone"),
        "the host did not say why it ended the session"
    );
}

/// The operator's machine stops answering mid-upload (a suspended laptop:
/// its TCP connection stays open and says nothing). The host ends the
/// session by itself within 30 s, the lock is free, no partial upload is
/// left, and the next apply proceeds.
#[test]
fn a_stalled_operator_does_not_hold_the_lock() {
    let Some((t, f)) = big_upload("stall") else {
        return;
    };
    let (mut child, rx) = f.spawn(&["apply", "--yes"]);
    wait_line(&rx, "uploading", Duration::from_secs(60));
    // Stop (not kill) every ssh process talking to this target: the
    // connections stay open and silent.
    let pids = hold_mid_upload(&t);
    let stopped = Instant::now();
    // Bounded poll over a connection of the test's own.
    t.wait_for(
        "flock -n /var/lib/provision/lock true",
        Duration::from_secs(40),
    );
    let held = stopped.elapsed();
    eprintln!("the lock outlived the stalled operator by {held:?}");
    assert!(held < Duration::from_secs(30), "{held:?}");
    session_ended(&t);
    signal(&pids, "-KILL");
    let _ = child.kill();
    let _ = child.wait();
    f.run(&["apply", "--yes"]).expect(0);
    assert_eq!(t.sh("wc -c < /opt/big.bin"), BIG.to_string());
}

/// A hand edit on the host while the contents are uploaded (the upload
/// held for a moment, so the edit lands in it) refuses the apply naming the
/// path: the staleness check runs again after the upload, right before the
/// switch. Nothing switches, nothing of the upload is left.
#[test]
fn a_hand_edit_during_the_upload_refuses_the_apply() {
    let Some((t, f)) = big_upload("editup") else {
        return;
    };
    let (mut child, rx) = f.spawn(&["apply", "--yes"]);
    wait_line(&rx, "uploading", Duration::from_secs(60));
    let pids = hold_mid_upload(&t);
    t.sh("mkdir -p /opt && echo by-hand > /opt/big.bin");
    signal(&pids, "-CONT");
    let code = wait_child(&mut child, Duration::from_secs(90));
    let report = output(child, &rx);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("/opt/big.bin changed on the host since the plan was made (while its contents were uploaded)"),
        "{report}"
    );
    assert_eq!(t.sh("cat /opt/big.bin"), "by-hand");
    assert_eq!(
        t.ssh("test -e /var/lib/provision/current || test -e /var/lib/provision/switching")
            .status
            .code(),
        Some(1)
    );
    no_leftovers(&t);
}

/// The link drops silently mid-upload (the target's interface goes down:
/// no FIN, no RST), for longer than the host waits. First an `unreachable`
/// route for the target's subnet, so nothing is routed off this machine
/// while the link is down. The host ends the session by itself, the
/// operator's run fails saying the connection was lost, and once the link
/// is back the next apply succeeds with nothing of the first left.
#[test]
fn a_silent_link_drop_does_not_hold_the_lock() {
    let Some((t, f)) = big_upload("linkdrop") else {
        return;
    };
    let net = format!("10.213.{}.0/24", t.idx());
    let link = format!("pvh-{}", t.idx());
    let route = Unreachable::add(&net);
    let (mut child, rx) = f.spawn(&["apply", "--yes"]);
    wait_line(&rx, "uploading", Duration::from_secs(60));
    // Half-way through the upload, the link goes; the operator's side goes
    // on sending into it.
    let held = hold_mid_upload(&t);
    let down = LinkDown::take(&link);
    signal(&held, "-CONT");
    let dropped = Instant::now();
    let code = wait_child(&mut child, Duration::from_secs(90));
    let failed_after = dropped.elapsed();
    let report = output(child, &rx);
    // Longer than the host's 20 s, so its watchdog is what ends the session.
    std::thread::sleep(Duration::from_secs(25).saturating_sub(dropped.elapsed()));
    drop(down);
    drop(route);
    eprintln!("the operator's run ended {failed_after:?} after the drop");
    assert_ne!(code, 0, "{report}");
    assert!(report.contains("connection"), "{report}");
    t.wait_for(
        "flock -n /var/lib/provision/lock true",
        Duration::from_secs(20),
    );
    session_ended(&t);
    f.run(&["apply", "--yes"]).expect(0);
    assert_eq!(t.sh("wc -c < /opt/big.bin"), BIG.to_string());
}

#[test]
fn connection_cut_during_switch_completes_on_the_host() {
    let Some((t, f)) = setup("cutsw", &slow_agent(4)) else {
        return;
    };
    let (mut child, rx) = f.spawn(&["apply", "--yes"]);
    wait_line(&rx, "switching to generation 1", Duration::from_secs(60));
    t.wait_for(
        "test -e /var/lib/provision/switching/ops",
        Duration::from_secs(20),
    );
    cut(&t);
    let code = wait_child(&mut child, Duration::from_secs(60));
    assert_ne!(code, 0);

    // The job goes on without the connection and finishes the switch.
    t.wait_for(
        "test ! -e /var/lib/provision/switching",
        Duration::from_secs(60),
    );
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
    assert_eq!(t.sh("cat /var/lib/provision/generations/1.status"), "ok");
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");
    no_leftovers(&t);
    let again = f.run(&["apply", "--yes"]).expect(0);
    assert!(again.stdout.contains("No changes"), "{}", again.all());
}

#[test]
fn a_switch_killed_half_way_is_finished_by_the_next_apply() {
    let Some((t, f)) = setup("resume", &slow_agent(4)) else {
        return;
    };
    let (mut child, rx) = f.spawn(&["apply", "--yes"]);
    wait_line(&rx, "switching to generation 1", Duration::from_secs(60));
    // Phase 2 has begun (files renamed, units starting): kill the job, as a
    // power cut would.
    t.wait_for(
        "grep -q prepared /var/lib/provision/switching/log",
        Duration::from_secs(20),
    );
    // The main process only: a signal to a process that is exiting at that
    // moment makes `systemctl kill` report an error for the whole group.
    let unit = t.sh("cat /var/lib/provision/switching/unit");
    assert!(unit.starts_with("provision-switch-1-"), "{unit}");
    let _ = t.ssh(&format!(
        "systemctl kill --kill-whom=main -s KILL {unit}.service"
    ));
    t.wait_for(
        &format!("! systemctl is-active --quiet {unit}.service"),
        Duration::from_secs(20),
    );
    let code = wait_child(&mut child, Duration::from_secs(60));
    assert_ne!(code, 0);
    let out = output(child, &rx);
    assert!(out.contains("stopped before it finished"), "{out}");
    assert_eq!(
        t.sh("test -e /var/lib/provision/switching/ops && echo pending"),
        "pending"
    );

    let plan = f.run(&["plan"]).expect(0);
    assert!(plan.stdout.contains("did not finish"), "{}", plan.stdout);
    let done = f.run(&["apply", "--yes"]).expect(0);
    assert!(
        done.stderr.contains("finishing the interrupted switch")
            || done.stdout.contains("No changes"),
        "{}",
        done.all()
    );
    assert_eq!(
        t.ssh("test -e /var/lib/provision/switching").status.code(),
        Some(1)
    );
    assert_eq!(t.sh("cat /var/lib/provision/generations/1.status"), "ok");
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");
    no_leftovers(&t);
    f.run(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_full_disk_fails_with_the_hosts_message_and_switches_nothing() {
    let body = agent("alpha", "") + "\n    file \"/opt/big.bin\" source=\"big.bin\" mode=0o644";
    let Some((t, f)) = setup("full", &body) else {
        return;
    };
    std::fs::write(f.path().join("big.bin"), vec![7u8; 1 << 20]).unwrap();
    t.sh("mkdir -p /var/lib/provision/store && mount -t tmpfs -o size=256k tmpfs /var/lib/provision/store",
    );
    let run = f.run(&["apply", "--yes"]).expect(1);
    assert!(
        run.all().contains("No space left on device"),
        "{}",
        run.all()
    );
    assert!(run.all().contains("nothing was switched"), "{}", run.all());
    assert_eq!(
        t.ssh("test -e /var/lib/provision/current || test -e /opt/big.bin || test -e /etc/systemd/system/agent-alpha.service").status.code(),
        Some(1)
    );
    no_leftovers(&t);

    t.sh("umount /var/lib/provision/store");
    f.run(&["apply", "--yes"]).expect(0);
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");
}

#[test]
fn a_second_apply_at_once_is_refused_naming_the_first() {
    let Some((t, f)) = setup("lock", &slow_agent(4)) else {
        return;
    };
    let (mut first, rx) = f.spawn(&["apply", "--yes"]);
    wait_line(&rx, "switching to generation 1", Duration::from_secs(60));
    t.wait_for(
        "test -e /var/lib/provision/switching/ops",
        Duration::from_secs(20),
    );
    let second = f.run(&["apply", "--yes"]).expect(1);
    let text = second.all();
    assert!(
        text.contains("another apply holds the host's lock"),
        "{text}"
    );
    assert!(text.contains(&format!("from {}", t.host_addr)), "{text}");
    assert!(text.contains(" since 20"), "{text}");
    assert_eq!(wait_child(&mut first, Duration::from_secs(60)), 0);
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
    assert_eq!(
        t.sh("ls /var/lib/provision/generations/ | grep -c json"),
        "1"
    );
}

/// Two applies at once, the first slow to verify (its agent warms up for
/// 8 s, its generation awaiting confirmation meanwhile): the second, with
/// `--lock-wait`, waits for the first's confirmation and then succeeds.
#[test]
fn a_second_apply_with_lock_wait_waits_for_the_first_to_be_confirmed() {
    let Some((t, f)) = setup("lockwait", &agent("alpha", "")) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    f.write(
        "agents/alpha.sh",
        "#!/bin/sh\n# v2\nsleep 8\nwhile :; do touch \"$PROVISION_HEARTBEAT\"; sleep 5; done\n",
    );
    let (mut first, rx) = f.spawn(&["apply", "--yes", "--confirm-timeout", "60"]);
    wait_line(&rx, "verifying generation 2", Duration::from_secs(60));
    assert_eq!(
        t.sh("systemctl is-active provision-deadman.timer"),
        "active"
    );
    // A change of its own, planned while the first awaits confirmation.
    f.agent_script("alpha", "v3");
    let second = f.run(&["apply", "--yes", "--lock-wait", "90"]);
    assert_eq!(wait_child(&mut first, Duration::from_secs(90)), 0);
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/3.json"
    );
    assert!(t.sh("cat /opt/agents/alpha/run.sh").contains("# v3"));
}

#[test]
fn an_unreachable_host_among_several_is_reported_and_the_others_applied() {
    let Some((t, f)) = setup("reach", &agent("alpha", "")) else {
        return;
    };
    // Nothing listens on port 1 of the test's own target: refused at once.
    f.host(
        "gone",
        &format!("root@{}", t.addr),
        1,
        &t.host_key,
        &agent("alpha", ""),
    );
    let run = f.run(&["apply", "--yes"]).expect(4);
    assert!(
        run.all().contains("gone: cannot reach the host"),
        "{}",
        run.all()
    );
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");
    let json = f.run(&["plan", "--json"]).expect(4);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    // In the order of names; the failure typed, the other host planned.
    assert_eq!(v["hosts"][0]["host"], "gone");
    assert_eq!(v["hosts"][0]["ok"], false);
    assert_eq!(v["hosts"][0]["error"]["kind"], "unreachable");
    assert_eq!(v["hosts"][1]["host"], "t");
    assert_eq!(v["hosts"][1]["ok"], true);
    assert_eq!(v["hosts"][1]["plan"]["host"], "t");
}

#[test]
fn a_wrong_host_key_is_refused_before_anything_runs() {
    let Some((t, f)) = setup("hostkey", "") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let other = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        other.trim(),
        &agent("alpha", ""),
    );
    let run = f.run(&["apply", "--yes"]).expect(1);
    assert!(run.all().contains("does not match"), "{}", run.all());
    assert!(run.all().contains("SHA256:"), "{}", run.all());
    assert_eq!(t.ssh("test -e /var/lib/provision").status.code(), Some(1));
}

#[test]
fn without_a_confirmation_the_host_switches_back_by_itself() {
    let Some((t, f)) = setup("deadman", &agent("alpha", "")) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    assert_eq!(
        t.sh("systemctl is-active provision-deadman.timer || true"),
        "inactive"
    );

    // Generation 2 never beats; provision dies while it waits for the
    // heartbeat, so no confirmation is ever sent.
    f.write("agents/alpha.sh", "#!/bin/sh\nexec sleep infinity\n");
    // Its deadline: the 5 s heartbeat wait, 30 s of margin, then 6 s.
    let (mut child, rx) = f.spawn(&[
        "apply",
        "--yes",
        "--confirm-timeout",
        "6",
        "--heartbeat-timeout",
        "5",
    ]);
    wait_line(&rx, "verifying generation 2", Duration::from_secs(60));
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/2.json"
    );
    assert_eq!(
        t.sh("systemctl is-active provision-deadman.timer"),
        "active"
    );
    // Unconfirmed, and everything says so.
    let status = f.run(&["status"]);
    assert!(
        status.stdout.contains(
            "generation 2 is not confirmed yet: the dead-man switch goes back to generation 1"
        ),
        "{}",
        status.all()
    );
    let gens = f.run(&["generations", "t"]).expect(0);
    assert!(
        gens.stdout.contains("(current, not confirmed yet)"),
        "{}",
        gens.stdout
    );
    let plan = f.run(&["plan"]);
    assert!(
        plan.stdout.contains("generation 2 awaits its confirmation"),
        "{}",
        plan.all()
    );
    let _ = child.kill();
    let _ = child.wait();
    cut(&t);

    t.wait_for(
        "test \"$(readlink /var/lib/provision/current)\" = generations/1.json",
        Duration::from_secs(70),
    );
    t.wait_for(
        "test ! -e /var/lib/provision/switching",
        Duration::from_secs(30),
    );
    assert!(
        t.sh("cat /opt/agents/alpha/run.sh")
            .contains("PROVISION_HEARTBEAT")
    );
    assert!(
        t.sh("cat /var/lib/provision/last-switch")
            .contains("no confirmation")
    );
    // The generation that was reverted says so, with when.
    let gens = f.run(&["generations", "t"]).expect(0);
    assert!(
        gens.stdout.contains("reverted at 20")
            && gens
                .stdout
                .contains("no confirmation arrived; the dead-man switch went back to generation 1"),
        "{}",
        gens.stdout
    );
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");
    f.agent_script("alpha", "v3");

    // A confirmed apply disarms it: nothing is left to switch back.
    let ok = f
        .run(&["apply", "--yes", "--confirm-timeout", "15"])
        .expect(0);
    assert!(
        ok.stdout.contains("confirmed the generation"),
        "{}",
        ok.stdout
    );
    assert_eq!(
        t.sh("systemctl is-active provision-deadman.timer provision-deadman-retry.timer || true; test -e /var/lib/provision/deadman && echo armed || echo none"),
        "inactive\ninactive\nnone"
    );
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/3.json"
    );
}

/// The operator's process is killed (kill -9) right after the switch, while
/// it verifies: every command shows the generation as unconfirmed, and the
/// next apply, with nothing to change, verifies and confirms it, so the
/// dead-man switch never undoes a healthy generation.
#[test]
fn an_apply_confirms_a_generation_its_killed_operator_left_unconfirmed() {
    let Some((t, f)) = setup("settle", &agent("alpha", "")) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    f.agent_script("alpha", "v2");
    // Its deadline: 5 s heartbeat wait, the 10 s window, 30 s, then 20 s.
    let (mut child, rx) = f.spawn(&[
        "apply",
        "--yes",
        "--confirm-timeout",
        "20",
        "--heartbeat-timeout",
        "5",
    ]);
    wait_line(&rx, "verifying generation 2", Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    cut(&t);
    assert_eq!(
        t.sh("systemctl is-active provision-deadman.timer"),
        "active"
    );
    let plan = f.run(&["plan"]);
    assert!(
        plan.stdout.contains("generation 2 awaits its confirmation")
            && plan
                .stdout
                .contains("`provision apply` verifies and confirms it"),
        "{}",
        plan.all()
    );
    let gens = f.run(&["generations", "t"]).expect(0);
    assert!(
        gens.stdout.contains("(current, not confirmed yet)"),
        "{}",
        gens.stdout
    );
    let verify = f.run(&["verify"]).expect(3);
    assert!(
        verify.stdout.contains(
            "generation 2 is not confirmed yet: the dead-man switch goes back to generation 1"
        ),
        "{}",
        verify.all()
    );

    // The killed run's verification may still run on the host (until its
    // own bound): the next apply waits for it rather than confirming under
    // it, then verifies every agent and confirms.
    let done = f.run(&["apply", "--yes", "--lock-wait", "40"]).expect(0);
    assert!(
        done.stdout.contains(
            "t confirmed generation 2, which an earlier run switched to and left unconfirmed"
        ) && done.stdout.contains("heartbeat alpha")
            && done.stdout.contains("confirmed the generation")
            && done.stdout.contains("1 confirmed"),
        "{}",
        done.all()
    );
    assert_eq!(
        t.sh("systemctl is-active provision-deadman.timer provision-deadman-retry.timer || true; test -e /var/lib/provision/deadman && echo armed || echo none"),
        "inactive\ninactive\nnone"
    );
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/2.json"
    );
    let gens = f.run(&["generations", "t"]).expect(0);
    assert!(!gens.stdout.contains("not confirmed"), "{}", gens.stdout);
    // Confirmed now, the next apply has nothing to do.
    let again = f.run(&["apply", "--yes"]).expect(0);
    assert!(again.stdout.contains("No changes"), "{}", again.all());
}

/// A switch back that cannot switch (the previous generation's content is
/// missing from the store) leaves the dead-man switch armed: it tries again
/// every minute, and switches back once it can.
#[test]
fn a_dead_man_switch_that_could_not_switch_back_tries_again() {
    let Some((t, f)) = setup("deadretry", &agent("alpha", "")) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    f.write("agents/alpha.sh", "#!/bin/sh\nexec sleep infinity\n");
    let (mut child, rx) = f.spawn(&[
        "apply",
        "--yes",
        "--confirm-timeout",
        "8",
        "--heartbeat-timeout",
        "5",
    ]);
    wait_line(&rx, "verifying generation 2", Duration::from_secs(60));
    // The content generation 1's run.sh goes back to, held aside.
    let blob = "/var/lib/provision/store/$(awk -F '\\t' '$1 == \"write\" && $6 == \"/opt/agents/alpha/run.sh\" { print $2 }' /var/lib/provision/deadman/ops)";
    t.sh(&format!("mv {blob} /root/held-blob"));
    let _ = child.kill();
    let _ = child.wait();
    cut(&t);

    t.wait_for(
        "test \"$(cat /var/lib/provision/deadman/tries 2>/dev/null)\" = 1",
        Duration::from_secs(80),
    );
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/2.json"
    );
    assert!(
        t.sh("head -n 1 /var/lib/provision/last-switch")
            .starts_with("aborted 1:"),
        "{}",
        t.sh("cat /var/lib/provision/last-switch")
    );
    assert_eq!(
        t.sh("systemctl is-active provision-deadman-retry.timer"),
        "active"
    );
    // Generation 2's files are all still in place: nothing half-way.
    assert!(
        t.sh("cat /opt/agents/alpha/run.sh")
            .contains("sleep infinity")
    );

    t.sh(&format!("mv /root/held-blob {blob}"));
    t.wait_for(
        "test \"$(readlink /var/lib/provision/current)\" = generations/1.json && test ! -e /var/lib/provision/deadman",
        Duration::from_secs(90),
    );
    assert!(
        t.sh("cat /opt/agents/alpha/run.sh")
            .contains("PROVISION_HEARTBEAT")
    );
    assert_eq!(
        t.sh("systemctl is-active provision-deadman-retry.timer || true"),
        "inactive"
    );
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");
}

/// The operator's machine stops during verification (a suspended laptop)
/// for longer than the dead-man switch waits: the host goes back by itself,
/// and the confirmation that comes when the machine wakes says it came too
/// late instead of reporting a confirmed generation.
#[test]
fn a_confirmation_after_the_dead_man_switch_fired_is_reported_too_late() {
    let Some((t, f)) = setup("late", &agent("alpha", "")) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    // Generation 2 beats after 4 s; its deadline: 5 + 30 + 1 s.
    f.write(
        "agents/alpha.sh",
        "#!/bin/sh\nsleep 4\nwhile :; do touch \"$PROVISION_HEARTBEAT\"; sleep 5; done\n",
    );
    let (mut child, rx) = f.spawn(&[
        "apply",
        "--yes",
        "--confirm-timeout",
        "1",
        "--heartbeat-timeout",
        "5",
    ]);
    wait_line(&rx, "verifying generation 2", Duration::from_secs(60));
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-STOP", &pid]).status();
    let woke = wait_for_ok(
        &t,
        "test \"$(readlink /var/lib/provision/current)\" = generations/1.json",
        Duration::from_secs(70),
    );
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    assert!(woke, "the dead-man switch did not switch back");
    let code = wait_child(&mut child, Duration::from_secs(90));
    let late = output(child, &rx);
    assert_ne!(code, 0, "{late}");
    assert!(
        late.contains("could not confirm the generation") && late.contains("too late"),
        "{late}"
    );
    assert_eq!(
        t.sh("test -e /var/lib/provision/deadman && echo armed || echo none"),
        "none"
    );
}

/// An agent that warms up for over a minute before its first beat, with a
/// `verify-timeout` to match: the apply waits for it, confirms it, and the
/// dead-man switch (whose deadline covers the whole verification) never
/// fires under it.
#[test]
fn a_long_warm_up_is_confirmed_not_reverted() {
    let Some((t, f)) = setup(
        "warmup",
        &agent("alpha", "").replace(
            r#"heartbeat every="1m""#,
            r#"heartbeat verify-timeout="100s" every="1m""#,
        ),
    ) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    f.write(
        "agents/alpha.sh",
        "#!/bin/sh\n# v2\nsleep 65\nwhile :; do touch \"$PROVISION_HEARTBEAT\"; sleep 5; done\n",
    );
    let started = Instant::now();
    let applied = f.run(&["apply", "--yes"]).expect(0);
    eprintln!(
        "a 65 s warm-up applied and confirmed in {:?}",
        started.elapsed()
    );
    assert!(
        applied.stdout.contains("confirmed the generation"),
        "{}",
        applied.all()
    );
    assert!(started.elapsed() > Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(20));
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/2.json"
    );
    assert_eq!(
        t.sh("systemctl is-active provision-deadman.timer || true"),
        "inactive"
    );
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");
}

#[test]
fn a_change_that_locks_out_ssh_is_switched_back() {
    let Some((t, f)) = setup("lockout", "") else {
        return;
    };
    // The operator manages root's authorized_keys; generation 2 gets the key
    // wrong. The open connection survives; a new one is refused.
    let key = std::fs::read_to_string(t.identity.with_extension("pub")).unwrap();
    let keys = |line: &str| {
        agent("alpha", "")
            + &format!(
                "\n    file \"/root/.ssh/authorized_keys\" content=\"{}\\n\" mode=0o600",
                line.trim()
            )
    };
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        &t.host_key,
        &keys(&key),
    );
    f.run(&["apply", "--yes"]).expect(0);
    let wrong = key.replace("AAAA", "AAAB");
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        &t.host_key,
        &keys(&wrong),
    );
    let run = f.run(&["apply", "--yes"]).expect(3);
    let text = run.all();
    assert!(text.contains("FAIL ssh"), "{text}");
    assert!(text.contains("switched back to generation 1"), "{text}");
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
    assert_eq!(t.sh("cat /root/.ssh/authorized_keys"), key.trim());
}

/// What the boot does (`provision-boot.service`, ordered before every agent
/// unit): a switch interrupted by a crash is finished before the agents
/// start. The boot is stood in for by running the unit's program as it runs
/// at boot; the ordering is checked on the units.
#[test]
fn an_interrupted_switch_is_finished_at_boot_before_the_agents_start() {
    let Some((t, f)) = setup("bootfin", &agent("alpha", "")) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    assert!(
        t.sh("systemctl show -p After --value agent-alpha.service")
            .contains("provision-boot.service"),
        "the agent is not ordered after provision-boot"
    );
    assert_eq!(
        t.sh("systemctl is-enabled provision-boot.service"),
        "enabled"
    );
    // Generation 2 starts slowly; its switch job is killed half-way.
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        &t.host_key,
        &slow_agent(4),
    );
    f.agent_script("alpha", "v2");
    let (mut child, rx) = f.spawn(&["apply", "--yes", "--no-verify"]);
    wait_line(&rx, "switching to generation 2", Duration::from_secs(60));
    t.wait_for(
        "grep -q prepared /var/lib/provision/switching/log",
        Duration::from_secs(20),
    );
    let unit = t.sh("cat /var/lib/provision/switching/unit");
    let _ = t.ssh(&format!(
        "systemctl kill --kill-whom=main -s KILL {unit}.service"
    ));
    t.wait_for(
        &format!("! systemctl is-active --quiet {unit}.service"),
        Duration::from_secs(20),
    );
    let _ = wait_child(&mut child, Duration::from_secs(60));
    // As after a crash: the agent is down, the journal is pending.
    t.sh("systemctl stop agent-alpha.service");
    assert_eq!(
        t.sh("test -e /var/lib/provision/switching/ops && echo pending"),
        "pending"
    );
    let said = t.sh("PROVISION_BOOT_FORCE=yes /usr/local/lib/provision/boot");
    assert!(
        said.contains("finishing the interrupted switch to generation 2"),
        "{said}"
    );
    assert_eq!(
        t.ssh("test -e /var/lib/provision/switching").status.code(),
        Some(1)
    );
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/2.json"
    );
    assert!(t.sh("cat /opt/agents/alpha/run.sh").contains("# v2"));
    t.wait_for(
        "systemctl is-active --quiet agent-alpha.service",
        Duration::from_secs(30),
    );
    f.run(&["plan", "--detailed-exitcode"]).expect(0);
}

/// The host restarts while a generation awaits its confirmation (the
/// dead-man switch's timer does not survive a restart): the boot switches
/// back, as the dead-man switch would have, before the agents start, and
/// `generations` says so.
#[test]
fn a_restart_before_the_confirmation_switches_back_at_boot() {
    let Some((t, f)) = setup("bootback", &agent("alpha", "")) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    f.write("agents/alpha.sh", "#!/bin/sh\nexec sleep infinity\n");
    let (mut child, rx) = f.spawn(&["apply", "--yes", "--heartbeat-timeout", "60"]);
    wait_line(&rx, "verifying generation 2", Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    cut(&t);
    // What a restart leaves: the dead-man switch's state, no timer.
    t.sh("systemctl stop provision-deadman.timer; systemctl stop agent-alpha.service");
    let said = t.sh("PROVISION_BOOT_FORCE=yes /usr/local/lib/provision/boot");
    assert!(
        said.contains(
            "the host restarted before its generation was confirmed: switching back to generation 1"
        ),
        "{said}"
    );
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
    assert!(
        t.sh("cat /opt/agents/alpha/run.sh")
            .contains("PROVISION_HEARTBEAT")
    );
    assert_eq!(
        t.sh("test -e /var/lib/provision/deadman && echo armed || echo none"),
        "none"
    );
    assert!(
        t.sh("cat /var/lib/provision/generations/2.status")
            .starts_with("reverted at 20"),
        "{}",
        t.sh("cat /var/lib/provision/generations/2.status")
    );
}

/// 60 small files, each holding `marker`: enough renames that a power loss
/// can land among them.
fn many_files(marker: &str) -> String {
    (0..60)
        .map(|i| format!("    file \"/opt/many/f{i:02}\" content=\"{marker}\\n\" mode=0o644\n"))
        .collect()
}

/// The power goes while the switch renames files (the container's PID 1 is
/// killed, so nothing inside finishes), with some files new and the others
/// old; the host boots. Before any agent starts, the boot unit finishes the
/// switch from its journal and, since nothing verified or confirmed it,
/// switches back to the confirmed generation: the agents start on one whole
/// generation, and the next apply goes again.
#[test]
fn a_power_loss_during_the_renames_boots_into_one_whole_generation() {
    let Some((t, f)) = setup("power", &(agent("alpha", "") + "\n" + &many_files("v1"))) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        &t.host_key,
        &(agent("alpha", "") + "\n" + &many_files("v2")),
    );
    f.agent_script("alpha", "v2");
    // On the target: as soon as the first file is new, freeze the switch job
    // (bounded: gives up after 60 s).
    t.sh(
        "nohup sh -c 'i=0; while [ $i -lt 6000 ]; do \
           if grep -lqx v2 /opt/many/f* 2>/dev/null; then \
             u=$(cat /var/lib/provision/switching/unit); \
             systemctl kill -s STOP --kill-whom=all \"$u.service\"; echo frozen >/run/frozen; exit 0; \
           fi; i=$((i + 1)); sleep 0.01; done' >/dev/null 2>&1 &",
    );
    let (mut child, rx) = f.spawn(&["apply", "--yes"]);
    wait_line(&rx, "switching to generation 2", Duration::from_secs(60));
    t.wait_for("test -e /run/frozen", Duration::from_secs(60));
    let new = t
        .sh("grep -lx v2 /opt/many/f* | wc -l")
        .parse::<u32>()
        .unwrap();
    eprintln!("the power goes with {new} of 60 files new");
    assert!(
        (1..60).contains(&new),
        "{new} of 60 files were new: no mix to recover from"
    );
    t.powercycle().unwrap_or_else(|e| panic!("{e}"));
    let _ = wait_child(&mut child, Duration::from_secs(60));

    // One whole generation: the switch was never verified nor confirmed,
    // so the boot finishes it from its journal and then switches back to the
    // confirmed generation, as the dead-man switch would have; the agent
    // starts only once the boot unit settled the host.
    assert_eq!(t.sh("grep -lx v1 /opt/many/f* | wc -l"), "60");
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
    assert!(t.sh("cat /opt/agents/alpha/run.sh").contains("# v1"));
    assert_eq!(
        t.ssh("test -e /var/lib/provision/switching").status.code(),
        Some(1)
    );
    t.wait_for(
        "systemctl is-active --quiet agent-alpha.service",
        Duration::from_secs(30),
    );
    let settled: u64 = t
        .sh("systemctl show -p ActiveEnterTimestampMonotonic --value provision-boot.service")
        .parse()
        .unwrap();
    let started: u64 = t
        .sh("systemctl show -p ExecMainStartTimestampMonotonic --value agent-alpha.service")
        .parse()
        .unwrap();
    assert!(
        settled > 0 && started >= settled,
        "the agent started at {started} µs, before the boot unit settled the host at {settled} µs"
    );
    let said = t.sh("journalctl -b -u provision-boot.service -o cat --no-pager");
    assert!(
        said.contains("finishing the interrupted switch to generation 2")
            && said.contains("switching back to generation 1"),
        "{said}"
    );
    // Everything says what happened, and the next apply goes again.
    let gens = f.run(&["generations", "t"]).expect(0);
    assert!(gens.stdout.contains("reverted at 20"), "{}", gens.stdout);
    f.run(&["plan", "--detailed-exitcode"]).expect(2);
    let done = f.run(&["apply", "--yes"]).expect(0);
    assert!(
        done.stdout.contains("confirmed the generation"),
        "{}",
        done.all()
    );
    assert_eq!(t.sh("grep -lx v2 /opt/many/f* | wc -l"), "60");
}

/// A five-second outage of the link while the checks run: the connection
/// outlives it (keep-alives give up only after 15 s of silence), the checks
/// finish, and the good generation is confirmed, not switched back.
#[test]
fn a_network_blip_during_verification_does_not_switch_back() {
    let Some((t, f)) = setup("blip", &agent("alpha", "")) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    // Generation 2's agent gives its readiness beat after 8 s.
    f.write(
        "agents/alpha.sh",
        "#!/bin/sh\n# v2\nsleep 8\nwhile :; do touch \"$PROVISION_HEARTBEAT\"; sleep 5; done\n",
    );
    let net = format!("10.213.{}.0/24", t.idx());
    let link = format!("pvh-{}", t.idx());
    let (mut child, rx) = f.spawn(&["apply", "--yes"]);
    wait_line(&rx, "verifying generation 2", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    {
        let _route = Unreachable::add(&net);
        let _down = LinkDown::take(&link);
        std::thread::sleep(Duration::from_secs(5));
    }
    let code = wait_child(&mut child, Duration::from_secs(120));
    let report = output(child, &rx);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("confirmed the generation"), "{report}");
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/2.json"
    );
    assert_eq!(
        t.sh("systemctl is-active provision-deadman.timer || true"),
        "inactive"
    );
}

/// The link drops silently while the checks run and stays down longer
/// than the client's keep-alives: the operator is told the host could not
/// be reached and that it switches back by itself; with the link back, the
/// dead-man switch has taken it to the old generation, and `generations`
/// says so.
#[test]
fn a_link_drop_during_verification_ends_at_the_old_generation_and_says_so() {
    let Some((t, f)) = setup("vdrop", &agent("alpha", "")) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    // Generation 2's agent gives its readiness beat after 20 s, so the link
    // goes while the checks wait.
    f.write(
        "agents/alpha.sh",
        "#!/bin/sh\n# v2\nsleep 20\nwhile :; do touch \"$PROVISION_HEARTBEAT\"; sleep 5; done\n",
    );
    let net = format!("10.213.{}.0/24", t.idx());
    let link = format!("pvh-{}", t.idx());
    // Its deadline: 30 s heartbeat wait, the 10 s window, 30 s, then 5 s.
    let (mut child, rx) = f.spawn(&[
        "apply",
        "--yes",
        "--heartbeat-timeout",
        "30",
        "--confirm-timeout",
        "5",
    ]);
    wait_line(&rx, "verifying generation 2", Duration::from_secs(60));
    let switched = Instant::now();
    let report = {
        let _route = Unreachable::add(&net);
        let _down = LinkDown::take(&link);
        let code = wait_child(&mut child, Duration::from_secs(120));
        let report = output(child, &rx);
        assert_ne!(code, 0, "{report}");
        report
    };
    assert!(
        report.contains("generation 2 failed verification")
            && report.contains("the host switches back to generation 1 by itself"),
        "{report}"
    );
    // Past the dead-man deadline (75 s from the switch), the host is back.
    std::thread::sleep(Duration::from_secs(80).saturating_sub(switched.elapsed()));
    t.wait_for(
        "test \"$(readlink /var/lib/provision/current)\" = generations/1.json",
        Duration::from_secs(60),
    );
    assert!(t.sh("cat /opt/agents/alpha/run.sh").contains("# v1"));
    let gens = f.run(&["generations", "t"]).expect(0);
    assert!(gens.stdout.contains("reverted at 20"), "{}", gens.stdout);
    f.run(&["plan", "--detailed-exitcode"]).expect(2);
}
