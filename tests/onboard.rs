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
