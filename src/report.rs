//! The machine interface: what every command prints under `--json`.
//!
//! Every document is one JSON object with the same envelope:
//! `format_version` ([`FORMAT_VERSION`]), `command`, `ok`, then the
//! command's fields. Per-host entries all carry `host` and `ok`, and a host
//! that did not end where it should carries `error`, always shaped as
//! [`Failure`]. Generations are numbers (`generation`) with their content
//! hash beside them (`generation_id`); durations say their unit
//! (`age_secs`). `schema/provision.schema.json` describes every document,
//! and the tests validate each command's output against it.
//!
//! Versioning: additions (a new field, a new `kind`) keep the version;
//! a removal, a rename or a change of meaning raises it.

use serde::Serialize;

use crate::deploy::HostResult;
use crate::deploy::host::{HostError, Phase};
use crate::error::Error;
use crate::plan::HostPlan;

/// The version of the JSON documents.
pub const FORMAT_VERSION: u32 = 1;

/// One command's document: the envelope around its fields.
#[derive(Debug, Serialize)]
pub struct Document<T: Serialize> {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The subcommand that printed it.
    pub command: &'static str,
    /// Whether the command did what it was asked (its exit code says how
    /// not).
    pub ok: bool,
    /// The command's own fields.
    #[serde(flatten)]
    pub body: T,
}

impl<T: Serialize> Document<T> {
    /// A document of `command`.
    pub fn new(command: &'static str, ok: bool, body: T) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            command,
            ok,
            body,
        }
    }
}

/// Why something failed: a stable `kind` to branch on and a message for
/// people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// `unreachable`, `host-key-mismatch`, `unknown-host-key`, `auth`,
    /// `lost`, `local`, `host`, `locked`, `stale`, `aborted`, `plan`,
    /// `interrupted`, `activation`, `verification`, `invalid`, `usage`,
    /// `secret`, `io`.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// What to do about it, when there is advice (the terminal shows it
    /// after the message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Failure {
    /// A failure of this kind.
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            help: None,
        }
    }
}

impl Failure {
    /// The message and its advice, as the terminal shows them.
    pub fn text(&self) -> String {
        match &self.help {
            Some(help) => format!("{} {help}", self.message),
            None => self.message.clone(),
        }
    }
}

impl From<&HostError> for Failure {
    fn from(e: &HostError) -> Self {
        Self {
            help: e.help().map(str::to_string),
            ..Self::new(e.kind(), e.summary())
        }
    }
}

impl HostResult {
    /// The failure this result reports, when the host did not end where it
    /// should.
    pub fn failure(&self) -> Option<Failure> {
        use crate::deploy::Refusal;
        let message = || self.error().unwrap_or_default();
        match self {
            HostResult::Unchanged { .. }
            | HostResult::Switched { .. }
            | HostResult::Confirmed { .. } => None,
            HostResult::ActivationFailed { .. } => Some(Failure::new("activation", message())),
            HostResult::VerifyFailed { generation, .. } => Some(Failure::new(
                "verification",
                format!("generation {generation} failed verification"),
            )),
            HostResult::Refused { reason } => {
                let kind = match reason {
                    Refusal::Locked { .. } => "locked",
                    Refusal::Stale(_) => "stale",
                    Refusal::Aborted(_) => "aborted",
                    Refusal::Plan(_) => "plan",
                    Refusal::Interrupted(_) => "interrupted",
                };
                Some(Failure::new(kind, message()))
            }
            HostResult::Failed { error } => Some(Failure::from(&**error)),
            HostResult::NotAttempted { .. } => Some(Failure::new("not-attempted", message())),
            HostResult::Withdrawn { .. } => Some(Failure::new("withdrawn", message())),
        }
    }
}

/// A host in `plan`: its plan, or why there is none.
#[derive(Debug, Serialize)]
pub struct PlannedHost<'a> {
    /// The host.
    pub host: &'a str,
    /// Planned without errors.
    pub ok: bool,
    /// Why it could not be planned, or why its plan is blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// The plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<&'a HostPlan>,
    /// How long each phase took (`connect`, `probe`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<Phase>,
}

/// A host in `apply` and `rollback`: its plan and how its switch ended.
#[derive(Debug, Serialize)]
pub struct AppliedHost<'a> {
    /// The host.
    pub host: &'a str,
    /// Ended where it should.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// The plan carried out (none when the host was not reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<&'a HostPlan>,
    /// How the switch ended (none when the host was not reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a HostResult>,
    /// How long each phase took, in order: `connect`, `probe`, the switch's
    /// phases on the host (`lock`, `upload`, `check`, `job-start`,
    /// `prepare`, `rename`, `stop`, `remove`, `record`, `daemon-reload`,
    /// `hooks`, `units`, `gc`, `job-exit`), `session` (the rest of the
    /// switch's round trip) and `verify`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<Phase>,
}

impl<'a> AppliedHost<'a> {
    /// A host whose switch ran (or was refused).
    pub fn switched(plan: &'a HostPlan, outcome: &'a HostResult) -> Self {
        Self {
            host: &plan.host,
            ok: outcome.ok(),
            error: outcome.failure(),
            plan: Some(plan),
            outcome: Some(outcome),
            timings: Vec::new(),
        }
    }

    /// With the phases' times.
    pub fn with_timings(self, timings: Vec<Phase>) -> Self {
        Self { timings, ..self }
    }

    /// A host that could not be reached or probed.
    pub fn failed(host: &'a str, error: &HostError) -> Self {
        Self {
            host,
            ok: false,
            error: Some(Failure::from(error)),
            plan: None,
            outcome: None,
            timings: Vec::new(),
        }
    }
}

/// The document of a command that stopped with an error: the error, and the
/// repository's diagnostics when it was the repository's fault.
pub fn error(command: &'static str, e: &Error) -> Document<serde_json::Value> {
    let kind = match e {
        Error::Load(_) => "load",
        Error::Invalid { .. } => "invalid",
        Error::UnknownHost { .. } => "unknown-host",
        Error::Secrets(_) => "secret",
        Error::Host(_) => "host",
        Error::Usage(_) => "usage",
        Error::Write { .. } => "io",
    };
    let mut body = serde_json::json!({ "error": Failure::new(kind, e.to_string()) });
    if let Error::Invalid { diagnostics, .. } = e {
        body["diagnostics"] = diagnostics.clone();
    }
    Document::new(command, false, body)
}
