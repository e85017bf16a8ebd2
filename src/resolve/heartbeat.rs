//! An agent's `heartbeat`: how often it shows it is alive, and when.

use super::Resolver;
use super::agent::AgentDraft;
use crate::diagnostic::Diagnostic;
use crate::model::{ActiveHours, Duration, Heartbeat, Setting, default_grace};
use crate::syntax::Node;

/// How `heartbeat` is written; also the help when `every` is missing.
pub(super) const USAGE: &str =
    "`heartbeat every=\"30m\" grace=\"5m\" active-hours=\"07:00-19:00\" alert=\"ops\"`";

pub(super) fn heartbeat(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    let verify_timeout = r.dec.prop_parsed(c, "verify-timeout", Duration::parse);
    let verify_stable = r.dec.prop_parsed(c, "verify-stable", Duration::parse);
    let every = r.dec.prop_parsed(c, "every", Duration::parse);
    if c.prop("every").is_none() {
        r.dec.error(
            Diagnostic::error(c.span(), "`heartbeat` needs `every`")
                .label("missing `every`")
                .help(format!("write {USAGE}")),
        );
    }
    let grace = r.dec.prop_parsed(c, "grace", Duration::parse);
    let active_hours = r.dec.prop_parsed(c, "active-hours", ActiveHours::parse);
    let probe = r.dec.prop_str(c, "probe");
    let alert = r.dec.prop_str(c, "alert").map(|v| Setting {
        value: v,
        span: c.span(),
    });
    // A heartbeat that cannot be decoded leaves the agent without one (as if
    // it were not written): the error was reported.
    let Some(every) = every else {
        d.agent.heartbeat = None;
        return;
    };
    if every.secs < 60 {
        r.dec.error(
            Diagnostic::error(c.span(), "heartbeat interval under a minute")
                .help("the checker runs every minute at most; use `every` of at least `1m`"),
        );
    }
    d.agent.heartbeat = Some(Heartbeat {
        span: c.span(),
        every,
        grace: grace.unwrap_or_else(|| default_grace(every)),
        active_hours,
        alert,
        probe,
        verify_timeout,
        verify_stable,
    });
}
