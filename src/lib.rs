//! provision: push-based, reproducible provisioning of hosts that run
//! long-lived agents.
//!
//! ```text
//! hosts/*.kdl + modules/**          the operator's repository
//!   load      (effect)  read files                       -> SourceSet
//!   syntax    (pure)    KDL text -> documents
//!   resolve   (pure)    modules, overrides, typed values -> Fleet
//!   lint      (pure)    the ops checklist per agent
//!   render    (pure)    templates -> files per host      -> DesiredState
//!   plan      (pure)    desired vs observed             -> HostPlan
//!   transport (effect)  SSH or a local directory
//!   deploy    (effect)  connect, probe, switch, verify, roll back
//! ```
//!
//! The pure stages take text and return data; they never touch the
//! filesystem, the network, the clock or the environment
//! (`tests/architecture.rs` keeps it so). `deploy` is the engine that
//! carries a plan out on hosts; `command` wires a subcommand to it and hands
//! its results to `ui`.

pub mod age_file;
pub mod cli;
pub mod command;
pub mod content_id;
pub(crate) mod date;
pub(crate) mod deploy;
pub mod desired;
pub mod diagnostic;
pub mod error;
pub mod expiry;
pub mod finding;
pub mod host_key;
pub mod last_apply;
pub mod lint;
pub mod load;
pub mod model;
pub(crate) mod observed;
pub mod onboard;
pub mod onhost;
pub mod parallel;
pub mod plan;
pub(crate) mod problem;
pub mod recipients;
pub(crate) mod record;
pub mod render;
pub mod report;
pub mod resolve;
pub(crate) mod saved_plan;
pub mod script;
pub(crate) mod secret;
pub mod source;
pub(crate) mod status;
pub mod syntax;
pub mod transport;
pub mod ui;
pub mod ustar;
pub mod verify;

use diagnostic::Diagnostics;
use model::Fleet;
use source::SourceSet;

/// Parses, resolves and lints a repository: the pure front half of every
/// command. Returns the fleet and every problem found (the checklist only
/// once the definition itself is free of errors).
pub fn compile(sources: &SourceSet) -> (Fleet, Diagnostics) {
    let mut diags = Diagnostics::default();
    let docs = syntax::parse(sources, &mut diags);
    let fleet = resolve::resolve(sources, &docs, &mut diags);
    // The checklist reads decoded values; after a decoding error it would
    // report the error's echoes (a `max-use` that failed to parse is not a
    // missing journal cap), so it runs on a clean decode only.
    if !diags.has_errors() {
        lint::lint(&fleet, &mut diags);
    }
    (fleet, diags)
}
