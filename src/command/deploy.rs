//! What `plan`, `apply` and `rollback` share: choosing hosts, rendering them
//! with their secrets, probing them in parallel, switching them, and the
//! report.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Repo;
use crate::apply::{self, ConnectOptions, HostError, Progress, Stage};
use crate::desired::DesiredState;
use crate::error::{Error, Exit};
use crate::model::Host;
use crate::observed::{self, Observed};
use crate::plan::{self, HostPlan, Inputs, Kind};
use crate::record::Target;
use crate::script::{self, Blob, Outcome, Params};
use crate::secret::Secret;
use crate::transport::Transport;
use crate::verify::{self, Check};

/// Options shared by the commands that reach hosts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts at once.
    pub parallel: usize,
    /// Seconds to wait for another run's lock.
    pub lock_wait: u64,
    /// Generations each host keeps.
    pub keep: u32,
    /// Connection timeout.
    pub timeout: Duration,
    /// Verify changed agents after a switch (`None`: `--no-verify`).
    pub verify: Option<VerifyOptions>,
}

/// How to verify after a switch.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Seconds to wait for a fresh heartbeat.
    pub heartbeat_timeout: u64,
    /// Switch back to the previous generation when verification fails.
    pub rollback: bool,
    /// Seconds the host waits for the confirmation before switching back
    /// by itself (0: no dead-man switch).
    pub confirm_timeout: u64,
}

/// Picks hosts by name or `@tag` (all when none is given), then keeps shard
/// `i` of `n` (1-based) of them, by name.
pub fn select<'a>(
    repo: &'a Repo,
    selectors: &[String],
    shard: Option<(usize, usize)>,
) -> Result<Vec<&'a Host>, Error> {
    let mut hosts: Vec<&Host> = Vec::new();
    if selectors.is_empty() {
        hosts.extend(repo.fleet.hosts.iter());
    }
    for sel in selectors {
        if let Some(tag) = sel.strip_prefix('@') {
            let tagged: Vec<&Host> = repo
                .fleet
                .hosts
                .iter()
                .filter(|h| h.tags.iter().any(|t| t == tag))
                .collect();
            if tagged.is_empty() {
                return Err(Error::Usage(format!("no host has the tag `{tag}`")));
            }
            hosts.extend(tagged);
        } else {
            hosts.push(repo.host(sel)?);
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

/// [`select`], as owned hosts.
pub fn selected(
    repo: &Repo,
    selectors: &[String],
    shard: Option<(usize, usize)>,
) -> Result<Vec<Host>, Error> {
    Ok(select(repo, selectors, shard)?
        .into_iter()
        .cloned()
        .collect())
}

/// Renders `hosts` with their secrets, then connects to, probes and plans
/// each (in parallel, with progress on `display`).
pub fn plan_hosts(
    repo: &mut Repo,
    root: &Path,
    hosts: Vec<Host>,
    options: &Options,
    style: crate::ui::Style,
    runtime: &tokio::runtime::Runtime,
    display: Arc<crate::ui::progress::Display>,
) -> Result<Vec<Result<Prepared, Failed>>, Error> {
    let refs: Vec<_> = hosts.iter().collect();
    let states = render(repo, root, &refs, style)?;
    let prepared = runtime.block_on(prepare(
        root,
        hosts.into_iter().zip(states).collect(),
        options,
        display.clone(),
    ));
    display.clear();
    Ok(prepared)
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

/// Renders each host with its secrets resolved.
pub fn render(
    repo: &mut Repo,
    root: &Path,
    hosts: &[&Host],
    style: crate::ui::Style,
) -> Result<Vec<(DesiredState, Vec<Secret>)>, Error> {
    let mut states = Vec::new();
    for h in hosts {
        let secrets = super::secrets::resolve(root, h)?;
        let mut diags = crate::diagnostic::Diagnostics::default();
        let state =
            crate::render::render(h, &repo.templates, &repo.assets, Some(&secrets), &mut diags);
        if diags.has_errors() {
            repo.diags.extend(diags);
            return Err(super::report(repo, style));
        }
        states.push((state, secrets.into_values().collect()));
    }
    Ok(states)
}

/// A host connected, probed and planned.
pub struct Prepared {
    /// The host's definition.
    pub host: Host,
    /// Its open connection.
    pub transport: Transport,
    /// The rendered state (none for a rollback).
    pub state: Option<DesiredState>,
    /// What it should hold.
    pub target: Target,
    /// What the probe saw.
    pub observed: Observed,
    /// The plan.
    pub plan: HostPlan,
    /// The repository (for paths in the host's definition).
    pub root: PathBuf,
    /// The host's secret values, to redact from what the host says.
    pub secrets: Vec<Secret>,
}

/// A host that failed, with why.
#[derive(Debug)]
pub struct Failed {
    /// The host.
    pub host: String,
    /// Why.
    pub error: String,
}

/// The secret values, for redaction.
fn exposed(secrets: &[Secret]) -> Vec<String> {
    secrets.iter().map(|s| s.expose().to_string()).collect()
}

/// Plans one host against its rendered state.
pub fn plan_for(
    host: &Host,
    state: &DesiredState,
    obs: &Observed,
    local: bool,
) -> (Target, HostPlan) {
    let key = obs.key.clone().unwrap_or_default();
    let target = Target::from_desired(state, &key);
    let inputs = Inputs {
        contents: state
            .files
            .iter()
            .filter(|(_, f)| !f.secret)
            .map(|(p, f)| (p.as_str(), f.bytes.as_slice()))
            .collect(),
        sizes: target
            .files
            .iter()
            .map(|(p, f)| (f.id.clone(), state.files[p].bytes.len() as u64))
            .collect(),
        local,
        journald: host.journald.as_ref(),
    };
    let number = obs.latest.unwrap_or(0) + 1;
    let plan = plan::plan(&host.name, Kind::Apply, number, &target, obs, &inputs);
    (target, plan)
}

/// Connects to and probes every host in parallel, then plans each.
pub async fn prepare(
    root: &Path,
    hosts: Vec<(Host, (DesiredState, Vec<Secret>))>,
    options: &Options,
    progress: Arc<dyn Progress>,
) -> Vec<Result<Prepared, Failed>> {
    let limit = Arc::new(tokio::sync::Semaphore::new(options.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (host, (state, secrets))) in hosts.into_iter().enumerate() {
        let limit = limit.clone();
        let progress = progress.clone();
        let root = root.to_path_buf();
        let connect = ConnectOptions {
            timeout: options.timeout,
        };
        tasks.spawn(async move {
            let _slot = limit.acquire_owned().await.expect("semaphore open");
            let name = host.name.clone();
            let result = async {
                progress.stage(&name, Stage::Connecting);
                let transport = apply::connect(&host, &root, &connect).await?;
                progress.stage(&name, Stage::Probing);
                let observed = apply::probe(&transport, &observed::desired_paths(&state)).await?;
                let local = matches!(transport, Transport::Local(_));
                let (target, mut plan) = plan_for(&host, &state, &observed, local);
                verify::redact_plan(&mut plan, &exposed(&secrets));
                Ok::<_, HostError>(Prepared {
                    host,
                    transport,
                    state: Some(state),
                    target,
                    observed,
                    plan,
                    root,
                    secrets,
                })
            }
            .await;
            let result = result.map_err(|e| {
                let error = e.to_string();
                progress.stage(&name, Stage::Failed(first_line(&error)));
                Failed { host: name, error }
            });
            (i, result)
        });
    }
    collect(tasks).await
}

/// Waits for every host task and returns their results in the order the
/// hosts were given (each task returns its index with its result).
pub async fn collect<T: 'static>(mut tasks: tokio::task::JoinSet<(usize, T)>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        out.push(done.expect("a host task panicked"));
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// How one host's switch ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum HostResult {
    /// Nothing to do.
    Unchanged {
        /// Its generation.
        generation: Option<u64>,
    },
    /// Switched and activated (and verified, unless `--no-verify`).
    Switched {
        /// The generation it is at now.
        generation: u64,
        /// What the switch did, step by step.
        log: String,
        /// The verification's checks.
        checks: Vec<Check>,
    },
    /// Switched, but verification failed.
    VerifyFailed {
        /// The generation that failed.
        generation: u64,
        /// The checks (the failed ones say why).
        checks: Vec<Check>,
        /// The generation the host was switched back to.
        rolled_back_to: Option<u64>,
        /// The checks of the generation switched back to.
        rollback_checks: Vec<Check>,
        /// Why it could not be switched back, when it could not.
        #[serde(skip_serializing_if = "Option::is_none")]
        rollback_error: Option<String>,
    },
    /// Not switched, or switched with a failed activation.
    Failed {
        /// Why.
        error: String,
        /// The switch's log, when it ran.
        #[serde(skip_serializing_if = "String::is_empty")]
        log: String,
    },
}

impl HostResult {
    /// Whether the host ended where it should.
    pub fn ok(&self) -> bool {
        !matches!(
            self,
            HostResult::Failed { .. } | HostResult::VerifyFailed { .. }
        )
    }
}

/// Switches every prepared host with changes, in parallel; closes the
/// connections.
pub async fn switch_all(
    prepared: Vec<Prepared>,
    options: &Options,
    who: &str,
    time: &str,
    progress: Arc<dyn Progress>,
) -> Vec<(HostPlan, HostResult)> {
    let limit = Arc::new(tokio::sync::Semaphore::new(options.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, p) in prepared.into_iter().enumerate() {
        let limit = limit.clone();
        let progress = progress.clone();
        let options = options.clone();
        let who = who.to_string();
        let time = time.to_string();
        tasks.spawn(async move {
            let _slot = limit.acquire_owned().await.expect("semaphore open");
            let name = p.host.name.clone();
            let transport_plan = p.plan.clone();
            let (plan, result, transport) = switch_one(p, &options, &who, &time, &*progress).await;
            match &result {
                HostResult::Failed { error, .. } => {
                    progress.stage(&name, Stage::Failed(first_line(error)))
                }
                HostResult::Switched { generation, .. } => {
                    progress.stage(&name, Stage::Done(format!("at generation {generation}")))
                }
                HostResult::VerifyFailed {
                    generation,
                    rolled_back_to,
                    ..
                } => progress.stage(
                    &name,
                    Stage::Failed(match rolled_back_to {
                        Some(back) => format!(
                            "generation {generation} failed verification; back at generation {back}"
                        ),
                        None => format!("generation {generation} failed verification"),
                    }),
                ),
                HostResult::Unchanged { .. } => {
                    progress.stage(&name, Stage::Done("no changes".into()))
                }
            }
            transport.close().await;
            let _ = transport_plan;
            (i, (plan, result))
        });
    }
    collect(tasks).await
}

async fn switch_one(
    mut p: Prepared,
    options: &Options,
    who: &str,
    time: &str,
    progress: &dyn Progress,
) -> (HostPlan, HostResult, Transport) {
    let name = p.host.name.clone();
    let failed = |error: String, log: String| HostResult::Failed { error, log };
    // An earlier run's switch did not finish: finish it, then plan again
    // from what the host has now.
    if let Some(n) = p.plan.pending {
        progress.stage(&name, Stage::Finishing(n));
        let request = script::resume(who, options.lock_wait);
        let resumed = match apply::run(&p.transport, &request).await {
            Ok(
                outcome @ (Outcome::Switched { .. }
                | Outcome::ActivationFailed { .. }
                | Outcome::Aborted { .. }),
            ) => outcome,
            Ok(other) => return (p.plan, outcome_result(other, n), p.transport),
            Err(e) => return (p.plan, failed(e.to_string(), String::new()), p.transport),
        };
        let Some(state) = p.state.as_ref() else {
            let error = format!(
                "finished an interrupted switch to generation {n} first; run the rollback again"
            );
            return (p.plan, failed(error, String::new()), p.transport);
        };
        match apply::probe(&p.transport, &observed::desired_paths(state)).await {
            Ok(obs) if obs.switching.is_some() => {
                let why = match resumed {
                    Outcome::Aborted { reason } => reason,
                    _ => "it is still pending".into(),
                };
                let error = format!(
                    "the interrupted switch to generation {n} could not be finished: {why}"
                );
                return (p.plan, failed(error, String::new()), p.transport);
            }
            Ok(obs) => {
                let local = matches!(p.transport, Transport::Local(_));
                let (target, mut plan) = plan_for(&p.host, state, &obs, local);
                verify::redact_plan(&mut plan, &exposed(&p.secrets));
                p.observed = obs;
                p.target = target;
                p.plan = plan;
            }
            Err(e) => return (p.plan, failed(e.to_string(), String::new()), p.transport),
        }
    }
    if !p.plan.errors.is_empty() {
        let error = p.plan.errors.join("; ");
        return (p.plan, failed(error, String::new()), p.transport);
    }
    if !p.plan.has_changes() {
        let generation = p.plan.current;
        return (p.plan, HostResult::Unchanged { generation }, p.transport);
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
    let result = match apply::run(&p.transport, &request).await {
        Ok(outcome) => outcome_result(outcome, p.plan.number),
        Err(e) => failed(e.to_string(), String::new()),
    };
    let number = p.plan.number;
    let result = match (result, &options.verify) {
        (
            HostResult::Switched {
                generation, log, ..
            },
            Some(v),
        ) => {
            progress.stage(&name, Stage::Verifying(generation));
            verify_switch(&p, generation, log, None, armed, v, options, who).await
        }
        // Switched, but a unit did not start: verification says which and
        // why, and decides about switching back.
        (HostResult::Failed { error, log }, Some(v))
            if error.starts_with(&format!("switched to generation {number},")) =>
        {
            progress.stage(&name, Stage::Verifying(number));
            verify_switch(&p, number, log, Some(error), armed, v, options, who).await
        }
        (other, _) => other,
    };
    (p.plan, result, p.transport)
}

/// The dead-man switch for an apply that will be verified: the operations
/// that take the host from the new generation back to its current one,
/// planned as if the switch had happened.
fn deadman(p: &Prepared, options: &Options) -> Option<(u64, String)> {
    let v = options.verify.as_ref()?;
    if v.confirm_timeout == 0
        || p.plan.kind != Kind::Apply
        || !matches!(p.transport, Transport::Ssh(_))
    {
        return None;
    }
    let previous = p.observed.record.as_ref()?;
    p.state.as_ref()?;
    let back = Target::from_record(previous);
    // The host as it will be after the switch.
    let mut after = Observed {
        key: p.observed.key.clone(),
        now: p.observed.now,
        current: Some(p.plan.number),
        latest: Some(p.plan.number),
        record: Some(p.target.record(&p.host.name, p.plan.number, "", "")),
        status: Some("ok".into()),
        stored: back.files.values().map(|f| f.id.clone()).collect(),
        ..Observed::default()
    };
    for (path, f) in &p.target.files {
        after.paths.insert(
            path.clone(),
            observed::PathState::File {
                // The id as the probe would report it: keyed for secrets.
                sha256: f.id.clone(),
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
        &p.host.name,
        Kind::Rollback,
        previous.number,
        &back,
        &after,
        &Inputs::default(),
    );
    Some((v.confirm_timeout, script::ops(&plan, &back)))
}

/// Stops the host's dead-man switch over the existing connection (before
/// switching back ourselves, or when told to keep a failed generation).
async fn disarm(t: &Transport) {
    let _ = t.run(script::CONFIRM_SH, b"").await;
}

/// The agents a plan (re)starts: the ones verification looks at.
fn changed_agents(plan: &HostPlan) -> Vec<String> {
    let units = plan
        .activation
        .enable
        .iter()
        .chain(&plan.activation.restart);
    units
        .filter_map(|u| u.strip_prefix("agent-")?.strip_suffix(".service"))
        .map(str::to_string)
        .collect()
}

/// Verifies the agents of `p` after its switch; on failure switches back to
/// the generation it came from (unless told not to) and verifies that too.
#[allow(clippy::too_many_arguments)]
async fn verify_switch(
    p: &Prepared,
    generation: u64,
    log: String,
    activation_error: Option<String>,
    armed: bool,
    v: &VerifyOptions,
    options: &Options,
    who: &str,
) -> HostResult {
    let agents = changed_agents(&p.plan);
    let journald = p
        .plan
        .activation
        .hooks
        .iter()
        .any(|h| h == "restart journald");
    let mut checks = check_host(
        p.as_ref(),
        Some(&agents),
        journald,
        p.observed.now,
        v,
        options,
        armed && activation_error.is_none(),
    )
    .await;
    if let Some(error) = activation_error {
        checks.insert(0, failed_check("activate", &p.host.name, error));
    }
    let switch_back = p.plan.current.filter(|_| v.rollback);
    if !checks.iter().all(|c| c.ok) && armed && switch_back.is_none() {
        // Told to keep the failed generation (or there is none to go back
        // to): the dead-man switch must not undo it.
        disarm(&p.transport).await;
    }
    if checks.iter().all(|c| c.ok) {
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
    let back = rollback_to(&p.transport, &p.host.name, previous, who, options, armed)
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
                let agents = changed_agents(&plan);
                // Only agents the definition still knows can be described;
                // a dropped one is checked by its unit alone next time.
                *rollback_checks =
                    check_host(p.as_ref(), Some(&agents), false, since, v, options, false).await;
            }
            Err(e) => *rollback_error = Some(e),
        }
    }
    result
}

/// Runs the verification program on the host (one round trip), and checks
/// that a fresh SSH connection still works.
pub async fn check_host(
    p: HostRef<'_>,
    agents: Option<&[String]>,
    journald: bool,
    since: Option<u64>,
    v: &VerifyOptions,
    options: &Options,
    confirm: bool,
) -> Vec<Check> {
    if let Transport::Local(_) = p.transport {
        // A directory, not a host: no unit runs there, nothing to verify.
        return vec![Check {
            kind: "verify".into(),
            subject: p.host.name.clone(),
            ok: true,
            detail: "not checked: a local host is a directory where nothing runs".into(),
            output: None,
        }];
    }
    let secrets: Vec<String> = p.secrets.iter().map(|s| s.expose().to_string()).collect();
    let request = verify::request(p.host, agents, journald, since, v.heartbeat_timeout);
    // The new connection is opened while the checks run (a handshake costs
    // as much as the rest); it is used once they are known.
    let connect = ConnectOptions {
        timeout: options.timeout,
    };
    let fresh = async {
        match p.transport {
            Transport::Ssh(_) => Some(apply::connect(p.host, p.root, &connect).await),
            Transport::Local(_) => None,
        }
    };
    let (out, fresh) = tokio::join!(p.transport.run(&request.script, &request.stdin), fresh);
    let mut checks = match out {
        Ok(out) if out.success() => match verify::parse(&out.stdout_lossy(), &secrets) {
            Ok((_, checks)) => checks,
            Err(e) => vec![failed_check("verify", &p.host.name, e.to_string())],
        },
        Ok(out) => vec![failed_check(
            "verify",
            &p.host.name,
            format!(
                "the verification program failed (status {}): {}",
                out.status,
                verify::redact(&out.stderr_lossy(), &secrets).trim()
            ),
        )],
        Err(e) => vec![failed_check("verify", &p.host.name, e.to_string())],
    };
    if let Some(fresh) = fresh {
        let confirm = confirm && checks.iter().all(|c| c.ok);
        let script = if confirm { script::CONFIRM_SH } else { "true" };
        let result = match fresh {
            Ok(t) => {
                let out = t.run(script, b"").await;
                t.close().await;
                out.map(|o| (o.success(), o.stdout_lossy().trim().to_string()))
                    .map_err(HostError::from)
            }
            Err(e) => Err(e),
        };
        checks.push(match result {
            Ok((true, _)) => Check {
                kind: "ssh".into(),
                subject: p.host.name.clone(),
                ok: true,
                detail: if confirm {
                    "a new connection works, and confirmed the generation".into()
                } else {
                    "a new connection works".into()
                },
                output: None,
            },
            Ok((false, said)) if confirm => failed_check(
                "ssh",
                &p.host.name,
                format!("a new connection could not confirm the generation: {said}"),
            ),
            Ok((false, _)) => failed_check(
                "ssh",
                &p.host.name,
                "a new connection cannot run `true`".into(),
            ),
            Err(e) => failed_check("ssh", &p.host.name, format!("a new connection fails: {e}")),
        });
    }
    checks
}

/// A connected host, as verification needs it.
#[derive(Clone, Copy)]
pub struct HostRef<'a> {
    /// Its definition.
    pub host: &'a Host,
    /// Its connection.
    pub transport: &'a Transport,
    /// The repository.
    pub root: &'a Path,
    /// Its secret values, for redaction.
    pub secrets: &'a [Secret],
}

impl Prepared {
    fn as_ref(&self) -> HostRef<'_> {
        HostRef {
            host: &self.host,
            transport: &self.transport,
            root: &self.root,
            secrets: &self.secrets,
        }
    }
}

/// Sends a test alert through each of the host's channels, from the host.
pub async fn test_alerts(p: HostRef<'_>) -> Vec<Check> {
    if p.host.alerts.is_empty() {
        return vec![failed_check(
            "alert",
            &p.host.name,
            "the host has no alert channel".into(),
        )];
    }
    if let Transport::Local(_) = p.transport {
        return vec![Check {
            kind: "alert".into(),
            subject: p.host.name.clone(),
            ok: true,
            detail: "not sent: a local host is a directory where nothing runs".into(),
            output: None,
        }];
    }
    let secrets: Vec<String> = p.secrets.iter().map(|s| s.expose().to_string()).collect();
    let request = verify::test_alert_request(p.host);
    match p.transport.run(&request.script, &request.stdin).await {
        Ok(out) => match verify::parse(&out.stdout_lossy(), &secrets) {
            Ok((_, checks)) if !checks.is_empty() => checks,
            Ok(_) => vec![failed_check(
                "alert",
                &p.host.name,
                format!(
                    "the alert script said nothing: {}",
                    verify::redact(&out.stderr_lossy(), &secrets).trim()
                ),
            )],
            Err(e) => vec![failed_check("alert", &p.host.name, e.to_string())],
        },
        Err(e) => vec![failed_check("alert", &p.host.name, e.to_string())],
    }
}

fn failed_check(kind: &str, subject: &str, detail: String) -> Check {
    Check {
        kind: kind.into(),
        subject: subject.into(),
        ok: false,
        detail,
        output: None,
    }
}

/// Plans switching the host back to its recorded generation `to`, or to the
/// one before its current one: lists its generations, probes the paths of
/// the chosen one, compares.
pub async fn rollback_plan(
    t: &Transport,
    host: &str,
    to: Option<u64>,
) -> Result<(Target, Observed, HostPlan), HostError> {
    let gens = apply::generations(t).await?;
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
    let obs = apply::probe(t, &observed::target_paths(&target)).await?;
    let inputs = Inputs {
        local: matches!(t, Transport::Local(_)),
        ..Inputs::default()
    };
    let mut plan = plan::plan(host, Kind::Rollback, number, &target, &obs, &inputs);
    for f in &plan.files {
        if let Some(a) = &f.after
            && !a.id.starts_with("hmac-")
            && !obs.stored.contains(&a.id)
        {
            plan.errors.push(format!(
                "the content of {} is no longer in the host's store; apply that generation's definition instead",
                f.path
            ));
        }
    }
    Ok((target, obs, plan))
}

/// Switches the host back to generation `number`; returns the plan carried
/// out and the host's clock before the switch.
async fn rollback_to(
    t: &Transport,
    host: &str,
    number: u64,
    who: &str,
    options: &Options,
    takeover: bool,
) -> Result<(HostPlan, Option<u64>), String> {
    let (target, obs, plan) = rollback_plan(t, host, Some(number))
        .await
        .map_err(|e| e.to_string())?;
    if !plan.errors.is_empty() {
        return Err(plan.errors.join("; "));
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
    match apply::run(t, &request).await.map_err(|e| e.to_string())? {
        Outcome::Switched { .. } => Ok((plan, obs.now)),
        other => match outcome_result(other, number) {
            HostResult::Failed { error, .. } => Err(error),
            _ => Err("the switch back did not complete".into()),
        },
    }
}

fn outcome_result(outcome: Outcome, number: u64) -> HostResult {
    match outcome {
        Outcome::Switched { log } => HostResult::Switched {
            generation: number,
            log,
            checks: Vec::new(),
        },
        Outcome::ActivationFailed { reason, log } => HostResult::Failed {
            error: format!("switched to generation {number}, but its activation failed: {reason}"),
            log,
        },
        Outcome::Aborted { reason } => HostResult::Failed {
            error: format!("nothing was switched: {reason}"),
            log: String::new(),
        },
        Outcome::Locked { holder } => HostResult::Failed {
            error: format!(
                "another apply holds the host's lock: {holder}. Wait for it, or pass --lock-wait SECS"
            ),
            log: String::new(),
        },
        Outcome::Stale { reason } => HostResult::Failed {
            error: format!(
                "the host changed since the plan was made ({reason}); nothing was switched. Plan again"
            ),
            log: String::new(),
        },
    }
}

/// The exit code for a set of host outcomes.
pub fn exit_for(ok: usize, failed: usize) -> Exit {
    match (ok, failed) {
        (_, 0) => Exit::Ok,
        (0, _) => Exit::Error,
        _ => Exit::Partial,
    }
}

/// A saved plan (`plan -o FILE`): references and ids only, never secrets.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    /// `provision-plan-v1`.
    pub format: String,
    /// One plan per host.
    pub hosts: Vec<HostPlan>,
}

/// The saved plan's format tag.
pub const PLAN_FORMAT: &str = "provision-plan-v1";

/// Reads a saved plan.
pub fn read_plan(path: &Path) -> Result<SavedPlan, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    let plan: SavedPlan = serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("{} is not a saved plan: {e}", path.display())))?;
    if plan.format != PLAN_FORMAT {
        return Err(Error::Usage(format!(
            "{} is a plan of format {:?}; this provision reads {PLAN_FORMAT:?}",
            path.display(),
            plan.format
        )));
    }
    Ok(plan)
}

/// Asks once, on a terminal, whether to go on. Without a terminal or with
/// CI=true it never asks: `--yes` is required.
pub fn confirm(question: &str, yes: bool) -> Result<bool, Error> {
    if yes {
        return Ok(true);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if ci || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Error::Usage(
            "not asking without a terminal (or with CI set): pass --yes to go ahead".into(),
        ));
    }
    eprint!("{question} Only 'yes' is accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Usage(format!("cannot read the answer: {e}")))?;
    Ok(answer.trim() == "yes")
}

/// `user@machine`, for lock holders and generation records.
pub fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_from_uid)
        .unwrap_or_else(|| "unknown".into());
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{machine}")
}

/// The name of this process's uid, from /proc and /etc/passwd (no libc).
fn user_from_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_string())
    })
}

/// Now, UTC, RFC 3339 to the second.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The first line of a message, for one-line progress.
pub fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// The path of a saved plan among the arguments, if one is a `.json` file.
pub fn saved_plan_arg(selectors: &[String]) -> Option<PathBuf> {
    match selectors {
        // A name ending in .json is a saved plan, even a missing one: no host
        // is named so, and "no such file" is the useful error.
        [one] if one.ends_with(".json") => Some(PathBuf::from(one)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn shards() {
        assert_eq!(parse_shard("2/4"), Ok((2, 4)));
        assert!(parse_shard("0/4").is_err());
        assert!(parse_shard("5/4").is_err());
        assert!(parse_shard("x").is_err());
    }
}
