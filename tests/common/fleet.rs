//! A throwaway operator repository for end-to-end tests: the project's own
//! modules, hosts written by the test, and a way to run `provision` on it.

#![allow(dead_code)]

pub use crate::process::run_bounded;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A repository in a temporary directory.
pub struct Fleet {
    /// Its directory.
    pub dir: tempfile::TempDir,
}

/// An agent that beats every 5 s; `extra` goes inside its node.
pub fn agent(name: &str, extra: &str) -> String {
    format!(
        r##"
    agent "{name}" {{
        use "agent"
        exec "/opt/agents/{name}/run.sh"
        auth "svc" check="/opt/agents/{name}/auth-check" {{
            rotate every="7d" run="/bin/true"
        }}
        heartbeat every="1m" grace="1m" alert="log"
        file "/opt/agents/{name}/run.sh" source="agents/{name}.sh" mode=0o755
        file "/opt/agents/{name}/auth-check" content="#!/bin/sh\nexit 0\n" mode=0o755
        failure-mode "svc down" "retry in a minute" tool="svc"
        {extra}
    }}"##
    )
}

impl Fleet {
    /// An empty repository with the project's modules.
    pub fn new() -> Fleet {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("modules");
        copy_dir(&src, &dir.path().join("modules"));
        std::fs::create_dir_all(dir.path().join("hosts")).unwrap();
        std::fs::create_dir_all(dir.path().join("agents")).unwrap();
        Fleet { dir }
    }

    /// The repository's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file of the repository.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Writes the run script of agent `name`, with a marker that makes its
    /// content distinct.
    pub fn agent_script(&self, name: &str, marker: &str) {
        self.write(
            &format!("agents/{name}.sh"),
            &format!(
                "#!/bin/sh\n# {marker}\nwhile :; do touch \"$PROVISION_HEARTBEAT\"; sleep 5; done\n"
            ),
        );
    }

    /// Writes `hosts/NAME.kdl` for a host reached at `destination` with the
    /// test key, pinned to `host_key`, holding `body` (agents and the like).
    pub fn host(&self, name: &str, destination: &str, port: u16, host_key: &str, body: &str) {
        self.write(
            &format!("hosts/{name}.kdl"),
            &format!(
                r#"host "{name}" {{
    ssh "{destination}" port={port} identity="/var/tmp/provision-targets/id_ed25519"
    host-key "{host_key}"
    journald max-use="50M" keep-free="100M" retention="3d"
    alert "log" command="logger -t provision-alert \"$ALERT_MESSAGE\""
{body}
}}
"#
            ),
        );
    }

    /// The command, run in the repository, without a terminal.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_provision"));
        cmd.arg("-C")
            .arg(self.dir.path())
            .args(args)
            .env_remove("CI")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `provision ARGS`, bounded to two minutes.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        let out = run_bounded(&mut cmd, Duration::from_secs(120));
        Run::from(out)
    }

    /// Starts `provision ARGS` and hands back the child with a channel of its
    /// stderr lines.
    pub fn spawn(&self, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("provision starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    }
}

/// Waits (bounded) for a stderr line containing `needle`; returns the lines
/// seen.
pub fn wait_line(rx: &mpsc::Receiver<String>, needle: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?} within {timeout:?}; saw {seen:#?}");
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed).
    pub code: i32,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Panics with the output unless the exit code is `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest: PathBuf = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}
