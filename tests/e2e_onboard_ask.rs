//! `onboard` without `--expect-fingerprint`, on a real terminal (a pty
//! made by util-linux `script`): it shows the host key's fingerprint and
//! asks; "no" refuses with nothing run on the host and nothing written,
//! "yes" pins that key and onboards. HOME is a temporary directory: no
//! known_hosts of the operator's is read or written. And bad input on a
//! real host, each refused with the fix and nothing written: a key the
//! host refuses, a disk too full, a login user without passwordless sudo.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_onboard_ask::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleet::{Fleet, agent};

fn setup(test: &str) -> Option<(nspawn::Target, Fleet)> {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED e2e_onboard_ask::{test}: {reason}"
        );
        return None;
    }
    if Command::new("script").arg("--version").output().is_err() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED e2e_onboard_ask::{test}: no util-linux script"
        );
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

/// A shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `provision -C REPO ARGS` on a pty (`script -qec`), with `answer`
/// typed on it, HOME a temporary directory and CI unset; bounded. Returns
/// the exit code and everything the terminal showed.
fn on_a_terminal(f: &Fleet, home: &Path, args: &[&str], answer: &str) -> (i32, String) {
    let mut line = vec![
        quote(env!("CARGO_BIN_EXE_provision")),
        "-C".into(),
        quote(&f.path().display().to_string()),
    ];
    line.extend(args.iter().map(|a| quote(a)));
    let mut child = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .env_remove("CI")
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script starts");
    // The answer waits in the terminal's input until onboard reads it; the
    // pipe stays open until the end, as a terminal would.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).unwrap();
    let stdout = process::reader(child.stdout.take());
    let stderr = process::reader(child.stderr.take());
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("onboard on a terminal did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let grace = Duration::from_secs(5);
    let mut shown =
        String::from_utf8_lossy(&stdout.recv_timeout(grace).unwrap_or_default()).into_owned();
    shown.push_str(&String::from_utf8_lossy(
        &stderr.recv_timeout(grace).unwrap_or_default(),
    ));
    (status.code().unwrap_or(-1), shown.replace('\r', ""))
}

#[test]
fn onboard_asks_on_a_terminal_and_pins_only_a_trusted_key() {
    let Some((t, f)) = setup("onboard-ask") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let fp = t.fingerprint();
    let dest = format!("root@{}", t.addr);
    let id = t.identity.display().to_string();
    let args = [
        "onboard",
        &dest,
        "--name",
        "web",
        "--ssh-key",
        &id,
        "--module",
        "hello",
        "--yes",
    ];
    let logins = || {
        t.sh("journalctl -q --no-pager _COMM=sshd | grep -c 'Accepted publickey' || true")
            .parse::<u32>()
            .unwrap()
    };
    let before = logins();

    // No: refused, nothing run on the host, nothing written.
    let (code, shown) = on_a_terminal(&f, home.path(), &args, "n\n");
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains(&fp) && shown.contains("Trust this key? [y/N]"),
        "{shown}"
    );
    assert!(
        shown.contains("the key was not trusted; nothing was done on"),
        "{shown}"
    );
    assert!(!shown.contains("logging in"), "{shown}");
    // The one login since is this count's own.
    assert_eq!(logins(), before + 1, "onboard logged in after a no");
    assert_eq!(
        t.sh("test -e /var/lib/provision && echo yes || echo no"),
        "no"
    );
    assert!(!f.path().join("hosts/web.kdl").exists());

    // Yes: that key is pinned, and the host onboarded.
    let (code, shown) = on_a_terminal(&f, home.path(), &args, "y\n");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("Wrote hosts/web.kdl."), "{shown}");
    let file = std::fs::read_to_string(f.path().join("hosts/web.kdl")).unwrap();
    let key: Vec<&str> = t.host_key.split_whitespace().take(2).collect();
    assert!(
        file.contains(&format!("host-key \"{}\"", key.join(" "))) && file.contains(&fp),
        "{file}"
    );
    assert_eq!(t.sh("systemctl is-active agent-hello.service"), "active");
    // The trust is in the repository, not in a known_hosts.
    assert!(
        !home.path().join(".ssh/known_hosts").exists(),
        "onboard wrote a known_hosts in HOME"
    );
}

/// Bad input on a real host, each refused with the fix before anything is
/// installed and with nothing written in the repository: a key the host
/// does not accept, a disk too full for the store, and a login user
/// without passwordless sudo.
#[test]
fn onboard_refuses_a_refused_key_a_full_disk_and_no_sudo_with_the_fix() {
    let Some((t, f)) = setup("onboard-refused") else {
        return;
    };
    let fp = t.fingerprint();
    let id = t.identity.display().to_string();
    let onboard = |dest: &str, key: &str| {
        f.run(&[
            "onboard",
            dest,
            "--name",
            "web",
            "--ssh-key",
            key,
            "--expect-fingerprint",
            &fp,
            "--module",
            "hello",
            "--connect-timeout",
            "5",
            "--yes",
        ])
    };
    let untouched = |what: &str| {
        assert!(!f.path().join("hosts/web.kdl").exists(), "{what}");
        let written: Vec<_> = std::fs::read_dir(f.path().join("hosts")).unwrap().collect();
        assert!(written.is_empty(), "{what}: {written:?}");
        assert_eq!(
            t.sh("test -e /var/lib/provision && echo yes || echo no"),
            "no",
            "{what}"
        );
    };
    let root = format!("root@{}", t.addr);

    // A key that is not in root's authorized_keys.
    let keys = tempfile::tempdir().unwrap();
    let stranger = keys.path().join("stranger");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(made.success());
    let refused = onboard(&root, &stranger.display().to_string()).expect(1);
    assert!(
        refused.stderr.contains("authorized_keys"),
        "{}",
        refused.all()
    );
    untouched("refused key");

    // Under 200 MiB free where the store goes: a small tmpfs over /var/lib
    // (the files under it are copied in and back, so nothing is lost).
    t.sh("mkdir -p /run/varlib && cp -a /var/lib/. /run/varlib/ && \
         mount -t tmpfs -o size=150M tmpfs /var/lib && cp -a /run/varlib/. /var/lib/");
    let full = onboard(&root, &id).expect(1);
    t.sh("umount /var/lib && rm -rf /run/varlib");
    assert!(
        full.stderr.contains("web cannot join the fleet")
            && full
                .stderr
                .contains("free under /var/lib, under 200 MiB: free some space, or grow the disk"),
        "{}",
        full.all()
    );
    assert!(!full.stderr.contains("installing"), "{}", full.all());
    untouched("full disk");

    // A login user with the key but without passwordless sudo.
    t.sh(
        "useradd --create-home --shell /bin/sh alice && install -d -m 700 -o alice -g alice ~alice/.ssh && \
         install -m 600 -o alice -g alice /root/.ssh/authorized_keys ~alice/.ssh/authorized_keys",
    );
    let nosudo = onboard(&format!("alice@{}", t.addr), &id).expect(1);
    assert!(
        nosudo.stderr.contains("`sudo -n true` fails")
            && nosudo
                .stderr
                .contains("add the line `alice ALL=(ALL) NOPASSWD:ALL` to /etc/sudoers.d/alice"),
        "{}",
        nosudo.all()
    );
    untouched("no sudo");
}
