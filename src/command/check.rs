//! `provision check`: every problem in the fleet definition at once, plus the
//! ops checklist, with file, line, column and a hint for each.

use std::path::Path;

use serde_json::json;

use super::Repo;
use crate::error::{Error, Exit};
use crate::report::Document;
use crate::ui::{Style, diagnostics};

/// Runs `check`. Exit 1 on any error, 0 when clean (warnings allowed).
pub fn run(root: &Path, style: Style) -> Result<Exit, Error> {
    let mut repo = Repo::open(root)?;
    if !repo.diags.has_errors() {
        // Rendering finds what only rendering can: template errors, missing files.
        let (_, diags) =
            crate::render::each_host(&repo.fleet.hosts, &repo.templates, &repo.assets, |_, _| ());
        repo.diags.extend(diags);
        // What can be known of the secrets without resolving them.
        for host in &repo.fleet.hosts {
            for d in super::secrets::check_sources(root, host) {
                repo.diags.push(d);
            }
        }
        for d in recipients_problems(root, &repo) {
            repo.diags.push(d);
        }
    }
    let errors = repo.diags.error_count();
    let warnings = repo.diags.warning_count();
    let diags = std::mem::take(&mut repo.diags).into_sorted();
    let agents: usize = repo.fleet.hosts.iter().map(|h| h.agents.len()).sum();
    if style.json {
        let hosts: Vec<_> = repo
            .fleet
            .hosts
            .iter()
            .map(|h| json!({"host": h.name, "agents": h.agents.iter().map(|a| &a.name).collect::<Vec<_>>()}))
            .collect();
        let body = json!({
            "errors": errors,
            "warnings": warnings,
            "hosts": hosts,
            "diagnostics": diagnostics::json(&diags, &repo.sources),
        });
        crate::ui::json::print(style, &Document::new("check", errors == 0, body));
    } else {
        eprint!(
            "{}",
            diagnostics::human(&diags, &repo.sources, style.color_err)
        );
        let summary = format!(
            "checked {} host{}, {} agent{}: {} error{}, {} warning{}",
            repo.fleet.hosts.len(),
            plural(repo.fleet.hosts.len()),
            agents,
            plural(agents),
            errors,
            plural(errors),
            warnings,
            plural(warnings)
        );
        let paint = if errors > 0 {
            "1;31"
        } else if warnings > 0 {
            "1;33"
        } else {
            "1;32"
        };
        println!("{}", style.paint(paint, &summary));
    }
    Ok(if errors > 0 { Exit::Error } else { Exit::Ok })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The recipients file, when any secret is an age file: it must exist and
/// every line must parse.
fn recipients_problems(root: &Path, repo: &Repo) -> Vec<crate::diagnostic::Diagnostic> {
    use crate::diagnostic::{Diagnostic, Severity};
    use crate::recipients::{RECIPIENTS, Recipients};
    let uses_age = repo.fleet.hosts.iter().any(|h| {
        super::secrets::uses(h)
            .iter()
            .any(|u| matches!(u.secret.source, crate::secret::SecretSource::Age(_)))
    });
    if !uses_age {
        return Vec::new();
    }
    let problem = |message: String, help: &str| Diagnostic {
        severity: Severity::Error,
        span: None,
        message,
        label: String::new(),
        help: Some(help.into()),
        related: None,
    };
    match std::fs::read_to_string(root.join(RECIPIENTS)) {
        Err(e) => vec![problem(
            format!("{RECIPIENTS} cannot be read ({e}), and age secrets are encrypted to it"),
            "create it with one public key per line: `age-keygen -y ~/.config/age/keys.txt`, or an `ssh-ed25519 AAAA… name` line",
        )],
        Ok(text) => match Recipients::parse(&text) {
            Ok(r) if r.list.is_empty() => vec![problem(
                format!("{RECIPIENTS} lists no recipient"),
                "add your age or SSH public key, one per line",
            )],
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .map(|e| {
                    problem(
                        e.to_string(),
                        "one recipient per line, optionally followed by `# name`",
                    )
                })
                .collect(),
        },
    }
}
