//! The SSH transport: one multiplexed OpenSSH connection per host.
//!
//! This file owns connecting to a host, host key checking and pinning, turning ssh's failures
//! into [`TransportError`]s, and running scripts as root over the connection.
//!
//! How it works, and why:
//! - It drives the system `ssh` client through the `openssh` crate (native mux): one master
//!   process per host, and each command is a channel on it. Using the real client keeps
//!   `~/.ssh/config`, ssh-agent, ProxyJump and certificates working as users expect.
//! - The master's control socket lives in a private directory under `/tmp`, because unix
//!   socket paths are limited to 108 bytes. The master exits on `close`, on drop, and in any
//!   case after 60 s of idleness (a backstop if this process is killed).
//! - Host keys are checked strictly. A pinned key is the *only* key trusted for the
//!   connection: it is written to a private known_hosts file under a fixed alias, and the
//!   global known_hosts file is ignored. Ssh verifies the key before authenticating, so no
//!   command can run on a host whose key does not match.
//! - The pin applies to the final host only, never to a `ProxyJump` host on the way. Ssh
//!   reaches a jump host by running another `ssh -W` that gets the same `-F` file but none
//!   of the `-o` options; so the pin's settings sit in that file under `Match originalhost`
//!   with the destination's host name, which the jump's ssh (whose destination is the jump
//!   host) does not match. The jump host is checked as the user's configuration says.
//! - Every script runs as `/bin/sh -c <script>` (through `sudo -n` when the login user is not
//!   root: `sudo=#true`), with stdin piped: bulk data never goes on the command line.
//! - At most [`MAX_CONCURRENT`] commands run at a time on a host; sshd refuses channels beyond
//!   its `MaxSessions` (10 by default), so more callers queue here instead of failing there.

use std::fs;
use std::io::{self, Write as _};
use std::num::NonZeroUsize;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssh::{ControlPersist, KnownHosts, SessionBuilder, Stdio};
use tokio::sync::Semaphore;

use super::{ExecOutput, PublicKey, TransportError, exchange};

/// How many commands may run at once on one host. Below sshd's default `MaxSessions` (10),
/// leaving room for an administrator's own multiplexed sessions.
const MAX_CONCURRENT: usize = 8;

/// How often ssh checks that an idle server is still there. With ssh's default
/// `ServerAliveCountMax` of 3, a silently dead host or link is noticed within
/// 15 s (the host ends a session whose input stalls after 20 s, see
/// `script/apply.sh`).
const SERVER_ALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// How long an idle master survives if nobody closes it (for example, when `provision` is
/// killed before it can clean up).
const CONTROL_PERSIST_IDLE_SECS: usize = 60;

/// The name under which the pinned key is recorded. Ssh looks the host key up by this alias
/// (`HostKeyAlias`) instead of by host name and port, so the pin holds even when
/// `~/.ssh/config` maps the destination to another host name or port.
const PIN_ALIAS: &str = "provision-pinned-host";

/// Linux limits one command-line argument to 128 KiB, and the login shell receives the whole
/// remote command as one argument (`$SHELL -c <command>`).
const MAX_COMMAND_BYTES: usize = 128 * 1024 - 1;

/// Runs in the login shell's `sh -c`. It sets `PROVISION_ROOT` to the empty string, so that
/// paths written as `"$PROVISION_ROOT/etc/..."` are host paths, and runs the script (passed as
/// `$1`, untouched) in a child `sh`. Keeping this shell as the parent means a script killed by
/// a signal is reported as `128 + signal`, as locally, instead of as a session without exit
/// status, which looks exactly like a dropped connection.
///
/// `/bin/sh` by its path, here and in [`remote_command`]: `sudo` looks a bare `sh` up in the
/// login user's PATH when the host's sudoers has no `secure_path`, and the root shell's PATH
/// before the script's own prologue fixes it is whatever the session was given.
const WRAPPER: &str =
    r#"PROVISION_ROOT=; export PROVISION_ROOT; /bin/sh -c "$1" provision; exit $?"#;

/// Decides, right after connecting, whether scripts must go through sudo, in the one round
/// trip every connection other than `root@…` makes anyway. Its last line is `root`, `sudo`,
/// or `no-sudo USER` (`sudo -n true` failed; its own words are on stderr).
const PROBE_SUDO: &str = r#"if [ "$(id -u)" = 0 ]; then echo root; elif sudo -n true; then echo sudo; else echo "no-sudo $(id -un)"; fi"#;

/// The same for a login that must be root: its last line is `root` or `not-root USER`.
/// It does not try sudo, which the host was not declared to use: a refused `sudo` is logged
/// and may be mailed to the host's administrator as an incident.
const PROBE_ROOT: &str =
    r#"if [ "$(id -u)" = 0 ]; then echo root; else echo "not-root $(id -un)"; fi"#;

/// How the login user runs scripts as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Find out after connecting: root, or else passwordless `sudo -n`. For a first login
    /// that may be either (`onboard`), and for callers that take what works.
    Detect,
    /// The login must be root: the host's `ssh` node has no `sudo=#true`. `declared_at`
    /// (`hosts/web.kdl:3`) names that node in the error a login as someone else gets.
    Root {
        /// Where the host's `ssh` node is.
        declared_at: Option<String>,
    },
    /// Through `sudo -n` (`sudo=#true`), which must work without a password. A login that
    /// turns out to be root (a user named in ssh_config) runs scripts directly.
    Sudo,
}

/// What the connection probe found, when it is not a way to run scripts as root.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// Logged in as USER, not root, and the host does not say `sudo=#true`.
    NotRoot(String),
    /// Logged in as USER, and `sudo -n true` failed.
    NoSudo(String),
}

/// Reads the probe's answer: `Ok(true)` when scripts go through sudo, `Ok(false)` when the
/// login is root. Only the last line counts: a chatty shell startup file on the host may
/// print before it.
fn judge(stdout: &str) -> Result<bool, Refusal> {
    let last = stdout.lines().map(str::trim).rfind(|l| !l.is_empty());
    let (word, user) = last
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .unwrap_or_default();
    // The name is printed in messages: nothing but what user names are made of.
    let user: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '$') {
                c
            } else {
                '?'
            }
        })
        .collect();
    let user = if user.is_empty() {
        "the user".to_owned()
    } else {
        user
    };
    match word {
        "root" => Ok(false),
        "sudo" => Ok(true),
        "not-root" => Err(Refusal::NotRoot(user)),
        _ => Err(Refusal::NoSudo(user)),
    }
}

/// The error for a login that cannot run scripts as root, saying what to change.
fn refusal_message(destination: &str, login: &Login, refusal: &Refusal, stderr: &str) -> String {
    match refusal {
        Refusal::NotRoot(user) => {
            let node = match login {
                Login::Root {
                    declared_at: Some(at),
                } => format!("the ssh node at {at}"),
                _ => "the host's ssh node".to_owned(),
            };
            format!(
                "logged in to {destination} as {user}, not root, and the host does not say \
                 `sudo=#true`: add `sudo=#true` to {node} and give {user} passwordless sudo \
                 (`{user} ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/{user}), or log in as root"
            )
        }
        Refusal::NoSudo(user) => {
            let why = one_line(stderr);
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            };
            let or_root = if *login == Login::Detect {
                ", or log in as root"
            } else {
                ""
            };
            format!(
                "logged in to {destination} as {user}, but passwordless sudo is missing: \
                 `sudo -n true` fails{why}; as root on the host, add the line \
                 `{user} ALL=(ALL) NOPASSWD:ALL` to /etc/sudoers.d/{user} (check it with \
                 `visudo -cf /etc/sudoers.d/{user}`){or_root}"
            )
        }
    }
}

/// Where and how to reach a host over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// `user@host` or `host`, as written in the inventory (`ssh "deploy@203.0.113.10"`).
    /// `~/.ssh/config` applies to it as it would for `ssh`.
    pub destination: String,
    /// The SSH port; `None` leaves it to ssh (22, or the port from `~/.ssh/config`).
    pub port: Option<u16>,
    /// A pinned host public key (`ssh-ed25519 AAAA... [comment]`): the only key trusted for
    /// this host. `None` uses the user's known_hosts files, strictly.
    pub host_key: Option<String>,
    /// The private key to log in with; `None` lets ssh choose (agent, `~/.ssh/id_*`).
    pub identity: Option<PathBuf>,
    /// Records an unknown host's key in the user's known_hosts instead of refusing it
    /// (ssh's `accept-new`), for onboarding a host. Ignored when `host_key` is pinned.
    pub accept_new: bool,
    /// How long to wait for the TCP connection and the SSH banner (whole seconds, at least
    /// one). Name resolution and proxy commands are not covered by it.
    pub connect_timeout: Duration,
    /// The ssh configuration to read instead of `~/.ssh/config` and `/etc/ssh/ssh_config`
    /// (ssh's `-F`); `None` reads those, as ssh does. Jump hosts are configured there.
    pub config_file: Option<PathBuf>,
    /// How the login user runs scripts as root.
    pub login: Login,
}

impl SshTarget {
    /// A target with ssh's defaults for everything but the destination, strict host key
    /// checking against the user's known_hosts, a 10 s connect timeout, and root or sudo,
    /// whichever the login turns out to have ([`Login::Detect`]).
    pub fn new(destination: impl Into<String>) -> Self {
        SshTarget {
            destination: destination.into(),
            port: None,
            host_key: None,
            identity: None,
            accept_new: false,
            connect_timeout: Duration::from_secs(10),
            config_file: None,
            login: Login::Detect,
        }
    }
}

/// An open SSH connection to one host, able to run scripts as root.
#[derive(Debug)]
pub struct SshTransport {
    host: String,
    destination: String,
    // Declared before `dir`, so that on drop the master is told to exit before its
    // directory goes away.
    session: openssh::Session,
    slots: Semaphore,
    sudo: bool,
    dir: PrivateDir,
}

impl SshTransport {
    /// Connects to `target` for the inventory host `host_name`, and checks that scripts can
    /// run as root (directly, or through passwordless `sudo -n`).
    ///
    /// Fails with [`TransportError::HostKeyMismatch`] or [`TransportError::UnknownHostKey`]
    /// when the host key is not the trusted one, [`TransportError::Auth`] when the login is
    /// refused or the user cannot become root, and [`TransportError::Unreachable`] when there
    /// is no SSH server to talk to.
    pub async fn connect(host_name: &str, target: &SshTarget) -> Result<Self, TransportError> {
        let io_error = |what: &str, e: io::Error| TransportError::Io {
            host: host_name.to_owned(),
            message: format!("{what}: {e}"),
        };
        // ssh would read a destination starting with `-` as an option.
        if target.destination.is_empty() || target.destination.starts_with('-') {
            return Err(TransportError::Io {
                host: host_name.to_owned(),
                message: format!(
                    "{:?} is not an SSH destination: write `user@host` or `host`",
                    target.destination
                ),
            });
        }
        let dir = PrivateDir::create()
            .map_err(|e| io_error("cannot create a private directory under /tmp", e))?;

        let mut builder = SessionBuilder::default();
        builder
            .control_directory(dir.path())
            .control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(CONTROL_PERSIST_IDLE_SECS).unwrap_or(NonZeroUsize::MIN),
            ))
            // ssh takes whole seconds, and 0 would mean "no timeout".
            .connect_timeout(target.connect_timeout.max(Duration::from_secs(1)))
            .server_alive_interval(SERVER_ALIVE_INTERVAL);
        if let Some(port) = target.port {
            builder.port(port);
        }
        if let Some(identity) = &target.identity {
            builder.keyfile(identity);
        }

        let pin = match &target.host_key {
            Some(line) => {
                let key = PublicKey::parse(line).map_err(|e| TransportError::Io {
                    host: host_name.to_owned(),
                    message: format!("the pinned host key cannot be used: {e}"),
                })?;
                let known_hosts = dir.path().join("known_hosts");
                write_private(
                    &known_hosts,
                    &format!("{PIN_ALIAS} {} {}\n", key.key_type, key.base64),
                )
                .map_err(|e| io_error("cannot write the pinned known_hosts file", e))?;
                let config = dir.path().join("ssh_config");
                let text = pinned_config(
                    &target.destination,
                    &known_hosts,
                    target.config_file.as_deref(),
                )
                .map_err(|message| TransportError::Io {
                    host: host_name.to_owned(),
                    message,
                })?;
                write_private(&config, &text)
                    .map_err(|e| io_error("cannot write the ssh configuration", e))?;
                builder
                    .known_hosts_check(KnownHosts::Strict)
                    .user_known_hosts_file(&known_hosts)
                    .config_file(&config);
                Some(Pin { key, config })
            }
            None => {
                if let Some(config) = &target.config_file {
                    builder.config_file(config);
                }
                builder.known_hosts_check(if target.accept_new {
                    KnownHosts::Add
                } else {
                    KnownHosts::Strict
                });
                None
            }
        };

        let session = match builder.connect_mux(&target.destination).await {
            Ok(session) => session,
            Err(e) => return Err(connect_error(host_name, target, pin.as_ref(), e).await),
        };
        let mut transport = SshTransport {
            host: host_name.to_owned(),
            destination: target.destination.clone(),
            session,
            slots: Semaphore::new(MAX_CONCURRENT),
            sudo: false,
            dir,
        };

        // Logging in as root by name (`root@…` overrides any `User` in ssh_config) needs no
        // check, which saves a round trip on every run.
        if target.destination.starts_with("root@") {
            return Ok(transport);
        }
        // Find out now whether we need sudo, and whether it works without a password, so that
        // the failure is one clear message here rather than one per command later.
        let probe = match target.login {
            Login::Root { .. } => PROBE_ROOT,
            Login::Detect | Login::Sudo => PROBE_SUDO,
        };
        let probe = transport.exec(probe, &[], false).await?;
        match judge(&probe.stdout_lossy()) {
            Ok(sudo) => transport.sudo = sudo,
            Err(refusal) => {
                return Err(TransportError::Auth {
                    host: host_name.to_owned(),
                    message: refusal_message(
                        &target.destination,
                        &target.login,
                        &refusal,
                        &probe.stderr_lossy(),
                    ),
                });
            }
        }
        Ok(transport)
    }

    /// The host's inventory name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The destination this transport is connected to, as given in its [`SshTarget`].
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// Whether scripts run through `sudo -n` (the login user is not root).
    pub fn uses_sudo(&self) -> bool {
        self.sudo
    }

    /// Runs a script as root on the host. See [`super::Transport::run`].
    pub async fn run(&self, script: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        self.exec(script, stdin, self.sudo).await
    }

    /// Stops the master connection and removes its directory.
    pub async fn close(self) {
        let SshTransport { session, dir, .. } = self;
        // An error here means the master is already gone, which is the goal anyway.
        let _ = session.close().await;
        drop(dir);
    }

    async fn exec(
        &self,
        script: &str,
        stdin: &[u8],
        sudo: bool,
    ) -> Result<ExecOutput, TransportError> {
        let command = remote_command(script, sudo).map_err(|message| TransportError::Io {
            host: self.host.clone(),
            message,
        })?;
        // The semaphore is never closed, so acquiring only fails if that changes.
        let _slot = self.slots.acquire().await.map_err(|e| TransportError::Io {
            host: self.host.clone(),
            message: format!("the command queue is closed: {e}"),
        })?;

        let spawned = self
            .session
            .raw_command(&command)
            .stdin(if stdin.is_empty() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await;
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return Err(self.command_error(e).await),
        };

        // Read the output to its end before asking for the exit status: the status can arrive
        // before the last output does, and would cut it short.
        let exchanged = exchange(
            child.stdin().take(),
            stdin,
            child.stdout().take(),
            child.stderr().take(),
        )
        .await;
        let waited = child.wait().await;

        match (waited, exchanged) {
            (Ok(status), Ok((stdout, stderr))) => Ok(ExecOutput {
                status: status.code().unwrap_or(-1),
                stdout,
                stderr,
            }),
            // The openssh crate turns exit status 127 into this error; it is only the shell
            // saying "command not found", so report it like any other status.
            (Err(openssh::Error::Remote(e)), Ok((stdout, stderr)))
                if e.kind() == io::ErrorKind::NotFound =>
            {
                Ok(ExecOutput {
                    status: 127,
                    stdout,
                    stderr,
                })
            }
            (Err(e), _) => Err(self.command_error(e).await),
            (Ok(_), Err(e)) => Err(TransportError::Io {
                host: self.host.clone(),
                message: format!("cannot pass data to or from the remote command: {e}"),
            }),
        }
    }

    /// Classifies a failure to run a command. The multiplexing protocol reports a dropped
    /// connection in several ways (no exit status, an end of file, a refused socket), so ask
    /// the master directly whether it is still alive.
    async fn command_error(&self, e: openssh::Error) -> TransportError {
        let detail = error_chain(&e);
        if self.session.check().await.is_err() {
            return TransportError::Lost {
                host: self.host.clone(),
                message: format!("{detail}; the connection to {} is gone", self.destination),
            };
        }
        match e {
            // The wrapper shell always reports a status, so no status means it was killed
            // from outside: the outcome is as unknown as after a dropped connection.
            openssh::Error::RemoteProcessTerminated => TransportError::Lost {
                host: self.host.clone(),
                message: "the remote shell ended without an exit status".to_owned(),
            },
            _ => TransportError::Io {
                host: self.host.clone(),
                message: format!(
                    "cannot run a command over SSH: {detail} (if sshd refused the session, \
                     its MaxSessions is below {MAX_CONCURRENT})"
                ),
            },
        }
    }
}

/// The ssh configuration used with a pinned key. `-F` replaces the user's and the system's
/// configuration files, so they are included again (or `user_config`, when one is given);
/// ssh keeps the first value it reads for an option, so the pin's settings above the
/// includes win.
///
/// The pin's settings are under `Match originalhost HOST`, HOST being the host name of
/// `destination` as written: a `ProxyJump` host is reached by a second ssh that reads this
/// file too, with the jump host as its destination, and must be checked against the user's
/// known_hosts, not against the pin (which would refuse it). `originalhost` is the name as
/// given on the command line, before any `HostName` from the configuration, so the match
/// does not depend on it.
fn pinned_config(
    destination: &str,
    known_hosts: &Path,
    user_config: Option<&Path>,
) -> Result<String, String> {
    let host = destination.rsplit_once('@').map_or(destination, |(_, h)| h);
    // The name goes into a pattern list: no wildcard, negation, list separator, quote or
    // blank may be in it. Host names and addresses have none.
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'))
    {
        return Err(format!(
            "cannot pin the host key of {destination:?}: its host name must be a plain name \
             or address (letters, digits, `.`, `-`, `_`, `:`)"
        ));
    }
    let quote = |p: &Path| format!("\"{}\"", p.display());
    if known_hosts.to_string_lossy().contains(['"', '\n'])
        || user_config.is_some_and(|p| p.to_string_lossy().contains(['"', '\n']))
    {
        return Err("a configuration path contains a quote or a newline".to_owned());
    }
    let includes = match user_config {
        Some(path) => format!("Include {}\n", quote(path)),
        None => "Include ~/.ssh/config\nInclude /etc/ssh/ssh_config\n".to_owned(),
    };
    Ok(format!(
        "# Written by provision for one connection: only the pinned host key is trusted for\n\
         # {host}, and only for it (not for a ProxyJump host on the way).\n\
         Match originalhost {host}\n\
         \x20   HostKeyAlias {PIN_ALIAS}\n\
         \x20   UserKnownHostsFile {}\n\
         \x20   GlobalKnownHostsFile /dev/null\n\
         \x20   StrictHostKeyChecking yes\n\
         \x20   VerifyHostKeyDNS no\n\
         Match all\n\
         {includes}",
        quote(known_hosts)
    ))
}

/// What is needed to report a failed pinned connection.
struct Pin {
    key: PublicKey,
    config: PathBuf,
}

/// Builds the command line the login shell runs: the wrapper, then the script as its `$1`.
///
/// Through sudo it is `sudo -n -- /bin/sh -c …`: `-n` fails instead of asking for a password
/// nobody would type; no `-E`, `--preserve-env` or `VAR=value` is ever passed, so sudo's own
/// `env_reset` decides the root shell's environment, not the login's; the script is one fixed
/// argument and its data comes on stdin. The script's prologue (`script/lib.sh`) then fixes
/// PATH and clears what could steer a shell.
fn remote_command(script: &str, sudo: bool) -> Result<String, String> {
    let nul = |_| "the script contains a NUL byte, which a shell cannot run".to_owned();
    let wrapper = shlex::try_quote(WRAPPER).map_err(nul)?;
    let script = shlex::try_quote(script).map_err(nul)?;
    let sudo = if sudo { "sudo -n -- " } else { "" };
    let command = format!("{sudo}/bin/sh -c {wrapper} provision {script}");
    if command.len() > MAX_COMMAND_BYTES {
        return Err(format!(
            "the script is {} bytes, over the {MAX_COMMAND_BYTES} bytes a remote command line \
             allows; pass large data through stdin",
            script.len()
        ));
    }
    Ok(command)
}

/// Turns a failed connection into the error the user can act on.
async fn connect_error(
    host: &str,
    target: &SshTarget,
    pin: Option<&Pin>,
    e: openssh::Error,
) -> TransportError {
    let (kind, log) = match &e {
        openssh::Error::Connect(io) => (Some(io.kind()), io.to_string()),
        other => (None, error_chain(other)),
    };
    if log.contains("Host key verification failed") {
        return host_key_error(host, target, pin, &log).await;
    }
    let host = host.to_owned();
    let message = one_line(&log);
    if kind == Some(io::ErrorKind::PermissionDenied)
        || log.contains("Permission denied (")
        || log.contains("Too many authentication failures")
    {
        return TransportError::Auth { host, message };
    }
    if kind == Some(io::ErrorKind::NotFound) {
        // ssh itself never reports NotFound: the `ssh` program could not be started.
        return TransportError::Io {
            host,
            message: format!("cannot run the `ssh` client (install OpenSSH's client): {message}"),
        };
    }
    const UNREACHABLE: [&str; 9] = [
        "Could not resolve",
        "Connection refused",
        "timed out",
        "No route to host",
        "Network is unreachable",
        "Connection closed by",
        "Connection reset",
        "kex_exchange_identification",
        "banner exchange",
    ];
    let unreachable_kind = matches!(
        kind,
        Some(io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut | io::ErrorKind::Other)
    );
    if unreachable_kind || UNREACHABLE.iter().any(|m| log.contains(m)) {
        return TransportError::Unreachable { host, message };
    }
    TransportError::Io {
        host,
        message: format!("ssh could not connect to {}: {message}", target.destination),
    }
}

/// Builds the host key error, with the fingerprint the host presented when it can be had:
/// from ssh's own report, else by asking the host with `ssh-keyscan`.
async fn host_key_error(
    host: &str,
    target: &SshTarget,
    pin: Option<&Pin>,
    log: &str,
) -> TransportError {
    let host = host.to_owned();
    let presented = presented_fingerprint(log);
    let config = pin.map(|p| p.config.as_path());
    let prefer = pin.map(|p| p.key.key_type.as_str());
    let actual = match presented {
        Some(fp) => Some(fp),
        None => scan_fingerprint(target, config, prefer).await,
    };
    match pin {
        Some(pin) => TransportError::HostKeyMismatch {
            host,
            expected: pin.key.fingerprint(),
            actual,
        },
        None if log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") => {
            TransportError::HostKeyMismatch {
                host,
                expected: recorded_fingerprint(log)
                    .unwrap_or_else(|| "the key recorded in known_hosts".to_owned()),
                actual,
            }
        }
        None => TransportError::UnknownHostKey { host, actual },
    }
}

/// The fingerprint in ssh's "The fingerprint for the ED25519 key sent by the remote host is
/// SHA256:..." report.
fn presented_fingerprint(log: &str) -> Option<String> {
    let after = &log[log.find("sent by the remote host")?..];
    let fp = &after[after.find("SHA256:")?..];
    let end = "SHA256:".len()
        + fp["SHA256:".len()..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/'))
            .unwrap_or(fp.len() - "SHA256:".len());
    (end > "SHA256:".len()).then(|| fp[..end].to_owned())
}

/// The fingerprint of the key ssh expected, read from the known_hosts line that ssh names in
/// "Offending ED25519 key in /root/.ssh/known_hosts:3". Falls back to naming that line.
fn recorded_fingerprint(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("Offending "))?;
    let location = line.split(" key in ").nth(1)?.trim();
    let (path, number) = location.rsplit_once(':')?;
    let number: usize = number.trim().parse().ok()?;
    let entry = fs::read_to_string(path)
        .ok()
        .and_then(|text| text.lines().nth(number.checked_sub(1)?).map(str::to_owned));
    // A known_hosts line is `[@marker] hosts keytype base64 [comment]`.
    let fingerprint = entry.and_then(|entry| {
        let fields: Vec<&str> = entry.split_whitespace().collect();
        let skip = if fields.first()?.starts_with('@') {
            2
        } else {
            1
        };
        super::fingerprint(&fields.get(skip..)?.join(" ")).ok()
    });
    Some(fingerprint.unwrap_or_else(|| format!("the key at {location}")))
}

/// Best effort: the fingerprint of the host's key, fetched with `ssh-keyscan`. Prefers a key
/// of type `prefer`, then ed25519. `None` when anything goes wrong.
async fn scan_fingerprint(
    target: &SshTarget,
    config: Option<&Path>,
    prefer: Option<&str>,
) -> Option<String> {
    let (hostname, port) = resolve_endpoint(target, config).await?;
    let mut scan = tokio::process::Command::new("ssh-keyscan");
    scan.args([
        "-T",
        "5",
        "-p",
        &port,
        "-t",
        "ed25519,ecdsa,rsa",
        "--",
        &hostname,
    ])
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(10), scan.output())
        .await
        .ok()?
        .ok()?;
    let keys: Vec<PublicKey> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .filter_map(|(_host, key)| PublicKey::parse(key).ok())
        .collect();
    let pick = |t: &str| keys.iter().find(|k| k.key_type == t);
    prefer
        .and_then(pick)
        .or_else(|| pick("ssh-ed25519"))
        .or_else(|| keys.first())
        .map(PublicKey::fingerprint)
}

/// The host name and port ssh actually connects to, after `~/.ssh/config`, from `ssh -G`.
async fn resolve_endpoint(target: &SshTarget, config: Option<&Path>) -> Option<(String, String)> {
    let mut resolve = tokio::process::Command::new("ssh");
    resolve.arg("-G");
    if let Some(config) = config {
        resolve.arg("-F").arg(config);
    }
    if let Some(port) = target.port {
        resolve.arg("-p").arg(port.to_string());
    }
    resolve
        .arg("--")
        .arg(&target.destination)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(5), resolve.output())
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::to_owned))
    };
    Some((value("hostname")?, value("port")?))
}

/// A directory under `/tmp` only we can enter, removed on drop. It holds the master's control
/// socket (in a subdirectory the `openssh` crate creates) and, when a key is pinned, the
/// known_hosts and configuration files.
#[derive(Debug)]
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut last_error = None;
        // `/tmp` rather than `$TMPDIR`, which can be too long for a socket path (macOS).
        // Creating a new directory fails if the name exists (even as a symlink), so a name
        // planted by someone else is skipped, never reused.
        for _ in 0..16 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let path = PathBuf::from(format!(
                "/tmp/provision-{}-{}-{nanos:x}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free name")))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes a new file readable only by us.
fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(contents.as_bytes())
}

/// An error and its causes on one line: the `openssh` errors keep ssh's words in their source.
fn error_chain(e: &openssh::Error) -> String {
    one_line(&crate::diagnostic::error_chain(e))
}

/// Ssh's multi-line reports, joined into one line without a final period, to be quoted
/// inside our own sentences.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
        .trim_end_matches('.')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `command` the way sshd does, through a login shell's `-c`.
    fn through_login_shell(command: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("PROVISION_ROOT", "/should/be/cleared")
            .output()
            .unwrap()
    }

    #[test]
    fn script_arrives_verbatim() {
        let script = "set -eu\nprintf '%s|' \"$0\" \"[$PROVISION_ROOT]\" 'it'\\''s' \"a\\\\b\" '$HOME' `echo tick`\n\
                      cat <<'EOF'\n  here $doc \"quoted\"\nEOF\necho ünïcode; exit 3";
        let out = through_login_shell(&remote_command(script, false).unwrap());
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "provision|[]|it's|a\\b|$HOME|tick|  here $doc \"quoted\"\nünïcode\n"
        );
    }

    #[test]
    fn killed_script_reports_128_plus_signal() {
        let out = through_login_shell(&remote_command("kill -9 $$", false).unwrap());
        assert_eq!(out.status.code(), Some(137));
    }

    #[test]
    fn sudo_prefix_and_limits() {
        assert!(
            remote_command("id", true)
                .unwrap()
                .starts_with("sudo -n -- /bin/sh -c ")
        );
        assert!(remote_command("a\0b", false).unwrap_err().contains("NUL"));
        let big = "#".repeat(MAX_COMMAND_BYTES);
        assert!(remote_command(&big, false).unwrap_err().contains("stdin"));
    }

    #[test]
    fn the_probe_answer_decides_sudo() {
        assert_eq!(judge("root\n"), Ok(false));
        // A chatty startup file prints first; only the last line counts.
        assert_eq!(judge("Welcome!\nsudo\n\n"), Ok(true));
        assert_eq!(
            judge("not-root deploy\n"),
            Err(Refusal::NotRoot("deploy".into()))
        );
        assert_eq!(
            judge("no-sudo de\x1b[2Jploy\n"),
            Err(Refusal::NoSudo("de??2Jploy".into()))
        );
        assert_eq!(judge(""), Err(Refusal::NoSudo("the user".into())));
    }

    #[test]
    fn a_refused_login_says_what_to_change() {
        let declared = Login::Root {
            declared_at: Some("hosts/web.kdl:3".into()),
        };
        let m = refusal_message(
            "deploy@10.0.0.5",
            &declared,
            &Refusal::NotRoot("deploy".into()),
            "",
        );
        assert!(
            m.contains("as deploy, not root")
                && m.contains("add `sudo=#true` to the ssh node at hosts/web.kdl:3")
                && m.contains("`deploy ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/deploy"),
            "{m}"
        );
        let m = refusal_message(
            "deploy@10.0.0.5",
            &Login::Sudo,
            &Refusal::NoSudo("deploy".into()),
            "sudo: a password is required\n",
        );
        assert!(
            m.contains(
                "passwordless sudo is missing: `sudo -n true` fails (sudo: a password is required)"
            ) && m
                .contains("add the line `deploy ALL=(ALL) NOPASSWD:ALL` to /etc/sudoers.d/deploy")
                && m.contains("visudo -cf /etc/sudoers.d/deploy")
                && !m.contains("log in as root"),
            "{m}"
        );
        let m = refusal_message("x@h", &Login::Detect, &Refusal::NoSudo("x".into()), "");
        assert!(
            m.contains("fails; as root") && m.ends_with("or log in as root"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn rejects_destinations_ssh_would_read_as_options() {
        let target = SshTarget::new("-oProxyCommand=touch /tmp/x");
        match SshTransport::connect("web1", &target).await {
            Err(TransportError::Io { host, message }) => {
                assert_eq!(host, "web1");
                assert!(message.contains("not an SSH destination"), "{message}");
            }
            other => panic!("expected an Io error, got {other:?}"),
        }
    }

    #[test]
    fn the_pin_is_scoped_to_the_destination_host() {
        let kh = Path::new("/tmp/p/known_hosts");
        let text = pinned_config("deploy@agents-1.example", kh, None).unwrap();
        let (pin, rest) = text.split_once("Match all\n").unwrap();
        assert!(
            pin.contains("Match originalhost agents-1.example\n"),
            "{text}"
        );
        assert!(pin.contains(&format!("HostKeyAlias {PIN_ALIAS}")), "{text}");
        assert!(
            pin.contains("UserKnownHostsFile \"/tmp/p/known_hosts\""),
            "{text}"
        );
        // Outside the match, nothing about host keys: a jump host gets the user's own.
        assert_eq!(rest, "Include ~/.ssh/config\nInclude /etc/ssh/ssh_config\n");
        let custom = pinned_config("10.0.0.5", kh, Some(Path::new("/etc/fleet/ssh"))).unwrap();
        assert!(custom.contains("Match originalhost 10.0.0.5\n"), "{custom}");
        assert!(
            custom.ends_with("Match all\nInclude \"/etc/fleet/ssh\"\n"),
            "{custom}"
        );
        // A pattern character would widen the match to other hosts, a jump host among them.
        for bad in ["root@*", "web,jump", "!web", "a b", "h\"x", "root@", "x\ny"] {
            assert!(pinned_config(bad, kh, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_fingerprints_from_ssh_reports() {
        let log = "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\n\
                   The fingerprint for the ED25519 key sent by the remote host is\n\
                   SHA256:ZI4WjU65dw+o2evmNznkqPOF5O/BYhWCbt28LWZp3Kg.\n\
                   Host key verification failed.";
        assert_eq!(
            presented_fingerprint(log).as_deref(),
            Some("SHA256:ZI4WjU65dw+o2evmNznkqPOF5O/BYhWCbt28LWZp3Kg")
        );
        assert_eq!(presented_fingerprint("Host key verification failed."), None);
        assert_eq!(
            recorded_fingerprint("Offending ED25519 key in /nonexistent/known_hosts:3").as_deref(),
            Some("the key at /nonexistent/known_hosts:3")
        );
    }

    #[test]
    fn reads_the_expected_key_from_known_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let known_hosts = dir.path().join("known_hosts");
        fs::write(
            &known_hosts,
            "other ssh-rsa AAAA\n\
             @cert-authority *.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8+J7XH4Ja6bY2nh35Id6I9YrwU0oMuYUSqNaff57rs\n\
             |1|hashed= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8+J7XH4Ja6bY2nh35Id6I9YrwU0oMuYUSqNaff57rs c\n",
        )
        .unwrap();
        let fp = "SHA256:ZI4WjU65dw+o2evmNznkqPOF5O/BYhWCbt28LWZp3Kg";
        for line in [2, 3] {
            let log = format!(
                "Offending ED25519 key in {}:{line}\n  remove with:",
                known_hosts.display()
            );
            assert_eq!(recorded_fingerprint(&log).as_deref(), Some(fp));
        }
    }
}
