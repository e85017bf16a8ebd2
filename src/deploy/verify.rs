//! Verification after a switch and on demand: one program run on the host
//! checks units, auth and heartbeats, while a fresh SSH connection proves
//! the host can still be reached (and confirms the generation to its
//! dead-man switch).

use std::time::Duration;

use super::host::{self, HostError};
use super::{HostRef, HostResult, Options, Prepared, VerifyOptions, decide, rollback, switch};
use crate::script;
use crate::transport::{Transport, TransportError};
use crate::verify::{self, Check, CheckKind, Since};

/// Verifies the agents of `p` after its switch; on failure switches back to
/// the generation it came from (unless told not to) and verifies that too.
#[allow(clippy::too_many_arguments)]
pub(super) async fn after_switch(
    p: &Prepared,
    generation: u64,
    log: String,
    activation_error: Option<String>,
    armed: bool,
    v: &VerifyOptions,
    options: &Options,
    who: &str,
) -> HostResult {
    let agents = decide::changed_agents(&p.plan.activation);
    let journald = p.plan.activation.restarts_journald();
    let since = p.observed.now.map_or(Since::Now, Since::Apply);
    let confirm = (armed && activation_error.is_none()).then_some(generation);
    let mut checks = check_host(
        p.as_ref(),
        Some(&agents),
        journald,
        since,
        v,
        options,
        confirm,
    )
    .await;
    if let Some(error) = activation_error {
        checks.insert(0, failed_check(CheckKind::Activate, &p.host.name, error));
    }
    let switch_back = p.plan.current.filter(|_| v.rollback);
    judge(
        p,
        generation,
        log,
        checks,
        armed,
        switch_back,
        v,
        options,
        who,
    )
    .await
}

/// Verifies the generation an earlier run switched the host to and did not
/// confirm (its operator is gone), and confirms it: every agent is checked,
/// those the switch restarted by their readiness beat. Returns the checks
/// when it passed; otherwise how the host ended: switched back to the
/// generation the dead-man switch would go back to, or refused while
/// another run verifies it.
pub(super) async fn settle(
    p: &Prepared,
    v: &VerifyOptions,
    options: &Options,
    who: &str,
) -> Result<Vec<Check>, HostResult> {
    let (Some(generation), Some(back)) = (p.plan.current, p.observed.unconfirmed) else {
        return Ok(Vec::new());
    };
    let since = Since::Settle {
        at: p.observed.switched_at.unwrap_or(0),
        lock_wait: options.lock_wait,
    };
    match checks(p.as_ref(), None, false, since, v, options, Some(generation)).await {
        Checked::Busy => Err(HostResult::Refused {
            reason: super::Refusal::Locked {
                holder: format!("another run is verifying generation {generation}"),
                waited: options.lock_wait,
            },
        }),
        Checked::Done(checks) if !checks.iter().any(Check::failed) => Ok(checks),
        Checked::Done(checks) => {
            let switch_back = Some(back).filter(|_| v.rollback);
            let log = String::new();
            Err(judge(
                p,
                generation,
                log,
                checks,
                true,
                switch_back,
                v,
                options,
                who,
            )
            .await)
        }
    }
}

/// The result of verifying `generation`, armed with a dead-man switch or
/// not: switched when every check passed; otherwise switched back to
/// `switch_back` (none: kept, the dead-man switch disarmed) and that
/// verified too.
#[allow(clippy::too_many_arguments)]
async fn judge(
    p: &Prepared,
    generation: u64,
    log: String,
    checks: Vec<Check>,
    armed: bool,
    switch_back: Option<u64>,
    v: &VerifyOptions,
    options: &Options,
    who: &str,
) -> HostResult {
    if checks.iter().any(Check::failed) && armed && switch_back.is_none() {
        // Told to keep the failed generation (or there is none to go back
        // to): the dead-man switch must not undo it.
        switch::disarm(&p.transport).await;
    }
    if !checks.iter().any(Check::failed) {
        return HostResult::Switched {
            generation,
            log,
            checks,
        };
    }
    let mut result = HostResult::VerifyFailed {
        generation,
        checks,
        rolled_back_to: None,
        rollback_checks: Vec::new(),
        rollback_error: None,
    };
    let Some(previous) = switch_back else {
        return result;
    };
    // An armed dead-man switch stays armed until this switch back has
    // switched: the host takes it over, and disarms it only then.
    let back = rollback::to(&p.transport, &p.host.name, previous, who, options, armed)
        .await
        .map_err(|e| {
            if armed {
                format!(
                    "{e}. The dead-man switch stays armed: the host switches back to generation {previous} by itself"
                )
            } else {
                e
            }
        });
    if let HostResult::VerifyFailed {
        rolled_back_to,
        rollback_checks,
        rollback_error,
        ..
    } = &mut result
    {
        match back {
            Ok((plan, since)) => {
                *rolled_back_to = Some(previous);
                let agents = decide::changed_agents(&plan.activation);
                // Only agents the definition still knows can be described;
                // a dropped one is checked by its unit alone next time.
                let since = since.map_or(Since::Now, Since::Apply);
                *rollback_checks =
                    check_host(p.as_ref(), Some(&agents), false, since, v, options, None).await;
            }
            Err(e) => *rollback_error = Some(e),
        }
    }
    result
}

/// Runs the verification program on the host (one round trip), and checks
/// that a fresh SSH connection still works; over it, confirms generation
/// `confirm` to the dead-man switch when every check passed.
pub async fn check_host(
    p: HostRef<'_>,
    agents: Option<&[String]>,
    journald: bool,
    since: Since,
    v: &VerifyOptions,
    options: &Options,
    confirm: Option<u64>,
) -> Vec<Check> {
    match checks(p, agents, journald, since, v, options, confirm).await {
        Checked::Done(checks) => checks,
        // Only a settling verification waits for another run's.
        Checked::Busy => vec![failed_check(
            CheckKind::Verify,
            &p.host.name,
            "another run is verifying the host".into(),
        )],
    }
}

/// What a verification came to.
enum Checked {
    /// It ran: its checks.
    Done(Vec<Check>),
    /// Another run's verification held the host (see [`Since::Settle`]).
    Busy,
}

#[allow(clippy::too_many_arguments)]
async fn checks(
    p: HostRef<'_>,
    agents: Option<&[String]>,
    journald: bool,
    since: Since,
    v: &VerifyOptions,
    options: &Options,
    confirm: Option<u64>,
) -> Checked {
    if let Transport::Local(_) = p.transport {
        // A directory, not a host: no unit runs there, nothing to verify.
        return Checked::Done(vec![Check::skipped(
            CheckKind::Verify,
            &p.host.name,
            "not checked: a local host is a directory where nothing runs",
        )]);
    }
    let secrets: Vec<String> = p.secrets.iter().map(|s| s.expose().to_string()).collect();
    let request = verify::request(p.host, agents, journald, since, v.heartbeat_timeout);
    // The new connection is opened while the checks run (a handshake costs
    // as much as the rest); it is used once they are known.
    let connect = options.connect();
    let fresh = async {
        match p.transport {
            Transport::Ssh(_) => Some(host::connect(p.host, p.root, &connect).await),
            Transport::Local(_) | Transport::Closed { .. } => None,
        }
    };
    let started = std::time::Instant::now();
    let limit = verify_limit(p.host, agents, v.heartbeat_timeout);
    let what = "the verification";
    let (mut out, mut fresh) = tokio::join!(
        p.transport
            .run_within(&request.script, &request.stdin, limit, what),
        fresh
    );
    // The link, not the host: a connection lost while the checks ran (a
    // blip, a NAT that forgot it) is retried once over a new connection
    // before anything is judged. The checks only read, so running them
    // again changes nothing.
    if matches!(out, Err(TransportError::Lost { .. })) && matches!(p.transport, Transport::Ssh(_)) {
        let retry = match fresh.take() {
            Some(Ok(t)) => Ok(t),
            _ => host::connect(p.host, p.root, &connect).await,
        };
        match retry {
            Ok(t) => {
                out = t
                    .run_within(&request.script, &request.stdin, limit, what)
                    .await;
                fresh = Some(Ok(t));
            }
            Err(e) => fresh = Some(Err(e)),
        }
    }
    // An idle connection does not last (its master exits after a minute
    // without a session, a NAT forgets it): after a long verification the
    // confirmation gets a connection of its own, just made.
    let fresh = match fresh {
        Some(Ok(t)) if started.elapsed() > FRESH_FOR => {
            t.close().await;
            Some(host::connect(p.host, p.root, &connect).await)
        }
        other => other,
    };
    if let Ok(out) = &out
        && out.success()
        && out.stdout_lossy().trim() == "busy"
    {
        if let Some(Ok(t)) = fresh {
            t.close().await;
        }
        return Checked::Busy;
    }
    let mut checks = match out {
        Ok(out) if out.success() => match verify::parse(&out.stdout_lossy(), &secrets) {
            Ok((_, checks)) => checks,
            Err(e) => vec![failed_check(CheckKind::Verify, &p.host.name, e.to_string())],
        },
        Ok(out) => vec![failed_check(
            CheckKind::Verify,
            &p.host.name,
            format!(
                "the verification program failed (status {}): {}",
                out.status,
                verify::redact(&out.stderr_lossy(), &secrets).trim()
            ),
        )],
        Err(e) => vec![failed_check(CheckKind::Verify, &p.host.name, e.to_string())],
    };
    if let Some(fresh) = fresh {
        let confirm = confirm.filter(|_| !checks.iter().any(Check::failed));
        let script = match confirm {
            Some(n) => script::confirm(Some(n)),
            None => "true".into(),
        };
        let result = match fresh {
            Ok(t) => {
                let out = t
                    .run_within(&script, b"", CONFIRM_LIMIT, "the confirmation")
                    .await;
                t.close().await;
                out.map(|o| (o.success(), o.stdout_lossy().trim().to_string()))
                    .map_err(HostError::from)
            }
            Err(e) => Err(e),
        };
        checks.push(match result {
            Ok((true, _)) => Check {
                kind: CheckKind::Ssh,
                subject: p.host.name.clone(),
                ok: true,
                skipped: false,
                detail: if confirm.is_some() {
                    "a new connection works, and confirmed the generation".into()
                } else {
                    "a new connection works".into()
                },
                output: None,
            },
            Ok((false, said)) if confirm.is_some() => failed_check(
                CheckKind::Ssh,
                &p.host.name,
                format!("a new connection could not confirm the generation: {said}"),
            ),
            Ok((false, _)) => failed_check(
                CheckKind::Ssh,
                &p.host.name,
                "a new connection cannot run `true`".into(),
            ),
            Err(e) => failed_check(
                CheckKind::Ssh,
                &p.host.name,
                format!("a new connection fails: {e}"),
            ),
        });
    }
    Checked::Done(checks)
}

/// How long the verification program may run on the host: the longest
/// heartbeat wait and stability window of the agents it checks, and two
/// minutes for the rest (auth checks, units, timers); past that, something
/// on the host hangs, and the verification fails saying so.
fn verify_limit(host: &crate::model::Host, agents: Option<&[String]>, timeout: u64) -> Duration {
    Duration::from_secs(decide::longest_wait(host, agents, timeout) + 120)
}

/// How long a confirmation may take: it waits up to 30 s for the host's
/// lock (a switch back holds it while it switches).
const CONFIRM_LIMIT: Duration = Duration::from_secs(60);

/// How long a connection opened at the start of verification is trusted to
/// be alive when the checks end.
const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends a test alert through each of the host's channels, from the host.
pub async fn test_alerts(p: HostRef<'_>) -> Vec<Check> {
    if p.host.alerts.is_empty() {
        return vec![failed_check(
            CheckKind::Alert,
            &p.host.name,
            "the host has no alert channel".into(),
        )];
    }
    if let Transport::Local(_) = p.transport {
        return vec![Check::skipped(
            CheckKind::Alert,
            &p.host.name,
            "not sent: a local host is a directory where nothing runs",
        )];
    }
    let secrets: Vec<String> = p.secrets.iter().map(|s| s.expose().to_string()).collect();
    let request = verify::test_alert_request(p.host);
    match p.transport.run(&request.script, &request.stdin).await {
        Ok(out) => match verify::parse(&out.stdout_lossy(), &secrets) {
            Ok((_, checks)) if !checks.is_empty() => checks,
            Ok(_) => vec![failed_check(
                CheckKind::Alert,
                &p.host.name,
                format!(
                    "the alert script said nothing: {}",
                    verify::redact(&out.stderr_lossy(), &secrets).trim()
                ),
            )],
            Err(e) => vec![failed_check(CheckKind::Alert, &p.host.name, e.to_string())],
        },
        Err(e) => vec![failed_check(CheckKind::Alert, &p.host.name, e.to_string())],
    }
}

fn failed_check(kind: CheckKind, subject: &str, detail: String) -> Check {
    Check {
        kind,
        subject: subject.into(),
        ok: false,
        skipped: false,
        detail,
        output: None,
    }
}
