//! The deployment engine: connect to hosts, probe and plan them, switch the
//! ones with changes, verify, and switch back when verification fails.
//!
//! One apply, in the order it happens:
//! 1. [`prepare`]: per host, [`host::connect`], [`host::probe`], then the
//!    pure [`plan_for`] (the core's `plan::plan`).
//! 2. [`switch_all`] → [`switch::one`]: finish an interrupted switch, upload
//!    the new contents, run the switch job (with a dead-man switch planned by
//!    [`decide::deadman_ops`]).
//! 3. [`verify::after_switch`]: check the agents the switch restarted over a
//!    fresh connection that also confirms the generation; on failure
//!    [`rollback::to`] switches back and verifies that too.
//!
//! The engine takes plain values, reports progress through
//! [`host::Progress`], and returns typed [`HostResult`]s; it never prints.
//! The commands (`crate::command`) choose hosts, build it and hand its
//! results to `crate::ui`.

pub mod decide;
pub mod host;
pub mod rollback;
pub mod rollout;
pub mod switch;
pub mod verify;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::desired::DesiredState;
use crate::model::Host;
use crate::observed::{self, Observed};
use crate::plan::{self, HostPlan, Inputs, Kind};
use crate::record::Target;
use crate::secret::Secret;
use crate::transport::Transport;
use crate::verify::Check;
use host::{ConnectOptions, HostError, Progress, Stage};

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

impl Options {
    /// How to connect, from these options.
    pub fn connect(&self) -> ConnectOptions {
        ConnectOptions {
            timeout: self.timeout,
        }
    }
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

impl Prepared {
    /// The parts verification needs.
    pub fn as_ref(&self) -> HostRef<'_> {
        HostRef {
            host: &self.host,
            transport: &self.transport,
            root: &self.root,
            secrets: &self.secrets,
        }
    }
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

/// A host that could not be connected to or probed, with why.
#[derive(Debug)]
pub struct Failed {
    /// The host.
    pub host: String,
    /// Why, typed: unreachable, wrong host key, refused login, ...
    pub error: HostError,
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
    /// Nothing to switch, but the current generation was one an earlier run
    /// switched to and never confirmed (its operator went away): verified
    /// now, and confirmed, so its dead-man switch does not undo it.
    Confirmed {
        /// The generation confirmed.
        generation: u64,
        /// The verification's checks.
        checks: Vec<Check>,
    },
    /// Switched, but a unit did not start or a hook failed; not verified
    /// (`--no-verify`), so it stays at that generation.
    ActivationFailed {
        /// The generation it is at now.
        generation: u64,
        /// What failed, in the host's words.
        reason: String,
        /// What the switch did, step by step.
        log: String,
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
    /// Nothing was switched: the host or the plan refused (the lock is
    /// held, the host changed since the plan, the switch job could not
    /// prepare, the plan has errors).
    Refused {
        /// Why.
        reason: Refusal,
    },
    /// Not switched: an earlier wave of the rollout failed (`--waves`), or
    /// the run's failure budget was spent (`--max-fail`).
    NotAttempted {
        /// Why the rollout stopped.
        reason: String,
    },
    /// Switched and verified, then switched back with the rest of its wave,
    /// in which another host failed.
    Withdrawn {
        /// The generation it was at.
        generation: u64,
        /// The generation it is back at.
        rolled_back_to: u64,
    },
    /// The host could not be reached, or answered something unexpected.
    Failed {
        /// Why, typed.
        #[serde(serialize_with = "host_error")]
        error: Arc<HostError>,
    },
}

fn host_error<S: serde::Serializer>(e: &Arc<HostError>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct as _;
    let mut st = s.serialize_struct("HostError", 2)?;
    st.serialize_field("kind", e.kind())?;
    st.serialize_field("message", &e.to_string())?;
    st.end()
}

/// Why a host switched nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum Refusal {
    /// Another run holds the host's lock (or its generation awaits its
    /// confirmation), still after waiting `waited` seconds (`--lock-wait`).
    Locked {
        /// Who holds it, as the host says.
        holder: String,
        /// How long this run waited for it.
        waited: u64,
    },
    /// The host changed since the plan was made.
    Stale(String),
    /// The switch job stopped before switching anything.
    Aborted(String),
    /// The plan has errors (or the saved plan no longer matches), as one
    /// message.
    Plan(String),
    /// An interrupted switch had to be finished first, and could not be,
    /// or changes what a rollback would do.
    Interrupted(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Locked { holder, waited: 0 } => write!(
                f,
                "another apply holds the host's lock: {holder}. Wait for it, or pass --lock-wait SECS"
            ),
            Refusal::Locked { holder, waited } => write!(
                f,
                "another apply holds the host's lock: {holder}; it was still held after waiting {waited} s (--lock-wait). Wait longer, or find out why it takes so long"
            ),
            Refusal::Stale(reason) => write!(
                f,
                "the host changed since the plan was made ({reason}); nothing was switched. Plan again"
            ),
            Refusal::Aborted(reason) => write!(f, "nothing was switched: {reason}"),
            Refusal::Plan(errors) => f.write_str(errors),
            Refusal::Interrupted(why) => f.write_str(why),
        }
    }
}

impl HostResult {
    /// Its outcome class, as the JSON `result` names it.
    pub fn class(&self) -> &'static str {
        match self {
            HostResult::Unchanged { .. } => "unchanged",
            HostResult::Switched { .. } => "switched",
            HostResult::Confirmed { .. } => "confirmed",
            HostResult::ActivationFailed { .. } => "activation-failed",
            HostResult::VerifyFailed { .. } => "verify-failed",
            HostResult::Refused { .. } => "refused",
            HostResult::NotAttempted { .. } => "not-attempted",
            HostResult::Withdrawn { .. } => "withdrawn",
            HostResult::Failed { .. } => "failed",
        }
    }

    /// Whether the host ended where it should.
    pub fn ok(&self) -> bool {
        matches!(
            self,
            HostResult::Unchanged { .. }
                | HostResult::Switched { .. }
                | HostResult::Confirmed { .. }
        )
    }

    /// Why the host did not end where it should, in one message (none when
    /// it did, or when verification failed: its checks say why).
    pub fn error(&self) -> Option<String> {
        match self {
            HostResult::ActivationFailed {
                generation, reason, ..
            } => Some(activation_error(*generation, reason)),
            HostResult::Refused { reason } => Some(reason.to_string()),
            HostResult::Failed { error } => Some(error.to_string()),
            HostResult::NotAttempted { reason } => Some(format!("not attempted: {reason}")),
            HostResult::Withdrawn {
                generation,
                rolled_back_to,
            } => Some(format!(
                "switched to generation {generation} and verified, then switched back to generation {rolled_back_to} with the rest of its wave"
            )),
            _ => None,
        }
    }

    /// The switch's log, when a switch ran.
    pub fn log(&self) -> &str {
        match self {
            HostResult::Switched { log, .. } | HostResult::ActivationFailed { log, .. } => log,
            _ => "",
        }
    }

    /// The one-line progress summary of this result.
    fn stage(&self) -> Stage {
        match self {
            HostResult::Switched { generation, .. } => {
                Stage::Done(format!("at generation {generation}"))
            }
            HostResult::Unchanged { .. } => Stage::Done("no changes".into()),
            HostResult::Confirmed { generation, .. } => {
                Stage::Done(format!("confirmed generation {generation}"))
            }
            HostResult::VerifyFailed {
                generation,
                rolled_back_to: Some(back),
                ..
            } => Stage::Failed(format!(
                "generation {generation} failed verification; back at generation {back}"
            )),
            HostResult::VerifyFailed { generation, .. } => {
                Stage::Failed(format!("generation {generation} failed verification"))
            }
            // The error itself is printed once, by the report.
            other => Stage::Failed(
                other
                    .failure()
                    .map(|f| f.kind.replace('-', " "))
                    .unwrap_or_default(),
            ),
        }
    }
}

/// The message of a failed activation.
pub(crate) fn activation_error(generation: u64, reason: &str) -> String {
    format!("switched to generation {generation}, but its activation failed: {reason}")
}

/// Runs `job` for each item, at most `parallel` at once, and returns the
/// results in the order of the items: the one fan-out every command uses.
pub async fn each<I, T, F, Fut>(items: Vec<I>, parallel: usize, job: F) -> Vec<T>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let limit = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let job = Arc::new(job);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let limit = limit.clone();
        let job = job.clone();
        tasks.spawn(async move {
            let _slot = limit.acquire_owned().await.expect("semaphore open");
            (i, job(item).await)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        out.push(done.expect("a host task panicked"));
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// The secret values, for redaction.
pub(crate) fn exposed(secrets: &[Secret]) -> Vec<String> {
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

/// Which connections [`prepare`] keeps open once their host is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// None: the caller only reads the plans.
    None,
    /// Those of hosts with something to do (a change, an interrupted switch
    /// to finish, a generation to confirm), at most `--parallel` of them;
    /// the rest are closed and opened again when their turn comes, so a
    /// run never holds more than `--parallel` SSH connections (and their
    /// master processes), however large the fleet.
    Busy,
}

/// The host needs its connection after planning: an interrupted switch to
/// finish, or, when its plan has no errors, a change to make or a
/// generation to confirm.
pub fn has_work(plan: &HostPlan, observed: &Observed) -> bool {
    plan.pending.is_some()
        || (plan.errors.is_empty() && (plan.has_changes() || observed.unconfirmed.is_some()))
}

/// Connects to and probes every host in parallel, then plans each; keeps
/// the connections `keep` says.
pub async fn prepare(
    root: &Path,
    hosts: Vec<(Host, (DesiredState, Vec<Secret>))>,
    options: &Options,
    keep: Keep,
    progress: Arc<dyn Progress>,
) -> Vec<Result<Prepared, Failed>> {
    let root = root.to_path_buf();
    let connect = options.connect();
    let parallel = options.parallel;
    // How many connections are kept so far.
    let kept = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    each(hosts, options.parallel, move |(host, (state, secrets))| {
        let progress = progress.clone();
        let root = root.clone();
        let connect = connect.clone();
        let kept = kept.clone();
        async move {
            let name = host.name.clone();
            let result = async {
                progress.stage(&name, Stage::Connecting);
                let started = Instant::now();
                let transport = host::connect(&host, &root, &connect).await?;
                progress.phase(&name, "connect", started.elapsed());
                progress.stage(&name, Stage::Probing);
                let started = Instant::now();
                let observed = host::probe(&transport, &observed::desired_paths(&state)).await?;
                progress.phase(&name, "probe", started.elapsed());
                let local = matches!(transport, Transport::Local(_));
                let (target, mut plan) = plan_for(&host, &state, &observed, local);
                crate::verify::redact_plan(&mut plan, &exposed(&secrets));
                let keep = keep == Keep::Busy
                    && has_work(&plan, &observed)
                    && kept
                        .fetch_update(SeqCst, SeqCst, |n| (n < parallel).then_some(n + 1))
                        .is_ok();
                let transport = if keep {
                    transport
                } else {
                    transport.park().await
                };
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
            result.map_err(|error| {
                progress.stage(&name, Stage::Failed(error.kind().replace('-', " ")));
                Failed { host: name, error }
            })
        }
    })
    .await
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
    let options = options.clone();
    let who = who.to_string();
    let time = time.to_string();
    let parallel = options.parallel;
    each(prepared, parallel, move |p| {
        let progress = progress.clone();
        let options = options.clone();
        let who = who.clone();
        let time = time.clone();
        async move {
            let name = p.host.name.clone();
            let (plan, result, transport) = switch::one(p, &options, &who, &time, &*progress).await;
            progress.stage(&name, result.stage());
            transport.close().await;
            (plan, result)
        }
    })
    .await
}
