//! The engine's decisions, as pure functions: which hosts a run selects,
//! which agents a switch restarted, what the dead-man switch would do, how
//! a switch job's outcome reads, and the exit code of a run. No I/O
//! (`tests/architecture.rs`).

use super::{HostResult, Refusal};
use crate::error::Exit;
use crate::model::{Fleet, Host};
use crate::observed::{self, Observed};
use crate::plan::{self, Activation, HostPlan, Inputs, Kind};
use crate::record::Target;
use crate::script::{self, Outcome};

/// Why a selection matched nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// `@tag` that no host has.
    NoTag(String),
    /// A name that is no host.
    UnknownHost(String),
}

/// Picks hosts by name or `@tag` (all when none is given), sorted by name
/// without repeats, then keeps shard `i` of `n` (1-based) of them.
pub fn select<'a>(
    fleet: &'a Fleet,
    selectors: &[String],
    shard: Option<(usize, usize)>,
) -> Result<Vec<&'a Host>, SelectError> {
    let mut hosts: Vec<&Host> = Vec::new();
    if selectors.is_empty() {
        hosts.extend(fleet.hosts.iter());
    }
    for sel in selectors {
        if let Some(tag) = sel.strip_prefix('@') {
            let tagged: Vec<&Host> = fleet
                .hosts
                .iter()
                .filter(|h| h.tags.iter().any(|t| t == tag))
                .collect();
            if tagged.is_empty() {
                return Err(SelectError::NoTag(tag.to_string()));
            }
            hosts.extend(tagged);
        } else {
            hosts.push(
                fleet
                    .host(sel)
                    .ok_or_else(|| SelectError::UnknownHost(sel.clone()))?,
            );
        }
    }
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    hosts.dedup_by(|a, b| a.name == b.name);
    if let Some((i, n)) = shard {
        hosts = hosts
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i - 1)
            .map(|(_, h)| h)
            .collect();
    }
    Ok(hosts)
}

/// Parses `I/N` for `--shard`.
pub fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not I/N, such as 1/4"))?;
    let i: usize = i.parse().map_err(|_| format!("`{i}` is not a number"))?;
    let n: usize = n.parse().map_err(|_| format!("`{n}` is not a number"))?;
    if n == 0 || i == 0 || i > n {
        return Err(format!("shard {i}/{n} does not exist: use 1/N to N/N"));
    }
    Ok((i, n))
}

/// A number of hosts, or a share of them (`--waves`, `--max-fail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// So many hosts.
    Count(usize),
    /// This percentage of the selected hosts, rounded up.
    Percent(u32),
}

impl Share {
    /// How many of `n` hosts this is.
    pub fn of(self, n: usize) -> usize {
        match self {
            Share::Count(c) => c.min(n),
            Share::Percent(p) => (n * p as usize).div_ceil(100).min(n),
        }
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Share::Count(c) => write!(f, "{c}"),
            Share::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Parses `N` or `P%` (0 to 100).
pub fn parse_share(text: &str) -> Result<Share, String> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        let p: u32 = p
            .parse()
            .map_err(|_| format!("`{t}` is not a percentage such as 25%"))?;
        if p > 100 {
            return Err(format!("`{t}` is more than 100%"));
        }
        return Ok(Share::Percent(p));
    }
    t.parse()
        .map(Share::Count)
        .map_err(|_| format!("`{t}` is not a number of hosts or a percentage such as 25%"))
}

/// Parses `--waves`: comma-separated totals, each a count or a share of the
/// selected hosts (`1,25%,100%`).
pub fn parse_waves(text: &str) -> Result<Vec<Share>, String> {
    let waves: Vec<Share> = text.split(',').map(parse_share).collect::<Result<_, _>>()?;
    if waves.iter().any(|w| w.of(usize::MAX / 200) == 0) {
        return Err("a wave of 0 hosts switches nothing: start at 1 or more".into());
    }
    Ok(waves)
}

/// Where each wave of `n` hosts ends (the running totals), from `--waves`:
/// growing, and the last is `n` (a spec that stops short gets a last wave
/// with the rest). No waves: one wave of all.
pub fn wave_bounds(waves: &[Share], n: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for w in waves {
        let total = w.of(n).max(1).min(n);
        if out.last().is_none_or(|last| total > *last) {
            out.push(total);
        }
    }
    if out.last() != Some(&n) && n > 0 {
        out.push(n);
    }
    out
}

/// Whether `failed` hosts of `total` are more than `--max-fail` allows
/// (none given: any failure is too many once the rollout goes in waves).
pub fn over_budget(max_fail: Option<Share>, failed: usize, total: usize) -> bool {
    failed > max_fail.map_or(0, |m| m.of(total))
}

/// How a run rolls out: in waves, within a failure budget.
#[derive(Debug, Clone, Default)]
pub struct Rollout {
    /// `--waves` (empty: every host at once).
    pub waves: Vec<Share>,
    /// `--max-fail`.
    pub max_fail: Option<Share>,
}

/// The agents an activation (re)starts: the ones verification looks at.
pub fn changed_agents(activation: &Activation) -> Vec<String> {
    let units = activation.enable.iter().chain(&activation.restart);
    units
        .filter_map(|u| crate::onhost::agent_of_unit(u))
        .map(str::to_string)
        .collect()
}

/// Room, beyond the longest heartbeat wait, for the rest of a verification:
/// the auth checks, the units' stability, the confirming connection.
pub const VERIFY_MARGIN_SECS: u64 = 30;

/// How long the dead-man switch waits after a switch before it switches
/// back: the whole verification (the longest heartbeat wait of the agents
/// the activation (re)starts, their own `verify-timeout` or
/// `heartbeat_timeout`, plus [`VERIFY_MARGIN_SECS`]), then `confirm_timeout`.
/// It fires only when the operator is gone, never under a live
/// verification.
pub fn deadman_secs(
    host: &Host,
    activation: &Activation,
    heartbeat_timeout: u64,
    confirm_timeout: u64,
) -> u64 {
    verification_secs(host, activation, heartbeat_timeout) + VERIFY_MARGIN_SECS + confirm_timeout
}

/// The longest a verification after `activation` waits for the agents it
/// (re)starts: the longest heartbeat wait (`verify-timeout` or
/// `heartbeat_timeout`) plus stability window among them.
pub fn verification_secs(host: &Host, activation: &Activation, heartbeat_timeout: u64) -> u64 {
    longest_wait(host, Some(&changed_agents(activation)), heartbeat_timeout)
}

/// The longest heartbeat wait plus stability window among `agents` of
/// `host` (all when `None`), with `heartbeat_timeout` for those without
/// their own `verify-timeout`.
pub fn longest_wait(host: &Host, agents: Option<&[String]>, heartbeat_timeout: u64) -> u64 {
    host.agents
        .iter()
        .filter(|a| agents.is_none_or(|list| list.contains(&a.name)))
        .map(|a| a.verify_wait(heartbeat_timeout) + a.verify_stable())
        .max()
        .unwrap_or(0)
}

/// The dead-man switch's operations: what takes the host from generation
/// `plan.number` (about to be switched to) back to the generation the probe
/// saw as current, planned as if the switch had happened. None when the
/// host has no recorded generation to go back to.
pub fn deadman_ops(
    host: &str,
    plan: &HostPlan,
    target: &Target,
    seen: &Observed,
) -> Option<String> {
    let previous = seen.record.as_ref()?;
    let back = Target::from_record(previous);
    // The host as it will be after the switch.
    let mut after = Observed {
        key: seen.key.clone(),
        now: seen.now,
        current: Some(plan.number),
        latest: Some(plan.number),
        record: Some(target.record(host, plan.number, "", "")),
        status: Some("ok".into()),
        stored: back.files.values().map(|f| f.id.clone()).collect(),
        ..Observed::default()
    };
    for (path, f) in &target.files {
        after.paths.insert(
            path.clone(),
            observed::PathState::File {
                // The id as the probe would report it: keyed for secrets.
                id: f.id.clone(),
                mode: f.mode.0,
                owner: f.owner.clone(),
                group: f.group.clone(),
            },
        );
    }
    for path in back.files.keys() {
        after
            .paths
            .entry(path.clone())
            .or_insert(observed::PathState::Missing);
    }
    let plan = plan::plan(
        host,
        Kind::Rollback,
        previous.number,
        &back,
        &after,
        &Inputs::default(),
    );
    Some(script::ops(&plan, &back))
}

/// How a switch job's outcome reads as the host's result, for a switch to
/// generation `number` that waited up to `lock_wait` seconds for the lock.
pub fn outcome(outcome: Outcome, number: u64, lock_wait: u64) -> HostResult {
    match outcome {
        Outcome::Switched { log } => HostResult::Switched {
            generation: number,
            log,
            checks: Vec::new(),
        },
        Outcome::ActivationFailed { reason, log } => HostResult::ActivationFailed {
            generation: number,
            reason,
            log,
        },
        Outcome::Aborted { reason } => HostResult::Refused {
            reason: Refusal::Aborted(reason),
        },
        Outcome::Locked { holder } => HostResult::Refused {
            reason: Refusal::Locked {
                holder,
                waited: lock_wait,
            },
        },
        Outcome::Stale { reason } => HostResult::Refused {
            reason: Refusal::Stale(reason),
        },
    }
}

/// The exit code for a run where `ok` hosts ended where they should and
/// `failed` did not.
pub fn exit_for(ok: usize, failed: usize) -> Exit {
    match (ok, failed) {
        (_, 0) => Exit::Ok,
        (0, _) => Exit::Error,
        _ => Exit::Partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_are_running_totals_in_name_order_and_the_budget_counts_the_run() {
        let w = parse_waves("1,25%,100%").unwrap();
        assert_eq!(wave_bounds(&w, 8), [1, 2, 8]);
        assert_eq!(wave_bounds(&w, 3), [1, 3]);
        assert_eq!(wave_bounds(&parse_waves("1,2,3").unwrap(), 3), [1, 2, 3]);
        assert_eq!(wave_bounds(&parse_waves("2").unwrap(), 5), [2, 5]);
        assert_eq!(wave_bounds(&[], 4), [4]);
        assert_eq!(wave_bounds(&parse_waves("50%,10").unwrap(), 10), [5, 10]);
        assert!(parse_waves("0,5").is_err());
        assert!(
            parse_waves("1,x")
                .unwrap_err()
                .contains("`x` is not a number")
        );
        assert!(parse_share("120%").is_err());
        assert!(!over_budget(None, 0, 10));
        assert!(over_budget(None, 1, 10));
        assert!(!over_budget(Some(Share::Count(2)), 2, 10));
        assert!(over_budget(Some(Share::Percent(10)), 2, 10));
        assert!(!over_budget(Some(Share::Percent(25)), 1, 3));
    }

    #[test]
    fn shards() {
        assert_eq!(parse_shard("2/4"), Ok((2, 4)));
        assert_eq!(parse_shard("1/1"), Ok((1, 1)));
        for bad in ["0/4", "5/4", "x", "1/0", "a/2", "1/b"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exit_codes() {
        for (ok, failed, exit) in [
            (0, 0, Exit::Ok),
            (3, 0, Exit::Ok),
            (0, 2, Exit::Error),
            (2, 1, Exit::Partial),
        ] {
            assert_eq!(exit_for(ok, failed), exit, "{ok} ok, {failed} failed");
        }
    }

    #[test]
    fn changed_agents_are_the_agent_units_started_or_restarted() {
        let activation = Activation {
            enable: vec!["agent-a.service".into(), "agent-b-heartbeat.timer".into()],
            restart: vec![
                "agent-c.service".into(),
                "systemd-journald.service".into(),
                "provision-alert@.service".into(),
            ],
            ..Activation::default()
        };
        assert_eq!(changed_agents(&activation), ["a", "c"]);
    }

    #[test]
    fn a_lock_still_held_after_the_wait_says_so_and_suggests_no_given_flag() {
        let r = outcome(
            Outcome::Locked {
                holder: "ops@laptop".into(),
            },
            7,
            90,
        );
        let e = r.error().unwrap();
        assert!(e.contains("still held after waiting 90 s"), "{e}");
        assert!(!e.contains("pass --lock-wait"), "{e}");
    }

    #[test]
    fn outcomes_read_as_results() {
        let table = [
            (Outcome::Switched { log: "l".into() }, "switched", None),
            (
                Outcome::ActivationFailed {
                    reason: "unit x failed".into(),
                    log: String::new(),
                },
                "activation-failed",
                Some("switched to generation 7, but its activation failed: unit x failed"),
            ),
            (
                Outcome::Aborted {
                    reason: "disk full".into(),
                },
                "refused",
                Some("nothing was switched: disk full"),
            ),
            (
                Outcome::Locked {
                    holder: "ops@laptop".into(),
                },
                "refused",
                Some(
                    "another apply holds the host's lock: ops@laptop. Wait for it, or pass --lock-wait SECS",
                ),
            ),
            (
                Outcome::Stale {
                    reason: "a file changed".into(),
                },
                "refused",
                Some(
                    "the host changed since the plan was made (a file changed); nothing was switched. Plan again",
                ),
            ),
        ];
        for (o, tag, error) in table {
            let r = outcome(o, 7, 0);
            let json = serde_json::to_value(&r).unwrap();
            assert_eq!(json["result"], tag, "{r:?}");
            assert_eq!(r.error().as_deref(), error, "{r:?}");
            assert_eq!(r.ok(), tag == "switched");
        }
    }
}
