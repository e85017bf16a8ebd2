//! Secrets kept in the repository as age files: encrypted to
//! `secrets/recipients` by `secrets edit`, decrypted with the operator's
//! identity (native age keys, SSH ed25519 and RSA keys, a file made by the
//! reference `age` tool), rekeyed all or nothing, listed by `secrets check`,
//! and every bad input refused with a message that names the file and the
//! fix. Real keys: made by the crate, `ssh-keygen` and `age-keygen`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::Command;

use age::secrecy::ExposeSecret as _;
use fleet::Run;
use fleet::{Fleet, agent};

const VALUE: &str = "tok-Qm7Zr2Lw9";

/// A fleet with one local host whose agent takes `TOKEN` from `source`, a
/// home of its own (no identity of the machine's user is ever picked up),
/// and an age identity in it.
struct Repo {
    fleet: Fleet,
    home: tempfile::TempDir,
    /// The age identity file.
    key: PathBuf,
    /// Its public key.
    public: String,
}

impl Repo {
    fn new(source: &str) -> Repo {
        let fleet = Fleet::new();
        fleet.agent_script("alpha", "v1");
        let body = agent("alpha", &format!(r#"secret "TOKEN" from="{source}""#));
        fleet.write(
            "hosts/box.kdl",
            &format!(
                "host \"box\" {{\n    local \"box/root\"\n    journald max-use=\"50M\" keep-free=\"100M\" retention=\"3d\"\n    alert \"log\" command=\"logger -t provision-alert x\"\n{body}\n}}\n"
            ),
        );
        let home = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let public = id.to_public().to_string();
        let key = home.path().join("alice.key");
        std::fs::write(
            &key,
            format!("# alice\n{}\n", id.to_string().expose_secret()),
        )
        .unwrap();
        Repo {
            fleet,
            home,
            key,
            public,
        }
    }

    fn path(&self) -> &Path {
        self.fleet.path()
    }

    fn recipients(&self, text: &str) {
        self.fleet.write("secrets/recipients", text);
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.fleet.command(args);
        cmd.env("HOME", self.home.path())
            .env("TMPDIR", self.home.path())
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("PROVISION_AGE_IDENTITY")
            .env_remove("VISUAL");
        cmd
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        Run::from(process::run_bounded(
            &mut cmd,
            std::time::Duration::from_secs(120),
        ))
    }

    /// `secrets edit FILE` with an "editor" that writes `content`.
    fn edit(&self, file: &str, content: &str) -> Run {
        let src = self.home.path().join("typed");
        std::fs::write(&src, content).unwrap();
        let editor = format!("cp {}", src.display());
        let key = self.key.to_str().unwrap().to_string();
        self.run(
            &["secrets", "edit", file, "--identity", &key],
            &[("EDITOR", editor.as_str())],
        )
    }

    /// Files left in the home (the temporary directory of `secrets edit`).
    fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.home.path()).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("provision-edit") {
                out.push(n);
            }
        }
        out
    }

    fn env_file(&self) -> String {
        std::fs::read_to_string(self.path().join("box/root/etc/provision/agents/alpha.env"))
            .unwrap_or_default()
    }
}

fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

#[test]
fn an_age_secret_is_edited_encrypted_and_applied() {
    let r = Repo::new("age:secrets/token.age");
    r.recipients(&format!("# alice\n{}\n", r.public));
    let run = r.edit("secrets/token.age", &format!("{VALUE}\n")).expect(0);
    assert_contains(
        &run.stdout,
        "secrets/token.age: encrypted to 1 recipient (alice)",
    );
    let file = std::fs::read_to_string(r.path().join("secrets/token.age")).unwrap();
    assert!(
        file.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{file}"
    );
    assert!(!file.contains(VALUE));
    assert!(r.leftovers().is_empty(), "{:?}", r.leftovers());
    // The reference tool decrypts what provision wrote.
    if which("age") {
        let out = Command::new("age")
            .args(["-d", "-i"])
            .arg(&r.key)
            .arg(r.path().join("secrets/token.age"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{VALUE}\n"));
    }

    let key = r.key.to_str().unwrap();
    let run = r.run(&["apply", "--yes", "--identity", key], &[]).expect(0);
    assert!(!run.all().contains(VALUE), "{}", run.all());
    assert_contains(&r.env_file(), VALUE);
    // PROVISION_AGE_IDENTITY does the same as --identity.
    r.run(
        &["plan", "--detailed-exitcode"],
        &[("PROVISION_AGE_IDENTITY", key)],
    )
    .expect(0);
    // The usual location, without either.
    std::fs::create_dir_all(r.home.path().join(".config/age")).unwrap();
    std::fs::copy(&r.key, r.home.path().join(".config/age/keys.txt")).unwrap();
    r.run(&["plan", "--detailed-exitcode"], &[]).expect(0);

    let check = r.run(&["secrets", "check"], &[]).expect(0);
    assert_contains(
        &check.stdout,
        "box agent `alpha` TOKEN (age:secrets/token.age)",
    );
    assert_contains(&check.stdout, "decryptable by: alice");
    assert!(!check.all().contains(VALUE));
    // Unchanged content and recipients: nothing is rewritten.
    let before = std::fs::read(r.path().join("secrets/token.age")).unwrap();
    let run = r.edit("secrets/token.age", &format!("{VALUE}\n")).expect(0);
    assert_contains(&run.stdout, "unchanged");
    assert_eq!(
        std::fs::read(r.path().join("secrets/token.age")).unwrap(),
        before
    );
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `ssh-keygen -t KIND` into the home; the private key's path and the
/// public line.
fn ssh_key(home: &Path, kind: &str, passphrase: &str) -> (PathBuf, String) {
    let locked = if passphrase.is_empty() { "" } else { "_locked" };
    let path = home.join(format!("id_{kind}{locked}"));
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        &format!("{kind}-key"),
        "-f",
    ])
    .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    assert!(cmd.status().unwrap().success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

#[test]
fn ssh_keys_and_the_reference_tool_work_and_ci_is_never_asked() {
    if !which("ssh-keygen") {
        eprintln!("SKIPPED secrets_age::ssh_keys: ssh-keygen is not installed");
        return;
    }
    let r = Repo::new("age:secrets/token.age");
    let (ed, ed_pub) = ssh_key(r.home.path(), "ed25519", "");
    let (rsa, rsa_pub) = ssh_key(r.home.path(), "rsa", "");
    r.recipients(&format!(
        "# alice\n{}\n{ed_pub}\n# the rsa key\n{rsa_pub}\n",
        r.public
    ));
    r.edit("secrets/token.age", VALUE).expect(0);
    for id in [&ed, &rsa] {
        let id = id.to_str().unwrap();
        let run = r
            .run(&["secrets", "check", "--identity", id], &[])
            .expect(0);
        assert_contains(
            &run.stdout,
            "decryptable by: alice, ed25519-key, the rsa key",
        );
    }

    // A file the reference tool encrypted to the SSH key.
    if which("age") {
        let plain = r.home.path().join("plain");
        std::fs::write(&plain, format!("{VALUE}\n")).unwrap();
        let status = Command::new("age")
            .arg("-R")
            .arg(ed.with_extension("pub"))
            .arg("-o")
            .arg(r.path().join("secrets/token.age"))
            .arg(&plain)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::remove_file(&plain).unwrap();
        let id = ed.to_str().unwrap();
        r.run(&["apply", "--yes", "--identity", id], &[]).expect(0);
        assert_contains(&r.env_file(), VALUE);
    }

    // A passphrase-protected key, in CI: never asked; told what to do.
    let (locked, locked_pub) = ssh_key(r.home.path(), "ed25519", "correct horse");
    let r2 = Repo::new("age:secrets/token.age");
    r2.recipients(&format!("{locked_pub}\n"));
    // Encrypt with the public key by the reference path: provision needs
    // no identity to encrypt.
    let src = r2.home.path().join("typed");
    std::fs::write(&src, VALUE).unwrap();
    let editor = format!("cp {}", src.display());
    r2.run(
        &["secrets", "edit", "secrets/token.age"],
        &[("EDITOR", editor.as_str())],
    )
    .expect(0);
    let id = locked.to_str().unwrap();
    let run = r2
        .run(&["plan", "--identity", id], &[("CI", "true")])
        .expect(1);
    assert_contains(
        &run.all(),
        "is protected by a passphrase and there is no terminal to ask it on",
    );
    assert!(!run.all().contains(VALUE));
}

#[test]
fn bad_identities_files_and_recipients_are_refused_clearly() {
    let r = Repo::new("age:secrets/token.age");
    r.recipients(&format!("{}\n", r.public));
    r.edit("secrets/token.age", VALUE).expect(0);

    // Someone else's identity.
    let other = r.home.path().join("bob.key");
    std::fs::write(
        &other,
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret(),
    )
    .unwrap();
    let run = r
        .run(&["plan", "--identity", other.to_str().unwrap()], &[])
        .expect(1);
    assert_contains(&run.all(), "hosts/box.kdl:");
    assert_contains(
        &run.all(),
        "secret `TOKEN` of agent `alpha` (age:secrets/token.age): secrets/token.age is not encrypted to your identity",
    );
    assert!(!r.path().join("box/root").exists(), "the host was touched");

    // No identity at all.
    let run = r.run(&["plan"], &[]).expect(1);
    assert_contains(&run.all(), "no age identity: pass --identity FILE");

    // An identity file that is not one.
    let junk = r.home.path().join("junk.key");
    std::fs::write(&junk, "hello\n").unwrap();
    let run = r.run(&["plan", "--identity", junk.to_str().unwrap()], &[]);
    assert_contains(&run.all(), "is not an age identity file");

    let key = r.key.to_str().unwrap();
    // A truncated file.
    let full = std::fs::read(r.path().join("secrets/token.age")).unwrap();
    std::fs::write(r.path().join("secrets/token.age"), &full[..full.len() / 2]).unwrap();
    let run = r.run(&["plan", "--identity", key], &[]).expect(1);
    assert_contains(&run.all(), "secrets/token.age is not a valid age file");
    // Not an age file at all: `check` says so without any identity.
    std::fs::write(r.path().join("secrets/token.age"), "plain text\n").unwrap();
    let run = r.run(&["check"], &[]).expect(1);
    assert_contains(&run.all(), "`secrets/token.age` is not an age file");
    std::fs::remove_file(r.path().join("secrets/token.age")).unwrap();
    let run = r.run(&["check"], &[]).expect(1);
    assert_contains(
        &run.all(),
        "`secrets/token.age` cannot be read: it does not exist",
    );

    // A recipients line that does not parse names its line and column.
    r.recipients(&format!("{}\n  age1notakey\n", r.public));
    let run = r.edit("secrets/token.age", VALUE).expect(1);
    assert_contains(
        &run.all(),
        "secrets/recipients:2:3: `age1notakey` is not an age public key",
    );
    let run = r.run(&["check"], &[]);
    assert_contains(&run.all(), "secrets/recipients:2:3:");

    // An editor that fails: nothing written, no plaintext left.
    r.recipients(&format!("{}\n", r.public));
    r.edit("secrets/token.age", VALUE).expect(0);
    let before = std::fs::read(r.path().join("secrets/token.age")).unwrap();
    let run = r
        .run(
            &["secrets", "edit", "secrets/token.age", "--identity", key],
            &[("EDITOR", "false")],
        )
        .expect(1);
    assert_contains(&run.all(), "the editor `false` exited");
    assert_eq!(
        std::fs::read(r.path().join("secrets/token.age")).unwrap(),
        before
    );
    assert!(r.leftovers().is_empty(), "{:?}", r.leftovers());
    // A file: secret whose file is missing fails `check`.
    let f = Repo::new("file:secrets/missing");
    let run = f.run(&["check"], &[]).expect(1);
    assert_contains(
        &run.all(),
        "`secrets/missing` cannot be read: it does not exist",
    );
}

#[test]
fn rekey_rewrites_only_what_changed_and_all_or_nothing() {
    let r = Repo::new("age:secrets/token.age");
    r.recipients(&format!("# alice\n{}\n", r.public));
    r.edit("secrets/token.age", VALUE).expect(0);
    r.edit("secrets/other.age", "other-Vx3").expect(0);
    let key = r.key.to_str().unwrap();
    let read = |f: &str| std::fs::read(r.path().join(f)).unwrap();
    let (token, other) = (read("secrets/token.age"), read("secrets/other.age"));

    // Same recipients (a new comment aside): nothing rewritten.
    r.recipients(&format!("# the team\n\n# alice (laptop)\n{}\n", r.public));
    let run = r
        .run(&["secrets", "rekey", "--identity", key], &[])
        .expect(0);
    assert_contains(
        &run.stdout,
        "Rekeyed 0 files, 2 already encrypted to secrets/recipients.",
    );
    assert_eq!(read("secrets/token.age"), token);
    assert_eq!(read("secrets/other.age"), other);

    // A new teammate is one line; then every file is rewritten for them.
    let bob = age::x25519::Identity::generate();
    let bob_key = r.home.path().join("bob.key");
    std::fs::write(&bob_key, bob.to_string().expose_secret()).unwrap();
    r.recipients(&format!(
        "# alice\n{}\n# bob\n{}\n",
        r.public,
        bob.to_public()
    ));
    // One file the operator cannot decrypt (encrypted to someone else):
    // nothing is written.
    let stranger = age::x25519::Identity::generate().to_public();
    let alien = age::encrypt(&stranger, b"x").unwrap();
    std::fs::write(r.path().join("secrets/alien.age"), &alien).unwrap();
    let run = r
        .run(&["secrets", "rekey", "--identity", key], &[])
        .expect(1);
    assert_contains(
        &run.all(),
        "nothing was rekeyed: 1 of 3 files could not be decrypted",
    );
    assert_contains(
        &run.all(),
        "secrets/alien.age is not encrypted to your identity",
    );
    assert_eq!(read("secrets/token.age"), token);
    assert_eq!(read("secrets/other.age"), other);
    std::fs::remove_file(r.path().join("secrets/alien.age")).unwrap();

    let run = r
        .run(&["secrets", "rekey", "--identity", key, "--json"], &[])
        .expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v["rekeyed"],
        serde_json::json!(["secrets/other.age", "secrets/token.age"])
    );
    assert_ne!(read("secrets/token.age"), token);
    // Bob can decrypt now, and the apply uses the value.
    r.run(
        &["apply", "--yes", "--identity", bob_key.to_str().unwrap()],
        &[],
    )
    .expect(0);
    assert_contains(&r.env_file(), VALUE);
    // A second rekey has nothing to do.
    let again = read("secrets/token.age");
    r.run(&["secrets", "rekey", "--identity", key], &[])
        .expect(0);
    assert_eq!(read("secrets/token.age"), again);
}

/// A passphrase-protected SSH key on a terminal: asked once for every file
/// of the run (two secrets here), then both resolve.
#[test]
fn a_passphrase_is_asked_once_on_a_terminal() {
    if !which("ssh-keygen") || !which("script") {
        eprintln!(
            "SKIPPED secrets_age::a_passphrase_is_asked_once: ssh-keygen or script is missing"
        );
        return;
    }
    let r = Repo::new("age:secrets/token.age");
    let (locked, locked_pub) = ssh_key(r.home.path(), "ed25519", "correct horse");
    r.recipients(&format!("{locked_pub}\n"));
    let body = std::fs::read_to_string(r.path().join("hosts/box.kdl"))
        .unwrap()
        .replace(
            r#"secret "TOKEN" from="age:secrets/token.age""#,
            r#"secret "TOKEN" from="age:secrets/token.age"
        secret "OTHER" from="age:secrets/other.age""#,
        );
    r.fleet.write("hosts/box.kdl", &body);
    for (file, value) in [
        ("secrets/token.age", VALUE),
        ("secrets/other.age", "other-Wq4"),
    ] {
        let src = r.home.path().join("typed");
        std::fs::write(&src, value).unwrap();
        let editor = format!("cp {}", src.display());
        r.run(&["secrets", "edit", file], &[("EDITOR", editor.as_str())])
            .expect(0);
    }
    let line = [
        env!("CARGO_BIN_EXE_provision"),
        "-C",
        r.path().to_str().unwrap(),
        "apply",
        "--yes",
        "--identity",
        locked.to_str().unwrap(),
    ]
    .map(|w| format!("'{w}'"))
    .join(" ");
    let input = r.home.path().join("answer");
    std::fs::write(&input, "correct horse\n").unwrap();
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("HOME", r.home.path())
        .env_remove("CI")
        .env_remove("PROVISION_AGE_IDENTITY")
        .env("NO_COLOR", "1")
        .stdin(std::fs::File::open(&input).unwrap());
    let run = Run::from(process::run_bounded(
        &mut cmd,
        std::time::Duration::from_secs(120),
    ))
    .expect(0);
    assert_eq!(
        run.stdout.matches("Passphrase for").count(),
        1,
        "{}",
        run.stdout
    );
    // The terminal echoes what was typed ahead of the prompt; after it,
    // with echo off, the passphrase never shows.
    let after = run
        .stdout
        .split("Passphrase for")
        .nth(1)
        .unwrap_or_default();
    assert!(!after.contains("correct horse"), "{}", run.stdout);
    let env = r.env_file();
    assert_contains(&env, VALUE);
    assert_contains(&env, "other-Wq4");
}
