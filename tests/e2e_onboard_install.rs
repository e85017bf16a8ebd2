//! `onboard` installing what a fresh host lacks, with the host's real apt
//! and dpkg, offline: each target gets a local apt repository
//! (`deb [trusted=yes] file:/srv/repo ./`, built from the harness's .deb
//! cache) and loses curl. A package no source offers and a dpkg lock that
//! is never released are refused with the fix and nothing written; the
//! install works, with the host's first agent from a template; and an
//! onboarding cut while it waits for the dpkg lock is finished by the next
//! run, the host file written only then.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_onboard_install::NAME: <reason>`.

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

use fleet::{Fleet, wait_line};

/// The unit that holds the dpkg frontend lock on a target.
const HOLDER: &str = "hold-dpkg-lock";

/// Boots a fresh target without curl, whose only apt source is an empty
/// local repository, and a repository as `provision init` writes it.
fn setup(test: &str) -> Option<(nspawn::Target, Fleet)> {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED e2e_onboard_install::{test}: {reason}"
        );
        return None;
    }
    let t = nspawn::Target::boot(test).unwrap_or_else(|e| panic!("boot: {e}"));
    t.sh(
        "dpkg -r curl >/dev/null && mkdir -p /srv/repo && : > /srv/repo/Packages && \
         echo 'deb [trusted=yes] file:/srv/repo ./' > /etc/apt/sources.list.d/local.list",
    );
    assert_eq!(t.sh("command -v curl || echo none"), "none");
    let f = Fleet::new();
    let scaffold = Path::new(env!("CARGO_MANIFEST_DIR")).join("scaffold");
    for rel in [
        "modules/host/module.kdl",
        "modules/hello/module.kdl",
        "agents/hello/run.sh",
    ] {
        f.write(rel, &std::fs::read_to_string(scaffold.join(rel)).unwrap());
    }
    Some((t, f))
}

/// Puts curl's .deb from the harness cache into the target's repository,
/// with its index (`dpkg-scanpackages` on this machine).
fn offer_curl(t: &nspawn::Target) {
    let cache = nspawn::state_dir().join("debcache");
    let deb = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("curl_")
        })
        .expect("curl's .deb in the harness cache");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&deb, dir.path().join("curl.deb")).unwrap();
    let mut scan = Command::new("dpkg-scanpackages");
    scan.current_dir(dir.path()).args(["-m", ".", "/dev/null"]);
    let index = process::run_bounded(&mut scan, Duration::from_secs(60));
    assert!(index.status.success(), "{index:?}");
    put(t, &dir.path().join("curl.deb"), "/srv/repo/curl.deb");
    std::fs::write(dir.path().join("Packages"), &index.stdout).unwrap();
    put(t, &dir.path().join("Packages"), "/srv/repo/Packages");
}

/// Copies a local file to `remote` on the target, over ssh's stdin.
fn put(t: &nspawn::Target, local: &Path, remote: &str) {
    let mut c = Command::new("ssh");
    c.args(t.ssh_options())
        .arg(format!("root@{}", t.addr))
        .arg(format!("cat > {remote}"))
        .stdin(Stdio::from(std::fs::File::open(local).unwrap()));
    let out = process::run_bounded(&mut c, Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
}

/// Holds the dpkg frontend lock as apt takes it (an fcntl write lock on
/// the whole file; `flock` would not stop apt), in a unit of its own that
/// lets go after ten minutes at most; returns once it is held.
fn hold_dpkg_lock(t: &nspawn::Target) {
    t.sh(&format!(
        "rm -f /run/dpkg-lock-held && systemd-run --quiet --unit={HOLDER} --collect \
         perl -MFcntl -e 'open(my $f, \">>\", \"/var/lib/dpkg/lock-frontend\") or die $!; \
         my $l = pack(\"ssx4qqix4\", F_WRLCK, 0, 0, 0, 0); fcntl($f, F_SETLKW, $l) or die $!; \
         open(my $m, \">\", \"/run/dpkg-lock-held\"); close $m; sleep 600'"
    ));
    t.wait_for("test -e /run/dpkg-lock-held", Duration::from_secs(30));
}

/// Lets go of the lock [`hold_dpkg_lock`] took.
fn release_dpkg_lock(t: &nspawn::Target) {
    t.sh(&format!("systemctl stop {HOLDER}.service"));
}

/// `onboard root@TARGET --name web` with the template agent, and `extra`.
fn args(t: &nspawn::Target, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "onboard",
        &format!("root@{}", t.addr),
        "--name",
        "web",
        "--ssh-key",
        &t.identity.display().to_string(),
        "--expect-fingerprint",
        &t.fingerprint(),
        "--module",
        "host",
        "--agent",
        "hello",
        "--yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn run(f: &Fleet, args: &[String]) -> fleet::Run {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    f.run(&refs)
}

/// The steps onboard recorded on the target.
fn steps(t: &nspawn::Target) -> String {
    t.sh("ls /var/lib/provision/onboard 2>/dev/null | tr '\\n' ' '")
}

#[test]
fn onboard_installs_what_is_missing_with_the_hosts_apt() {
    let Some((t, f)) = setup("onboard-install") else {
        return;
    };
    let host_file = f.path().join("hosts/web.kdl");

    // No source offers curl: the package is named with the fix.
    let missing = run(&f, &args(&t, &[])).expect(1);
    assert!(
        missing
            .stderr
            .contains("apt cannot install curl: no apt source")
            && missing.stderr.contains("/etc/apt/sources.list"),
        "{}",
        missing.all()
    );
    assert!(!host_file.exists());
    assert_eq!(steps(&t), "", "a failed install was recorded as done");

    // A dpkg lock that is never released ends after the wait, with the fix.
    offer_curl(&t);
    hold_dpkg_lock(&t);
    let started = Instant::now();
    let locked = run(&f, &args(&t, &["--install-wait", "3"])).expect(1);
    let waited = started.elapsed();
    assert!(
        locked
            .stderr
            .contains("installing curl (waiting up to 3 s for the dpkg lock)"),
        "{}",
        locked.all()
    );
    assert!(
        locked
            .stderr
            .contains("the dpkg lock stayed taken for 3 s, held by process")
            && locked.stderr.contains("(perl), so curl was not installed")
            && locked.stderr.contains("--install-wait"),
        "{}",
        locked.all()
    );
    eprintln!(
        "a held lock was given up after {:.1} s",
        waited.as_secs_f64()
    );
    assert!(waited < Duration::from_secs(60), "{waited:?}");
    assert!(!host_file.exists());
    assert_eq!(t.sh("command -v curl || echo none"), "none");
    release_dpkg_lock(&t);

    // Installed, then the template agent applied and verified.
    let done = run(&f, &args(&t, &["--json"])).expect(0);
    let doc: serde_json::Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(doc["written"], true, "{doc:#}");
    let tools: Vec<&str> = doc["facts"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !tools.contains(&"curl"),
        "the facts were read before: {tools:?}"
    );
    assert_eq!(
        t.sh("dpkg-query -W -f '${Status}' curl"),
        "install ok installed"
    );
    assert_eq!(t.sh("systemctl is-active agent-hello.service"), "active");
    let file = std::fs::read_to_string(&host_file).unwrap();
    assert!(
        file.contains("use \"host\"")
            && file.contains("agent \"hello\" {\n        use \"hello\"\n    }"),
        "{file}"
    );
    assert_eq!(steps(&t), "prepared");
    f.run(&["check"]).expect(0);
    f.run(&["verify", "web"]).expect(0);
}

#[test]
fn an_onboarding_cut_while_it_waits_to_install_is_finished_by_the_next_run() {
    let Some((t, f)) = setup("onboard-cut") else {
        return;
    };
    let host_file = f.path().join("hosts/web.kdl");
    offer_curl(&t);
    let installs = || t.sh("grep -c ' install curl:' /var/log/dpkg.log || true");
    let before: u32 = installs().parse().unwrap();
    hold_dpkg_lock(&t);
    let a = args(&t, &["--install-wait", "120"]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let (mut child, rx) = f.spawn(&refs);
    wait_line(
        &rx,
        "installing curl (waiting up to 120 s for the dpkg lock)",
        Duration::from_secs(60),
    );
    // apt itself is waiting for the lock on the host.
    t.wait_for("pgrep -x apt-get", Duration::from_secs(30));
    // The operator's machine goes away: the client and its connections.
    let _ = child.kill();
    let _ = child.wait();
    for pid in ssh_pids(&t) {
        let _ = Command::new("kill").args(["-9", &pid]).status();
    }
    assert!(!host_file.exists());
    assert_eq!(steps(&t), "", "the install was recorded before it was done");

    // The lock goes; the install the cut run started finishes on the host.
    release_dpkg_lock(&t);
    t.wait_for(
        "dpkg-query -W -f '${Status}' curl | grep -qx 'install ok installed' && ! pgrep -x apt-get",
        Duration::from_secs(120),
    );
    // The next run finds curl there and installs nothing; then it goes on
    // and writes the file.
    let resumed = run(&f, &a).expect(0);
    assert!(
        !resumed.stderr.contains("installing curl"),
        "{}",
        resumed.all()
    );
    assert!(
        resumed.stdout.contains("Wrote hosts/web.kdl."),
        "{}",
        resumed.all()
    );
    let after: u32 = installs().parse().unwrap();
    assert_eq!(after, before + 1, "curl was not installed exactly once");
    assert_eq!(steps(&t), "prepared");
    assert_eq!(t.sh("systemctl is-active agent-hello.service"), "active");
    f.run(&["verify", "web"]).expect(0);
}

/// The ssh processes of this test's provision runs to `t`.
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
