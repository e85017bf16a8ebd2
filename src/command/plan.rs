//! `provision plan [SEL] [-o FILE] [--detailed-exitcode] [--format markdown]`:
//! what apply would change on each host, read-only.

use std::path::Path;
use std::sync::Arc;

use super::Repo;
use crate::deploy::{Failed, Options, decide};
use crate::error::{Error, Exit};
use crate::finding::{self, Finding, Scope};
use crate::plan::HostPlan;
use crate::report::{Document, Failure, PlannedHost};
use crate::saved_plan::SavedPlan;
use crate::ui::{Style, plan as show, progress::Display};

/// Runs `plan`.
pub fn run(
    root: &Path,
    selectors: &[String],
    shard: Option<(usize, usize)>,
    out: Option<&Path>,
    (detailed, markdown, alert): (bool, Option<usize>, Option<&str>),
    options: &Options,
    style: Style,
) -> Result<Exit, Error> {
    let mut repo = Repo::checked(root, style)?;
    let hosts = repo.select(selectors, shard)?;
    if let Some(channel) = alert {
        super::alert::check(&hosts, channel)?;
    }
    let selected = hosts.clone();
    let display = Arc::new(Display::for_style(style));
    let runtime = super::runtime();
    // Each connection is closed once its host is planned.
    let prepared = super::plan_hosts(
        &mut repo,
        root,
        hosts,
        options,
        crate::deploy::Keep::None,
        style,
        &runtime,
        display.clone(),
    )?;

    // In the order the hosts were selected, for the JSON document.
    let rows: Vec<Result<HostPlan, Failed>> =
        prepared.into_iter().map(|p| p.map(|p| p.plan)).collect();
    let plans: Vec<HostPlan> = rows
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .cloned()
        .collect();
    let failed: Vec<&Failed> = rows.iter().filter_map(|r| r.as_ref().err()).collect();
    let blocked = plans.iter().filter(|p| !p.errors.is_empty()).count();
    let changes = plans
        .iter()
        .filter(|p| p.has_changes() && p.errors.is_empty())
        .count();
    if let Some(out) = out {
        let saved = SavedPlan::new(plans.clone());
        let text = serde_json::to_string_pretty(&saved).expect("a plan serialises");
        std::fs::write(out, text + "\n").map_err(|e| Error::Write {
            path: out.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    if style.json {
        let hosts: Vec<PlannedHost> = rows
            .iter()
            .map(|r| match r {
                Ok(plan) => PlannedHost {
                    host: &plan.host,
                    ok: plan.errors.is_empty(),
                    error: (!plan.errors.is_empty())
                        .then(|| Failure::new("plan", plan.error_text())),
                    plan: Some(plan),
                    timings: display.phases(&plan.host),
                },
                Err(f) => PlannedHost {
                    host: &f.host,
                    ok: false,
                    error: Some(Failure::from(&f.error)),
                    plan: None,
                    timings: display.phases(&f.host),
                },
            })
            .collect();
        let body = serde_json::json!({"changes": changes > 0, "blocked": blocked, "hosts": hosts});
        crate::ui::json::print(
            style,
            &Document::new("plan", failed.is_empty() && blocked == 0, body),
        );
    } else if let Some(limit) = markdown {
        let failed: Vec<(String, String)> = failed
            .iter()
            .map(|f| (f.host.clone(), f.error.summary()))
            .collect();
        match crate::ui::markdown::summary(&plans, &failed, limit) {
            Ok(md) => print!("{md}"),
            Err(small) => {
                return Err(Error::Usage(format!(
                    "--max-bytes {limit} cannot hold the summary's header and table for these hosts: pass --max-bytes {} or more",
                    small.minimum
                )));
            }
        }
    } else {
        for p in &plans {
            println!("{}", show::host(p, style));
        }
        for f in &failed {
            style.host_error(&f.error.to_string(), "");
        }
        display.print_timings(style, plans.iter().map(|p| p.host.as_str()));
        let unchanged = plans.len() - changes - blocked;
        println!(
            "{}",
            style.paint(
                "1",
                &format!(
                    "{changes} host{} to change, {unchanged} unchanged{}{}{}.",
                    if changes == 1 { "" } else { "s" },
                    if blocked == 0 {
                        String::new()
                    } else {
                        format!(", {blocked} blocked by errors")
                    },
                    if failed.is_empty() {
                        String::new()
                    } else {
                        format!(", {} unreachable or failed", failed.len())
                    },
                    out.map(|o| format!("; plan saved to {}", o.display()))
                        .unwrap_or_default()
                )
            )
        );
    }
    let mut sent = true;
    if let Some(channel) = alert {
        let findings: Vec<Finding> = plans
            .iter()
            .filter_map(finding::of_plan)
            .chain(
                failed
                    .iter()
                    .map(|f| Finding::unreachable(&f.host, &f.error.summary())),
            )
            .collect();
        let reachable: Vec<String> = plans.iter().map(|p| p.host.clone()).collect();
        sent = super::alert::send(
            &runtime,
            root,
            &options.connect(),
            (&selected, &reachable),
            (channel, Scope::Plan),
            findings,
            style,
        );
    }
    let exit = decide::exit_for(plans.len() - blocked, failed.len() + blocked);
    if !sent {
        return Ok(Exit::Error);
    }
    if exit == Exit::Ok && detailed && changes > 0 {
        return Ok(Exit::Changes);
    }
    Ok(exit)
}
