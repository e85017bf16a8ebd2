//! The command line: clap types only. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::ui::ColorChoice;

/// Push-based, reproducible provisioning of hosts that run long-lived agents.
///
/// Describe hosts and agents in hosts/*.kdl (with reusable modules/*.kdl);
/// provision renders, for each host, the systemd units, auth checks, journal
/// caps, token rotation, heartbeat monitors, alerts and AGENTS.md that make an
/// agent safe to run unattended.
#[derive(Debug, Parser)]
#[command(name = "provision", version, max_term_width = 100)]
pub struct Cli {
    /// Run in DIR, the repository holding hosts/ and modules/ (as `git -C`).
    #[arg(short = 'C', global = true, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Print JSON for machines instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// When to colour output; NO_COLOR in the environment also turns it off.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub color: ColorChoice,
    /// How many hosts to work on at once.
    #[arg(long, global = true, value_name = "N", default_value_t = 16)]
    pub parallel: usize,
    /// Do not ask before changing hosts. Required without a terminal or
    /// with CI set, where provision never asks.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Seconds to wait for a host's SSH connection.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10)]
    pub connect_timeout: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
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
        /// Only shard I of N of the selected hosts (by name), for CI matrices.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<(usize, usize)>,
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
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        lock_wait: u64,
        /// Generations each host keeps (older ones and their contents are
        /// cleared from its store).
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
        keep: u32,
        /// Do not verify the changed agents after the switch.
        #[arg(long)]
        no_verify: bool,
        /// Keep a generation that fails verification instead of switching
        /// back to the previous one.
        #[arg(long)]
        no_rollback: bool,
        /// Seconds to wait for a fresh heartbeat of each changed agent.
        #[arg(long, value_name = "SECS", default_value_t = 120)]
        heartbeat_timeout: u64,
        /// Seconds a host waits, after its switch, for the confirmation sent
        /// over a new SSH connection once verification passed; without it the
        /// host switches back by itself (0 disables this dead-man switch).
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        confirm_timeout: u64,
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
        #[arg(long, value_name = "SECS", default_value_t = 120)]
        heartbeat_timeout: u64,
        /// Also send a test alert through each alert channel, from the host.
        #[arg(long)]
        test_alert: bool,
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
    },
    /// List the generations a host keeps.
    Generations {
        /// The host.
        host: String,
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
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        lock_wait: u64,
    },
}

fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    crate::deploy::decide::parse_shard(text)
}
