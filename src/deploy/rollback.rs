//! Switching a host back to a generation it keeps, from its store: no
//! upload, no definition needed.

use std::collections::BTreeMap;

use super::host::{self, HostError};
use super::{Options, decide};
use crate::observed::{self, Observed};
use crate::plan::{self, HostPlan, Inputs, Kind};
use crate::record::Target;
use crate::script::{self, Outcome, Params};
use crate::transport::Transport;

/// Plans switching the host back to its recorded generation `to`, or to the
/// one before its current one: lists its generations, probes the paths of
/// the chosen one, compares.
pub async fn plan(
    t: &Transport,
    host: &str,
    to: Option<u64>,
) -> Result<(Target, Observed, HostPlan), HostError> {
    let gens = host::generations(t).await?;
    let current = gens.iter().find(|g| g.current).map(|g| g.record.number);
    let chosen = match to {
        Some(n) => gens.iter().find(|g| g.record.number == n),
        None => gens
            .iter()
            .rev()
            .find(|g| current.is_some_and(|c| g.record.number < c)),
    };
    let Some(chosen) = chosen else {
        let kept: Vec<String> = gens.iter().map(|g| g.record.number.to_string()).collect();
        let message = match to {
            Some(n) => format!(
                "it keeps no generation {n} (it keeps: {})",
                if kept.is_empty() {
                    "none".into()
                } else {
                    kept.join(", ")
                }
            ),
            None => format!("{host} has no generation before its current one"),
        };
        return Err(HostError::Host {
            host: host.into(),
            message,
        });
    };
    let number = chosen.record.number;
    let target = Target::from_record(&chosen.record);
    let obs = host::probe(t, &observed::target_paths(&target)).await?;
    let inputs = Inputs {
        local: matches!(t, Transport::Local(_)),
        ..Inputs::default()
    };
    let plan = plan::plan(host, Kind::Rollback, number, &target, &obs, &inputs);
    Ok((target, obs, plan))
}

/// Switches the host back to generation `number`; returns the plan carried
/// out and the host's clock before the switch.
pub(super) async fn to(
    t: &Transport,
    host: &str,
    number: u64,
    who: &str,
    options: &Options,
    takeover: bool,
) -> Result<(HostPlan, Option<u64>), String> {
    let (target, obs, plan) = self::plan(t, host, Some(number))
        .await
        .map_err(|e| e.to_string())?;
    if !plan.errors.is_empty() {
        return Err(plan.error_text());
    }
    let params = Params {
        who,
        lock_wait: options.lock_wait,
        keep: options.keep,
        record: None,
        deadman: None,
        takeover,
    };
    let request = script::apply(&plan, &target, &obs, &BTreeMap::new(), &params);
    match host::run(t, &request).await.map_err(|e| e.to_string())? {
        Outcome::Switched { .. } => Ok((plan, obs.now)),
        other => Err(decide::outcome(other, number, options.lock_wait)
            .error()
            .unwrap_or_else(|| "the switch back did not complete".into())),
    }
}
