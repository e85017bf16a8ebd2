//! `onboard` without a target: fingerprints as `ssh-keygen -lf` prints
//! them, and bad input refused with the fix, before anything is written.

use std::process::{Command, Stdio};

/// Fresh keys: the fingerprint is what ssh-keygen says, also when read
/// from ssh-keyscan-style output.
#[test]
fn fingerprints_are_ssh_keygens() {
    let dir = tempfile::tempdir().unwrap();
    for n in 0..3 {
        let key = dir.path().join(format!("k{n}"));
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "x@y", "-f"])
            .arg(&key)
            .status();
        let Ok(made) = made else {
            eprintln!("SKIPPED onboard::fingerprints_are_ssh_keygens: no ssh-keygen");
            return;
        };
        assert!(made.success());
        let public = key.with_extension("pub");
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&public)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        let expected = printed.split_whitespace().nth(1).unwrap();
        let line = std::fs::read_to_string(&public).unwrap();
        assert_eq!(provision::host_key::fingerprint(&line).unwrap(), expected);
        let scanned = provision::onboard::keyscan::parse(&format!("10.0.0.2 {line}")).unwrap();
        assert_eq!(scanned.fingerprint, expected);
        assert!(!scanned.line.contains("x@y"), "the comment is not pinned");
    }
}

fn onboard(args: &[&str]) -> (i32, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("hosts")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-C")
        .arg(dir.path())
        .arg("onboard")
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stderr).into_owned(), dir)
}

#[test]
fn bad_input_is_refused_with_the_fix_and_nothing_is_written() {
    for (args, says) in [
        (
            &["root@127.0.0.1", "--name", "../x"][..],
            "cannot be a host name",
        ),
        (&["127.0.0.1", "--name", "x"][..], "is not USER@ADDR"),
        (
            &["--name", "x", "--", "-oProxyCommand=x@h"][..],
            "is not USER@ADDR",
        ),
        (
            &["root@127.0.0.1", "--name", "x", "--deploy-user", "Bad.User"][..],
            "cannot be a user name",
        ),
        (
            &[
                "root@127.0.0.1",
                "--name",
                "x",
                "--harden-ssh",
                "--harden-guard",
                "5",
            ][..],
            "give 15 to 3600 seconds",
        ),
        (&["root@127.0.0.1", "--name", "x"][..], "pass --yes"),
        // Loopback port 9 (discard) has no SSH server.
        (
            &[
                "root@127.0.0.1",
                "--port",
                "9",
                "--name",
                "x",
                "--connect-timeout",
                "2",
                "--yes",
            ][..],
            "no SSH server at 127.0.0.1 port 9",
        ),
    ] {
        let (code, stderr, dir) = onboard(args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        let written: Vec<_> = std::fs::read_dir(dir.path().join("hosts"))
            .unwrap()
            .collect();
        assert!(written.is_empty(), "{args:?} wrote {written:?}");
    }
}

/// Runs `onboard ARGS` in `dir` without a terminal.
fn onboard_in(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-C")
        .arg(dir)
        .arg("onboard")
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CI")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A fresh `init` has an agent template `--agent` can use; a misspelt or
/// unusable template stops onboard before anything reaches the address
/// (loopback port 9 has no SSH server: reaching it would say so).
#[test]
fn agent_templates_are_checked_before_the_host_is_contacted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    let init = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let base = [
        "root@127.0.0.1",
        "--port",
        "9",
        "--name",
        "web-1",
        "--connect-timeout",
        "2",
        "--yes",
    ];
    let run = |extra: &[&str]| onboard_in(&dir, &[&base[..], extra].concat());
    let contacted = "no SSH server at 127.0.0.1 port 9";

    let (code, stderr) = run(&["--module", "host", "--agent", "helo"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("no module `helo`") && stderr.contains("did you mean `hello`?"),
        "{stderr}"
    );
    assert!(!stderr.contains(contacted), "{stderr}");

    // The template's heartbeat alerts "ops", which the host module brings.
    let (code, stderr) = run(&["--agent", "hello"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("alert=\"ops\"") && stderr.contains("not declared on this host"),
        "{stderr}"
    );
    assert!(!stderr.contains(contacted), "{stderr}");

    // A host module is no agent template: its nodes are unknown in an agent.
    let (code, stderr) = run(&["--agent", "web=host"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("unknown node `journald` in an agent"),
        "{stderr}"
    );
    assert!(!stderr.contains(contacted), "{stderr}");

    for (spec, says) in [
        ("Bot=hello", "cannot be used in unit names"),
        ("bot=", "name an agent template"),
    ] {
        let (code, stderr) = run(&["--module", "host", "--agent", spec]);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains(says), "{spec}: {stderr}");
    }
    let (code, stderr) = run(&["--module", "host", "--agent", "hello", "--agent", "hello"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("two --agent are named"), "{stderr}");

    // The template's files have fixed paths: two agents of it collide.
    let (code, stderr) = run(&[
        "--module",
        "host",
        "--agent",
        "hello",
        "--agent",
        "bot=hello",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is declared twice"), "{stderr}");
    assert!(!stderr.contains(contacted), "{stderr}");

    // Right: the checks pass and onboard goes on to the address.
    let (code, stderr) = run(&["--module", "host", "--agent", "bot=hello"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(contacted), "{stderr}");
    assert!(!dir.join("hosts/web-1.kdl").exists());
}
