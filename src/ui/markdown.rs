//! Plans as a Markdown summary for people reviewing a pull request
//! (`plan --format markdown`): one table row per host (files added, changed,
//! removed, drifted; units restarted; secret files changed, by path only),
//! then each host's changed paths and diffs, kept under a size limit: diffs
//! go first, then hosts, with an explicit line saying what was cut and where
//! the full plan is. Pure: plans in, text out.

use std::fmt::Write as _;

use super::clean_line;
use crate::plan::{Action, FileChange, HostPlan};

/// GitHub refuses comments over 65,536 characters; the default stays under
/// it with room for a CI's own header.
pub const DEFAULT_LIMIT: usize = 65_000;

/// The summary of `plans` (and of `failed` hosts, with why), at most
/// `limit` bytes.
pub fn summary(
    plans: &[HostPlan],
    failed: &[(String, String)],
    limit: usize,
) -> Result<String, TooSmall> {
    let changed = plans
        .iter()
        .filter(|p| p.has_changes() && p.errors.is_empty())
        .count();
    let blocked = plans.iter().filter(|p| !p.errors.is_empty()).count();
    let mut head = String::new();
    let _ = writeln!(
        head,
        "### provision plan: {changed} host{} to change, {} unchanged, {} blocked or failed\n",
        if changed == 1 { "" } else { "s" },
        plans.len() - changed - blocked,
        blocked + failed.len()
    );
    head.push_str("| host | generation | added | changed | removed | drifted | units (re)started | secret files changed |\n");
    head.push_str("|---|---|---:|---:|---:|---:|---|---|\n");
    for p in plans {
        head.push_str(&row(p));
    }
    for (host, why) in failed {
        let _ = writeln!(
            head,
            "| {} | **failed**: {} | | | | | | |",
            cell(host),
            cell(why)
        );
    }
    let details: Vec<(String, String)> = plans
        .iter()
        .filter(|p| p.has_changes() || !p.errors.is_empty() || !p.warnings.is_empty())
        .map(|p| (section(p, false), section(p, true)))
        .collect();
    // Everything with diffs if it fits; else without diffs; else as many
    // hosts as fit, then the line that says so.
    for with_diffs in [true, false] {
        let body: String = details
            .iter()
            .map(|(short, long)| if with_diffs { long } else { short }.as_str())
            .collect();
        let note = if with_diffs {
            String::new()
        } else {
            "\n_Diffs left out to fit; the full plan is in the artifact (`provision plan -o plan.json`)._\n".to_string()
        };
        if head.len() + body.len() + note.len() <= limit {
            return Ok(head + &body + &note);
        }
    }
    let note = |cut: usize| {
        format!(
            "\n**Truncated**: the details of {cut} host{} did not fit in {limit} bytes; the full plan is in the artifact (`provision plan -o plan.json`).\n",
            if cut == 1 { "" } else { "s" }
        )
    };
    // The header and the table are the summary: a budget that cannot hold
    // them (with the line saying what was left out) is refused, never cut.
    let minimum = head.len() + note(details.len()).len();
    if limit < minimum {
        return Err(TooSmall { minimum });
    }
    let mut out = head;
    let mut shown = 0;
    for (short, _) in &details {
        if out.len() + short.len() + TRUNCATED_ROOM > limit {
            break;
        }
        out.push_str(short);
        shown += 1;
    }
    let note = note(details.len() - shown);
    debug_assert!(out.len() + note.len() <= limit);
    Ok(out + &note)
}

/// A `--max-bytes` too small for the summary's header and table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSmall {
    /// The least that holds them, for these hosts.
    pub minimum: usize,
}

const TRUNCATED_ROOM: usize = 200;

fn row(p: &HostPlan) -> String {
    let count = |a: Action| p.files.iter().filter(|f| f.action == a).count();
    let drifted = p.files.iter().filter(|f| f.drift).count();
    let generation = match (p.current, p.has_changes()) {
        (Some(c), true) => format!("{c} → {}", p.number),
        (None, true) => format!("none → {}", p.number),
        (Some(c), false) => format!("{c}, no changes"),
        (None, false) => "none, no changes".into(),
    };
    let generation = if p.errors.is_empty() {
        generation
    } else {
        format!("**blocked**: {}", p.error_text())
    };
    let a = &p.activation;
    let units: Vec<&str> = a
        .enable
        .iter()
        .chain(&a.restart)
        .map(String::as_str)
        .collect();
    let secrets: Vec<&str> = p
        .files
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.path.as_str())
        .collect();
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
        cell(&p.host),
        cell(&generation),
        count(Action::Create),
        count(Action::Update),
        count(Action::Delete),
        drifted,
        cell(&units.join(", ")),
        cell(&secrets.join(", "))
    )
}

/// A host's paths (and, with `diffs`, their diffs), folded.
fn section(p: &HostPlan, diffs: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n<details><summary>{}: {} path{}</summary>\n",
        html(&p.host),
        p.files.len(),
        if p.files.len() == 1 { "" } else { "s" }
    );
    for e in &p.errors {
        let _ = writeln!(out, "- **error**: {}", inline(&e.to_string()));
    }
    for w in &p.warnings {
        let _ = writeln!(out, "- warning: {}", inline(&w.to_string()));
    }
    if !p.files.is_empty() {
        out.push_str("\n```\n");
        for f in &p.files {
            out.push_str(&path_line(f));
        }
        out.push_str("```\n");
    }
    if diffs {
        for f in p.files.iter().filter(|f| !f.secret) {
            if let Some(d) = &f.diff {
                let _ = writeln!(out, "\n`{}`\n\n```diff", inline(&f.path));
                for line in d.lines() {
                    // A fence inside a diff would end the block early.
                    let _ = writeln!(out, "{}", clean_line(line).replace("```", "`‵`"));
                }
                out.push_str("```\n");
            }
        }
    }
    out.push_str("\n</details>\n");
    out
}

fn path_line(f: &FileChange) -> String {
    let sign = match f.action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Delete => "-",
    };
    let mut notes = Vec::new();
    if f.drift {
        notes.push("drifted");
    }
    if f.secret {
        notes.push("secret changed");
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    };
    format!(
        "{sign} {}{notes}\n",
        clean_line(&f.path).replace("```", "`‵`")
    )
}

/// Text for a table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    inline(text).replace('|', "\\|")
}

/// Text for one line of Markdown.
fn inline(text: &str) -> String {
    clean_line(text).replace('\n', " ")
}

/// Text inside HTML (`<summary>`).
fn html(text: &str) -> String {
    inline(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Activation, FileState, Kind};

    fn plan(host: &str, files: usize, diff_lines: usize) -> HostPlan {
        let state = FileState {
            id: crate::content_id::ContentId::of(b"x"),
            mode: crate::model::Mode(0o644),
            owner: "root".into(),
            group: "root".into(),
        };
        HostPlan {
            host: host.into(),
            kind: Kind::Apply,
            generation: "ab".repeat(32),
            number: 4,
            current: Some(3),
            current_generation: None,
            latest: Some(3),
            base: String::new(),
            files: (0..files)
                .map(|i| FileChange {
                    path: format!("/etc/app/f{i}|x"),
                    action: if i == 0 {
                        Action::Create
                    } else {
                        Action::Update
                    },
                    drift: i == 1,
                    secret: i == 2,
                    before: Some(state.clone()),
                    after: Some(state.clone()),
                    diff: (i != 2).then(|| {
                        (0..diff_lines)
                            .map(|l| format!("+line {l}\n"))
                            .collect::<String>()
                    }),
                })
                .collect(),
            activation: Activation {
                restart: vec!["agent-mail.service".into()],
                ..Activation::default()
            },
            upload_bytes: 10,
            pending: None,
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn a_small_plan_has_its_table_paths_and_diffs() {
        let md = summary(
            &[plan("web-1", 3, 2)],
            &[("db-1".into(), "cannot reach the host".into())],
            DEFAULT_LIMIT,
        )
        .unwrap();
        assert!(
            md.starts_with(
                "### provision plan: 1 host to change, 0 unchanged, 1 blocked or failed"
            ),
            "{md}"
        );
        assert!(
            md.contains("| web-1 | 3 → 4 | 1 | 2 | 0 | 1 | agent-mail.service | /etc/app/f2\\|x |"),
            "{md}"
        );
        assert!(
            md.contains("| db-1 | **failed**: cannot reach the host |"),
            "{md}"
        );
        assert!(md.contains("~ /etc/app/f2|x (secret changed)"), "{md}");
        assert!(md.contains("~ /etc/app/f1|x (drifted)"), "{md}");
        assert!(md.contains("```diff\n+line 0\n+line 1\n```"), "{md}");
        assert!(!md.contains("Truncated"));
    }

    #[test]
    fn a_large_plan_drops_diffs_then_hosts_and_says_so_within_the_limit() {
        let big: Vec<HostPlan> = (0..40)
            .map(|i| plan(&format!("h{i:02}"), 20, 200))
            .collect();
        let md = summary(&big, &[], DEFAULT_LIMIT).unwrap();
        assert!(md.len() <= DEFAULT_LIMIT, "{}", md.len());
        // Every host is still in the table.
        for i in 0..40 {
            assert!(md.contains(&format!("| h{i:02} | 3 → 4 |")), "h{i:02}");
        }
        assert!(!md.contains("```diff"), "diffs should go first");
        let small: Vec<HostPlan> = (0..40).map(|i| plan(&format!("h{i:02}"), 20, 5)).collect();
        let md = summary(&small, &[], 20_000).unwrap();
        assert!(md.len() <= 20_000, "{}", md.len());
        assert!(md.contains("**Truncated**: the details of "), "{md}");
        assert!(md.contains("the full plan is in the artifact"));
        // Not even the table fits: refused, naming the least that does.
        let TooSmall { minimum } = summary(&small, &[], 1_000).unwrap_err();
        assert!(minimum > 1_000, "{minimum}");
        let md = summary(&small, &[], minimum).unwrap();
        assert!(md.len() <= minimum, "{} > {minimum}", md.len());
        assert!(md.contains("| h39 | 3 → 4 |"), "{md}");
        assert!(
            md.contains("**Truncated**: the details of 40 hosts"),
            "{md}"
        );
    }
}
