//! The ops checklist: what every agent needs to run unattended, checked on the
//! typed fleet. A missing item is an error at the agent, unless the KDL waives
//! it with a reason (`waive "heartbeat" reason="…"`), which is a warning.
//!
//! Pure: reads a [`Fleet`], writes diagnostics.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Agent, Fleet, Host};
use crate::source::Span;

/// The checklist items, as `waive` names them.
pub const ITEMS: &[&str] = &[
    "kill-mode",
    "restart",
    "auth-check",
    "rotation",
    "heartbeat",
    "journald",
    "workstate",
    "failure-modes",
    "alert",
];

/// Checks every agent of every host.
pub fn lint(fleet: &Fleet, diags: &mut Diagnostics) {
    for host in &fleet.hosts {
        for agent in &host.agents {
            for (item, span, message, help) in missing(host, agent) {
                match agent.waivers.iter().find(|w| w.item == item) {
                    Some(w) => diags.push(
                        Diagnostic::warning(
                            w.span,
                            format!("agent `{}` waives `{item}`: {}", agent.name, w.reason),
                        )
                        .label("waived")
                        .help(format!("without the waiver: {message}")),
                    ),
                    None => diags.push(
                        Diagnostic::error(span, format!("agent `{}`: {message}", agent.name))
                            .label(format!("checklist: {item}"))
                            .help(format!(
                                "{help}; or waive it: `waive \"{item}\" reason=\"…\"`"
                            )),
                    ),
                }
            }
            for w in &agent.waivers {
                if !missing(host, agent).iter().any(|m| m.0 == w.item) {
                    diags.push(
                        Diagnostic::warning(
                            w.span,
                            format!(
                                "agent `{}` waives `{}`, which it does not need to",
                                agent.name, w.item
                            ),
                        )
                        .label("unused waiver")
                        .help("remove the waiver"),
                    );
                }
            }
        }
    }
}

type Finding = (&'static str, Span, String, String);

/// The checklist items an agent lacks: (item, where, what, how to fix).
fn missing(host: &Host, a: &Agent) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    if a.kill_mode.value != "control-group" {
        out.push((
            "kill-mode",
            a.kill_mode.span,
            format!("KillMode={} can leave the agent's child processes running after a stop", a.kill_mode.value),
            "use `kill-mode \"control-group\"` (the default) so stop and restart end every process the agent started".into(),
        ));
    }
    let r = &a.restart;
    if !matches!(r.policy.as_str(), "on-failure" | "on-abnormal" | "always") || r.delay.secs == 0 {
        out.push((
            "restart",
            r.span,
            format!(
                "Restart={} with RestartSec={} does not bring a crashed agent back with a pause",
                r.policy, r.delay
            ),
            "use `restart \"on-failure\" delay=\"10s\"` (the default)".into(),
        ));
    }
    if !a.auths.iter().any(|x| x.check.is_some()) {
        out.push((
            "auth-check",
            a.span,
            "no auth check runs before start, so an expired token degrades the agent silently"
                .into(),
            "add `auth \"NAME\" check=\"command that exits 0 when the credential works\"`".into(),
        ));
    }
    for x in &a.auths {
        if x.check.is_none() {
            out.push((
                "auth-check",
                x.span,
                format!("auth `{}` has no `check`", x.name),
                format!("add `check=\"…\"` to `auth \"{}\"`", x.name),
            ));
        }
        if x.rotate.is_none() {
            out.push((
                "rotation",
                x.span,
                format!("auth `{}` has no rotation schedule, so its token expires unnoticed", x.name),
                format!("add a block to `auth \"{}\"`: `{{ rotate every=\"45d\" run=\"…\" notify=\"ops\" }}`", x.name),
            ));
        }
    }
    if a.heartbeat.is_none() {
        out.push((
            "heartbeat",
            a.span,
            "no heartbeat, so a hung agent looks healthy".into(),
            "add `heartbeat every=\"30m\" grace=\"5m\" alert=\"ops\"` and touch $PROVISION_HEARTBEAT from the agent".into(),
        ));
    }
    if host.journald.as_ref().is_none_or(|j| j.max_use.is_none()) {
        out.push((
            "journald",
            host.journald.as_ref().map_or(a.span, |j| j.span),
            format!(
                "host `{}` does not cap the journal, so logs can fill the disk",
                host.name
            ),
            "add `journald max-use=\"2G\" keep-free=\"500M\" retention=\"1week\"` to the host"
                .into(),
        ));
    }
    if !a.workstate.value {
        out.push((
            "workstate",
            a.workstate.span,
            "AGENTS.md lacks the WORKSTATE.md checkpoint protocol, so a restart loses the agent's working context".into(),
            "remove `workstate #false`".into(),
        ));
    }
    if a.failure_modes.is_empty() {
        out.push((
            "failure-modes",
            a.span,
            "no failure modes documented for its tools".into(),
            "add `failure-mode \"what goes wrong\" \"what to do\"` for each tool".into(),
        ));
    }
    if host.alerts.is_empty() {
        out.push((
            "alert",
            a.span,
            format!(
                "host `{}` has no alert channel, so failures reach no one",
                host.name
            ),
            "declare one on the host: `alert \"ops\" webhook=\"https://…\"`".into(),
        ));
    }
    out
}
