//! `plan --alert CHANNEL` and `status --alert CHANNEL`: a scheduled run's
//! findings sent from the hosts through their own alert channel (see
//! [`crate::finding`] for what is sent, from where, and how often).

use std::path::Path;
use std::time::Duration;

use crate::deploy::host;
use crate::error::Error;
use crate::finding::{self, Finding, Scope, Sent};
use crate::model::Connection;
use crate::model::Host;
use crate::ui::{Style, clean};

/// How long one host may take to send its findings: each send is bounded
/// by the alert program's own 10 s per channel.
const SEND_LIMIT: Duration = Duration::from_secs(120);

/// Checks before anything runs that a selected host has `channel`.
pub fn check(hosts: &[Host], channel: &str) -> Result<(), Error> {
    finding::check_channel(hosts, channel).map_err(|e| Error::Usage(e.to_string()))
}

/// Sends `findings` through `channel` from `hosts` (the selection, in name
/// order) that were `reachable` this run; prints what happened on stderr.
/// Whether every finding was sent (or had been).
pub fn send(
    runtime: &tokio::runtime::Runtime,
    root: &Path,
    connect: &host::ConnectOptions,
    (hosts, reachable): (&[Host], &[String]),
    (channel, scope): (&str, Scope),
    findings: Vec<Finding>,
    style: Style,
) -> bool {
    // A local host is a directory where nothing runs: it sends nothing.
    let can_send = |name: &str| {
        reachable.iter().any(|r| r == name)
            && hosts
                .iter()
                .any(|h| h.name == name && !matches!(h.connection, Connection::Local { .. }))
    };
    let routes = finding::route(hosts, &can_send, channel, findings);
    let selected: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let mut ok = true;
    let (mut sent, mut already, mut cleared) = (0, 0, 0);
    for f in &routes.unsent {
        ok = false;
        eprintln!(
            "{} --alert {channel}: not sent, no reachable selected host has the channel: {}",
            style.paint("1;31", "error:"),
            clean(&f.message)
        );
    }
    for (sender, batch) in &routes.batches {
        let h = hosts
            .iter()
            .find(|h| &h.name == sender)
            .expect("a sender is selected");
        let request = finding::request(channel, scope, &selected, batch);
        let answer = runtime.block_on(async {
            let t = host::connect(h, root, connect).await?;
            let out = t
                .run_within(
                    &request.script,
                    &request.stdin,
                    SEND_LIMIT,
                    "sending alerts",
                )
                .await;
            t.close().await;
            Ok::<_, host::HostError>(out?)
        });
        let out = match answer {
            Ok(out) => out,
            Err(e) => {
                ok = false;
                eprintln!(
                    "{} --alert {channel}: {sender} could not send {} finding(s): {e}",
                    style.paint("1;31", "error:"),
                    batch.len()
                );
                continue;
            }
        };
        let answers = finding::parse(&out.stdout_lossy());
        if !out.success() {
            ok = false;
            eprintln!(
                "{} --alert {channel}: {sender}'s alert program failed: {}",
                style.paint("1;31", "error:"),
                clean(out.stderr_lossy().trim())
            );
        }
        for a in answers {
            match a {
                Sent::Sent(_) => sent += 1,
                Sent::Already(_) => already += 1,
                Sent::Cleared(_) => cleared += 1,
                Sent::Failed(name, why) => {
                    ok = false;
                    eprintln!(
                        "{} --alert {channel}: {sender} could not send {name}: {}",
                        style.paint("1;31", "error:"),
                        clean(&why)
                    );
                }
            }
        }
    }
    eprintln!(
        "--alert {channel}: {sent} finding(s) sent, {already} already sent before, {cleared} gone since (forgotten)"
    );
    ok
}
