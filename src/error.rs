//! Errors that end a command, and the exit codes they map to.

use std::path::PathBuf;

/// Exit codes, a contract with scripts and CI (see README).
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
    /// A secret could not be resolved.
    #[error("secret {source_ref} could not be resolved: {message}")]
    Secret {
        /// `env:NAME` etc.
        source_ref: String,
        /// Why (never the value).
        message: String,
    },
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
