//! Rolling out in waves (`apply --waves 1,25%,100%`): the hosts, in name
//! order, are switched and verified one wave at a time; a wave in which more
//! hosts failed than `--max-fail` allows over the whole run (unreachable
//! hosts included) stops the rollout. Its hosts that succeeded are switched
//! back with it, and the later waves are not attempted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::decide::{self, Rollout};
use super::host::{self, Progress, Stage};
use super::{HostResult, Options, Prepared, rollback, switch_all};
use crate::model::Host;
use crate::plan::HostPlan;

/// Switches `prepared` as `rollout` says. `failed` names the selected hosts
/// that could not be planned (unreachable, secrets missing): they take their
/// place in the waves by name like the others, and count against the budget
/// in their wave.
pub async fn run(
    prepared: Vec<Prepared>,
    rollout: &Rollout,
    failed: &[String],
    options: &Options,
    (who, time): (&str, &str),
    progress: Arc<dyn Progress>,
) -> Vec<(HostPlan, HostResult)> {
    if rollout.waves.is_empty() {
        return switch_all(prepared, options, who, time, progress).await;
    }
    let total = prepared.len() + failed.len();
    let bounds = decide::wave_bounds(&rollout.waves, total);
    let hosts: BTreeMap<String, (Host, PathBuf)> = prepared
        .iter()
        .map(|p| (p.host.name.clone(), (p.host.clone(), p.root.clone())))
        .collect();
    // Every selected host in name order; `None` for one that already failed.
    let mut order: Vec<(String, Option<Prepared>)> = prepared
        .into_iter()
        .map(|p| (p.host.name.clone(), Some(p)))
        .chain(failed.iter().map(|n| (n.clone(), None)))
        .collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rest = order.into_iter();
    let mut out = Vec::new();
    let mut failed_so_far = 0;
    let mut stopped: Option<String> = None;
    let mut done = 0;
    let budget = rollout
        .max_fail
        .map_or("none (--max-fail)".to_string(), |m| m.to_string());
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    for (i, bound) in bounds.iter().enumerate() {
        let members: Vec<(String, Option<Prepared>)> = rest.by_ref().take(bound - done).collect();
        done = *bound;
        let unplanned = members.iter().filter(|(_, p)| p.is_none()).count();
        let wave: Vec<Prepared> = members.into_iter().filter_map(|(_, p)| p).collect();
        failed_so_far += unplanned;
        if stopped.is_none() && decide::over_budget(rollout.max_fail, failed_so_far, total) {
            // Hosts of this wave could not even be planned: switching the
            // rest would only be undone with it.
            stopped = Some(format!(
                "wave {} of {} had {failed_so_far} failed host{} in the run before it switched (not reached or not planned), more than the budget of {budget}; the rollout stopped",
                i + 1,
                bounds.len(),
                plural(failed_so_far)
            ));
        }
        if let Some(why) = &stopped {
            for p in wave {
                progress.stage(&p.host.name, Stage::Failed("not attempted".into()));
                p.transport.close().await;
                out.push((
                    p.plan,
                    HostResult::NotAttempted {
                        reason: why.clone(),
                    },
                ));
            }
            continue;
        }
        let mut results = switch_all(wave, options, who, time, progress.clone()).await;
        let bad = results.iter().filter(|(_, r)| !r.ok()).count();
        failed_so_far += bad;
        if decide::over_budget(rollout.max_fail, failed_so_far, total) {
            stopped = Some(format!(
                "wave {} of {} ended with {failed_so_far} failed host{} in the run, more than the budget of {budget}; the rollout stopped",
                i + 1,
                bounds.len(),
                plural(failed_so_far)
            ));
            // The hosts of this wave that did switch go back with it.
            for (plan, result) in results.iter_mut() {
                if let (HostResult::Switched { generation, .. }, Some(back)) =
                    (&*result, plan.current)
                    && let Some((h, root)) = hosts.get(&plan.host)
                {
                    *result = withdraw(h, root, *generation, back, options, who, time).await;
                }
            }
        }
        out.extend(results);
    }
    out
}

/// Switches `host` back from `generation` to `back` (a wave that stopped):
/// connects again, plans the switch back from its store, switches.
async fn withdraw(
    h: &Host,
    root: &std::path::Path,
    generation: u64,
    back: u64,
    options: &Options,
    who: &str,
    time: &str,
) -> HostResult {
    let failed = |e: host::HostError| HostResult::Failed { error: Arc::new(e) };
    let t = match host::connect(h, root, &options.connect()).await {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    let (target, observed, plan) = match rollback::plan(&t, &h.name, Some(back)).await {
        Ok(planned) => planned,
        Err(e) => {
            t.close().await;
            return failed(e);
        }
    };
    let p = Prepared {
        host: h.clone(),
        transport: t,
        state: None,
        target,
        observed,
        plan,
        root: root.to_path_buf(),
        secrets: Vec::new(),
    };
    // The generation switched back to was verified before; the definition
    // describes the newer one, so there is nothing to verify it against.
    let options = Options {
        verify: None,
        ..options.clone()
    };
    let quiet: Arc<dyn Progress> = Arc::new(Silent);
    let mut results = switch_all(vec![p], &options, who, time, quiet).await;
    match results.pop() {
        Some((_, HostResult::Switched { .. })) => HostResult::Withdrawn {
            generation,
            rolled_back_to: back,
        },
        Some((_, other)) => other,
        None => failed(host::HostError::Host {
            host: h.name.clone(),
            message: format!("the switch back to generation {back} reported nothing"),
        }),
    }
}

/// Progress nobody sees (a switch back inside a wave's report).
struct Silent;

impl Progress for Silent {
    fn stage(&self, _: &str, _: Stage) {}
}
