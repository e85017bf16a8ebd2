//! `onboard` against real Debian targets (systemd as PID 1, sshd): a wrong
//! fingerprint refuses before anything runs on the host, and a host that is
//! not Debian-like is refused unchanged; the right one
//! onboards a fresh host with an agent, writes a host file that `check`,
//! `verify` and `plan` accept, and a second onboard is a no-op; a deploy
//! user gets the operator's key and passwordless sudo, and the fleet
//! reaches the host through it.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_onboard::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::Write;
use std::path::Path;

use fleet::{Fleet, agent};

/// Boots a fresh target and writes a repository whose module `hello`
/// carries an agent, journal caps and an alert path (no host yet).
fn setup(test: &str) -> Option<(nspawn::Target, Fleet)> {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_onboard::{test}: {reason}");
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

fn identity(t: &nspawn::Target) -> String {
    t.identity.display().to_string()
}

/// Whether the target has `path`.
fn exists(t: &nspawn::Target, path: &str) -> bool {
    t.sh(&format!("test -e {path} && echo yes || echo no")) == "yes"
}

fn schema_valid(doc: &serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/provision.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{doc:#}");
}

#[test]
fn onboard_refuses_a_wrong_key_then_brings_the_host_in_once() {
    let Some((t, f)) = setup("onboard") else {
        return;
    };
    let dest = format!("root@{}", t.addr);
    let id = identity(&t);
    let fp = t.fingerprint();

    // A wrong fingerprint: refused before any login, nothing written.
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let refused = f
        .run(&[
            "onboard",
            &dest,
            "--name",
            "web",
            "--ssh-key",
            &id,
            "--expect-fingerprint",
            wrong,
            "--module",
            "hello",
            "--yes",
        ])
        .expect(1);
    assert!(
        refused
            .stderr
            .contains(&format!("the host presents {fp}, not the expected {wrong}")),
        "{}",
        refused.all()
    );
    assert!(!f.path().join("hosts/web.kdl").exists());
    assert!(!exists(&t, "/var/lib/provision"), "onboard ran on the host");

    // Without a terminal and without a fingerprint it never asks.
    let unasked = f
        .run(&["onboard", &dest, "--name", "web", "--ssh-key", &id, "--yes"])
        .expect(1);
    assert!(
        unasked
            .stderr
            .contains(&format!("--expect-fingerprint {fp}")),
        "{}",
        unasked.all()
    );
    assert!(!exists(&t, "/var/lib/provision"));

    // A misspelt module stops onboard before it logs in.
    let typo = f
        .run(&[
            "onboard",
            &dest,
            "--name",
            "web",
            "--ssh-key",
            &id,
            "--expect-fingerprint",
            &fp,
            "--module",
            "helo",
            "--yes",
        ])
        .expect(1);
    assert!(
        typo.stderr.contains("helo") && !typo.stderr.contains("logging in"),
        "{}",
        typo.all()
    );
    assert!(!exists(&t, "/var/lib/provision"));

    // A host that is not Debian-like is refused with the fix, unchanged.
    t.sh(
        "sed 's/^ID=debian/ID=alpine/' /usr/lib/os-release > /etc/os-release.new && \
          mv /etc/os-release.new /etc/os-release",
    );
    let alpine = f
        .run(&[
            "onboard",
            &dest,
            "--name",
            "web",
            "--ssh-key",
            &id,
            "--expect-fingerprint",
            &fp,
            "--yes",
        ])
        .expect(1);
    assert!(
        alpine.stderr.contains("web cannot join the fleet")
            && alpine.stderr.contains("not Debian or Ubuntu: use a Debian"),
        "{}",
        alpine.all()
    );
    assert!(!f.path().join("hosts/web.kdl").exists());
    assert!(
        !exists(&t, "/var/lib/provision"),
        "an unusable host was changed"
    );
    t.sh("ln -sfn ../usr/lib/os-release /etc/os-release");

    // The right one: facts, apply, verify, and the file last.
    let args = [
        "onboard",
        &dest,
        "--name",
        "web",
        "--ssh-key",
        &id,
        "--expect-fingerprint",
        &fp,
        "--module",
        "hello",
        "--yes",
    ];
    let first = f.run(&args).expect(0);
    assert!(first.stdout.contains("cgroup2fs"), "{}", first.all());
    assert!(first.stdout.contains("1 host switched"), "{}", first.all());
    assert!(
        first.stdout.contains("Wrote hosts/web.kdl."),
        "{}",
        first.all()
    );
    let file = std::fs::read_to_string(f.path().join("hosts/web.kdl")).unwrap();
    let key: Vec<&str> = t.host_key.split_whitespace().take(2).collect();
    assert!(
        file.contains(&format!("host-key \"{}\"", key.join(" "))),
        "{file}"
    );
    assert!(
        file.contains(&format!("ssh \"{dest}\" port=22 identity=\"{id}\"")),
        "{file}"
    );
    assert!(
        file.contains("use \"hello\"") && file.contains(&fp),
        "{file}"
    );
    assert_eq!(t.sh("systemctl is-active agent-hello.service"), "active");
    f.run(&["check"]).expect(0);
    f.run(&["verify", "web"]).expect(0);

    // Again: nothing changes, nothing is rewritten.
    let again = f.run(&args).expect(0);
    assert!(
        again.stdout.contains("web is already in the fleet"),
        "{}",
        again.all()
    );
    assert!(again.stdout.contains("No changes"), "{}", again.all());
    assert_eq!(
        std::fs::read_to_string(f.path().join("hosts/web.kdl")).unwrap(),
        file
    );
    let json = f.run(&[&args[..], &["--json"]].concat()).expect(0);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["command"], "onboard");
    assert_eq!(doc["already"], true);
    schema_valid(&doc);

    // The same name for another key is never overwritten without --force.
    std::fs::write(
        f.path().join("hosts/web.kdl"),
        file.replace(
            key[1],
            "AAAAC3NzaC1lZDI1NTE5AAAAIC8+J7XH4Ja6bY2nh35Id6I9YrwU0oMuYUSqNaff57rs",
        ),
    )
    .unwrap();
    let collide = f.run(&args).expect(1);
    assert!(collide.stderr.contains("--force"), "{}", collide.all());
    // --force replaces it, after the same checks, apply and verify.
    let forced = f
        .run(&[&args[..], &["--force", "--json"]].concat())
        .expect(0);
    let doc: serde_json::Value = serde_json::from_str(&forced.stdout).unwrap();
    assert_eq!(doc["written"], true, "{doc:#}");
    assert_eq!(doc["facts"]["cgroup_fs"], "cgroup2fs", "{doc:#}");
    assert_eq!(doc["hosts"][0]["ok"], true, "{doc:#}");
    schema_valid(&doc);
    assert_eq!(
        std::fs::read_to_string(f.path().join("hosts/web.kdl")).unwrap(),
        file,
        "the forced file is the one onboard wrote first (same address, key and day)"
    );
}

#[test]
fn onboard_makes_a_deploy_user_and_the_fleet_goes_through_it() {
    let Some((t, f)) = setup("onboard-deploy") else {
        return;
    };
    let dest = format!("root@{}", t.addr);
    let id = identity(&t);
    let fp = t.fingerprint();
    let run = f
        .run(&[
            "onboard",
            &dest,
            "--name",
            "box",
            "--ssh-key",
            &id,
            "--expect-fingerprint",
            &fp,
            "--deploy-user",
            "deploy",
            "--yes",
        ])
        .expect(0);
    assert!(
        run.stderr.contains("creating user deploy with"),
        "{}",
        run.all()
    );
    assert_eq!(t.sh("id -un deploy"), "deploy");
    assert_eq!(
        t.sh("stat -c '%a %U %G' /etc/sudoers.d/provision-deploy"),
        "440 root root"
    );
    assert_eq!(
        t.sh("cat /etc/sudoers.d/provision-deploy"),
        "deploy ALL=(ALL) NOPASSWD:ALL"
    );
    t.sh("visudo -cf /etc/sudoers.d/provision-deploy");
    assert_eq!(
        t.sh("stat -c '%a %U' ~deploy/.ssh ~deploy/.ssh/authorized_keys"),
        "700 deploy\n600 deploy"
    );
    let file = std::fs::read_to_string(f.path().join("hosts/box.kdl")).unwrap();
    let ssh_line = file
        .lines()
        .find(|l| l.trim_start().starts_with("ssh "))
        .unwrap_or("");
    assert!(
        ssh_line.starts_with(&format!("    ssh \"deploy@{}\" port=22", t.addr))
            && ssh_line.ends_with(" sudo=#true"),
        "{file}"
    );
    // The fleet now reaches the host as deploy, through sudo.
    let plan = f.run(&["plan", "box", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.all());
    assert!(
        t.sh("journalctl -q --no-pager _COMM=sshd | grep -c 'Accepted publickey for deploy'")
            .parse::<u32>()
            .unwrap()
            >= 2,
        "the plan did not log in as deploy"
    );

    // The steps are recorded, root-only; a run that stopped before writing
    // the file continues as the deploy user, root's login no longer needed.
    assert_eq!(
        t.sh("stat -c %a /var/lib/provision/onboard && ls /var/lib/provision/onboard"),
        "700\ndeploy-user-deploy\nprepared"
    );
    std::fs::remove_file(f.path().join("hosts/box.kdl")).unwrap();
    let deploy_dest = format!("deploy@{}", t.addr);
    let resumed = f
        .run(&[
            "onboard",
            &deploy_dest,
            "--name",
            "box",
            "--ssh-key",
            &id,
            "--expect-fingerprint",
            &fp,
            "--deploy-user",
            "deploy",
            "--yes",
        ])
        .expect(0);
    assert!(
        resumed
            .stderr
            .contains("user deploy was made by an earlier onboard"),
        "{}",
        resumed.all()
    );
    assert!(resumed.stdout.contains("No changes"), "{}", resumed.all());
    assert_eq!(
        std::fs::read_to_string(f.path().join("hosts/box.kdl")).unwrap(),
        file
    );
}
