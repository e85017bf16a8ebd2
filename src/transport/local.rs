//! The local transport: runs scripts on this machine against a directory standing in for a
//! host's root filesystem.
//!
//! It exists so that the scripts `provision` generates can be tested, and previewed, without a
//! host: the same script that writes `"$PROVISION_ROOT/etc/foo"` as root over SSH writes
//! `<root>/etc/foo` here. Scripts run as the current user, with `PROVISION_ROOT=<root>`
//! (absolute) and `PROVISION_LOCAL=1` in their environment, so a script can skip steps that
//! only make sense on a real host (such as `systemctl`).
//!
//! The scripts write `"$PROVISION_ROOT/<host path>"` with the shell, which follows symlinks.
//! A symlink under the root (`<root>/etc -> /etc`) would send those writes, and the probe's
//! reads and diffs, to this machine's own files. So before every script, the transport
//! walks the root and refuses to run while it holds a symlink that is a directory on the
//! way to some path, or that leads out of its directory (absolute, or through `..`) to
//! anything but a regular file. What is left are symlinks to files: relative ones, such as
//! the generation store's `current -> generations/N.json`, and ones the probe reports when
//! they sit at a managed path.

use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Component, Path, PathBuf};
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
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || check_symlinks(&root))
            .await
            .map_err(|e| io_error("cannot check the local root", io::Error::other(e)))?
            .map_err(|message| TransportError::Io {
                host: self.host.clone(),
                message,
            })?;
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

/// How many entries under a local root are checked at most. A root is a test fixture or a
/// preview, far smaller; one this large is refused rather than half checked.
const MAX_ENTRIES: usize = 200_000;

/// Walks `root` (without following symlinks) and refuses the first symlink that could take
/// a script's path out of the root: one that is a directory (a path component), or whose
/// target is absolute or climbs with `..`. A missing root is fine: the scripts create it.
fn check_symlinks(root: &Path) -> Result<(), String> {
    let mut todo = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = todo.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir == root => return Ok(()),
            Err(e) => return Err(format!("cannot check {} for symlinks: {e}", dir.display())),
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| format!("cannot check {} for symlinks: {e}", dir.display()))?;
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(format!(
                    "the local root {} has more than {MAX_ENTRIES} entries to check for \
                     symlinks; nothing was run",
                    root.display()
                ));
            }
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| format!("cannot check {}: {e}", path.display()))?;
            if kind.is_dir() {
                todo.push(path);
            } else if kind.is_symlink() {
                check_link(&path)?;
            }
        }
    }
    Ok(())
}

/// Refuses a symlink that a script could follow out of the root: one that is a directory
/// (so a component of the paths below it), or one that leads out of its directory
/// (absolute, or through `..`) to anything but a regular file, a dangling target included,
/// since a directory may appear there later. A symlink to a regular file elsewhere is left
/// to the probe, which reports a managed path that is a symlink by its host path.
fn check_link(path: &Path) -> Result<(), String> {
    let target =
        std::fs::read_link(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let refuse = |why: &str| {
        Err(format!(
            "{} is a symlink to {} ({why}); a local host's root must not lead elsewhere, so \
             nothing was run. Replace the symlink with the directory or file itself",
            path.display(),
            target.display()
        ))
    };
    let resolved = std::fs::metadata(path);
    if resolved.as_ref().is_ok_and(|m| m.is_dir()) {
        return refuse("a directory on the way to the paths under it");
    }
    let escapes = !target
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes && !resolved.is_ok_and(|m| m.is_file()) {
        return refuse("it leads out of its directory");
    }
    Ok(())
}
