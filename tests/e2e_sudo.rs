//! A login user that is not root, through `sudo -n` (`ssh "deploy@ADDR"
//! sudo=#true`), against real Debian targets (systemd as PID 1, real sshd,
//! real sudo): plan, apply, verify, status, generations, rollback and the
//! dead-man switch all work through it, and sshd's journal shows the logins
//! were as deploy; without the sudoers drop-in, apply fails saying so and
//! changes nothing; without `sudo=#true`, `check` names the fix; and a host
//! reached as such a user is onboarded end to end, once.
//!
//! Provision logs in with a key of its own, accepted for `deploy` only, so
//! its logins are told apart in the journal from the harness's root logins.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_sudo::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleet::{Fleet, agent, wait_line};

/// The harness's key, which logs in as root; provision gets another.
const HARNESS_IDENTITY: &str = "identity=\"/var/tmp/provision-targets/id_ed25519\"";

const TOKEN: &str = "tok-sudo-5b7e1d";

/// Boots a target and makes a repository, with a fresh key for `deploy`.
fn setup(test: &str) -> Option<(nspawn::Target, Fleet, PathBuf)> {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_sudo::{test}: {reason}");
        return None;
    }
    let t = nspawn::Target::boot(test).unwrap_or_else(|e| panic!("boot: {e}"));
    let f = Fleet::new();
    f.agent_script("alpha", "v1");
    let key = f.path().join("deploy_key");
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "provision-deploy",
            "-f",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    Some((t, f, key))
}

/// Creates user `deploy` whose only authorized key is `key`'s, with the
/// sudoers drop-in `deploy ALL=(ALL) NOPASSWD:ALL` (checked by visudo
/// before it is moved into place) when `sudoers`.
fn make_deploy(t: &nspawn::Target, key: &Path, sudoers: bool) {
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    t.sh(&format!(
        "useradd --create-home --shell /bin/sh --user-group deploy && \
         install -d -m 0700 -o deploy -g deploy ~deploy/.ssh && \
         printf '%s\\n' '{}' > ~deploy/.ssh/authorized_keys && \
         chown deploy:deploy ~deploy/.ssh/authorized_keys && chmod 0600 ~deploy/.ssh/authorized_keys",
        public.trim()
    ));
    if sudoers {
        // A name with a dot is skipped by sudoers' includedir until renamed.
        t.sh(
            "printf 'deploy ALL=(ALL) NOPASSWD:ALL\\n' > /etc/sudoers.d/.deploy.new && \
             chmod 0440 /etc/sudoers.d/.deploy.new && visudo -cf /etc/sudoers.d/.deploy.new && \
             mv /etc/sudoers.d/.deploy.new /etc/sudoers.d/deploy",
        );
        assert_eq!(t.sh("su -s /bin/sh deploy -c 'sudo -n id -u'"), "0");
    }
}

/// Writes host `t`, reached as `deploy` with `key`, `sudo=#true` when `sudo`.
fn write_host(f: &Fleet, t: &nspawn::Target, key: &Path, sudo: bool, body: &str) {
    f.host("t", &format!("deploy@{}", t.addr), 22, &t.host_key, body);
    let path = f.path().join("hosts/t.kdl");
    let text = std::fs::read_to_string(&path).unwrap();
    let login = format!(
        "identity=\"{}\"{}",
        key.display(),
        if sudo { " sudo=#true" } else { "" }
    );
    assert!(text.contains(HARNESS_IDENTITY), "{text}");
    std::fs::write(&path, text.replace(HARNESS_IDENTITY, &login)).unwrap();
}

/// sshd's accepted logins with `key`, by user: every one must be deploy's.
fn logins_with(t: &nspawn::Target, key: &Path) -> Vec<String> {
    let fp = nspawn::key_fingerprint(&key.with_extension("pub"));
    t.sh("journalctl -q --no-pager _COMM=sshd | grep 'Accepted publickey for' || true")
        .lines()
        .filter(|l| l.contains(&fp))
        .map(|l| {
            let after = l.split("Accepted publickey for ").nth(1).unwrap_or("");
            after.split_whitespace().next().unwrap_or("").to_string()
        })
        .collect()
}

fn with_token(f: &Fleet, args: &[&str]) -> fleet::Run {
    let mut cmd = f.command(args);
    cmd.env("ALPHA_TOKEN", TOKEN);
    fleet::Run::from(fleet::run_bounded(&mut cmd, Duration::from_secs(120)))
}

/// Kills, by PID, the ssh processes that talk to this test's target as
/// deploy (provision's connection; the harness logs in as root).
fn cut(t: &nspawn::Target) {
    let out = Command::new("pgrep")
        .args(["-f", &format!("deploy@{}( |$)", t.addr.replace('.', "\\."))])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
}

#[test]
fn a_sudo_login_does_everything_and_the_dead_man_switch_works_through_it() {
    let Some((t, f, key)) = setup("sudo-all") else {
        return;
    };
    make_deploy(&t, &key, true);
    let body = agent("alpha", r#"secret "TOKEN" from="env:ALPHA_TOKEN""#);
    write_host(&f, &t, &key, true, &body);
    f.run(&["check"]).expect(0);

    let started = Instant::now();
    let plan = with_token(&f, &["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout
            .contains("+ /etc/systemd/system/agent-alpha.service"),
        "{}",
        plan.all()
    );
    let apply = with_token(&f, &["apply", "--yes"]).expect(0);
    assert!(apply.stdout.contains("1 host switched"), "{}", apply.all());
    let _ = writeln!(
        std::io::stderr(),
        "e2e_sudo: plan + first verified apply through sudo: {:?}",
        started.elapsed()
    );
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");
    assert_eq!(
        t.sh(
            "stat -c '%U %G %a' /etc/systemd/system/agent-alpha.service \
             /opt/agents/alpha/run.sh /var/lib/provision /var/lib/provision/generations/1.json"
        ),
        "root root 644\nroot root 755\nroot root 700\nroot root 600"
    );
    assert_eq!(
        t.sh("stat -c '%U %a' /etc/provision/agents/alpha.env; grep -c tok-sudo /etc/provision/agents/alpha.env"),
        "root 600\n1"
    );
    assert_eq!(t.sh("stat -c %U /var/lib/agents/alpha/AGENTS.md"), "agent");
    assert_eq!(t.sh("cat /var/lib/provision/generations/1.status"), "ok");

    let verify = with_token(&f, &["verify", "t"]).expect(0);
    assert!(!verify.all().contains(TOKEN), "{}", verify.all());
    let status = with_token(&f, &["--json", "status"]).expect(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(doc["hosts"][0]["ok"], true, "{doc:#}");
    assert_eq!(doc["hosts"][0]["status"]["generation"], 1, "{doc:#}");

    // A second generation, listed, then rolled back from the store.
    f.agent_script("alpha", "v2");
    with_token(&f, &["apply", "--yes"]).expect(0);
    let gens = f.run(&["generations", "t"]).expect(0);
    assert!(gens.stdout.contains("(current)"), "{}", gens.stdout);
    assert_eq!(gens.stdout.lines().count(), 1 + 2, "{}", gens.stdout);
    let back = with_token(&f, &["rollback", "t", "--to", "1", "--yes"]).expect(0);
    assert!(back.stdout.contains("rollback to 1"), "{}", back.stdout);
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
    assert!(t.sh("cat /opt/agents/alpha/run.sh").contains("# v1"));

    // The dead-man switch: generation 3 never beats, provision is killed
    // while it waits, and the host goes back by itself.
    f.write("agents/alpha.sh", "#!/bin/sh\nexec sleep infinity\n");
    let mut cmd = f.command(&[
        "apply",
        "--yes",
        "--confirm-timeout",
        "6",
        "--heartbeat-timeout",
        "5",
    ]);
    cmd.env("ALPHA_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("provision starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    wait_line(&rx, "verifying generation 3", Duration::from_secs(60));
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/3.json"
    );
    assert_eq!(
        t.sh("systemctl is-active provision-deadman.timer"),
        "active"
    );
    let _ = child.kill();
    let _ = child.wait();
    cut(&t);
    let cut_at = Instant::now();
    t.wait_for(
        "test \"$(readlink /var/lib/provision/current)\" = generations/1.json",
        Duration::from_secs(90),
    );
    let _ = writeln!(
        std::io::stderr(),
        "e2e_sudo: the dead-man switch went back {:?} after the client was killed",
        cut_at.elapsed()
    );
    t.wait_for(
        "test ! -e /var/lib/provision/switching",
        Duration::from_secs(30),
    );
    let gens = f.run(&["generations", "t"]).expect(0);
    assert!(
        gens.stdout
            .contains("no confirmation arrived; the dead-man switch went back to generation 1"),
        "{}",
        gens.stdout
    );
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");

    // Every login with provision's key was as deploy, and sudo ran the
    // scripts as root for deploy; the secret never reached a log.
    let logins = logins_with(&t, &key);
    assert!(logins.len() >= 8, "{logins:?}");
    assert!(logins.iter().all(|u| u == "deploy"), "{logins:?}");
    let sudo = t.sh("journalctl -q --no-pager _COMM=sudo | grep -c 'deploy : .*USER=root ; COMMAND=/bin/sh -c' || true");
    assert!(sudo.parse::<u32>().unwrap_or(0) >= 8, "sudo logged {sudo}");
    assert_eq!(
        t.sh(&format!(
            "journalctl -q --no-pager | grep -c {TOKEN} || true"
        )),
        "0"
    );
}

#[test]
fn without_passwordless_sudo_or_without_sudo_declared_nothing_changes() {
    let Some((t, f, key)) = setup("sudo-missing") else {
        return;
    };
    make_deploy(&t, &key, false);
    write_host(&f, &t, &key, true, &agent("alpha", ""));
    f.run(&["check"]).expect(0);
    let apply = f.run(&["apply", "--yes"]).expect(1);
    assert!(
        apply.stderr.contains(&format!(
            "logged in to deploy@{} as deploy, but passwordless sudo is missing: `sudo -n true` fails",
            t.addr
        )) && apply
            .stderr
            .contains("add the line `deploy ALL=(ALL) NOPASSWD:ALL` to /etc/sudoers.d/deploy"),
        "{}",
        apply.all()
    );
    // sudo's own words come along.
    assert!(apply.stderr.contains("sudo:"), "{}", apply.all());
    let status = f.run(&["status"]);
    assert_ne!(status.code, 0, "{}", status.all());
    assert!(
        status.all().contains("passwordless sudo is missing"),
        "{}",
        status.all()
    );
    assert_eq!(
        t.sh("test -e /var/lib/provision && echo yes || echo no"),
        "no"
    );
    assert_eq!(t.sh("ls /etc/systemd/system | grep -c agent- || true"), "0");
    assert_eq!(
        logins_with(&t, &key).first().map(String::as_str),
        Some("deploy")
    );

    // Without `sudo=#true`, check names the line and the fix, and apply
    // stops there, before connecting.
    write_host(&f, &t, &key, false, &agent("alpha", ""));
    let before = logins_with(&t, &key).len();
    for args in [&["check"][..], &["apply", "--yes"][..]] {
        let run = f.run(args).expect(1);
        assert!(
            run.stderr.contains("hosts/t.kdl:2:5")
                && run
                    .stderr
                    .contains("`deploy` is not root, and the ssh node does not say `sudo=#true`")
                && run.stderr.contains("add `sudo=#true` to this node"),
            "{}",
            run.all()
        );
    }
    assert_eq!(logins_with(&t, &key).len(), before, "check logged in");
    assert_eq!(
        t.sh("test -e /var/lib/provision && echo yes || echo no"),
        "no"
    );
}

#[test]
fn onboarding_as_a_user_with_passwordless_sudo_writes_sudo_and_is_done_once() {
    let Some((t, f, key)) = setup("sudo-onboard") else {
        return;
    };
    make_deploy(&t, &key, true);
    f.agent_script("hello", "v1");
    f.write(
        "modules/hello/module.kdl",
        &format!(
            "journald max-use=\"50M\" keep-free=\"100M\" retention=\"3d\"\n\
             alert \"log\" command=\"logger -t provision-alert \\\"$ALERT_MESSAGE\\\"\"\n{}\n",
            agent("hello", "")
        ),
    );
    let host_fp = {
        let file = f.path().join("host_key.pub");
        std::fs::write(&file, format!("{}\n", t.host_key)).unwrap();
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let dest = format!("deploy@{}", t.addr);
    let key_arg = key.display().to_string();
    let args = [
        "onboard",
        &dest,
        "--name",
        "box",
        "--ssh-key",
        &key_arg,
        "--expect-fingerprint",
        &host_fp,
        "--module",
        "hello",
        "--yes",
    ];
    let started = Instant::now();
    let first = f.run(&args).expect(0);
    let _ = writeln!(
        std::io::stderr(),
        "e2e_sudo: onboarding through sudo: {:?}",
        started.elapsed()
    );
    assert!(
        first.stdout.contains("through sudo -n as deploy")
            && first.stdout.contains("1 host switched")
            && first.stdout.contains("Wrote hosts/box.kdl."),
        "{}",
        first.all()
    );
    let file = std::fs::read_to_string(f.path().join("hosts/box.kdl")).unwrap();
    let pinned: Vec<&str> = t.host_key.split_whitespace().take(2).collect();
    assert!(
        file.contains(&format!(
            "    ssh \"{dest}\" port=22 identity=\"{key_arg}\" sudo=#true\n"
        )) && file.contains(&format!("host-key \"{}\"", pinned.join(" "))),
        "{file}"
    );
    assert_eq!(t.sh("systemctl is-active agent-hello.service"), "active");
    assert_eq!(
        t.sh("stat -c %U /var/lib/provision/generations/1.json"),
        "root"
    );
    f.run(&["check"]).expect(0);
    f.run(&["verify", "box"]).expect(0);

    // Again: already in the fleet, nothing changes or is rewritten.
    let again = f.run(&args).expect(0);
    assert!(
        again.stdout.contains("box is already in the fleet") && again.stdout.contains("No changes"),
        "{}",
        again.all()
    );
    assert_eq!(
        std::fs::read_to_string(f.path().join("hosts/box.kdl")).unwrap(),
        file
    );
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
    let logins = logins_with(&t, &key);
    assert!(
        logins.len() >= 3 && logins.iter().all(|u| u == "deploy"),
        "{logins:?}"
    );
}
