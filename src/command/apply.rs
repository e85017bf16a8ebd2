//! `provision apply [SEL | plan.json]`: plan, ask once, switch every host
//! with changes, report.

use std::path::Path;
use std::sync::Arc;

use super::{Repo, operator};
use crate::deploy::Failed;
use crate::deploy::decide::Rollout;
use crate::deploy::{self, HostResult, Options, decide};
use crate::error::{Error, Exit};
use crate::model::Host;
use crate::plan::HostPlan;
use crate::report::{AppliedHost, Document};
use crate::saved_plan::SavedPlan;
use crate::ui::verify::checks as show_checks;
use crate::ui::{Style, clean, plan as show, progress::Display};

/// Runs `apply`.
pub fn run(
    root: &Path,
    selectors: &[String],
    shard: Option<(usize, usize)>,
    yes: bool,
    (options, rollout): (&Options, &Rollout),
    style: Style,
) -> Result<Exit, Error> {
    let mut repo = Repo::checked(root, style)?;
    let saved = match crate::saved_plan::arg(selectors) {
        Some(path) => Some(super::read_plan(path)?),
        None => None,
    };
    let names: Vec<String> = match &saved {
        Some(s) => s.hosts.iter().map(|h| h.host.clone()).collect(),
        None => selectors.to_vec(),
    };
    if saved.is_some() && names.is_empty() {
        return Err(Error::Usage("the saved plan holds no host".into()));
    }
    let hosts = repo.select(&names, if saved.is_some() { None } else { shard })?;
    let applied = switch(
        &mut repo,
        root,
        hosts,
        saved.as_ref(),
        yes,
        (options, rollout),
        style,
    )?;
    if applied.declined {
        return Ok(Exit::Error);
    }
    if style.json {
        let body = serde_json::json!({"hosts": applied.hosts()});
        crate::ui::json::print(style, &Document::new("apply", applied.ok(), body));
    } else {
        applied.print(style);
    }
    Ok(applied.exit())
}

/// How an apply ended, for its caller to report.
pub struct Applied {
    /// Each host that was planned, with how its switch ended.
    results: Vec<(HostPlan, HostResult)>,
    /// Each host that could not be planned.
    failed: Vec<Failed>,
    /// The operator said no: nothing was switched.
    declined: bool,
}

/// The engine of `apply` for `hosts` of a loaded repository (which need not
/// be on disk: `onboard` applies a host before writing its file): plan,
/// print the plans (text only), ask once unless `yes` or `saved`, switch,
/// verify. Prints nothing of the outcome; see [`Applied`].
pub fn switch(
    repo: &mut Repo,
    root: &Path,
    hosts: Vec<Host>,
    saved: Option<&SavedPlan>,
    yes: bool,
    (options, rollout): (&Options, &Rollout),
    style: Style,
) -> Result<Applied, Error> {
    let display = Arc::new(Display::for_style(style));
    let runtime = super::runtime();
    let prepared = super::plan_hosts(repo, root, hosts, options, style, &runtime, display.clone())?;

    let mut ready = Vec::new();
    let mut failed = Vec::new();
    for p in prepared {
        match p {
            Ok(mut p) => {
                // A saved plan is applied only as it was made.
                if let Some(saved) = &saved {
                    let old = saved
                        .hosts
                        .iter()
                        .find(|h| h.host == p.host.name)
                        .expect("selected from the plan");
                    p.plan.check_saved(old);
                }
                ready.push(p)
            }
            Err(f) => failed.push(f),
        }
    }
    if !style.json {
        for p in &ready {
            println!("{}", show::host(&p.plan, style));
        }
        for f in &failed {
            style.host_error(&f.error.to_string(), "");
        }
    }
    let changes = ready
        .iter()
        .filter(|p| p.plan.has_changes() && p.plan.errors.is_empty())
        .count();
    if changes > 0 && saved.is_none() {
        let question = format!(
            "Apply these changes to {changes} host{}?",
            if changes == 1 { "" } else { "s" }
        );
        let go = match operator::confirm(&question, yes) {
            Ok(go) => go,
            Err(e) => {
                for p in ready {
                    runtime.block_on(p.transport.close());
                }
                return Err(e);
            }
        };
        if !go {
            eprintln!("Not applied.");
            for p in ready {
                runtime.block_on(p.transport.close());
            }
            return Ok(Applied {
                results: Vec::new(),
                failed,
                declined: true,
            });
        }
    }
    let who = operator::who();
    let total = ready.len() + failed.len();
    let results = runtime.block_on(deploy::rollout::run(
        ready,
        rollout,
        failed.len(),
        total,
        options,
        &who,
        &operator::now_utc(),
        display.clone(),
    ));
    display.clear();

    Ok(Applied {
        results,
        failed,
        declined: false,
    })
}

impl Applied {
    fn counts(&self) -> (usize, usize) {
        let ok = self.results.iter().filter(|(_, r)| r.ok()).count();
        (ok, self.results.len() - ok + self.failed.len())
    }

    /// Every host ended where it should.
    pub fn ok(&self) -> bool {
        !self.declined && self.counts().1 == 0
    }

    /// Each host's entry of the JSON document.
    pub fn hosts(&self) -> Vec<AppliedHost<'_>> {
        self.results
            .iter()
            .map(|(plan, result)| AppliedHost::switched(plan, result))
            .chain(
                self.failed
                    .iter()
                    .map(|f| AppliedHost::failed(&f.host, &f.error)),
            )
            .collect()
    }

    /// The exit code: the verification failed, or how many hosts did.
    pub fn exit(&self) -> Exit {
        if self.declined {
            return Exit::Error;
        }
        let verify_failed = self
            .results
            .iter()
            .any(|(_, r)| matches!(r, HostResult::VerifyFailed { .. }));
        if verify_failed {
            return Exit::VerifyFailed;
        }
        let (ok, bad) = self.counts();
        decide::exit_for(ok, bad)
    }

    /// Prints each host's outcome and the summary line, as text.
    pub fn print(&self, style: Style) {
        if self.declined {
            return;
        }
        let results = &self.results;
        let (ok, bad) = self.counts();
        let switched = results
            .iter()
            .filter(|(_, r)| matches!(r, HostResult::Switched { .. }))
            .count();
        let confirmed = results
            .iter()
            .filter(|(_, r)| matches!(r, HostResult::Confirmed { .. }))
            .count();
        for (plan, result) in results {
            match result {
                r @ (HostResult::Failed { .. }
                | HostResult::Refused { .. }
                | HostResult::ActivationFailed { .. }
                | HostResult::NotAttempted { .. }
                | HostResult::Withdrawn { .. }) => {
                    let error = format!("{}: {}", plan.host, r.error().unwrap_or_default());
                    style.host_error(&error, r.log());
                }
                HostResult::Switched { checks, .. } if !checks.is_empty() => {
                    // Honest about a host where no check could run.
                    let said = if checks.iter().any(|c| c.ok) {
                        "verified:"
                    } else {
                        "not verified:"
                    };
                    println!("{} {said}", style.paint("1", &plan.host));
                    print!("{}", show_checks(checks, style));
                }
                HostResult::Confirmed { generation, checks } => {
                    println!(
                        "{} confirmed generation {generation}, which an earlier run switched to and left unconfirmed; verified:",
                        style.paint("1", &plan.host)
                    );
                    print!("{}", show_checks(checks, style));
                }
                HostResult::VerifyFailed {
                    generation,
                    checks,
                    rolled_back_to,
                    rollback_checks,
                    rollback_error,
                } => {
                    println!(
                        "{} {}: generation {generation} failed verification:",
                        style.paint("1;31", "error:"),
                        plan.host
                    );
                    print!("{}", show_checks(checks, style));
                    match (rolled_back_to, rollback_error) {
                        (Some(back), _) => {
                            println!("  switched back to generation {back}, which verifies:");
                            print!("{}", show_checks(rollback_checks, style));
                        }
                        (None, Some(e)) => println!("  could not switch back: {}", clean(e)),
                        (None, None) => println!(
                            "  kept generation {generation} (--no-rollback, or nothing to switch back to)"
                        ),
                    }
                }
                _ => {}
            }
        }
        let summary = if switched == 0 && confirmed == 0 && bad == 0 {
            "No changes: nothing was written.".to_string()
        } else {
            let confirmed_text = if confirmed > 0 {
                format!(" {confirmed} confirmed,")
            } else {
                String::new()
            };
            let skipped = results
                .iter()
                .filter(|(_, r)| matches!(r, HostResult::NotAttempted { .. }))
                .count();
            let skipped_text = if skipped > 0 {
                format!(" ({skipped} not attempted)")
            } else {
                String::new()
            };
            format!(
                "Applied: {switched} host{} switched,{confirmed_text} {} unchanged, {bad} failed{skipped_text}.",
                if switched == 1 { "" } else { "s" },
                ok - switched - confirmed
            )
        };
        println!(
            "{}",
            style.paint(if bad == 0 { "1;32" } else { "1;31" }, &summary)
        );
    }
}
