//! The command line: the clap types (their doc comments are the `--help`
//! text, and the man page), and their resolution into one [`Invocation`]
//! that `main` dispatches on.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::deploy::decide::{Rollout, Share};
use crate::deploy::{Options, VerifyOptions};
use crate::error::Exit;
use crate::ui::{ColorChoice, Style, Verbosity};

/// Hosts worked on at once (`--parallel`): enough to keep a fleet's apply
/// short without opening more SSH connections than one machine handles well.
pub const DEFAULT_PARALLEL: usize = 16;
/// Seconds to wait for a host's SSH connection (`--connect-timeout`): a
/// reachable host answers well within it, an unreachable one fails the run
/// for that host instead of hanging it.
pub const DEFAULT_CONNECT_TIMEOUT: u64 = 10;
/// Generations each host keeps (`apply --keep`); `rollback` keeps as many.
pub const DEFAULT_KEEP: u32 = 10;
/// Seconds to wait for another run's lock (`--lock-wait`): none, so two
/// operators find out at once that they collide.
pub const DEFAULT_LOCK_WAIT: u64 = 0;
/// Seconds to wait for a fresh heartbeat of each agent
/// (`--heartbeat-timeout`): two minutes covers an agent's start-up.
pub const DEFAULT_HEARTBEAT_TIMEOUT: u64 = 120;
/// Seconds a host waits for the confirmation after a switch before it
/// switches back by itself (`apply --confirm-timeout`).
pub const DEFAULT_CONFIRM_TIMEOUT: u64 = 60;

/// Push-based, reproducible provisioning of hosts that run long-lived agents.
///
/// Describe hosts and agents in hosts/*.kdl (with reusable modules/*.kdl);
/// provision renders, for each host, the systemd units, auth checks, journal
/// caps, token rotation, heartbeat monitors, alerts and AGENTS.md that make an
/// agent safe to run unattended.
#[derive(Debug, Parser)]
#[command(name = "provision", version, max_term_width = 100)]
pub struct Cli {
    /// Run as if provision was started in DIR, the fleet repository holding
    /// hosts/ and modules/. Paths given on the command line (--out, -o, a
    /// saved plan) are still taken from the current directory.
    #[arg(
        short = 'C',
        global = true,
        value_name = "DIR",
        default_value = ".",
        help_heading = GLOBAL
    )]
    pub dir: PathBuf,
    /// Print JSON for machines instead of text: one document at the end.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Stream JSON Lines for CI logs instead of text: a version line first,
    /// then one line per host and step as it happens, the --json document
    /// last as the summary line.
    #[arg(long, global = true, conflicts_with = "json", help_heading = GLOBAL)]
    pub json_lines: bool,
    /// When to colour output. With auto: only on a terminal whose TERM is
    /// not dumb, never with NO_COLOR set, also when piped with
    /// CLICOLOR_FORCE=1.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        help_heading = GLOBAL
    )]
    pub color: ColorChoice,
    /// Print only errors and the final summary: no progress.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = GLOBAL
    )]
    pub quiet: bool,
    /// Print more detail: a progress line for every step of every host
    /// (connecting, probing), also where no spinner is shown.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub verbose: bool,
    /// The age identity that decrypts `age:` secrets (native age keys, or
    /// an SSH ed25519 or RSA private key); default: ~/.config/age/keys.txt,
    /// ~/.ssh/id_ed25519, ~/.ssh/id_rsa, each that exists.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "PROVISION_AGE_IDENTITY",
        help_heading = GLOBAL
    )]
    pub identity: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The help heading of the flags every command takes.
const GLOBAL: &str = "Global options";
/// The help heading of the flags of the commands that reach hosts.
const CONNECTION: &str = "Connection options";

/// How to reach one host.
#[derive(Debug, Args)]
pub struct Connect {
    /// Seconds to wait for a host's SSH connection.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = DEFAULT_CONNECT_TIMEOUT,
        help_heading = CONNECTION
    )]
    pub connect_timeout: u64,
}

/// How to reach several hosts.
#[derive(Debug, Args)]
pub struct Fleet {
    /// How many hosts to work on at once.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_PARALLEL,
        help_heading = CONNECTION
    )]
    pub parallel: usize,
    /// How to reach each host.
    #[command(flatten)]
    pub connect: Connect,
}

/// Whether to ask before changing hosts.
#[derive(Debug, Args)]
pub struct Confirm {
    /// Do not ask before changing hosts. Required without a terminal or
    /// with CI set, where provision never asks.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a fleet repository in DIR (default: -C's directory).
    ///
    /// Writes hosts/example.kdl (a commented example host and agent: a
    /// local host, so `apply example` runs with no server), the `agent` and
    /// `host` modules, the example agent's script and a .gitignore. It
    /// passes `check`. A directory that already holds hosts/ or modules/ is
    /// left as it is.
    Init {
        /// Where (created if missing).
        dir: Option<PathBuf>,
    },
    /// Check the fleet definition and the ops checklist of every agent.
    ///
    /// Reports every problem at once with file, line, column and a hint.
    /// Exit 1 on any error, 0 when clean (warnings, such as waived checklist
    /// items, do not fail).
    Check,
    /// Write every file of HOST's desired state under DIR, at its absolute path.
    ///
    /// Prints one line per file (mode, owner, path) and the generation id last;
    /// with --json, the manifest. Secrets are not resolved unless
    /// --with-secrets is given: the files that would hold them carry their
    /// references only.
    Render {
        /// The host to render.
        host: String,
        /// Directory to write into (created if missing); without it, only
        /// `--json`'s manifest is printed.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Resolve secrets (env:, file:, cmd:) and write their values.
        #[arg(long)]
        with_secrets: bool,
    },
    /// Show what apply would change on each host, without changing anything.
    ///
    /// Probes each host in one round trip and compares, by content hash, every
    /// managed file with what the host has: `+` new, `~` changed (with a diff
    /// of text files), `-` removed, drift (changed on the host by hand), and
    /// the units that would be reloaded, started, restarted or stopped.
    /// Secrets show only as "(secret changed)" with a keyed fingerprint.
    /// Exit 0, or with --detailed-exitcode 2 when anything would change; 1 on
    /// errors; 4 when some hosts failed and others did not.
    Plan {
        /// Host names or @tags; all hosts when none is given.
        selectors: Vec<String>,
        /// Save the plan (references and fingerprints, never secret values)
        /// for `provision apply FILE`.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 2 when anything would change (drift detection in CI).
        #[arg(long)]
        detailed_exitcode: bool,
        /// `markdown`: a summary for a pull request (a table per host,
        /// paths and diffs folded), at most --max-bytes long.
        #[arg(long, value_enum, default_value = "text")]
        format: PlanFormat,
        /// The longest the markdown summary may be; diffs, then hosts' details
        /// are left out to fit, saying so.
        #[arg(long, value_name = "BYTES", default_value_t = crate::ui::markdown::DEFAULT_LIMIT)]
        max_bytes: usize,
        /// Send each finding (a host that would change or drifted, one that
        /// cannot be reached) through the fleet's alert channel CHANNEL,
        /// from the hosts, once per finding.
        #[arg(long, value_name = "CHANNEL")]
        alert: Option<String>,
        /// Only shard I of N of the selected hosts (by name), for CI matrices.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<(usize, usize)>,
        /// How to reach the hosts.
        #[command(flatten)]
        fleet: Fleet,
    },
    /// Plan, ask once, then switch each host with changes to a new generation.
    ///
    /// Given a saved plan (FILE.json from `plan -o`), applies exactly it, and
    /// refuses a host whose definition or state changed since. Each host is
    /// locked while it is switched; the switch runs on the host, detached
    /// from the connection, so it never stops half-way. Exit 0 when every
    /// host is where it should be, 1 when none is, 4 when some failed.
    Apply {
        /// Host names or @tags (all when none is given), or one saved plan.
        selectors: Vec<String>,
        /// Only shard I of N of the selected hosts (by name), for CI matrices.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<(usize, usize)>,
        /// Wait up to SECS for another run's lock instead of refusing.
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_LOCK_WAIT)]
        lock_wait: u64,
        /// Generations each host keeps (older ones and their contents are
        /// cleared from its store).
        #[arg(long, value_name = "N", default_value_t = DEFAULT_KEEP, value_parser = clap::value_parser!(u32).range(1..))]
        keep: u32,
        /// Do not verify the changed agents after the switch.
        #[arg(long)]
        no_verify: bool,
        /// Keep a generation that fails verification instead of switching
        /// back to the previous one.
        #[arg(long)]
        no_rollback: bool,
        /// Seconds to wait for a fresh heartbeat of each changed agent.
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_HEARTBEAT_TIMEOUT)]
        heartbeat_timeout: u64,
        /// Seconds a host waits for the confirmation sent over a new SSH
        /// connection once verification passed, beyond the verification's
        /// own deadline (the longest heartbeat wait plus 30 s); without
        /// it the host switches back by itself (0 disables this dead-man
        /// switch).
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_CONFIRM_TIMEOUT)]
        confirm_timeout: u64,
        /// Roll out in waves: running totals of the selected hosts (in name
        /// order), each a count or a share, such as `1,25%,100%`; each wave
        /// is switched and verified before the next starts.
        #[arg(long, value_name = "LIST", value_parser = parse_waves)]
        waves: Option<Waves>,
        /// With --waves: how many hosts may fail over the whole run
        /// (unreachable ones included), a count or a share such as `10%`;
        /// past it the rollout stops, that wave is switched back and later
        /// waves are not attempted. Default 0.
        #[arg(long, value_name = "N|P%", value_parser = parse_share, requires = "waves")]
        max_fail: Option<Share>,
        /// Plan again only the selected hosts whose last apply (recorded in
        /// .provision/last-apply.json) did not end where it should: failed,
        /// refused, verify-failed, activation-failed, withdrawn or
        /// not-attempted.
        #[arg(long)]
        retry_failed: bool,
        /// Whether to ask.
        #[command(flatten)]
        confirm: Confirm,
        /// How to reach the hosts.
        #[command(flatten)]
        fleet: Fleet,
    },
    /// Check that every agent is healthy on its host.
    ///
    /// In one round trip per host (hosts in parallel): each agent's unit is
    /// active and not restart-looping, its auth check passes as its user
    /// with its environment (a failure shows the check's output, secrets
    /// redacted), a fresh heartbeat arrives within --heartbeat-timeout, its
    /// timers are scheduled, journald's caps are in effect, and a new SSH
    /// connection works. Exit 3 when any check fails.
    Verify {
        /// Host names or @tags; all hosts when none is given.
        selectors: Vec<String>,
        /// Only shard I of N of the selected hosts (by name), for CI matrices.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<(usize, usize)>,
        /// Seconds to wait for a fresh heartbeat of each agent.
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_HEARTBEAT_TIMEOUT)]
        heartbeat_timeout: u64,
        /// Also send a test alert through each alert channel, from the host.
        #[arg(long)]
        test_alert: bool,
        /// How to reach the hosts.
        #[command(flatten)]
        fleet: Fleet,
    },
    /// The fleet at a glance, and exit 3 when anything is unhealthy.
    ///
    /// Per host its generation and drift (managed files changed since
    /// provision wrote them); per agent its unit state, uptime, restarts,
    /// heartbeat age, last and next token rotation and last alert. A table,
    /// or --json. Unhealthy: a unit not running, a stale or missing
    /// heartbeat (agents with active hours are left to the host's own
    /// checker), a rotation overdue, a failed or unfinished activation.
    Status {
        /// Host names or @tags; all hosts when none is given.
        selectors: Vec<String>,
        /// Only shard I of N of the selected hosts (by name), for CI matrices.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<(usize, usize)>,
        /// Send each finding (an unhealthy host or agent, a host that cannot
        /// be reached) through the fleet's alert channel CHANNEL, from the
        /// hosts, once per finding.
        #[arg(long, value_name = "CHANNEL")]
        alert: Option<String>,
        /// How to reach the hosts.
        #[command(flatten)]
        fleet: Fleet,
    },
    /// List the generations a host keeps.
    Generations {
        /// The host.
        host: String,
        /// How to reach the host.
        #[command(flatten)]
        connect: Connect,
    },
    /// Switch a host back to an earlier generation, from its store.
    ///
    /// Without --to, the generation before the current one. Nothing is
    /// uploaded: the contents are in the host's store.
    Rollback {
        /// The host.
        host: String,
        /// The generation to switch to.
        #[arg(long, value_name = "N")]
        to: Option<u64>,
        /// Wait up to SECS for another run's lock instead of refusing.
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_LOCK_WAIT)]
        lock_wait: u64,
        /// Whether to ask.
        #[command(flatten)]
        confirm: Confirm,
        /// How to reach the host.
        #[command(flatten)]
        connect: Connect,
    },
    /// Bring a fresh Debian or Ubuntu host into the fleet, safely.
    ///
    /// Reads the host's ed25519 key and checks its fingerprint
    /// (--expect-fingerprint, or a question on a terminal), then logs in
    /// with that key pinned, reads the host's facts in one round trip and
    /// refuses an unusable host with the fix, installs missing tools,
    /// optionally creates a deploy user with passwordless sudo, applies and
    /// verifies the host, and only then writes hosts/NAME.kdl. Running it
    /// again on an onboarded host changes nothing.
    Onboard {
        /// The first login, USER@ADDR (root, or a user with passwordless
        /// sudo).
        destination: String,
        /// The host's name in the fleet (hosts/NAME.kdl).
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The SSH port.
        #[arg(long, value_name = "P", default_value_t = 22)]
        port: u16,
        /// The private key to log in with (written as `identity=`); its
        /// FILE.pub is the deploy user's key. Default: what ssh chooses,
        /// and ~/.ssh/id_ed25519.pub (or id_ecdsa, id_rsa) for the deploy
        /// user.
        #[arg(long, value_name = "FILE")]
        ssh_key: Option<PathBuf>,
        /// The host key's fingerprint as the provider shows it; onboard
        /// refuses a host presenting another, before logging in.
        #[arg(long, value_name = "SHA256:…")]
        expect_fingerprint: Option<String>,
        /// A module the host uses (`use "M"`); repeatable.
        #[arg(long = "module", value_name = "M")]
        modules: Vec<String>,
        /// An agent made of a template, a module of modules/ written for an
        /// agent block: `agent "NAME" { use "TEMPLATE" }`; `--agent
        /// TEMPLATE` names the agent after it. Repeatable.
        #[arg(long = "agent", value_name = "[NAME=]TEMPLATE")]
        agents: Vec<String>,
        /// How long (seconds) to wait for cloud-init and for the dpkg lock
        /// before installing; a fresh VPS runs its first-boot upgrades for
        /// a minute or two.
        #[arg(long, value_name = "SECS", default_value_t = 180)]
        install_wait: u64,
        /// Create this user (from a root login) with your public key and
        /// passwordless sudo, and log in as it from then on.
        #[arg(long, value_name = "NAME")]
        deploy_user: Option<String>,
        /// Turn off password and keyboard-interactive login, and root
        /// login (to keys only when the fleet logs in as root), checked
        /// with sshd -t; the old sshd configuration comes back by itself
        /// unless a fresh login confirms the new one.
        #[arg(long)]
        harden_ssh: bool,
        /// How long the old sshd configuration waits for that fresh login
        /// before it comes back, in seconds (15 to 3600).
        #[arg(long, value_name = "SECS", default_value_t = crate::onboard::harden::DEFAULT_GUARD_SECS, requires = "harden_ssh")]
        harden_guard: u64,
        /// Replace a hosts/NAME.kdl that describes another address or key.
        #[arg(long)]
        force: bool,
        /// Whether to ask before applying.
        #[command(flatten)]
        confirm: Confirm,
        /// How to reach the host.
        #[command(flatten)]
        connect: Connect,
    },
    /// Keep secrets in the repository: age files encrypted to the
    /// recipients in secrets/recipients.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Print a completion script for SHELL on stdout.
    ///
    /// For example `provision completions bash >
    /// ~/.local/share/bash-completion/completions/provision`, or for zsh a
    /// file `_provision` in a directory of $fpath.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page on stdout, or write one page per command into DIR.
    ///
    /// For example `provision man | man -l -`, or `provision man --out
    /// /usr/local/share/man/man1`.
    Man {
        /// Write provision.1 and provision-COMMAND.1 into DIR (created if
        /// missing) instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// How `plan` prints (besides `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// For a terminal, as `terraform plan`.
    Text,
    /// A summary for a pull request.
    Markdown,
}

/// `provision secrets …`.
#[derive(Debug, Clone, Subcommand)]
pub enum SecretsCommand {
    /// List every secret of every host: where it is used, its source,
    /// whether it resolves, and who can decrypt it; never a value.
    ///
    /// Exit 0 when every secret resolves, 1 otherwise.
    Check,
    /// Decrypt an age file (or start a new one), edit it in $VISUAL or
    /// $EDITOR, and encrypt it again to secrets/recipients.
    ///
    /// The plaintext is written to a 0600 file in a private temporary
    /// directory and removed afterwards, also when the editor fails (then
    /// nothing is written).
    Edit {
        /// The age file, relative to the repository (e.g. secrets/x.age).
        file: PathBuf,
    },
    /// Re-encrypt every age file whose recipients changed, all or nothing.
    ///
    /// Every such file is decrypted first; if any cannot be, none is
    /// written. Files already encrypted to secrets/recipients stay
    /// byte-identical.
    Rekey,
}

/// `--waves`, one value for clap.
#[derive(Debug, Clone)]
pub struct Waves(Vec<Share>);

fn parse_waves(text: &str) -> Result<Waves, String> {
    crate::deploy::decide::parse_waves(text).map(Waves)
}

fn parse_share(text: &str) -> Result<Share, String> {
    crate::deploy::decide::parse_share(text)
}

fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    crate::deploy::decide::parse_shard(text)
}

/// What to run: the command line resolved once, with every default applied.
#[derive(Debug)]
pub struct Invocation {
    /// The repository (`-C`).
    pub dir: PathBuf,
    /// The age identity (`--identity`, `PROVISION_AGE_IDENTITY`).
    pub identity: Option<PathBuf>,
    /// How to print.
    pub style: Style,
    /// The command and its settings.
    pub action: Action,
}

/// A command with its settings.
#[derive(Debug)]
pub enum Action {
    /// `check`.
    Check,
    /// `render`.
    Render {
        /// The host.
        host: String,
        /// Where to write (none: the manifest only).
        out: Option<PathBuf>,
        /// Resolve secrets.
        with_secrets: bool,
    },
    /// `plan`.
    Plan {
        /// Hosts and @tags.
        selectors: Vec<String>,
        /// `--shard I/N`.
        shard: Option<(usize, usize)>,
        /// Where to save the plan.
        out: Option<PathBuf>,
        /// `--detailed-exitcode`.
        detailed_exitcode: bool,
        /// `--format markdown`: its size limit (`--max-bytes`).
        markdown: Option<usize>,
        /// `--alert CHANNEL`.
        alert: Option<String>,
        /// How to reach the hosts.
        options: Options,
    },
    /// `apply`.
    Apply {
        /// Hosts and @tags, or a saved plan.
        selectors: Vec<String>,
        /// `--shard I/N`.
        shard: Option<(usize, usize)>,
        /// `--yes`.
        yes: bool,
        /// How to reach, switch and verify the hosts.
        options: Options,
        /// `--waves`, `--max-fail`.
        rollout: Rollout,
        /// `--retry-failed`.
        retry_failed: bool,
    },
    /// `verify`.
    Verify {
        /// Hosts and @tags.
        selectors: Vec<String>,
        /// `--shard I/N`.
        shard: Option<(usize, usize)>,
        /// `--test-alert`.
        test_alert: bool,
        /// How to reach and verify the hosts.
        options: Options,
    },
    /// `status`.
    Status {
        /// Hosts and @tags.
        selectors: Vec<String>,
        /// `--shard I/N`.
        shard: Option<(usize, usize)>,
        /// `--alert CHANNEL`.
        alert: Option<String>,
        /// How to reach the hosts.
        options: Options,
    },
    /// `generations`.
    Generations {
        /// The host.
        host: String,
        /// How to reach it.
        options: Options,
    },
    /// `rollback`.
    Rollback {
        /// The host.
        host: String,
        /// `--to N`.
        to: Option<u64>,
        /// `--yes`.
        yes: bool,
        /// How to reach and switch it.
        options: Options,
    },
    /// `init`.
    Init {
        /// Where.
        dir: PathBuf,
    },
    /// `onboard`.
    Onboard(Box<crate::command::onboard::Request>),
    /// `secrets check|edit|rekey`.
    Secrets(SecretsCommand),
    /// `completions`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// `man`.
    Man {
        /// A directory for one page per command; stdout when `None`.
        out: Option<PathBuf>,
    },
}

/// The settings of a command that reaches hosts. Commands that do not
/// switch never take a lock or clear generations, so they get the
/// defaults, which they ignore. The one place that builds
/// [`Options`].
fn options(parallel: usize, connect: &Connect, lock_wait: u64, keep: u32) -> Options {
    Options {
        parallel,
        lock_wait,
        keep,
        // A zero timeout would fail every connection before it starts.
        timeout: Duration::from_secs(connect.connect_timeout.max(1)),
        verify: None,
    }
}

/// `options` that also verify after a switch (or, for `verify`, at all).
fn verifying(options: Options, heartbeat_timeout: u64, rollback: bool, confirm: u64) -> Options {
    Options {
        verify: Some(VerifyOptions {
            heartbeat_timeout,
            rollback,
            confirm_timeout: confirm,
        }),
        ..options
    }
}

impl Cli {
    /// Parses the process's arguments; `Err` for `--help` and `--version`
    /// too (see [`usage_exit`]).
    pub fn try_parse_args() -> Result<Cli, clap::Error> {
        let matches = command().try_get_matches()?;
        Cli::from_arg_matches(&matches)
    }

    /// Resolves the command line: the style from the flags, the environment
    /// and the terminal, and each command's settings with their defaults.
    pub fn resolve(self) -> Invocation {
        let verbosity = if self.quiet {
            Verbosity::Quiet
        } else if self.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        let mut style = Style::detect(self.color, self.json || self.json_lines, verbosity);
        style.events = self.json_lines;
        let fleet = |f: &Fleet| options(f.parallel, &f.connect, DEFAULT_LOCK_WAIT, DEFAULT_KEEP);
        let one = |c: &Connect| options(1, c, DEFAULT_LOCK_WAIT, DEFAULT_KEEP);
        let action = match self.command {
            Command::Check => Action::Check,
            Command::Render {
                host,
                out,
                with_secrets,
            } => Action::Render {
                host,
                out,
                with_secrets,
            },
            Command::Plan {
                selectors,
                out,
                detailed_exitcode,
                format,
                max_bytes,
                alert,
                shard,
                fleet: f,
            } => Action::Plan {
                selectors,
                shard,
                out,
                detailed_exitcode,
                markdown: (format == PlanFormat::Markdown).then_some(max_bytes),
                alert,
                options: fleet(&f),
            },
            Command::Apply {
                selectors,
                shard,
                lock_wait,
                keep,
                no_verify,
                no_rollback,
                heartbeat_timeout,
                confirm_timeout,
                waves,
                max_fail,
                retry_failed,
                confirm,
                fleet: f,
            } => {
                let base = options(f.parallel, &f.connect, lock_wait, keep);
                Action::Apply {
                    selectors,
                    shard,
                    yes: confirm.yes,
                    rollout: Rollout {
                        waves: waves.map(|w| w.0).unwrap_or_default(),
                        max_fail,
                    },
                    retry_failed,
                    options: if no_verify {
                        base
                    } else {
                        verifying(base, heartbeat_timeout, !no_rollback, confirm_timeout)
                    },
                }
            }
            Command::Verify {
                selectors,
                shard,
                heartbeat_timeout,
                test_alert,
                fleet: f,
            } => Action::Verify {
                selectors,
                shard,
                test_alert,
                // verify switches nothing: nothing to switch back or confirm.
                options: verifying(fleet(&f), heartbeat_timeout, false, 0),
            },
            Command::Status {
                selectors,
                shard,
                alert,
                fleet: f,
            } => Action::Status {
                selectors,
                shard,
                alert,
                options: fleet(&f),
            },
            Command::Generations { host, connect } => Action::Generations {
                host,
                options: one(&connect),
            },
            Command::Rollback {
                host,
                to,
                lock_wait,
                confirm,
                connect,
            } => Action::Rollback {
                host,
                to,
                yes: confirm.yes,
                options: options(1, &connect, lock_wait, DEFAULT_KEEP),
            },
            Command::Onboard {
                destination,
                name,
                port,
                ssh_key,
                expect_fingerprint,
                modules,
                agents,
                install_wait,
                deploy_user,
                harden_ssh,
                harden_guard,
                force,
                confirm,
                connect,
            } => Action::Onboard(Box::new(crate::command::onboard::Request {
                destination,
                name,
                port,
                ssh_key,
                expect_fingerprint,
                modules,
                agents,
                install_wait,
                deploy_user,
                harden_ssh,
                harden_guard,
                yes: confirm.yes,
                force,
                options: verifying(
                    one(&connect),
                    DEFAULT_HEARTBEAT_TIMEOUT,
                    true,
                    DEFAULT_CONFIRM_TIMEOUT,
                ),
            })),
            Command::Secrets(c) => Action::Secrets(c),
            Command::Init { dir } => Action::Init {
                dir: dir.unwrap_or_else(|| self.dir.clone()),
            },
            Command::Completions { shell } => Action::Completions { shell },
            Command::Man { out } => Action::Man { out },
        };
        Invocation {
            dir: self.dir,
            identity: self.identity,
            style,
            action,
        }
    }
}

/// The exit code for a command line clap did not run: 0 for `--help` and
/// `--version`, [`Exit::Usage`] for a mistake, [`Exit::ClosedPipe`] when
/// the help could not be printed because its reader went away. Prints the
/// help or the error.
pub fn usage_exit(error: &clap::Error) -> Exit {
    match error.print() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Exit::ClosedPipe,
        _ if error.use_stderr() => Exit::Usage,
        _ => Exit::Ok,
    }
}

/// The clap command, with the exit codes at the end of `--help` and of the
/// man page.
pub fn command() -> clap::Command {
    let mut codes = String::from("Exit codes:\n");
    for exit in Exit::ALL {
        codes.push_str(&format!("  {:>3}  {}\n", exit.code(), exit.meaning()));
    }
    Cli::command().after_long_help(codes)
}

/// Writes the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = command();
    let name = cmd.get_name().to_string();
    // clap_complete reports write errors by panicking; write into memory
    // first so a closed stdout is an error the caller can handle.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    out.write_all(&script)?;
    out.flush()
}

/// Writes the man page of `provision` (its commands listed, not detailed).
pub fn man(out: &mut dyn Write) -> io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command()).render(&mut page)?;
    out.write_all(&page)?;
    out.flush()
}

/// Writes `provision.1` and one `provision-COMMAND.1` per command into
/// `dir`, creating it.
pub fn man_pages(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(command(), dir)
}
