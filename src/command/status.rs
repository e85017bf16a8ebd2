//! `provision status [SEL]`: the fleet at a glance. Two scripts per host
//! over the same connection, at once (the probe and the agents' state);
//! hosts in parallel. Exit 3 when anything is unhealthy.

use std::path::Path;
use std::sync::Arc;

use super::Repo;
use crate::deploy::host::{self, Progress, Stage};
use crate::deploy::{self, Options};
use crate::error::{Error, Exit};
use crate::expiry::span;
use crate::finding::{self, Finding, Scope};
use crate::report::{Document, Failure};
use crate::status::{self, HostStatus, age};
use crate::transport::Transport;
use crate::ui::progress::Display;
use crate::ui::{Style, clean, clean_line};

/// Runs `status`.
pub fn run(
    root: &Path,
    selectors: &[String],
    shard: Option<(usize, usize)>,
    alert: Option<&str>,
    options: &Options,
    style: Style,
) -> Result<Exit, Error> {
    let repo = Repo::checked(root, style)?;
    let hosts = repo.select(selectors, shard)?;
    if let Some(channel) = alert {
        super::alert::check(&hosts, channel)?;
    }
    let selected = hosts.clone();
    let repo_root = root;
    let runtime = super::runtime();
    let root = root.to_path_buf();
    let connect = options.connect();
    let display = Arc::new(Display::for_style(style));
    let progress = display.clone();
    let results: Vec<Result<HostStatus, Unread>> =
        runtime.block_on(deploy::each(hosts, options.parallel, move |host| {
            let root = root.clone();
            let connect = connect.clone();
            let progress = progress.clone();
            async move {
                progress.stage(&host.name, Stage::Connecting);
                let result = read(&host, &root, &connect, &*progress).await;
                progress.stage(
                    &host.name,
                    match &result {
                        Ok(s) if s.healthy() => Stage::Done("healthy".into()),
                        Ok(_) => Stage::Failed("unhealthy".into()),
                        Err(e) => Stage::Failed(e.failure.kind.replace('-', " ")),
                    },
                );
                result
            }
        }));
    display.clear();

    let unhealthy = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|s| !s.healthy()))
        .count();
    let unreachable = results.iter().filter(|r| r.is_err()).count();
    if style.json {
        let hosts: Vec<_> = results
            .iter()
            .map(|r| match r {
                Ok(s) => serde_json::json!({"host": s.host, "ok": s.healthy(), "status": s}),
                Err(e) => serde_json::json!({"host": e.host, "ok": false, "error": e.failure}),
            })
            .collect();
        let body = serde_json::json!({"hosts": hosts});
        crate::ui::json::print(
            style,
            &Document::new("status", unhealthy + unreachable == 0, body),
        );
    } else {
        print!("{}", table(&results, style));
    }
    if let Some(channel) = alert {
        let mut findings = Vec::new();
        let mut reachable = Vec::new();
        for r in &results {
            match r {
                Ok(s) => {
                    reachable.push(s.host.clone());
                    findings.extend(finding::of_status(s));
                }
                Err(e) => findings.push(Finding::unreachable(&e.host, &e.failure.message)),
            }
        }
        let sent = super::alert::send(
            &runtime,
            repo_root,
            &options.connect(),
            (&selected, &reachable),
            (channel, Scope::Status),
            findings,
            style,
        );
        if !sent {
            return Ok(Exit::Error);
        }
    }
    Ok(if unhealthy + unreachable == 0 {
        Exit::Ok
    } else {
        Exit::VerifyFailed
    })
}

/// Reads one host's state: the probe and the agents' state, at once.
async fn read(
    host: &crate::model::Host,
    root: &std::path::Path,
    connect: &host::ConnectOptions,
    progress: &dyn Progress,
) -> Result<HostStatus, Unread> {
    let fail = |f: Failure| Unread {
        host: host.name.clone(),
        failure: f,
    };
    let t = host::connect(host, root, connect)
        .await
        .map_err(|e| fail(Failure::from(&e)))?;
    progress.stage(&host.name, Stage::Reading);
    let request = status::request(host);
    let (obs, out) = tokio::join!(
        host::probe(&t, &[]),
        t.run_within(
            &request.script,
            &request.stdin,
            host::READ_LIMIT,
            "reading the status"
        )
    );
    let local = matches!(t, Transport::Local(_));
    t.close().await;
    let obs = obs.map_err(|e| fail(Failure::from(&e)))?;
    let out = out.map_err(|e| fail(Failure::from(&host::HostError::from(e))))?;
    if !out.success() {
        return Err(fail(Failure::new(
            "host",
            format!(
                "{}: the status program failed: {}",
                host.name,
                out.stderr_lossy().trim()
            ),
        )));
    }
    status::parse(host, &obs, &out.stdout_lossy(), local)
        .map_err(|e| fail(Failure::new("host", format!("{}: {e}", host.name))))
}

/// A host whose status could not be read, and why.
struct Unread {
    host: String,
    failure: Failure,
}

fn table(results: &[Result<HostStatus, Unread>], style: Style) -> String {
    let mut rows: Vec<[String; 9]> = vec![
        [
            "HOST",
            "GEN",
            "DRIFT",
            "AGENT",
            "STATE",
            "UP",
            "RESTARTS",
            "HEARTBEAT",
            "ROTATION / EXPIRY / LAST ALERT",
        ]
        .map(String::from),
    ];
    let mut notes = Vec::new();
    for r in results {
        let s = match r {
            Ok(s) => s,
            Err(e) => {
                notes.push(style.paint(
                    "1;31",
                    &format!("unreachable: {}", clean(&e.failure.text())),
                ));
                continue;
            }
        };
        let generation = s
            .generation
            .map(|g| g.to_string())
            .unwrap_or_else(|| "-".into());
        let drift = s.drift.len().to_string();
        for p in &s.problems {
            notes.push(style.paint("1;31", &format!("{}: {}", s.host, clean(p))));
        }
        if s.agents.is_empty() {
            rows.push([
                s.host.clone(),
                generation.clone(),
                drift.clone(),
                "-".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
            ]);
        }
        for a in &s.agents {
            let rotation = a
                .rotations
                .iter()
                .map(|r| {
                    let last = r
                        .last_age
                        .map(|x| format!("{} ago", age(x)))
                        .unwrap_or_else(|| "never".into());
                    let next = match r.next_in {
                        Some(n) if n >= 0 => format!("next in {}", age(n as u64)),
                        Some(n) => format!("due {} ago", age((-n) as u64)),
                        None => "next at the timer".into(),
                    };
                    let failed = match &r.last_result {
                        Some(x) if x.starts_with("failed") => ", last failed",
                        _ => "",
                    };
                    format!("{}: {last}{failed}, {next}", r.auth)
                })
                .chain(a.expiries.iter().map(|e| {
                    let when = match e.expires_in {
                        Some(s) if s <= 0 => format!("expired {} ago", span(s.unsigned_abs())),
                        Some(s) => format!("{} left", span(s as u64)),
                        None if e.checked_age.is_some() => "expiry unknown".into(),
                        None => "expiry not checked yet".into(),
                    };
                    format!("{}: {when}", e.auth)
                }))
                .collect::<Vec<_>>()
                .join("; ");
            let alert = a
                .last_alert_age
                .map(|x| format!("alert {} ago", age(x)))
                .unwrap_or_else(|| "no alert".into());
            rows.push([
                s.host.clone(),
                generation.clone(),
                drift.clone(),
                a.name.clone(),
                a.state.clone(),
                a.uptime.map(age).unwrap_or_else(|| "-".into()),
                a.restarts.to_string(),
                a.heartbeat_age
                    .map(|x| format!("{} ago", age(x)))
                    .unwrap_or_else(|| "never".into()),
                format!(
                    "{rotation}{}{alert}",
                    if rotation.is_empty() { "" } else { " | " }
                ),
            ]);
            for p in &a.problems {
                notes.push(style.paint("1;31", &format!("{}/{}: {}", s.host, a.name, clean(p))));
            }
        }
        if !s.drift.is_empty() {
            notes.push(style.paint(
                "35",
                &format!("{}: drifted: {}", s.host, clean_line(&s.drift.join(", "))),
            ));
        }
    }
    // The cells hold what the host said (unit states, drifted paths).
    for row in &mut rows {
        for cell in row.iter_mut() {
            *cell = clean_line(cell).into_owned();
        }
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        let line = line.join("  ").trim_end().to_string();
        out.push_str(&if n == 0 {
            style.paint("1", &line)
        } else {
            line
        });
        out.push('\n');
    }
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
    let healthy = results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|s| s.healthy()));
    out.push_str(&if healthy {
        style.paint("1;32", "All healthy.")
    } else {
        style.paint("1;31", "Unhealthy: see above.")
    });
    out.push('\n');
    out
}
