//! The fleet at a glance: per host its generation and drift, per agent its
//! unit state, uptime, restarts, heartbeat age, token rotations and last
//! alert, and whether anything is unhealthy. Pure: builds the request for
//! `script/status.sh` and reads its answer with a probe's.

use serde::Serialize;

use crate::model::Host;
use crate::observed::Observed;
use crate::onhost;
use crate::plan::{FileState, observed_state};
use crate::script::{Request, STATUS_SH};

/// The request for every agent of `host`.
pub fn request(host: &Host) -> Request {
    let mut input = String::new();
    for a in &host.agents {
        let auths: Vec<&str> = a
            .auths
            .iter()
            .filter(|x| x.rotate.is_some())
            .map(|x| x.name.as_str())
            .collect();
        input.push_str(&format!(
            "agent\t{}\t{}\t{}\t{}\t{}\n",
            a.name,
            onhost::agent_unit(&a.name),
            onhost::heartbeat_file(&a.name),
            onhost::agent_state_dir(&a.name),
            if auths.is_empty() {
                "-".to_string()
            } else {
                auths.join(",")
            }
        ));
    }
    Request {
        script: STATUS_SH.to_string(),
        stdin: input.into_bytes(),
    }
}

/// A token rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// The auth's name.
    pub auth: String,
    /// Seconds since the last successful rotation (`None`: never).
    #[serde(rename = "last_age_secs")]
    pub last_age: Option<u64>,
    /// Seconds until the next one is due (negative: overdue; `None`: at
    /// the timer's next run, as none happened yet).
    #[serde(rename = "next_in_secs")]
    pub next_in: Option<i64>,
}

/// One agent's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStatus {
    /// Agent name.
    pub name: String,
    /// `active/running`, `failed/failed`, `not-found`...
    pub state: String,
    /// Seconds since the unit became active.
    #[serde(rename = "uptime_secs")]
    pub uptime: Option<u64>,
    /// Automatic restarts since the unit was last started by hand or apply.
    pub restarts: u64,
    /// Seconds since the last heartbeat (`None`: never).
    #[serde(rename = "heartbeat_age_secs")]
    pub heartbeat_age: Option<u64>,
    /// Token rotations.
    pub rotations: Vec<Rotation>,
    /// Seconds since the last alert about it (`None`: never).
    #[serde(rename = "last_alert_age_secs")]
    pub last_alert_age: Option<u64>,
    /// What is unhealthy about it.
    pub problems: Vec<String>,
}

/// One host's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostStatus {
    /// Host name.
    pub host: String,
    /// Current generation number.
    pub generation: Option<u64>,
    /// Its id.
    pub generation_id: Option<String>,
    /// How its activation ended.
    pub activation: Option<String>,
    /// Managed paths that differ from the current generation.
    pub drift: Vec<String>,
    /// A switch that did not finish.
    pub pending: Option<u64>,
    /// The agents.
    pub agents: Vec<AgentStatus>,
    /// What is unhealthy about the host itself.
    pub problems: Vec<String>,
}

impl HostStatus {
    /// Nothing unhealthy on the host or its agents.
    pub fn healthy(&self) -> bool {
        self.problems.is_empty() && self.agents.iter().all(|a| a.problems.is_empty())
    }
}

/// Why a status answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the status answer is not understood: {0}")]
pub struct StatusError(pub String);

/// Reads the status program's answer together with a probe of the host.
pub fn parse(
    host: &Host,
    obs: &Observed,
    stdout: &str,
    local: bool,
) -> Result<HostStatus, StatusError> {
    let bad = |line: &str| StatusError(format!("unexpected line {line:?}"));
    let mut now = 0u64;
    let mut agents: Vec<AgentStatus> = Vec::new();
    let epoch = |s: &str| s.parse::<u64>().ok();
    for line in stdout.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["now", n] => now = n.parse().map_err(|_| bad(line))?,
            [
                "agent",
                name,
                load,
                active,
                sub,
                restarts,
                since,
                beat,
                alert,
            ] => {
                let state = if *load == "local" {
                    "local".to_string()
                } else if *load == "not-found" || load.is_empty() {
                    "not-found".to_string()
                } else {
                    format!("{active}/{sub}")
                };
                agents.push(AgentStatus {
                    name: (*name).into(),
                    state,
                    uptime: epoch(since)
                        .filter(|s| *s > 0 && *active == "active")
                        .map(|s| now.saturating_sub(s)),
                    restarts: restarts.parse().unwrap_or(0),
                    heartbeat_age: epoch(beat).map(|b| now.saturating_sub(b)),
                    rotations: Vec::new(),
                    last_alert_age: epoch(alert).map(|a| now.saturating_sub(a)),
                    problems: Vec::new(),
                });
            }
            ["rotation", name, auth, last] => {
                let every = host
                    .agents
                    .iter()
                    .find(|a| a.name == *name)
                    .and_then(|a| a.auths.iter().find(|x| x.name == *auth))
                    .and_then(|x| x.rotate.as_ref())
                    .map(|r| r.every.secs);
                let last_age = epoch(last).map(|l| now.saturating_sub(l));
                let next_in = match (last_age, every) {
                    (Some(age), Some(every)) => Some(every as i64 - age as i64),
                    _ => None,
                };
                if let Some(a) = agents.iter_mut().find(|a| a.name == *name) {
                    a.rotations.push(Rotation {
                        auth: (*auth).into(),
                        last_age,
                        next_in,
                    });
                }
            }
            _ => return Err(bad(line)),
        }
    }
    for a in &mut agents {
        let Some(def) = host.agents.iter().find(|d| d.name == a.name) else {
            continue;
        };
        // A local host is a directory: nothing runs there to judge.
        if a.state == "local" {
            continue;
        }
        if a.state != "active/running" {
            a.problems.push(format!("the unit is {}", a.state));
        }
        if let Some(hb) = &def.heartbeat {
            // Outside its active hours an agent may be quiet on purpose; the
            // host's own checker knows its clock, so only always-on agents
            // are judged here.
            let limit = hb.every.secs + hb.grace.secs;
            match a.heartbeat_age {
                None => a.problems.push("it never sent a heartbeat".into()),
                Some(age) if age > limit && hb.active_hours.is_none() => a.problems.push(format!(
                    "its last heartbeat is {age} s old (limit {limit} s)"
                )),
                _ => {}
            }
        }
        for r in &a.rotations {
            if let Some(n) = r.next_in
                && n < -3600 * 2
            {
                a.problems.push(format!(
                    "token rotation `{}` is {} h overdue",
                    r.auth,
                    -n / 3600
                ));
            }
        }
    }

    let drift = obs
        .record
        .iter()
        .flat_map(|r| r.files.iter())
        .filter(|(path, f)| {
            !observed_state(obs, path).is_some_and(|seen| seen.matches(&FileState::of(f), local))
        })
        .map(|(path, _)| path.clone())
        .collect();
    let mut problems = Vec::new();
    if obs.current.is_none() {
        problems.push("it has no generation: run `provision apply`".into());
    }
    if let Some(s) = &obs.status
        && s != "ok"
    {
        problems.push(format!("the activation of its generation {s}"));
    }
    if let Some(back) = obs.unconfirmed {
        problems.push(format!(
            "generation {} is not confirmed yet: the dead-man switch goes back to generation {back} unless it is (`provision apply` verifies and confirms it)",
            obs.current.map(|n| n.to_string()).unwrap_or_default()
        ));
    }
    if let Some(sw) = &obs.switching {
        problems.push(format!(
            "a switch to generation {} did not finish",
            sw.generation
        ));
    }
    Ok(HostStatus {
        host: host.name.clone(),
        generation: obs.current,
        generation_id: obs.record.as_ref().map(|r| r.generation.clone()),
        activation: obs.status.clone(),
        drift,
        pending: obs.switching.as_ref().map(|s| s.generation),
        agents,
        problems,
    })
}

/// `3d 4h`, `5m 2s`, `12s`.
pub fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}
