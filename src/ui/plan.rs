//! Plans for people, in the style of `terraform plan`: `+` new, `~` changed,
//! `-` removed, diffs of text files, the units touched, a summary line.
//! Secret files show only as "(secret changed)" with their keyed fingerprint.

use std::fmt::Write as _;

use super::Style;
use crate::plan::{Action, FileChange, FileState, HostPlan, Kind, human_bytes};

/// One host's plan as text.
pub fn host(plan: &HostPlan, style: Style) -> String {
    let mut out = String::new();
    let bold = |t: &str| style.paint("1", t);
    let from = plan
        .current
        .map(|n| format!("generation {n}"))
        .unwrap_or_else(|| "no generation".into());
    let short = &plan.generation[..12.min(plan.generation.len())];
    let verb = match plan.kind {
        Kind::Apply if plan.has_changes() => format!("{from} -> {} ({short})", plan.number),
        Kind::Apply => format!("{from} ({short})"),
        Kind::Rollback => format!("{from} -> rollback to {} ({short})", plan.number),
    };
    let _ = writeln!(out, "{} {}", bold(&plan.host), style.paint("2", &verb));
    for e in &plan.errors {
        let _ = writeln!(out, "  {} {e}", style.paint("1;31", "error:"));
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "  {} {w}", style.paint("1;33", "warning:"));
    }
    for f in &plan.files {
        file(&mut out, f, style);
    }
    let a = &plan.activation;
    let mut steps = Vec::new();
    if a.reload {
        steps.push("daemon-reload".to_string());
    }
    steps.extend(a.hooks.iter().cloned());
    steps.extend(a.stop.iter().map(|u| format!("stop {u}")));
    steps.extend(a.enable.iter().map(|u| format!("start {u}")));
    steps.extend(a.restart.iter().map(|u| format!("restart {u}")));
    if !steps.is_empty() {
        let _ = writeln!(out, "  {} {}", style.paint("36", "then:"), steps.join(", "));
    }
    let _ = writeln!(out, "  {}", summary(plan, style));
    out
}

/// `Plan: 2 to add, 1 to change, 0 to remove.` or `No changes.`
pub fn summary(plan: &HostPlan, style: Style) -> String {
    if !plan.errors.is_empty() {
        return style.paint("1;31", "Cannot apply: see the errors above.");
    }
    if !plan.has_changes() {
        return style.paint("32", "No changes.");
    }
    let (add, change, remove) = plan.counts();
    let drift = plan.files.iter().filter(|f| f.drift).count();
    let mut text = format!("Plan: {add} to add, {change} to change, {remove} to remove");
    if drift > 0 {
        let _ = write!(text, " ({drift} drifted)");
    }
    let restarts = plan.activation.restart.len() + plan.activation.enable.len();
    if restarts > 0 {
        let _ = write!(
            text,
            "; {restarts} unit{} (re)started",
            if restarts == 1 { "" } else { "s" }
        );
    }
    if plan.upload_bytes > 0 {
        let _ = write!(text, "; upload {}", human_bytes(plan.upload_bytes));
    }
    if plan.files.is_empty() && plan.activation.enable.is_empty() {
        let _ = write!(text, "; records generation {}", plan.number);
    }
    text.push('.');
    style.paint("1", &text)
}

fn file(out: &mut String, f: &FileChange, style: Style) {
    let (sign, colour) = match f.action {
        Action::Create => ("+", "32"),
        Action::Update => ("~", "33"),
        Action::Delete => ("-", "31"),
    };
    let mut notes = Vec::new();
    if f.secret {
        if let (Action::Update, Some(b), Some(a)) = (f.action, &f.before, &f.after)
            && b.id != a.id
        {
            notes.push(format!("(secret changed, {})", fingerprint(&a.id)));
        } else {
            notes.push("(secret)".into());
        }
    }
    match (&f.before, &f.after) {
        (Some(b), Some(a)) => {
            if b.mode != a.mode {
                notes.push(format!("mode {} -> {}", b.mode, a.mode));
            }
            if b.owner != a.owner || b.group != a.group {
                notes.push(format!(
                    "owner {}:{} -> {}:{}",
                    b.owner, b.group, a.owner, a.group
                ));
            }
        }
        (
            None,
            Some(FileState {
                mode, owner, group, ..
            }),
        ) => notes.push(format!("{mode} {owner}:{group}")),
        _ => {}
    }
    if f.drift {
        notes.push(style.paint("35", "drift: changed on the host since provision wrote it"));
    }
    let line = format!(
        "  {} {} {}",
        style.paint(colour, sign),
        f.path,
        notes.join("  ")
    );
    let _ = writeln!(out, "{}", line.trim_end());
    if let Some(diff) = &f.diff {
        for line in diff.lines() {
            let painted = match line.chars().next() {
                Some('+') => style.paint("32", line),
                Some('-') => style.paint("31", line),
                Some('@') => style.paint("36", line),
                _ => line.to_string(),
            };
            let _ = writeln!(out, "      {painted}");
        }
    }
}

/// The first characters of a keyed id, enough to tell two apart.
fn fingerprint(id: &str) -> String {
    id.chars().take(5 + 16).collect()
}
