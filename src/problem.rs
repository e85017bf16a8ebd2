//! What stops a host's plan (an error) or is worth knowing about it (a
//! warning): one type, produced by `plan::plan` and by the checks that
//! judge a plan against what it relied on (a saved plan, the host's store).
//! It shows, and serialises, as its message; a saved plan's problems are
//! not read back (applying a saved plan plans again).

use std::fmt;

use serde::Serialize;

use crate::onhost;
use crate::plan::human_bytes;

/// One problem of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Secrets are to be written, but the host has no fingerprint key to
    /// compare them with.
    NoKey,
    /// Something other than the managed file sits at its path; the switch
    /// moves it into the quarantine and writes the file.
    Planted {
        /// The managed path.
        path: String,
        /// What is there, as the host described it.
        what: String,
    },
    /// The path is reached through a link or an unsafe directory: the
    /// switch refuses to write it.
    Unreachable {
        /// The managed path.
        path: String,
        /// Why, as the host described it.
        what: String,
    },
    /// The upload does not fit where the host keeps its store.
    NoRoom {
        /// Bytes free there.
        free: u64,
        /// Bytes to upload.
        upload: u64,
    },
    /// journald's caps exceed the journal's filesystem.
    JournalTooSmall {
        /// `max-use`.
        max_use: u64,
        /// `keep-free`.
        keep_free: u64,
        /// The filesystem's size.
        size: u64,
    },
    /// journald's `keep-free` is more than the filesystem has free.
    JournalFull {
        /// `keep-free`.
        keep_free: u64,
        /// Bytes free.
        free: u64,
    },
    /// The current generation's activation did not end well.
    Activation {
        /// The current generation.
        generation: Option<u64>,
        /// How it ended, as the host recorded it.
        status: String,
    },
    /// A switch did not finish; apply finishes it first.
    Pending(u64),
    /// The current generation awaits its confirmation.
    Unconfirmed {
        /// The current generation.
        current: Option<u64>,
        /// Where the dead-man switch goes back to.
        back: u64,
    },
    /// A switch back needs content the host's store no longer has.
    NotInStore(String),
    /// A saved plan no longer matches: the repository, a secret or the
    /// host changed since it was made.
    SavedPlanStale(&'static str),
    /// Something the host's probe warned about, in its words.
    Host(String),
}

impl Problem {
    /// Rewrites the text that came from the host (redaction, before it is
    /// shown).
    pub fn map_host_text(&mut self, f: impl Fn(&str) -> String) {
        match self {
            Problem::Planted { what, .. }
            | Problem::Unreachable { what, .. }
            | Problem::Activation { status: what, .. }
            | Problem::Host(what) => *what = f(what),
            _ => {}
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoKey => write!(
                f,
                "the host has no fingerprint key ({}), so its secrets cannot be compared",
                onhost::KEY
            ),
            Problem::Planted { path, what } => write!(
                f,
                "tampering: {path} is a {what} on the host; apply moves it into the quarantine ({}) and writes the file",
                onhost::QUARANTINE
            ),
            Problem::Unreachable { path, what } => {
                write!(f, "tampering: {path}: {what}; apply refuses to write it")
            }
            Problem::NoRoom { free, upload } => write!(
                f,
                "the host has {} free where provision keeps its store, and this apply uploads {}",
                human_bytes(*free),
                human_bytes(*upload)
            ),
            Problem::JournalTooSmall {
                max_use,
                keep_free,
                size,
            } => write!(
                f,
                "journald caps cannot fit: max-use {} plus keep-free {} exceed the journal's filesystem ({})",
                human_bytes(*max_use),
                human_bytes(*keep_free),
                human_bytes(*size)
            ),
            Problem::JournalFull { keep_free, free } => write!(
                f,
                "journald keep-free {} is more than the journal's filesystem has free ({}): journald will store almost nothing",
                human_bytes(*keep_free),
                human_bytes(*free)
            ),
            Problem::Activation { generation, status } => write!(
                f,
                "the activation of the current generation {} {status}",
                generation.map(|n| n.to_string()).unwrap_or_default()
            ),
            Problem::Pending(n) => write!(
                f,
                "a switch to generation {n} did not finish (its connection dropped or the host went down); apply finishes it first"
            ),
            Problem::Unconfirmed { current, back } => write!(
                f,
                "generation {} awaits its confirmation: unless the apply in progress confirms it, the dead-man switch switches the host back to generation {back}; `provision apply` verifies and confirms it",
                current.map(|n| n.to_string()).unwrap_or_default()
            ),
            Problem::NotInStore(path) => write!(
                f,
                "the content of {path} is no longer in the host's store; apply that generation's definition instead"
            ),
            Problem::SavedPlanStale(why) => write!(f, "{why}; make a new plan"),
            Problem::Host(text) => f.write_str(text),
        }
    }
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
