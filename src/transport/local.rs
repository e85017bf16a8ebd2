//! The local transport: runs scripts on this machine against a directory standing in for a
//! host's root filesystem.
//!
//! It exists so that the scripts `provision` generates can be tested, and previewed, without a
//! host: the same script that writes `"$PROVISION_ROOT/etc/foo"` as root over SSH writes
//! `<root>/etc/foo` here. Scripts run as the current user, with `PROVISION_ROOT=<root>`
//! (absolute) and `PROVISION_LOCAL=1` in their environment, so a script can skip steps that
//! only make sense on a real host (such as `systemctl`).

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{ExecOutput, TransportError, exchange};

/// Runs scripts with `sh -c` on this machine, with `$PROVISION_ROOT` set to a directory.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    host: String,
    root: PathBuf,
}

impl LocalTransport {
    /// A transport for the inventory host `host_name` whose filesystem is under `root`.
    ///
    /// A relative `root` is made absolute against the current directory now, so that scripts
    /// that `cd` still find it.
    pub fn new(host_name: &str, root: PathBuf) -> Self {
        let root = std::path::absolute(&root).unwrap_or(root);
        LocalTransport {
            host: host_name.to_owned(),
            root,
        }
    }

    /// The host's inventory name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The directory that stands in for the host's `/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `sh -c script` locally, feeding `stdin`. See [`super::Transport::run`].
    pub async fn run(&self, script: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        let io_error = |what: &str, e: std::io::Error| TransportError::Io {
            host: self.host.clone(),
            message: format!("{what}: {e}"),
        };
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PROVISION_ROOT", &self.root)
            .env("PROVISION_LOCAL", "1")
            .stdin(if stdin.is_empty() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // If the caller gives up on the future, don't leave the script running.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io_error("cannot start the local `sh`", e))?;

        let (stdout, stderr) = exchange(
            child.stdin.take(),
            stdin,
            child.stdout.take(),
            child.stderr.take(),
        )
        .await
        .map_err(|e| io_error("cannot talk to the local script", e))?;
        let status = child
            .wait()
            .await
            .map_err(|e| io_error("cannot wait for the local script", e))?;

        // Report a shell killed by a signal the way a parent shell would (128 + signal), which
        // is also what the SSH transport reports.
        let status = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1);
        Ok(ExecOutput {
            status,
            stdout,
            stderr,
        })
    }
}
