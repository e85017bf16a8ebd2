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
}
