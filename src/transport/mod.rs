//! Running shell scripts on hosts: over SSH, or locally against a fake root.
//!
//! This module owns the only way `provision` touches a host: [`Transport::run`] runs a POSIX
//! `sh` script as root and gives back its exit status and output. Everything else (what to
//! write, how to verify it) is built out of scripts by the callers.
//!
//! Two transports exist:
//! - [`SshTransport`] (in `ssh.rs`): one multiplexed OpenSSH master connection per host,
//!   strict host key checking, optional key pinning, and a per-host limit on concurrent
//!   commands.
//! - [`LocalTransport`] (in `local.rs`): runs the same scripts on this machine with
//!   `$PROVISION_ROOT` pointing at a directory, for tests and dry runs.
//!
//! Scripts must write every host path as `"$PROVISION_ROOT/etc/..."`. The SSH transport sets
//! `PROVISION_ROOT` to the empty string, so the same script writes `/etc/...` on a real host
//! and `<root>/etc/...` locally. Large data goes through stdin, never the command line.
//!
//! This file also has [`fingerprint`], which computes the OpenSSH `SHA256:` fingerprint of a
//! public key line, so pinned keys can be shown the way `ssh-keygen -l` shows them.

pub mod keyscan;
mod local;
mod ssh;

pub use local::LocalTransport;
pub use ssh::{Login, SshTarget, SshTransport};

pub(crate) use crate::host_key::PublicKey;
pub use crate::host_key::{InvalidPublicKey, fingerprint};

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// What a command returned.
///
/// A non-zero `status` is not a transport error: the script ran and said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The script's exit status. When the script's shell was killed by a signal, this is
    /// `128 + signal`, as a shell would report it.
    pub status: i32,
    /// Everything the script wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the script wrote to stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Whether the script exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Stdout as text, with invalid UTF-8 replaced.
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text, with invalid UTF-8 replaced.
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a host could not be reached or a script's outcome is unknown.
///
/// Every variant names the host (its inventory name). The messages say what happened and
/// what to do about it, so they can be shown to the user as they are.
#[derive(Debug)]
pub enum TransportError {
    /// The host presented a key other than the one pinned (or recorded in known_hosts).
    /// Nothing was run on the host: ssh stops before authenticating.
    HostKeyMismatch {
        /// The host's inventory name.
        host: String,
        /// Fingerprint (`SHA256:...`) of the key we trust, or where ssh found it when it
        /// could not be read.
        expected: String,
        /// Fingerprint of the key the host presented, when it could be obtained.
        actual: Option<String>,
    },

    /// No key is pinned and the user's known_hosts has no key for the host, and strict
    /// checking is on. Nothing was run on the host.
    UnknownHostKey {
        /// The host's inventory name.
        host: String,
        /// Fingerprint of the key the host presents, when it could be obtained.
        actual: Option<String>,
    },

    /// The host refused our credentials, or the login user cannot become root.
    Auth {
        /// The host's inventory name.
        host: String,
        /// What ssh (or the sudo check) said.
        message: String,
    },

    /// No SSH connection could be made: connection refused, timeout, name resolution.
    Unreachable {
        /// The host's inventory name.
        host: String,
        /// What ssh said.
        message: String,
    },

    /// The connection dropped while a command ran, so its outcome is unknown: it may have
    /// run partly, fully, or not at all.
    Lost {
        /// The host's inventory name.
        host: String,
        /// What was observed.
        message: String,
    },

    /// The host did not answer a command within its bound: a command on it
    /// hangs, or the host is overloaded. The command may still be running.
    TimedOut {
        /// The host's inventory name.
        host: String,
        /// What was asked (`the probe`, `the verification`).
        what: String,
        /// The bound, in seconds.
        secs: u64,
    },

    /// A local failure: the ssh client could not be started, a temporary file could not be
    /// written, a pipe broke, or the request cannot be expressed (a NUL byte, an oversized
    /// script, a malformed pinned key).
    Io {
        /// The host's inventory name.
        host: String,
        /// What failed, and how to fix it when we know.
        message: String,
    },
}

impl TransportError {
    /// What happened, naming the host, without the advice.
    pub fn summary(&self) -> String {
        match self {
            TransportError::HostKeyMismatch {
                host,
                expected,
                actual,
            } => format!(
                "{host}: the SSH host key does not match: expected {expected}, the host presented {}. Nothing was run.",
                actual
                    .as_deref()
                    .unwrap_or("another key (it could not be read back)")
            ),
            TransportError::UnknownHostKey { host, actual } => format!(
                "{host}: the SSH host key is not known{}.",
                actual
                    .as_deref()
                    .map(|a| format!(" (the host presents {a})"))
                    .unwrap_or_default()
            ),
            TransportError::Auth { host, message } => {
                format!("{host}: SSH login failed: {message}.")
            }
            TransportError::Unreachable { host, message } => {
                format!("{host}: cannot reach the host over SSH: {message}.")
            }
            TransportError::Lost { host, message } => {
                format!("{host}: the SSH connection was lost while a command ran ({message}).")
            }
            TransportError::TimedOut { host, what, secs } => {
                format!("{host}: {what} did not finish within {secs} s.")
            }
            TransportError::Io { host, message } => format!("{host}: {message}"),
        }
    }

    /// What to do about it, when there is advice.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            TransportError::HostKeyMismatch { .. } => Some(
                "If the host was reinstalled, verify its new key out of band and update the pinned host key (or the known_hosts entry); otherwise the connection may be intercepted.",
            ),
            TransportError::UnknownHostKey { .. } => Some(
                "Verify the key out of band (the provider's console shows it), then pin it in the host's file: `host-key \"ssh-ed25519 AAAA…\"` (`ssh-keyscan -t ed25519 ADDRESS` prints the key line).",
            ),
            TransportError::Auth { .. } => Some(
                "Check the user and the identity file, that the public key is in the host's authorized_keys or loaded in ssh-agent (ssh runs in batch mode, so passwords are never asked), and that a login user other than root has passwordless sudo.",
            ),
            TransportError::Unreachable { .. } => Some(
                "Check the address and port, that sshd runs on the host, and that no firewall is in the way.",
            ),
            TransportError::Lost { .. } => Some(
                "The command may have partly run; run provision again once the host is reachable.",
            ),
            TransportError::TimedOut { .. } => Some(
                "A command on the host hangs or the host is overloaded: look at `systemctl list-jobs` and the journal there, then run provision again.",
            ),
            TransportError::Io { .. } => None,
        }
    }

    /// The inventory name of the host the error is about.
    pub fn host(&self) -> &str {
        match self {
            TransportError::HostKeyMismatch { host, .. }
            | TransportError::UnknownHostKey { host, .. }
            | TransportError::Auth { host, .. }
            | TransportError::Unreachable { host, .. }
            | TransportError::Lost { host, .. }
            | TransportError::TimedOut { host, .. }
            | TransportError::Io { host, .. } => host,
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())?;
        if let Some(help) = self.help() {
            write!(f, " {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TransportError {}

/// A way to run scripts as root on one host.
#[derive(Debug)]
pub enum Transport {
    /// A real host, over SSH.
    Ssh(SshTransport),
    /// This machine, with paths under a local root directory.
    Local(LocalTransport),
    /// An SSH connection closed while its host waits for its turn, so that
    /// a run holds at most `--parallel` open (see [`Transport::park`]):
    /// [`Transport::run`] fails until the host is connected again.
    Closed {
        /// The host's inventory name.
        host: String,
    },
}

impl Transport {
    /// The host's inventory name.
    pub fn host(&self) -> &str {
        match self {
            Transport::Ssh(t) => t.host(),
            Transport::Local(t) => t.host(),
            Transport::Closed { host } => host,
        }
    }

    /// Runs a POSIX sh script on the host as root (through `sudo -n` when the SSH user is not
    /// root), feeding `stdin`, and returns its status and output. A non-zero exit is NOT an
    /// error: it's in [`ExecOutput`].
    ///
    /// `$PROVISION_ROOT` is set for the script: empty over SSH, the local root otherwise.
    /// Calls may run concurrently; the SSH transport runs at most 8 at a time per host and
    /// queues the rest. The script must not leave background processes holding its stdout or
    /// stderr open, or the call waits for them. There is no built-in timeout: wrap the call
    /// in `tokio::time::timeout` if needed (dropping the future stops waiting, but a remote
    /// command keeps running, since the SSH multiplexing protocol cannot signal it).
    pub async fn run(&self, script: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        match self {
            Transport::Ssh(t) => t.run(script, stdin).await,
            Transport::Local(t) => t.run(script, stdin).await,
            Transport::Closed { host } => Err(TransportError::Lost {
                host: host.clone(),
                message: "the connection was closed to wait for its turn".into(),
            }),
        }
    }

    /// [`Transport::run`], waiting at most `limit` for it: past that, the
    /// call ends with [`TransportError::TimedOut`] naming `what` (the remote
    /// command may still run; the ones provision sends are bounded or
    /// read-only on the host).
    pub async fn run_within(
        &self,
        script: &str,
        stdin: &[u8],
        limit: std::time::Duration,
        what: &str,
    ) -> Result<ExecOutput, TransportError> {
        match tokio::time::timeout(limit, self.run(script, stdin)).await {
            Ok(out) => out,
            Err(_) => Err(TransportError::TimedOut {
                host: self.host().to_string(),
                what: what.to_string(),
                secs: limit.as_secs(),
            }),
        }
    }

    /// Closes the connection. For SSH this stops the master process and removes its
    /// temporary directory; dropping the transport does the same, without waiting.
    pub async fn close(self) {
        match self {
            Transport::Ssh(t) => t.close().await,
            Transport::Local(_) | Transport::Closed { .. } => {}
        }
    }

    /// Closes an SSH connection and keeps the host's name, as
    /// [`Transport::Closed`]; a local one stays as it is (it holds nothing
    /// open).
    pub async fn park(self) -> Transport {
        match self {
            Transport::Ssh(t) => {
                let host = t.host().to_string();
                t.close().await;
                Transport::Closed { host }
            }
            other => other,
        }
    }

    /// Closed by [`Transport::park`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Transport::Closed { .. })
    }
}

/// Feeds `data` to a child's stdin while collecting its stdout and stderr.
///
/// All three run concurrently: a script that prints a lot before reading its input would
/// otherwise fill a pipe and wait forever. A `BrokenPipe` on stdin is not an error: it means
/// the script exited without reading everything, which is its own business.
pub(crate) async fn exchange<W, O, E>(
    stdin: Option<W>,
    data: &[u8],
    stdout: Option<O>,
    stderr: Option<E>,
) -> io::Result<(Vec<u8>, Vec<u8>)>
where
    W: AsyncWrite + Unpin,
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let write = async {
        let Some(mut w) = stdin else { return Ok(()) };
        let written = match w.write_all(data).await {
            Ok(()) => w.shutdown().await,
            Err(e) => Err(e),
        };
        // Dropping the handle closes the pipe, so the script sees end of input.
        drop(w);
        match written {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    };
    let read_out = read_all(stdout);
    let read_err = read_all(stderr);
    let (written, out, err) = tokio::join!(write, read_out, read_err);
    written?;
    Ok((out?, err?))
}

async fn read_all<R: AsyncRead + Unpin>(reader: Option<R>) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut r) = reader {
        r.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}
