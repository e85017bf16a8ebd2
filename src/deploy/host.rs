//! The engine's effects on one host: connect, probe, run a switch (or the
//! finish of an interrupted one), list generations. Each step is one script
//! run over the host's transport; progress goes through [`Progress`], and
//! nothing here prints.

use std::path::Path;
use std::time::Duration;

use crate::content_id::ContentId;
use crate::model::{Connection, Host};
use crate::observed::{Observed, parse_probe};
use crate::record::Record;
use crate::script::{self, Outcome, Request};
use crate::transport::{LocalTransport, Login, SshTarget, SshTransport, Transport, TransportError};

/// Where a host is in its run, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Opening the connection.
    Connecting,
    /// Looking at the host.
    Probing,
    /// Finishing a switch an earlier run left.
    Finishing(u64),
    /// Uploading and switching to a generation.
    Switching {
        /// The generation.
        number: u64,
        /// Bytes uploaded.
        bytes: u64,
    },
    /// Verifying the agents after a switch to a generation.
    Verifying {
        /// The generation.
        generation: u64,
        /// The longest the verification may wait for readiness beats and
        /// stability windows, in seconds.
        wait_secs: u64,
    },
    /// Verifying and confirming a generation an earlier run switched to and
    /// did not confirm.
    Confirming(u64),
    /// Checking the host's agents (`verify`), waiting up to this many
    /// seconds for their heartbeats.
    Checking {
        /// The longest wait for a heartbeat.
        heartbeat_timeout: u64,
    },
    /// Reading the host's state (`status`).
    Reading,
    /// Finished (with a one-line summary).
    Done(String),
    /// Failed (with a one-line reason).
    Failed(String),
}

/// How long one phase of a host's run took, for the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Phase {
    /// Its name: `connect`, `probe`, `upload`, `prepare`, `rename`, …
    pub phase: String,
    /// Its duration, in milliseconds.
    pub ms: u64,
}

/// Receives progress; implemented by the terminal UI.
pub trait Progress: Send + Sync {
    /// `host` reached `stage`.
    fn stage(&self, host: &str, stage: Stage);

    /// `host` finished `phase` (`connect`, `probe`, `upload`, …), which took
    /// `took`: for the report's timings.
    fn phase(&self, _host: &str, _phase: &str, _took: Duration) {}
}

/// Why a host's run stopped.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The transport failed (unreachable, host key, login, lost connection).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The host answered something unexpected.
    #[error("{host}: {message}")]
    Host {
        /// The host.
        host: String,
        /// What went wrong, in the host's words where possible.
        message: String,
    },
    /// Secrets the host needs could not be resolved; it was not touched.
    #[error("{host}: {}", crate::error::Error::Secrets(.failures.clone()))]
    Secrets {
        /// The host.
        host: String,
        /// Each secret, where it is needed and why.
        failures: Vec<String>,
    },
}

impl HostError {
    /// What happened, without the advice.
    pub fn summary(&self) -> String {
        match self {
            HostError::Transport(e) => e.summary(),
            HostError::Host { .. } | HostError::Secrets { .. } => self.to_string(),
        }
    }

    /// What to do about it, when there is advice.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            HostError::Transport(e) => e.help(),
            HostError::Host { .. } => None,
            HostError::Secrets { .. } => {
                Some("set or fix each secret's source; the hosts whose secrets resolved went on")
            }
        }
    }

    /// What kind of failure this is, for reports: `host-key-mismatch`,
    /// `unknown-host-key`, `auth`, `unreachable`, `lost`, `local` (this
    /// machine could not run the request) or `host` (the host answered
    /// something unexpected).
    pub fn kind(&self) -> &'static str {
        match self {
            HostError::Transport(e) => match e {
                TransportError::HostKeyMismatch { .. } => "host-key-mismatch",
                TransportError::UnknownHostKey { .. } => "unknown-host-key",
                TransportError::Auth { .. } => "auth",
                TransportError::Unreachable { .. } => "unreachable",
                TransportError::Lost { .. } => "lost",
                TransportError::TimedOut { .. } => "timeout",
                TransportError::Io { .. } => "local",
            },
            HostError::Host { .. } => "host",
            HostError::Secrets { .. } => "secret",
        }
    }
}

/// How long a read-only look at a host (the probe, status, the list of
/// generations) may take: it reads and hashes what provision manages, which
/// is seconds even for a large host; past this a command on it hangs.
pub const READ_LIMIT: Duration = Duration::from_secs(300);

/// Options for connecting.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// TCP and banner timeout.
    pub timeout: Duration,
}

/// Opens the host's transport: SSH with its pinned key, or its local root
/// (relative to the repository).
pub async fn connect(
    host: &Host,
    repo: &Path,
    options: &ConnectOptions,
) -> Result<Transport, HostError> {
    match &host.connection {
        Connection::Local { root } => Ok(Transport::Local(LocalTransport::new(
            &host.name,
            repo.join(root),
        ))),
        Connection::Ssh {
            destination,
            port,
            identity,
            sudo,
            declared_at,
        } => {
            let mut target = SshTarget::new(destination.clone());
            target.login = if *sudo {
                Login::Sudo
            } else {
                Login::Root {
                    declared_at: Some(declared_at.clone()),
                }
            };
            target.port = *port;
            target.host_key = host.host_key.clone();
            target.identity = identity.as_ref().map(|i| expand_home(repo, i));
            target.connect_timeout = options.timeout;
            Ok(Transport::Ssh(
                SshTransport::connect(&host.name, &target).await?,
            ))
        }
    }
}

/// `~/x` from the home directory, a relative path from the repository.
fn expand_home(repo: &Path, path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => repo.join(path),
    }
}

/// Runs the probe.
pub async fn probe(
    t: &Transport,
    paths: &[(&str, Option<&ContentId>)],
) -> Result<Observed, HostError> {
    let (script, stdin) = crate::observed::probe(paths.iter().copied());
    let out = t
        .run_within(&script, &stdin, READ_LIMIT, "the probe")
        .await?;
    if !out.success() {
        return Err(HostError::Host {
            host: t.host().into(),
            message: format!(
                "the probe failed (status {}): {}",
                out.status,
                out.stderr_lossy().trim()
            ),
        });
    }
    parse_probe(&out.stdout_lossy()).map_err(|e| HostError::Host {
        host: t.host().into(),
        message: e.to_string(),
    })
}

/// Runs an apply request (a switch or a resume) and reads how it ended.
pub async fn run(t: &Transport, request: &Request) -> Result<Outcome, HostError> {
    let out = t.run(&request.script, &request.stdin).await?;
    Ok(script::outcome(
        out.status,
        &out.stdout_lossy(),
        &out.stderr_lossy(),
    ))
}

/// Runs a switch request like [`run`], and tells `progress` how long each
/// of its phases on the host took (see [`script::phases`]), and `session`:
/// the rest of the round trip (the SSH session, and the output's way back).
pub async fn switch(
    t: &Transport,
    request: &Request,
    progress: &dyn Progress,
) -> Result<Outcome, HostError> {
    let started = std::time::Instant::now();
    let out = t.run(&request.script, &request.stdin).await?;
    let took = started.elapsed();
    let stdout = out.stdout_lossy();
    let phases = script::phases(&stdout);
    let on_host = Duration::from_nanos(phases.iter().map(|(_, ns)| *ns).sum());
    for (name, ns) in &phases {
        progress.phase(t.host(), name, Duration::from_nanos(*ns));
    }
    progress.phase(t.host(), "session", took.saturating_sub(on_host));
    Ok(script::outcome(out.status, &stdout, &out.stderr_lossy()))
}

/// One generation as the host lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    /// Its record.
    #[serde(flatten)]
    pub record: Record,
    /// How its activation ended: `ok`, `failed: …`, `unfinished`.
    pub status: String,
    /// `current` points at it.
    pub current: bool,
    /// It is current and awaits its confirmation (the dead-man switch is
    /// armed).
    pub unconfirmed: bool,
}

/// Every generation the host keeps, oldest first.
pub async fn generations(t: &Transport) -> Result<Vec<Generation>, HostError> {
    let out = t
        .run_within(
            script::GENERATIONS_SH,
            b"",
            READ_LIMIT,
            "listing the generations",
        )
        .await?;
    let bad = |message: String| HostError::Host {
        host: t.host().into(),
        message,
    };
    if !out.success() {
        return Err(bad(format!(
            "listing generations failed: {}",
            out.stderr_lossy().trim()
        )));
    }
    let mut current = None;
    let mut unconfirmed = false;
    let mut list = Vec::new();
    for line in out.stdout_lossy().lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        match fields.as_slice() {
            ["current", n] => current = n.parse::<u64>().ok(),
            ["unconfirmed"] => unconfirmed = true,
            ["gen", _, status, json] => {
                let record: Record = serde_json::from_str(json)
                    .map_err(|e| bad(format!("a generation record is damaged: {e}")))?;
                list.push(Generation {
                    record,
                    status: (*status).to_string(),
                    current: false,
                    unconfirmed: false,
                });
            }
            _ => return Err(bad(format!("unexpected line {line:?}"))),
        }
    }
    list.sort_by_key(|g| g.record.number);
    for g in &mut list {
        g.current = Some(g.record.number) == current;
        g.unconfirmed = g.current && unconfirmed;
    }
    Ok(list)
}
