//! The fleet as typed data: what the operator's KDL means once modules are
//! spliced in and every value is checked.
//!
//! Pure data with no behaviour beyond small predicates. Built by `resolve`,
//! read by `lint` and `render`. Every item keeps the [`Span`] it came from so
//! later stages can point at the KDL that caused a problem.

pub mod values;

use std::collections::BTreeMap;

pub use values::{ActiveHours, Duration, Mode, Size};

use crate::secret::SecretRef;
use crate::source::Span;

/// Every host of a repository, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// The hosts.
    pub hosts: Vec<Host>,
}

impl Fleet {
    /// The host with this name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

/// How provision reaches a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Over SSH (`ssh "user@addr" port=22 sudo=#true`).
    Ssh {
        /// `user@host` or `host`.
        destination: String,
        /// Port, when not the default.
        port: Option<u16>,
        /// Private key file for this host, when not the agent's or ssh_config's.
        identity: Option<String>,
        /// `sudo=#true`: the login user is not root and every script runs
        /// through `sudo -n`. Without it the login must be root.
        sudo: bool,
        /// Where the `ssh` node is (`hosts/web.kdl:3`), for errors that
        /// tell the operator which line to change.
        declared_at: String,
    },
    /// A directory on this machine standing in for the host's `/`
    /// (`local "demo/root"`, relative to the repository).
    Local {
        /// Root directory, relative to the repository root.
        root: String,
    },
}

/// One machine.
#[derive(Debug, Clone)]
pub struct Host {
    /// Unique name (`host "agents-1"`).
    pub name: String,
    /// The `host` node.
    pub span: Span,
    /// How to reach it.
    pub connection: Connection,
    /// Pinned SSH host public key; a mismatch refuses to connect.
    pub host_key: Option<String>,
    /// Tags for `@tag` selection.
    pub tags: Vec<String>,
    /// Journal caps; `None` leaves journald as the host has it.
    pub journald: Option<Journald>,
    /// Alert channels, by name.
    pub alerts: Vec<AlertChannel>,
    /// Declared system users.
    pub users: Vec<User>,
    /// Declared system groups.
    pub groups: Vec<Group>,
    /// Host-wide files and directories.
    pub files: Files,
    /// The agents.
    pub agents: Vec<Agent>,
    /// Modules used at host level, outermost first (for template lookup).
    pub modules: Vec<String>,
}

impl Host {
    /// The alert channel with this name.
    pub fn alert(&self, name: &str) -> Option<&AlertChannel> {
        self.alerts.iter().find(|a| a.name == name)
    }
}

/// `journald max-use="2G" keep-free="500M" retention="1week"`.
#[derive(Debug, Clone)]
pub struct Journald {
    /// The node.
    pub span: Span,
    /// SystemMaxUse.
    pub max_use: Option<Size>,
    /// SystemKeepFree.
    pub keep_free: Option<Size>,
    /// MaxRetentionSec.
    pub retention: Option<Duration>,
    /// SystemMaxFileSize.
    pub max_file_size: Option<Size>,
}

/// Where an alert goes.
#[derive(Debug, Clone)]
pub struct AlertChannel {
    /// Name agents refer to.
    pub name: String,
    /// The node.
    pub span: Span,
    /// Kind and settings.
    pub kind: AlertKind,
    /// Minimum time between two alerts of one incident (a reminder).
    pub repeat: Duration,
}

/// How long an alert channel waits before reminding of an incident that is
/// still open, when it has no `repeat=`: often enough that it is not
/// forgotten, seldom enough that the channel is not muted.
pub const DEFAULT_ALERT_REPEAT: Duration = Duration { secs: 4 * 3600 };

/// The three kinds of alert channel.
#[derive(Debug, Clone)]
pub enum AlertKind {
    /// A Telegram bot message.
    Telegram {
        /// Chat id.
        chat: String,
        /// Bot token.
        token: SecretRef,
        /// API base URL (a stand-in server in tests).
        api: String,
    },
    /// An HTTP POST of a JSON body.
    Webhook {
        /// Target URL, a credential either way.
        url: WebhookUrl,
        /// `insecure=#true`: plain http is allowed.
        insecure: bool,
    },
    /// A command run on the host with the alert in its environment.
    Command {
        /// The command line.
        command: String,
    },
}

/// Where a Telegram channel posts without `api=`: Telegram's own Bot API
/// (`api=` exists for a stand-in server).
pub const DEFAULT_TELEGRAM_API: &str = "https://api.telegram.org";

/// Where a webhook's URL comes from. Whoever has the URL can post alerts,
/// so it may live outside the repository like any other secret.
#[derive(Debug, Clone)]
pub enum WebhookUrl {
    /// Written in the KDL (checked at `check`).
    Literal(String),
    /// A secret source (`webhook="env:OPS_WEBHOOK"`), checked as a URL when
    /// it is resolved.
    Secret(SecretRef),
}

/// A system user created when the host lacks it.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name.
    pub name: String,
    /// The node (or the agent that implies it).
    pub span: Span,
    /// Fixed uid, when wanted.
    pub uid: Option<u32>,
    /// Primary group; a group of the user's name when absent.
    pub group: Option<String>,
    /// Home directory.
    pub home: Option<String>,
    /// Login shell.
    pub shell: Option<String>,
    /// Supplementary groups.
    pub groups: Vec<String>,
    /// False when implied by an agent's `user` rather than declared.
    pub declared: bool,
}

/// A system group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Name.
    pub name: String,
    /// The node.
    pub span: Span,
    /// Fixed gid, when wanted.
    pub gid: Option<u32>,
}

/// Files and directories declared with `file` and `dir`.
#[derive(Debug, Clone, Default)]
pub struct Files {
    /// `file` nodes.
    pub files: Vec<FileDecl>,
    /// `dir` nodes.
    pub dirs: Vec<DirDecl>,
}

/// Ownership and permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Perms {
    /// Owner.
    pub owner: String,
    /// Group.
    pub group: String,
    /// Mode.
    pub mode: Mode,
}

/// Owner of a declared file or directory without `owner=`; its group is the
/// owner's name unless `group=` says otherwise.
pub const DEFAULT_OWNER: &str = "root";

/// Mode of a declared file without `mode=`.
pub const DEFAULT_FILE_MODE: Mode = Mode(0o644);

/// Mode of a declared file that holds a secret (`secret=#true`) without
/// `mode=`: root's alone.
pub const DEFAULT_SECRET_FILE_MODE: Mode = Mode(0o600);

/// Mode of a declared directory without `mode=`.
pub const DEFAULT_DIR_MODE: Mode = Mode(0o755);

/// `file "/path" content=… | source=… | template=…`.
#[derive(Debug, Clone)]
pub struct FileDecl {
    /// Absolute path on the host.
    pub path: String,
    /// The node.
    pub span: Span,
    /// Where the bytes come from.
    pub content: FileContent,
    /// Owner, group and mode.
    pub perms: Perms,
    /// Holds a secret (`secret=#true`): never shown in a diff, named by a
    /// keyed id, 0600 unless its mode says otherwise.
    pub secret: bool,
}

/// Where a declared file's bytes come from.
#[derive(Debug, Clone)]
pub enum FileContent {
    /// Written inline in KDL.
    Inline(String),
    /// A file of the operator's repository (path relative to the repository root).
    Repo(String),
    /// A tera template of the operator's repository, rendered with the host and agent.
    Template(String),
}

/// `dir "/path" owner=… mode=…`.
#[derive(Debug, Clone)]
pub struct DirDecl {
    /// Absolute path on the host.
    pub path: String,
    /// The node.
    pub span: Span,
    /// Owner, group and mode.
    pub perms: Perms,
}

/// One long-running agent and everything that keeps it healthy.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Unique name on its host (`agent "email-triage"`).
    pub name: String,
    /// The `agent` node.
    pub span: Span,
    /// One line saying what it does (unit Description and AGENTS.md title).
    pub description: Option<String>,
    /// Command line it runs.
    pub exec: String,
    /// Unix user it runs as.
    pub user: String,
    /// Unix group it runs as (the user's group when absent).
    pub group: Option<String>,
    /// Its working directory (holds AGENTS.md and WORKSTATE.md).
    pub workdir: String,
    /// Where the working directory was set (the agent node for the default).
    pub workdir_span: Span,
    /// Plain environment variables.
    pub env: BTreeMap<String, String>,
    /// Secrets, exported as environment variables from a 0600 file.
    pub secrets: Vec<SecretRef>,
    /// External accounts it depends on.
    pub auths: Vec<Auth>,
    /// Liveness signal.
    pub heartbeat: Option<Heartbeat>,
    /// Known failures and what to do about them.
    pub failure_modes: Vec<FailureMode>,
    /// Restart policy.
    pub restart: Restart,
    /// KillMode= (the checklist wants `control-group`).
    pub kill_mode: Setting<String>,
    /// TimeoutStopSec=.
    pub timeout_stop: Duration,
    /// Alert channel for unit failures; the heartbeat's or the host's first when absent.
    pub alert: Option<Setting<String>>,
    /// Whether AGENTS.md carries the WORKSTATE.md checkpoint protocol.
    pub workstate: Setting<bool>,
    /// Checklist items waived on purpose.
    pub waivers: Vec<Waiver>,
    /// Extra lines for AGENTS.md.
    pub notes: Vec<String>,
    /// The agent's own files and directories (its code, its scripts).
    pub files: Files,
    /// Modules used by the agent, outermost first.
    pub modules: Vec<String>,
}

/// Where an agent without `workdir` works: this directory, then its name.
pub const DEFAULT_WORKDIR_PARENT: &str = "/var/lib/agents";

/// KillMode= of an agent without `kill-mode`: the one the checklist wants, so
/// that a stop ends every process the agent started.
pub const DEFAULT_KILL_MODE: &str = "control-group";

/// TimeoutStopSec= of an agent without `timeout-stop`.
pub const DEFAULT_TIMEOUT_STOP: Duration = Duration { secs: 30 };

/// Whether an agent without `workstate` gets the WORKSTATE.md checkpoint
/// protocol in its AGENTS.md: it does; `workstate #false` opts out, and the
/// checklist reports it.
pub const DEFAULT_WORKSTATE: bool = true;

/// A value and where it was set (the agent node when it is a default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

/// `restart "on-failure" delay="10s"`.
#[derive(Debug, Clone)]
pub struct Restart {
    /// Restart= policy.
    pub policy: String,
    /// RestartSec=.
    pub delay: Duration,
    /// Where it was written.
    pub span: Span,
}

/// Restart= of an agent without `restart`: a crash restarts it, a clean exit
/// does not.
pub const DEFAULT_RESTART_POLICY: &str = "on-failure";

/// RestartSec= of an agent without `restart`, or of a `restart` without `delay=`.
pub const DEFAULT_RESTART_DELAY: Duration = Duration { secs: 10 };

/// `auth "mog" check="…" { rotate every="45d" run="…" notify="ops" }`.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Name (a tool or account).
    pub name: String,
    /// The node.
    pub span: Span,
    /// Shell command that exits 0 when the credential works.
    pub check: Option<String>,
    /// Token rotation, when the credential expires.
    pub rotate: Option<Rotate>,
    /// How the host learns when the credential expires, and how early it
    /// warns (`expires="…"` or `expires-at="…"`, `warn-before="7d"`).
    pub expiry: Option<Expiry>,
}

/// `expires="COMMAND"` or `expires-at="2027-02-01"` with `warn-before=` on
/// an `auth`: the host's expiry timer alerts once when the credential is
/// inside its warning window and again once it has expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The auth node.
    pub span: Span,
    /// Where the expiry comes from.
    pub source: ExpirySource,
    /// How long before the expiry the host alerts.
    pub warn_before: Duration,
}

/// Where a credential's expiry comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpirySource {
    /// A shell command run as the agent, with its environment (like the
    /// auth check), printing an RFC 3339 date or date-time, or a Unix time.
    Command(String),
    /// A known moment, in seconds since the epoch (`expires-at=`).
    At(u64),
}

/// How long before an expiry the host alerts, without `warn-before=`: a
/// week leaves a working week to renew a credential by hand.
pub const DEFAULT_WARN_BEFORE: Duration = Duration { secs: 7 * 86_400 };

/// How often the host checks each credential's expiry (the expiry timer's
/// `OnCalendar=hourly`); `warn-before=` may not be shorter.
pub const EXPIRY_CHECK_EVERY: Duration = Duration { secs: 3600 };

/// `rotate every="45d" run="…" notify="ops"`.
#[derive(Debug, Clone)]
pub struct Rotate {
    /// The node.
    pub span: Span,
    /// How often.
    pub every: Duration,
    /// Command that renews the credential.
    pub run: String,
    /// Alert channel told about each rotation.
    pub notify: Option<Setting<String>>,
}

/// `heartbeat every="30m" grace="5m" active-hours="07:00-19:00" alert="ops"`.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// The node.
    pub span: Span,
    /// Expected interval.
    pub every: Duration,
    /// Slack before alerting.
    pub grace: Duration,
    /// When heartbeats are expected; always when absent.
    pub active_hours: Option<ActiveHours>,
    /// Alert channel.
    pub alert: Option<Setting<String>>,
    /// A command whose success counts as a heartbeat (instead of the agent touching the file).
    pub probe: Option<String>,
    /// How long verification waits for a fresh heartbeat of this agent
    /// (`verify-timeout="5m"`); `None`: `--heartbeat-timeout`.
    pub verify_timeout: Option<Duration>,
    /// How long a unit the apply (re)started must stay up, its restart
    /// count unchanged, before verification passes it
    /// (`verify-stable="30s"`); `None`: [`DEFAULT_VERIFY_STABLE_SECS`].
    pub verify_stable: Option<Duration>,
}

impl Agent {
    /// Seconds verification waits for this agent's heartbeat: its
    /// `verify-timeout`, or `default` (`--heartbeat-timeout`).
    pub fn verify_wait(&self, default: u64) -> u64 {
        self.heartbeat
            .as_ref()
            .and_then(|h| h.verify_timeout)
            .map_or(default, |d| d.secs)
    }

    /// Seconds a unit the apply (re)started must stay up: its
    /// `verify-stable`, or [`DEFAULT_VERIFY_STABLE_SECS`].
    pub fn verify_stable(&self) -> u64 {
        self.heartbeat
            .as_ref()
            .and_then(|h| h.verify_stable)
            .map_or(DEFAULT_VERIFY_STABLE_SECS, |d| d.secs)
    }
}

/// The stability window of a (re)started agent without `verify-stable=`:
/// a unit that crashes a few seconds after its start is caught.
pub const DEFAULT_VERIFY_STABLE_SECS: u64 = 10;

/// Slack of a heartbeat without `grace=`: a fifth of its interval, and never
/// under a minute, since the checker runs once a minute.
pub fn default_grace(every: Duration) -> Duration {
    Duration::from_secs((every.secs / 5).max(60))
}

/// `failure-mode "email auth fails" "alert the owner; never retry silently" tool="mog"`.
#[derive(Debug, Clone)]
pub struct FailureMode {
    /// What goes wrong.
    pub when: String,
    /// What the agent must do.
    pub then: String,
    /// The tool it concerns.
    pub tool: Option<String>,
}

/// `waive "heartbeat" reason="…"`.
#[derive(Debug, Clone)]
pub struct Waiver {
    /// The checklist item.
    pub item: String,
    /// Why.
    pub reason: String,
    /// The node.
    pub span: Span,
}
