//! Errors that end a command, and the exit codes they map to.

use std::path::PathBuf;

/// Exit codes, a contract with scripts and CI (see README).
///
/// Each code means one thing, so a script can tell "changes pending" (2)
/// from a mistyped flag: usage errors have their own code, 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success; for `plan --detailed-exitcode`, no changes.
    Ok = 0,
    /// An error: bad input, unreachable host, refused operation.
    Error = 1,
    /// `plan --detailed-exitcode`: changes pending.
    Changes = 2,
    /// Verification failed.
    VerifyFailed = 3,
    /// Some hosts failed while others succeeded.
    Partial = 4,
    /// The command line is wrong (unknown flag, missing or invalid value):
    /// `EX_USAGE` from sysexits.h, the code such tools use for it.
    Usage = 64,
    /// Standard output or standard error was closed by its reader
    /// (`provision status | head -1`): the command stopped, quietly. 141 is
    /// what a shell reports for a program ended by SIGPIPE (128 + 13), so
    /// `set -o pipefail` sees the same as with `ls | head -1`.
    ClosedPipe = 141,
}

impl Exit {
    /// Every code, in order, for the help text.
    pub const ALL: [Exit; 7] = [
        Exit::Ok,
        Exit::Error,
        Exit::Changes,
        Exit::VerifyFailed,
        Exit::Partial,
        Exit::Usage,
        Exit::ClosedPipe,
    ];

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code means, in a few words.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success (plan --detailed-exitcode: no changes)",
            Exit::Error => "error: bad input, unreachable host, refused operation",
            Exit::Changes => "plan --detailed-exitcode: changes pending",
            Exit::VerifyFailed => "verification failed, or status found something unhealthy",
            Exit::Partial => "some hosts failed while others succeeded",
            Exit::Usage => "usage error: unknown flag, missing or invalid value",
            Exit::ClosedPipe => "output closed by its reader (| head): stopped quietly",
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// What can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repository could not be read.
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
    /// The repository has errors (already printed as diagnostics).
    #[error("{errors} error{} in the fleet definition", if *errors == 1 { "" } else { "s" })]
    Invalid {
        /// How many.
        errors: usize,
        /// Every diagnostic, as the JSON documents show them.
        diagnostics: serde_json::Value,
    },
    /// A host name that the repository does not define.
    #[error("no host `{name}` in this repository{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownHost {
        /// What was asked for.
        name: String,
        /// The closest existing name.
        suggestion: Option<String>,
    },
    /// Secrets could not be resolved: each where it is needed
    /// (`FILE:LINE:COL: secret NAME of OWNER (SOURCE): REASON`).
    #[error("{}", secrets_message(.0))]
    Secrets(Vec<String>),
    /// A host could not be reached or refused.
    #[error("{0}")]
    Host(String),
    /// A command line that cannot be carried out.
    #[error("{0}")]
    Usage(String),
    /// Writing output failed.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// The exit code for this error.
    pub fn exit(&self) -> Exit {
        Exit::Error
    }
}

fn secrets_message(failures: &[String]) -> String {
    let n = failures.len();
    let mut out = format!(
        "{n} secret{} could not be resolved:",
        if n == 1 { "" } else { "s" }
    );
    for f in failures {
        out.push_str("\n  ");
        out.push_str(f);
    }
    out
}
