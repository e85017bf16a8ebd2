//! What an agent's AGENTS.md and the checklist read: its failure modes,
//! notes, the workstate protocol, and checklist items waived on purpose.

use super::Resolver;
use super::agent::AgentDraft;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::lint::ITEMS;
use crate::model::{FailureMode, Setting, Waiver};
use crate::syntax::{Node, list};

pub(super) fn failure_mode(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    if let (Some(when), Some(then)) = (
        r.dec.arg_str(c, 0, "the failure"),
        r.dec.arg_str(c, 1, "the response"),
    ) {
        d.agent.failure_modes.push(FailureMode {
            when,
            then,
            tool: r.dec.prop_str(c, "tool"),
        });
    }
}

pub(super) fn workstate(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    if let Some(b) = r.dec.arg_bool(c, 0) {
        d.agent.workstate = Setting {
            value: b,
            span: c.span(),
        };
    }
}

pub(super) fn waive(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    let item = r.dec.arg_str(c, 0, "the checklist item");
    let reason = r.dec.prop_str(c, "reason");
    match (item, reason) {
        (Some(item), Some(reason)) if !reason.trim().is_empty() => {
            if ITEMS.contains(&item.as_str()) {
                d.agent.waivers.push(Waiver {
                    item,
                    reason,
                    span: c.span(),
                });
            } else {
                let mut e =
                    Diagnostic::error(c.span(), format!("`{item}` is not a checklist item"))
                        .label("unknown item");
                e = e.help(match did_you_mean(&item, ITEMS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("the items are {}", list(ITEMS)),
                });
                r.dec.error(e);
            }
        }
        (Some(_), _) => r.dec.error(
            Diagnostic::error(c.span(), "a waiver needs a reason")
                .label("no reason")
                .help("write `waive \"ITEM\" reason=\"why this agent does without it\"`"),
        ),
        _ => {}
    }
}

pub(super) fn note(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    d.agent.notes.extend(r.dec.arg_str(c, 0, "the note"));
}
