//! `provision apply [SEL | plan.json]`: plan, ask once, switch every host
//! with changes, report.

use std::path::Path;
use std::sync::Arc;

use super::{Repo, operator};
use crate::deploy::Failed;
use crate::deploy::decide::Rollout;
use crate::deploy::{self, HostResult, Options, decide};
use crate::error::{Error, Exit};
use crate::last_apply::{self, LastApply};
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
    (yes, retry_failed): (bool, bool),
    (options, rollout): (&Options, &Rollout),
    style: Style,
) -> Result<Exit, Error> {
    let mut repo = Repo::checked(root, style)?;
    if retry_failed && crate::saved_plan::arg(selectors).is_some() {
        return Err(Error::Usage(
            "--retry-failed plans afresh and cannot apply a saved plan: drop one of them".into(),
        ));
    }
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
    let mut hosts = repo.select(&names, if saved.is_some() { None } else { shard })?;
    if retry_failed {
        let record = read_record(root)?;
        let selected: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        let again: Vec<String> = last_apply::retry(&record, &selected)
            .into_iter()
            .map(str::to_string)
            .collect();
        if again.is_empty() {
            eprintln!(
                "Nothing to retry: no selected host failed in {}.",
                record.run()
            );
            return Ok(Exit::Ok);
        }
        eprintln!(
            "Retrying {} host{} that failed in {}: {}",
            again.len(),
            if again.len() == 1 { "" } else { "s" },
            record.run(),
            again.join(", ")
        );
        hosts.retain(|h| again.contains(&h.name));
    }
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
    if let Err(e) = write_record(root, &applied.record()) {
        eprintln!(
            "{} {e}; a later --retry-failed will not know this run's outcomes",
            style.paint("1;33", "warning:")
        );
    }
    if style.json {
        let body = serde_json::json!({"hosts": applied.hosts()});
        crate::ui::json::print(style, &Document::new("apply", applied.ok(), body));
    } else {
        applied.print(style);
    }
    Ok(applied.exit())
}

/// The record of the last apply in `root`, or an error saying how to get one.
fn read_record(root: &Path) -> Result<LastApply, Error> {
    let path = root.join(last_apply::PATH);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Usage(format!(
                "--retry-failed: no apply was recorded in this repository ({} does not exist): run `provision apply` first; every apply records its hosts' outcomes there",
                path.display()
            )));
        }
        Err(e) => {
            return Err(Error::Usage(format!(
                "--retry-failed: cannot read {}: {e}",
                path.display()
            )));
        }
    };
    LastApply::parse(&text).map_err(|why| {
        Error::Usage(format!(
            "--retry-failed: cannot use {}: {why}; remove it and run `provision apply` to record a new one",
            path.display()
        ))
    })
}

/// Writes `record` to `root`'s record file atomically: a temporary file in
/// the same directory, synced, renamed over the old record, so a reader sees
/// the old record or the new one, never half of one.
fn write_record(root: &Path, record: &LastApply) -> Result<(), Error> {
    use std::io::Write as _;
    let path = root.join(last_apply::PATH);
    let dir = path.parent().expect("the record's path has a directory");
    let failed = |e: std::io::Error| Error::Write {
        path: path.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let tmp = dir.join(format!(".last-apply.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(record.to_text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(failed)
}

/// How an apply ended, for its caller to report.
pub struct Applied {
    /// Each host that was planned, with how its switch ended.
    results: Vec<(HostPlan, HostResult)>,
    /// Each host that could not be planned.
    failed: Vec<Failed>,
    /// The operator said no: nothing was switched.
    declined: bool,
    /// Who ran it, and when it started switching.
    who: String,
    time: String,
    /// The progress display, which holds each host's phases' times.
    display: Arc<Display>,
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
    let prepared = super::plan_hosts(
        repo,
        root,
        hosts,
        options,
        crate::deploy::Keep::Busy,
        style,
        &runtime,
        display.clone(),
    )?;

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
                let open = ready.into_iter().map(|p| p.transport).collect();
                super::close_all(&runtime, open, options.parallel);
                return Err(e);
            }
        };
        if !go {
            eprintln!("Not applied.");
            let open = ready.into_iter().map(|p| p.transport).collect();
            super::close_all(&runtime, open, options.parallel);
            return Ok(Applied {
                results: Vec::new(),
                failed,
                declined: true,
                who: String::new(),
                time: String::new(),
                display,
            });
        }
    }
    let who = operator::who();
    let time = operator::now_utc();
    let unplanned: Vec<String> = failed.iter().map(|f| f.host.clone()).collect();
    let results = runtime.block_on(deploy::rollout::run(
        ready,
        rollout,
        &unplanned,
        options,
        (&who, &time),
        display.clone(),
    ));
    display.clear();

    Ok(Applied {
        results,
        failed,
        declined: false,
        who,
        time,
        display,
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

    /// The record of this run's outcomes, for `--retry-failed`.
    pub fn record(&self) -> LastApply {
        let mut hosts: Vec<last_apply::Outcome> = self
            .results
            .iter()
            .map(|(plan, result)| last_apply::Outcome {
                host: plan.host.clone(),
                result: result.class().into(),
                kind: result.failure().map(|f| f.kind),
            })
            .chain(self.failed.iter().map(|f| last_apply::Outcome {
                host: f.host.clone(),
                result: "failed".into(),
                kind: Some(f.error.kind().into()),
            }))
            .collect();
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        LastApply {
            version: last_apply::VERSION,
            time: self.time.clone(),
            who: self.who.clone(),
            hosts,
        }
    }

    /// Each host's entry of the JSON document.
    pub fn hosts(&self) -> Vec<AppliedHost<'_>> {
        self.results
            .iter()
            .map(|(plan, result)| {
                AppliedHost::switched(plan, result).with_timings(self.display.phases(&plan.host))
            })
            .chain(self.failed.iter().map(|f| {
                AppliedHost::failed(&f.host, &f.error).with_timings(self.display.phases(&f.host))
            }))
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
        let names = self.results.iter().map(|(p, _)| p.host.as_str());
        self.display.print_timings(
            style,
            names.chain(self.failed.iter().map(|f| f.host.as_str())),
        );
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
