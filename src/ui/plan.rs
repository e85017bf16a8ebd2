//! Plans for people, in the style of `terraform plan`: `+` new, `~` changed,
//! `-` removed, diffs of text files, the units touched, a summary line.
//! Secret files show only as "(secret changed)" with their keyed fingerprint.
//! Everything the host said (old file contents, owners, paths it recorded,
//! errors and warnings quoting it) goes through [`clean`] first.

use std::fmt::Write as _;

use super::{Style, clean, clean_line};
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
    let _ = writeln!(
        out,
        "{} {}",
        bold(&clean_line(&plan.host)),
        style.paint("2", &verb)
    );
    for e in &plan.errors {
        let _ = writeln!(
            out,
            "  {} {}",
            style.paint("1;31", "error:"),
            clean(&e.to_string())
        );
    }
    for w in &plan.warnings {
        let _ = writeln!(
            out,
            "  {} {}",
            style.paint("1;33", "warning:"),
            clean(&w.to_string())
        );
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
        let _ = writeln!(
            out,
            "  {} {}",
            style.paint("36", "then:"),
            clean_line(&steps.join(", "))
        );
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
            notes.push(format!("(secret changed, {})", a.id.fingerprint()));
        } else {
            notes.push("(secret)".into());
        }
    }
    match (&f.before, &f.after) {
        (Some(b), Some(a)) => {
            // Modes and owners on the host are what its `stat` said.
            if b.mode != a.mode {
                notes.push(clean_line(&format!("mode {} -> {}", b.mode, a.mode)).into_owned());
            }
            if b.owner != a.owner || b.group != a.group {
                notes.push(
                    clean_line(&format!(
                        "owner {}:{} -> {}:{}",
                        b.owner, b.group, a.owner, a.group
                    ))
                    .into_owned(),
                );
            }
        }
        (
            None,
            Some(FileState {
                mode, owner, group, ..
            }),
        ) => notes.push(clean_line(&format!("{mode} {owner}:{group}")).into_owned()),
        _ => {}
    }
    if f.drift {
        notes.push(style.paint("35", "drift: changed on the host since provision wrote it"));
    }
    // Paths of removed files come from the host's record.
    let line = format!(
        "  {} {} {}",
        style.paint(colour, sign),
        clean_line(&f.path),
        notes.join("  ")
    );
    let _ = writeln!(out, "{}", line.trim_end());
    if let Some(diff) = &f.diff {
        // The old side of a diff is the host's file: each line is cleaned
        // before it is coloured (the colour is ours, not the host's).
        for line in diff.lines() {
            let line = &*clean(line);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content_id::ContentId;
    use crate::model::Mode;
    use crate::plan::{Activation, Kind};

    fn state(id: &str, owner: &str) -> FileState {
        FileState {
            id: ContentId::unchecked(id),
            mode: Mode(0o644),
            owner: owner.into(),
            group: "root".into(),
        }
    }

    #[test]
    fn host_text_in_a_plan_reaches_the_terminal_escaped() {
        let old = "safe\n\x1b[2J\x1b]0;pwned\x07evil\u{202e}txt\rhidden\n";
        let plan = HostPlan {
            host: "web1".into(),
            kind: Kind::Apply,
            generation: "a".repeat(64),
            number: 2,
            current: Some(1),
            current_generation: Some("b".repeat(64)),
            latest: Some(1),
            base: String::new(),
            files: vec![FileChange {
                path: "/etc/motd\x1b[1A".into(),
                action: Action::Update,
                drift: true,
                secret: false,
                before: Some(state("x", "agent\x1b[31m")),
                after: Some(state("y", "root")),
                diff: Some(crate::plan::text_diff("/etc/motd", old.as_bytes(), b"new\n").unwrap()),
            }],
            activation: Activation::default(),
            upload_bytes: 0,
            pending: None,
            warnings: vec![crate::plan::Problem::Host("held by agent\x1b[8m".into())],
            errors: Vec::new(),
        };
        for color in [false, true] {
            let style = Style {
                color,
                color_err: color,
                json: false,
                events: false,
                verbosity: Default::default(),
            };
            let text = host(&plan, style);
            // Every ESC left is one of ours: a colour, `ESC [ digits;... m`.
            let mut rest = text.as_str();
            while let Some(i) = rest.find('\x1b') {
                let seq = &rest[i + 1..];
                let end = seq.find('m').expect("a colour sequence");
                assert!(
                    seq.starts_with('[')
                        && seq[1..end].chars().all(|c| c.is_ascii_digit() || c == ';'),
                    "{text:?}"
                );
                rest = &seq[end..];
            }
            for c in ['\r', '\x07', '\u{202e}'] {
                assert!(!text.contains(c), "{text:?}");
            }
            assert!(
                text.contains("\\x1b[2J\\x1b]0;pwned\\x07evil\\u{202e}txt\\r"),
                "{text}"
            );
            assert!(text.contains("/etc/motd\\x1b[1A"), "{text}");
            assert!(text.contains("agent\\x1b[31m:root"), "{text}");
            assert!(text.contains("held by agent\\x1b[8m"), "{text}");
        }
    }
}
