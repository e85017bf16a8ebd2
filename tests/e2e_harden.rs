//! `onboard --harden-ssh` against real Debian targets (systemd as PID 1,
//! OpenSSH's sshd): with a deploy user, root and password login end, the
//! fleet goes on through the deploy user, the guard is gone and a second
//! onboard changes nothing; an operator killed between the reload and the
//! confirming login gets the old configuration back from the guard, and
//! the next onboard hardens again; a configuration `sshd -t` refuses, or an
//! sshd_config that does not include the drop-ins, is refused with sshd's
//! words and the fix, nothing changed; a fleet that logs in as root keeps
//! root login by key.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_harden::NAME: <reason>`.

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

const DROP_IN: &str = "/etc/ssh/sshd_config.d/00-provision-harden.conf";
const GUARD_DIR: &str = "/var/lib/provision/onboard/ssh-guard";

/// Boots a fresh target and writes a repository whose module `hello`
/// carries an agent, journal caps and an alert path (no host yet).
fn setup(test: &str) -> Option<(nspawn::Target, Fleet)> {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_harden::{test}: {reason}");
        return None;
    }
    let t = nspawn::Target::boot(test).unwrap_or_else(|e| panic!("boot: {e}"));
    let f = Fleet::new();
    f.agent_script("hello", "v1");
    f.write(
        "modules/hello/module.kdl",
        &format!(
            "journald max-use=\"50M\" keep-free=\"100M\" retention=\"3d\"\n\
             alert \"log\" command=\"logger -t provision-alert \\\"$ALERT_MESSAGE\\\"\"\n{}\n",
            agent("hello", "")
        ),
    );
    Some((t, f))
}

/// onboard's arguments for `dest`, with `extra` after them.
fn onboard_args(t: &nspawn::Target, dest: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "onboard",
        dest,
        "--name",
        "box",
        "--ssh-key",
        &t.identity.display().to_string(),
        "--expect-fingerprint",
        &t.fingerprint(),
        "--yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Runs `cmd` as root through the deploy user's login and sudo (root's own
/// login is closed once hardened); panics when it fails.
fn as_deploy(t: &nspawn::Target, cmd: &str) -> String {
    let mut c = Command::new("ssh");
    c.args(t.ssh_options())
        .arg(format!("deploy@{}", t.addr))
        .arg(format!("sudo -n sh -c {}", quote(cmd)));
    let out = nspawn::run_with_timeout(&mut c, nspawn::SSH_TIMEOUT);
    assert!(
        out.status.success(),
        "{cmd}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Password login on, as Ubuntu's cloud-init turns it on for a password
/// chosen at the provider: a drop-in that sorts after provision's.
fn cloud_init_passwords(t: &nspawn::Target) {
    t.sh(
        "printf 'PasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/50-cloud-init.conf && \
          systemctl reload ssh.service && sleep 1",
    );
    assert_eq!(
        t.sh("/usr/sbin/sshd -T | grep -i '^passwordauthentication '"),
        "passwordauthentication yes"
    );
}

/// Whether root logs in by key.
fn root_logs_in(t: &nspawn::Target) -> bool {
    t.ssh_timeout("true", Duration::from_secs(20))
        .status
        .success()
}

/// sshd's effective value of `keyword` (`sshd -T`), run through `run`.
fn effective(run: impl Fn(&str) -> String, keyword: &str) -> String {
    run(&format!("/usr/sbin/sshd -T | grep -i '^{keyword} '"))
}

#[test]
fn harden_ssh_closes_root_and_password_login_and_a_second_onboard_changes_nothing() {
    let Some((t, f)) = setup("harden") else {
        return;
    };
    cloud_init_passwords(&t);
    let dest = format!("root@{}", t.addr);
    let args = onboard_args(
        &t,
        &dest,
        &[
            "--deploy-user",
            "deploy",
            "--harden-ssh",
            "--module",
            "hello",
        ],
    );
    let started = Instant::now();
    let run = f.run(&strs(&args)).expect(0);
    eprintln!(
        "timing: onboard --harden-ssh {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        run.stderr.contains("PermitRootLogin no")
            && run
                .stderr
                .contains("the hardened sshd configuration is confirmed"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("Wrote hosts/box.kdl."), "{}", run.all());

    // Root by key is refused now; password and keyboard-interactive login
    // are off as sshd itself reports them; deploy gets in.
    assert!(!root_logs_in(&t), "root still logs in");
    let sh = |c: &str| as_deploy(&t, c);
    assert_eq!(
        effective(sh, "passwordauthentication"),
        "passwordauthentication no"
    );
    assert_eq!(
        effective(sh, "kbdinteractiveauthentication"),
        "kbdinteractiveauthentication no"
    );
    assert_eq!(effective(sh, "permitrootlogin"), "permitrootlogin no");
    assert_eq!(
        as_deploy(&t, &format!("stat -c '%a %U' {DROP_IN}")),
        "644 root"
    );
    // The guard is gone, and the step is recorded.
    assert_eq!(
        as_deploy(
            &t,
            &format!(
                "systemctl is-active provision-ssh-guard.timer || true; test -e {GUARD_DIR} && echo pending || echo settled"
            )
        ),
        "inactive\nsettled"
    );
    assert!(
        as_deploy(&t, "ls /var/lib/provision/onboard")
            .lines()
            .any(|l| l == "harden-ssh")
    );

    // The fleet goes on through deploy.
    f.run(&["plan", "box", "--detailed-exitcode"]).expect(0);
    f.run(&["verify", "box"]).expect(0);

    // Again: already in the fleet, nothing rewritten.
    let file = std::fs::read_to_string(f.path().join("hosts/box.kdl")).unwrap();
    let again = f.run(&strs(&args)).expect(0);
    assert!(
        again.stdout.contains("box is already in the fleet"),
        "{}",
        again.all()
    );
    // And an onboard that stopped before the file was written resumes as
    // deploy: the hardening is not done twice, sshd is not reloaded.
    std::fs::remove_file(f.path().join("hosts/box.kdl")).unwrap();
    let hups = || {
        as_deploy(
            &t,
            "journalctl -q --no-pager -u ssh.service | grep -c 'Received SIGHUP' || true",
        )
    };
    let before = hups();
    let resume = onboard_args(
        &t,
        &format!("deploy@{}", t.addr),
        &[
            "--deploy-user",
            "deploy",
            "--harden-ssh",
            "--module",
            "hello",
        ],
    );
    let resumed = f.run(&strs(&resume)).expect(0);
    assert!(
        resumed
            .stderr
            .contains("sshd was hardened by an earlier onboard"),
        "{}",
        resumed.all()
    );
    assert!(resumed.stdout.contains("No changes"), "{}", resumed.all());
    assert_eq!(hups(), before, "sshd was reloaded again");
    assert_eq!(
        std::fs::read_to_string(f.path().join("hosts/box.kdl")).unwrap(),
        file
    );
}

#[test]
fn the_guard_restores_sshd_when_the_operator_dies_before_confirming() {
    let Some((t, f)) = setup("harden-guard") else {
        return;
    };
    cloud_init_passwords(&t);
    let dest = format!("root@{}", t.addr);
    let guard = 20;
    let args = onboard_args(
        &t,
        &dest,
        &[
            "--deploy-user",
            "deploy",
            "--harden-ssh",
            "--harden-guard",
            &guard.to_string(),
        ],
    );
    let (mut child, rx) = f.spawn(&strs(&args));
    let seen = wait_line(
        &rx,
        "confirming with a fresh login",
        Duration::from_secs(120),
    );
    // The operator dies between the reload and the confirming login.
    child.kill().expect("kill onboard");
    let killed = Instant::now();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains("comes back in 20 s")),
        "{seen:#?}"
    );

    // The hardened configuration is in force, unconfirmed, its guard armed.
    let state = as_deploy(
        &t,
        &format!(
            "systemctl is-active provision-ssh-guard.timer; test -d {GUARD_DIR} && echo pending; \
             ls /var/lib/provision/onboard"
        ),
    );
    assert!(
        state.starts_with("active\npending\n") && !state.lines().any(|l| l == "harden-ssh"),
        "the kill came after the confirmation, or the guard is not armed:\n{state}"
    );
    assert!(!root_logs_in(&t), "root logs in under the hardened sshd");

    // Within the guard's time and some slack, root is back.
    let bound = Duration::from_secs(guard + 30);
    while !root_logs_in(&t) {
        assert!(
            killed.elapsed() < bound,
            "root cannot log in {bound:?} after the operator died"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "timing: root logs in again {:.1} s after the kill (guard {guard} s)",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(
        t.sh("/usr/sbin/sshd -T | grep -Ei '^(passwordauthentication|permitrootlogin) ' | sort"),
        "passwordauthentication yes\npermitrootlogin without-password",
        "the old settings (cloud-init's, the test image's) are back"
    );
    assert_eq!(
        t.sh(&format!(
            "test -e {DROP_IN} && echo drop-in; test -e {GUARD_DIR} && echo pending; \
             systemctl is-active provision-ssh-guard.timer || true; ls /var/lib/provision/onboard"
        )),
        "inactive\ndeploy-user-deploy\nharden-ssh-reverted\nprepared"
    );
    assert!(!f.path().join("hosts/box.kdl").exists());

    // The next onboard says so, hardens again and confirms.
    let rerun = f.run(&strs(&args)).expect(0);
    assert!(
        rerun.stderr.contains("undone by its guard")
            && rerun
                .stderr
                .contains("the hardened sshd configuration is confirmed"),
        "{}",
        rerun.all()
    );
    assert!(!root_logs_in(&t), "root still logs in");
    assert!(f.path().join("hosts/box.kdl").exists());
    assert_eq!(
        as_deploy(&t, "ls /var/lib/provision/onboard"),
        "deploy-user-deploy\nharden-ssh\nprepared"
    );
}

#[test]
fn a_configuration_sshd_refuses_changes_nothing_and_a_root_fleet_keeps_root_by_key() {
    let Some((t, f)) = setup("harden-refused") else {
        return;
    };
    let dest = format!("root@{}", t.addr);
    let args = onboard_args(&t, &dest, &["--harden-ssh"]);
    // A typo in a drop-in of the host's own, not yet loaded: the running
    // sshd is fine, a reload would not be.
    t.sh("printf 'PasswordAuthenticaton no\\n' > /etc/ssh/sshd_config.d/60-typo.conf");
    let pid = || t.sh("systemctl show -p MainPID --value ssh.service");
    let hups =
        || t.sh("journalctl -q --no-pager -u ssh.service | grep -c 'Received SIGHUP' || true");
    let (pid_before, hups_before) = (pid(), hups());
    let refused = f.run(&strs(&args)).expect(1);
    assert!(
        refused
            .stderr
            .contains("sshd -t refuses this host's sshd configuration, before any change")
            && refused.stderr.contains("60-typo.conf")
            && refused
                .stderr
                .contains("Bad configuration option: PasswordAuthenticaton"),
        "{}",
        refused.all()
    );
    assert!(
        refused.stderr.contains("its configuration is as it was"),
        "{}",
        refused.all()
    );
    assert!(!f.path().join("hosts/box.kdl").exists());
    assert_eq!(t.sh("systemctl is-active ssh.service"), "active");
    assert_eq!(
        (pid(), hups()),
        (pid_before, hups_before),
        "sshd was reloaded"
    );
    assert_eq!(
        t.sh(&format!(
            "ls /etc/ssh/sshd_config.d; test -e {GUARD_DIR} && echo pending; \
             systemctl is-active provision-ssh-guard.timer || true"
        )),
        "50-provision-test.conf\n60-typo.conf\ninactive"
    );
    assert!(root_logs_in(&t));

    // An sshd_config that does not read the drop-ins: refused with the fix.
    t.sh("rm /etc/ssh/sshd_config.d/60-typo.conf && cp /etc/ssh/sshd_config /root/sshd_config.orig && \
          sed -i 's|^Include /etc/ssh/sshd_config.d/\\*.conf|#&|' /etc/ssh/sshd_config");
    let no_include = f.run(&strs(&args)).expect(1);
    assert!(
        no_include
            .stderr
            .contains("add `Include /etc/ssh/sshd_config.d/*.conf` as its first line"),
        "{}",
        no_include.all()
    );
    assert!(!f.path().join("hosts/box.kdl").exists());
    assert_eq!(t.sh("ls /etc/ssh/sshd_config.d"), "50-provision-test.conf");
    t.sh("cp /root/sshd_config.orig /etc/ssh/sshd_config");

    // A fleet that logs in as root: root keeps logging in, by key only.
    let root_fleet = f.run(&strs(&args)).expect(0);
    assert!(
        root_fleet
            .stderr
            .contains("PermitRootLogin prohibit-password")
            && root_fleet
                .stderr
                .contains("--deploy-user NAME to turn root login off"),
        "{}",
        root_fleet.all()
    );
    assert!(root_logs_in(&t));
    assert_eq!(
        t.sh("/usr/sbin/sshd -T | grep -Ei '^(passwordauthentication|kbdinteractiveauthentication|permitrootlogin) ' | sort"),
        "kbdinteractiveauthentication no\npasswordauthentication no\npermitrootlogin without-password"
    );
    assert!(
        t.sh(&format!("cat {DROP_IN}"))
            .contains("PermitRootLogin prohibit-password")
    );
    f.run(&["verify", "box"]).expect(0);
}
