//! `provision verify [SEL]`: are the agents healthy on their hosts? One
//! round trip per host (plus a fresh connection), hosts in parallel.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::Repo;
use crate::deploy::host::{self, Progress as _, Stage};
use crate::deploy::{self, HostRef, Options, decide};
use crate::error::{Error, Exit};
use crate::report::{Document, Failure};
use crate::ui::progress::Display;
use crate::ui::{Style, verify::checks as show_checks};
use crate::verify::{Check, Since};

/// One host's verification.
#[derive(Debug, Serialize)]
struct HostChecks {
    host: String,
    /// No check failed.
    ok: bool,
    /// Some check ran and passed: a host where nothing could be checked
    /// (every check skipped) is not called healthy.
    verified: bool,
    checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Failure>,
}

/// Runs `verify`.
pub fn run(
    root: &Path,
    selectors: &[String],
    shard: Option<(usize, usize)>,
    options: &Options,
    test_alert: bool,
    style: Style,
) -> Result<Exit, Error> {
    let mut repo = Repo::checked(root, style)?;
    let hosts = repo.select(selectors, shard)?;
    let rendered = super::render(&mut repo, root, hosts, style)?;
    let v = options.verify.clone().expect("verify sets its options");
    let runtime = super::runtime();
    let root = root.to_path_buf();
    let opts = options.clone();
    let items: Vec<_> = rendered
        .ready
        .into_iter()
        .map(|(host, (_, secrets))| (host, secrets))
        .collect();
    let display = Arc::new(Display::for_style(style));
    let progress = display.clone();
    let results: Vec<HostChecks> = runtime.block_on(deploy::each(
        items,
        options.parallel,
        move |(host, secrets)| {
            let root = root.clone();
            let options = opts.clone();
            let v = v.clone();
            let progress = progress.clone();
            async move {
                progress.stage(&host.name, Stage::Connecting);
                let heartbeat_timeout = v.heartbeat_timeout;
                let result = match host::connect(&host, &root, &options.connect()).await {
                    Ok(t) => {
                        progress.stage(&host.name, Stage::Checking { heartbeat_timeout });
                        let p = HostRef {
                            host: &host,
                            transport: &t,
                            root: &root,
                            secrets: &secrets,
                        };
                        let mut checks = deploy::verify::check_host(
                            p,
                            None,
                            true,
                            Since::Now,
                            &v,
                            &options,
                            None,
                        )
                        .await;
                        if test_alert {
                            checks.extend(deploy::verify::test_alerts(p).await);
                        }
                        t.close().await;
                        HostChecks {
                            host: host.name.clone(),
                            ok: !checks.iter().any(Check::failed),
                            verified: checks.iter().any(|c| c.ok),
                            checks,
                            error: None,
                        }
                    }
                    Err(e) => HostChecks {
                        host: host.name.clone(),
                        ok: false,
                        verified: false,
                        checks: Vec::new(),
                        error: Some(Failure::from(&e)),
                    },
                };
                let failed = result.checks.iter().filter(|c| c.failed()).count();
                progress.stage(
                    &host.name,
                    match &result.error {
                        Some(e) => Stage::Failed(e.kind.replace('-', " ")),
                        None if failed == 0 && result.verified => Stage::Done("healthy".into()),
                        None if failed == 0 => Stage::Done("not verified".into()),
                        None => Stage::Failed(format!(
                            "{failed} check{} failed",
                            if failed == 1 { "" } else { "s" }
                        )),
                    },
                );
                result
            }
        },
    ));
    display.clear();
    // Hosts whose secrets did not resolve are not verified: without them,
    // what the host prints could not be redacted.
    let mut results = results;
    results.extend(rendered.failed.iter().map(|f| HostChecks {
        host: f.host.clone(),
        ok: false,
        verified: false,
        checks: Vec::new(),
        error: Some(Failure::from(&f.error)),
    }));
    results.sort_by(|a, b| a.host.cmp(&b.host));

    let unreachable = results.iter().filter(|r| r.error.is_some()).count();
    let failing = results.iter().filter(|r| !r.ok).count() - unreachable;
    if style.json {
        let body = serde_json::json!({"hosts": results});
        crate::ui::json::print(
            style,
            &Document::new("verify", failing + unreachable == 0, body),
        );
    } else {
        for r in &results {
            println!("{}", style.paint("1", &r.host));
            if let Some(e) = &r.error {
                style.host_error(&e.text(), "");
            }
            print!("{}", show_checks(&r.checks, style));
        }
        let unverified = results.iter().filter(|r| r.ok && !r.verified).count();
        let healthy = results.len() - failing - unreachable - unverified;
        println!(
            "{}",
            style.paint(
                if failing + unreachable == 0 { "1;32" } else { "1;31" },
                &format!(
                    "Verified: {healthy} host{} healthy, {failing} failing, {unreachable} unreachable{}.",
                    if healthy == 1 { "" } else { "s" },
                    if unverified == 0 {
                        String::new()
                    } else {
                        format!(", {unverified} with nothing to verify")
                    }
                )
            )
        );
    }
    Ok(if failing > 0 {
        Exit::VerifyFailed
    } else {
        decide::exit_for(results.len() - unreachable, unreachable)
    })
}
