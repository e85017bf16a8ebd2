//! The command line's hygiene, as a script or a shell pipeline meets it:
//! a closed output pipe ends every command quietly with 141, usage errors
//! exit 64 and never a code that means something else, `--help` exits 0,
//! colour follows `CLICOLOR_FORCE` and `TERM=dumb`, and the completion
//! scripts and man pages come from the same definitions.
//!
//! Commands that reach hosts run on a copy of the bundled `demo` host,
//! whose transport is `local "demo/root"`: a directory in the copy. The
//! bundled repository itself is used only by commands that never connect
//! (`check`, `render`), since its other hosts have documentation addresses.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/process.rs"]
mod process;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use fleet::Fleet;

/// The bundled repository.
const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The documented exit code of a command whose output was closed.
const CLOSED_PIPE: i32 = 141;
/// The documented exit code of a usage error.
const USAGE: i32 = 64;
/// How long any one command may take.
const BOUND: Duration = Duration::from_secs(120);

/// A repository holding only the bundled `demo` host (local transport).
fn demo() -> Fleet {
    let fleet = Fleet::new();
    let kdl = std::fs::read_to_string(Path::new(REPO).join("hosts/demo.kdl")).unwrap();
    assert!(
        kdl.contains("local \"demo/root\""),
        "hosts/demo.kdl is no longer a local host; this test must never connect anywhere"
    );
    fleet.write("hosts/demo.kdl", &kdl);
    fleet::copy_dir(
        &Path::new(REPO).join("demo/agents"),
        &fleet.path().join("demo/agents"),
    );
    fleet
}

/// `provision ARGS` in `dir`, without a terminal, CI or colour.
fn provision(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_provision"));
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("CI")
        .env_remove("CLICOLOR_FORCE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` with a stdout whose reader is already gone, so its first
/// write fails; returns its status and stderr.
fn with_closed_stdout(mut cmd: Command) -> (ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = cmd
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("provision starts");
    drop(cmd);
    let mut stderr = child.stderr.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("provision (pid {}) ran longer than {BOUND:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, reading.join().unwrap())
}

fn assert_quiet_close(what: &str, cmd: Command) {
    let (status, stderr) = with_closed_stdout(cmd);
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert!(!stderr.contains("error:"), "{what}: {stderr}");
    assert_eq!(
        status.code(),
        Some(CLOSED_PIPE),
        "{what}: {status}, {stderr}"
    );
}

#[test]
fn every_command_ends_quietly_with_141_when_its_output_is_closed() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap();
    let repo = Path::new(REPO);
    assert_quiet_close("check", provision(repo, &["check"]));
    assert_quiet_close(
        "render --json",
        provision(repo, &["render", "demo", "--json", "--out", out]),
    );
    assert_quiet_close("render", provision(repo, &["render", "demo", "--out", out]));
    assert_quiet_close("--help", provision(repo, &["--help"]));
    assert_quiet_close("plan --help", provision(repo, &["plan", "--help"]));
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert_quiet_close(shell, provision(repo, &["completions", shell]));
    }
    assert_quiet_close("man", provision(repo, &["man"]));

    let demo = demo();
    let dir = demo.path();
    for args in [
        &["plan"][..],
        &["plan", "--json"],
        &["status"],
        &["status", "--json"],
        &["generations", "demo"],
        &["verify", "--heartbeat-timeout", "1"],
        &["apply", "--yes"],
    ] {
        assert_quiet_close(&args.join(" "), provision(dir, args));
    }
    // Once applied, the commands that list and report have more to say.
    let applied = provision(dir, &["apply", "--yes"]).output().unwrap();
    assert!(applied.status.success(), "{applied:?}");
    assert_quiet_close("generations", provision(dir, &["generations", "demo"]));
    assert_quiet_close("status", provision(dir, &["status"]));
}

#[test]
fn a_closed_stderr_is_quiet_too() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = provision(Path::new(REPO), &["--jsn"])
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(CLOSED_PIPE), "{out:?}");
}

#[test]
fn usage_errors_exit_64_never_a_code_with_another_meaning() {
    let repo = Path::new(REPO);
    for args in [
        &["--jsn", "check"][..],
        &["plan", "--detailed-exitcode", "--jsn"],
        &["apply", "--keep", "0"],
        &["plan", "--shard", "3/2"],
        &["frobnicate"],
        &["render"],
        &[],
        &["completions", "tcsh"],
        // Flags of the commands that reach hosts are theirs alone.
        &["check", "--parallel", "2"],
        &["render", "demo", "--out", "x", "--connect-timeout", "1"],
        &["check", "--yes"],
        &["-q", "-v", "check"],
    ] {
        let out = provision(repo, args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(USAGE), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    let repo = Path::new(REPO);
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["help", "apply"],
        &["apply", "--help"],
        &["--version"],
        &["-V"],
    ] {
        let out = provision(repo, args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    let help = provision(repo, &["--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for text in [
        "Exit codes:",
        " 64  usage error",
        "141  output closed",
        "-q, --quiet",
        "-v, --verbose",
        "Run as if provision was started in DIR",
        "CLICOLOR_FORCE",
    ] {
        assert!(help.contains(text), "{text:?} in\n{help}");
    }
    let check = provision(repo, &["check", "--help"]).output().unwrap();
    let check = String::from_utf8(check.stdout).unwrap();
    for flag in ["--parallel", "--connect-timeout", "--yes"] {
        assert!(!check.contains(flag), "{flag} in\n{check}");
    }
    let apply = provision(repo, &["apply", "--help"]).output().unwrap();
    let apply = String::from_utf8(apply.stdout).unwrap();
    for flag in ["--parallel", "--connect-timeout", "--yes", "--json", "-C"] {
        assert!(apply.contains(flag), "{flag} in\n{apply}");
    }
}

#[test]
fn clicolor_force_colours_piped_output_unless_no_color_says_otherwise() {
    let repo = Path::new(REPO);
    let run = |env: &[(&str, &str)]| {
        let mut cmd = provision(repo, &["check"]);
        cmd.env_remove("NO_COLOR").envs(env.iter().copied());
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(!run(&[]).contains('\x1b'));
    assert!(run(&[("CLICOLOR_FORCE", "1")]).contains("\x1b["));
    assert!(run(&[("CLICOLOR_FORCE", "1"), ("TERM", "dumb")]).contains("\x1b["));
    assert!(!run(&[("CLICOLOR_FORCE", "0")]).contains('\x1b'));
    assert!(!run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\x1b'));
}

/// Whether `script` (util-linux), which gives a command a terminal, is here.
fn have_script() -> bool {
    Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `provision -C DIR ARGS` on a terminal (by `script`) with `TERM=term`;
/// everything the terminal showed.
fn on_terminal(dir: &Path, args: &[&str], term: &str) -> String {
    let quote = |w: &str| format!("'{}'", w.replace('\'', r"'\''"));
    let mut line = vec![
        quote(env!("CARGO_BIN_EXE_provision")),
        "-C".into(),
        quote(dir.to_str().unwrap()),
    ];
    line.extend(args.iter().map(|a| quote(a)));
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env_remove("CI")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", term)
        .stdin(Stdio::null());
    let out = process::run_bounded(&mut cmd, BOUND);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn term_dumb_gets_no_colour_and_progress_lines_instead_of_spinners() {
    if !have_script() {
        eprintln!("SKIPPED pipes::term_dumb_gets_no_colour_and_progress_lines: no `script`");
        return;
    }
    let repo = Path::new(REPO);
    // The same terminal with another TERM is coloured: the test can see it.
    assert!(on_terminal(repo, &["check"], "xterm").contains("\x1b["));
    let dumb = on_terminal(repo, &["check"], "dumb");
    assert!(dumb.contains("checked 3 hosts"), "{dumb}");
    assert!(!dumb.contains('\x1b'), "{dumb:?}");

    // A spinner needs escapes to redraw its line; a dumb terminal gets the
    // plain line per host that a pipe gets.
    let demo = demo();
    let apply = on_terminal(demo.path(), &["apply", "--yes"], "dumb");
    assert!(apply.contains("demo: ok at generation 1"), "{apply}");
    assert!(!apply.contains('\x1b'), "{apply:?}");
}

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    let repo = Path::new(REPO);
    let bash = provision(repo, &["completions", "bash"]).output().unwrap();
    assert!(bash.status.success());
    let bash = String::from_utf8(bash.stdout).unwrap();
    assert!(bash.contains("complete -F _provision"), "{bash}");
    for word in ["apply", "--detailed-exitcode", "--connect-timeout"] {
        assert!(bash.contains(word), "{word}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = provision(repo, &["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        assert!(String::from_utf8(out.stdout).unwrap().contains("provision"));
    }

    let man = provision(repo, &["man"]).output().unwrap();
    assert!(man.status.success());
    let man = String::from_utf8(man.stdout).unwrap();
    // roff's definition of the apostrophe string comes before the title.
    let first = man
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .unwrap();
    assert!(first.starts_with(".TH provision 1"), "{man}");
    assert!(man.contains("Exit codes:"), "{man}");

    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = provision(repo, &["man", "--out", pages.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for name in ["provision.1", "provision-apply.1", "provision-check.1"] {
        let page = std::fs::read_to_string(pages.join(name)).unwrap();
        assert!(page.contains(".TH provision"), "{name}");
    }
}
