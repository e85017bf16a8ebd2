//! Switching one host: finish a switch an earlier run left, upload what the
//! host's store lacks, run the switch job with its dead-man switch, then
//! hand over to verification.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::host::{self, Progress, Stage};
use super::{HostResult, Options, Prepared, Refusal, decide, exposed, plan_for};
use crate::observed;
use crate::plan::{HostPlan, Kind};
use crate::script::{self, Blob, Outcome, Params};
use crate::transport::Transport;

/// Switches one prepared host (when its plan has changes) and verifies it
/// (when the options say so). Returns the plan carried out, how it ended,
/// and the connection, still open.
pub async fn one(
    mut p: Prepared,
    options: &Options,
    who: &str,
    time: &str,
    progress: &dyn Progress,
) -> (HostPlan, HostResult, Transport) {
    let name = p.host.name.clone();
    let failed = |e: host::HostError| HostResult::Failed { error: Arc::new(e) };
    let interrupted = |why: String| HostResult::Refused {
        reason: Refusal::Interrupted(why),
    };
    // Closed while it waited for its turn (see `Keep`): a host with work is
    // connected again. Whatever changed on it since the plan, the switch
    // refuses as stale.
    if p.transport.is_closed() && super::has_work(&p.plan, &p.observed) {
        progress.stage(&name, Stage::Connecting);
        let started = std::time::Instant::now();
        match host::connect(&p.host, &p.root, &options.connect()).await {
            Ok(t) => p.transport = t,
            Err(e) => return (p.plan, failed(e), p.transport),
        }
        progress.phase(&name, "reconnect", started.elapsed());
    }
    // An earlier run's switch did not finish: finish it, then plan again
    // from what the host has now.
    if let Some(n) = p.plan.pending {
        progress.stage(&name, Stage::Finishing(n));
        let request = script::resume(who, options.lock_wait);
        let resumed = match host::run(&p.transport, &request).await {
            Ok(
                outcome @ (Outcome::Switched { .. }
                | Outcome::ActivationFailed { .. }
                | Outcome::Aborted { .. }),
            ) => outcome,
            Ok(other) => {
                return (
                    p.plan,
                    decide::outcome(other, n, options.lock_wait),
                    p.transport,
                );
            }
            Err(e) => return (p.plan, failed(e), p.transport),
        };
        let Some(state) = p.state.as_ref() else {
            let why = format!(
                "finished an interrupted switch to generation {n} first; run the rollback again"
            );
            return (p.plan, interrupted(why), p.transport);
        };
        match host::probe(&p.transport, &observed::desired_paths(state)).await {
            Ok(obs) if obs.switching.is_some() => {
                let why = match resumed {
                    Outcome::Aborted { reason } => reason,
                    _ => "it is still pending".into(),
                };
                let why = format!(
                    "the interrupted switch to generation {n} could not be finished: {why}"
                );
                return (p.plan, interrupted(why), p.transport);
            }
            Ok(obs) => {
                let local = matches!(p.transport, Transport::Local(_));
                let (target, mut plan) = plan_for(&p.host, state, &obs, local);
                crate::verify::redact_plan(&mut plan, &exposed(&p.secrets));
                p.observed = obs;
                p.target = target;
                p.plan = plan;
            }
            Err(e) => return (p.plan, failed(e), p.transport),
        }
    }
    if !p.plan.errors.is_empty() {
        let reason = Refusal::Plan(p.plan.error_text());
        return (p.plan, HostResult::Refused { reason }, p.transport);
    }
    // The current generation is one an earlier run switched to and never
    // confirmed (its operator went away; a finished interrupted switch is
    // one too): verify and confirm it before anything else, or switch back
    // as its dead-man switch would. Without verification it cannot be
    // confirmed: the plan says it will be reverted, and a switch is
    // refused until it is.
    let mut confirmed = None;
    if let (Some(v), Some(current), Some(_), Kind::Apply, Transport::Ssh(_)) = (
        &options.verify,
        p.plan.current,
        p.observed.unconfirmed,
        p.plan.kind,
        &p.transport,
    ) {
        progress.stage(&name, Stage::Confirming(current));
        match super::verify::settle(&p, v, options, who).await {
            Ok(checks) => confirmed = Some((current, checks)),
            Err(result) => return (p.plan, result, p.transport),
        }
    }
    if !p.plan.has_changes() {
        let result = match confirmed {
            Some((generation, checks)) => HostResult::Confirmed { generation, checks },
            None => HostResult::Unchanged {
                generation: p.plan.current,
            },
        };
        return (p.plan, result, p.transport);
    }
    let mut blobs = BTreeMap::new();
    if let Some(state) = &p.state {
        for f in &p.plan.files {
            let Some(after) = &f.after else { continue };
            if p.observed.stored.contains(&after.id) {
                continue;
            }
            let spec = &state.files[&f.path];
            blobs.insert(
                after.id.clone(),
                Blob {
                    sha256: &spec.sha256,
                    bytes: &spec.bytes,
                },
            );
        }
    }
    let record =
        (p.plan.kind == Kind::Apply).then(|| p.target.record(&name, p.plan.number, time, who));
    let deadman = deadman(&p, options);
    // Verification confirms the generation only when a dead-man switch waits
    // for it.
    let armed = deadman.is_some();
    let params = Params {
        who,
        lock_wait: options.lock_wait,
        keep: options.keep,
        record: record.as_ref(),
        deadman,
        takeover: false,
    };
    let request = script::apply(&p.plan, &p.target, &p.observed, &blobs, &params);
    let bytes = blobs.values().map(|b| b.bytes.len() as u64).sum();
    progress.stage(
        &name,
        Stage::Switching {
            number: p.plan.number,
            bytes,
        },
    );
    let result = match host::switch(&p.transport, &request, progress).await {
        Ok(outcome) => decide::outcome(outcome, p.plan.number, options.lock_wait),
        Err(e) => failed(e),
    };
    // Switched (or switched with a unit that did not start: verification
    // says which and why, and decides about switching back): verify.
    let result = match (result, &options.verify) {
        (
            HostResult::Switched {
                generation, log, ..
            },
            Some(v),
        ) => Ok((generation, log, None, v)),
        (
            HostResult::ActivationFailed {
                generation,
                reason,
                log,
            },
            Some(v),
        ) => Ok((
            generation,
            log,
            Some(super::activation_error(generation, &reason)),
            v,
        )),
        (other, _) => Err(other),
    };
    let result = match result {
        Ok((generation, log, error, v)) => {
            progress.stage(
                &name,
                Stage::Verifying {
                    generation,
                    wait_secs: decide::verification_secs(
                        &p.host,
                        &p.plan.activation,
                        v.heartbeat_timeout,
                    ),
                },
            );
            let started = std::time::Instant::now();
            let result =
                super::verify::after_switch(&p, generation, log, error, armed, v, options, who)
                    .await;
            progress.phase(&name, "verify", started.elapsed());
            result
        }
        Err(other) => other,
    };
    (p.plan, result, p.transport)
}

/// The dead-man switch for an apply that will be verified over SSH: the
/// seconds it waits and the operations that switch back.
fn deadman(p: &Prepared, options: &Options) -> Option<(u64, String)> {
    let v = options.verify.as_ref()?;
    if v.confirm_timeout == 0
        || p.plan.kind != Kind::Apply
        || !matches!(p.transport, Transport::Ssh(_))
    {
        return None;
    }
    p.state.as_ref()?;
    let ops = decide::deadman_ops(&p.host.name, &p.plan, &p.target, &p.observed)?;
    let secs = decide::deadman_secs(
        &p.host,
        &p.plan.activation,
        v.heartbeat_timeout,
        v.confirm_timeout,
    );
    Some((secs, ops))
}

/// Stops the host's dead-man switch over the existing connection (before
/// switching back ourselves, or when told to keep a failed generation).
pub(super) async fn disarm(t: &Transport) {
    let _ = t.run(&script::confirm(None), b"").await;
}
