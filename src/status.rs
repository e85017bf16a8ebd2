//! The fleet at a glance: per host its generation and drift, per agent its
//! unit state, uptime, restarts, heartbeat age, token rotations and last
//! alert, and whether anything is unhealthy. Pure: builds the request for
//! `script/status.sh` and reads its answer with a probe's.

use serde::Serialize;

use crate::date;
use crate::expiry::{self, Verdict};
use crate::model::{ExpirySource, Host};
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
        // A date in the KDL needs nothing from the host; a command's
        // answer is what the host's expiry check last recorded.
        for x in &a.auths {
            if let Some(e) = &x.expiry
                && matches!(e.source, ExpirySource::Command(_))
            {
                input.push_str(&format!("expiry\t{}\t{}\n", a.name, x.name));
            }
        }
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
    /// How the last rotation ended: `ok`, or `failed: …` (`None`: no
    /// rotation recorded one yet).
    pub last_result: Option<String>,
}

/// When a credential expires, as the host last learned it (or as the KDL
/// says).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialExpiry {
    /// The auth's name.
    pub auth: String,
    /// When it expires, RFC 3339 (`None`: not learned).
    pub expires_at: Option<String>,
    /// Seconds until it expires (negative: expired; `None`: not learned).
    #[serde(rename = "expires_in_secs")]
    pub expires_in: Option<i64>,
    /// How early the host alerts.
    #[serde(rename = "warn_before_secs")]
    pub warn_before: u64,
    /// `ok`, `warn`, `expired` or `unknown`.
    pub verdict: Verdict,
    /// Seconds since the host last checked it (`None`: a date in the KDL,
    /// or not checked yet).
    #[serde(rename = "checked_age_secs")]
    pub checked_age: Option<u64>,
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
    /// The expiries of its credentials that are watched.
    pub expiries: Vec<CredentialExpiry>,
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
                    expiries: Vec::new(),
                    last_alert_age: epoch(alert).map(|a| now.saturating_sub(a)),
                    problems: Vec::new(),
                });
            }
            ["expiry", name, auth, recorded, expires, checked] => {
                if let Some(a) = agents.iter_mut().find(|a| a.name == *name) {
                    a.expiries.push(recorded_expiry(
                        host, name, auth, recorded, expires, checked, now,
                    ));
                }
            }
            ["rotation", name, auth, last, result] => {
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
                        last_result: (*result != "-").then(|| (*result).to_string()),
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
        // A date in the KDL is known wherever the host is.
        for x in &def.auths {
            if let Some(e) = &x.expiry
                && let ExpirySource::At(at) = e.source
            {
                a.expiries.push(known(&x.name, at, e.warn_before.secs, now));
            }
        }
        a.expiries.sort_by(|x, y| x.auth.cmp(&y.auth));
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
        for e in &a.expiries {
            match (e.verdict, &e.expires_at) {
                (Verdict::Expired, Some(at)) => a
                    .problems
                    .push(format!("credential `{}` expired at {at}: renew it", e.auth)),
                (Verdict::Unknown, _) if e.checked_age.is_some() => a.problems.push(format!(
                    "the host cannot learn when credential `{}` expires: see `journalctl -u {}`",
                    e.auth,
                    onhost::service(&onhost::expiry_stem(&a.name, &e.auth))
                )),
                _ => {}
            }
        }
        for r in &a.rotations {
            if let Some(result) = &r.last_result
                && result.starts_with("failed")
            {
                a.problems
                    .push(format!("token rotation `{}` {result}", r.auth));
            }
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

/// A credential's expiry at host time `now`, from a known moment.
fn known(auth: &str, at: u64, warn_before: u64, now: u64) -> CredentialExpiry {
    CredentialExpiry {
        auth: auth.into(),
        expires_at: Some(date::utc(at)),
        expires_in: Some(at as i64 - now as i64),
        warn_before,
        verdict: expiry::verdict(now, at, warn_before),
        checked_age: None,
    }
}

/// A credential's expiry from the host's record (`VERDICT EXPIRY CHECKED`,
/// `-` for none). The record is root's, but read as carefully as anything
/// from the host: a field that is not what it should be reads as unknown.
fn recorded_expiry(
    host: &Host,
    name: &str,
    auth: &str,
    recorded: &str,
    expires: &str,
    checked: &str,
    now: u64,
) -> CredentialExpiry {
    let warn_before = host
        .agents
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.auths.iter().find(|x| x.name == auth))
        .and_then(|x| x.expiry.as_ref())
        .map_or(0, |e| e.warn_before.secs);
    let checked_age = (recorded != "-")
        .then(|| expiry::parse_learned(checked))
        .flatten()
        .map(|c| now.saturating_sub(c));
    match expiry::parse_learned(expires) {
        Some(at) => CredentialExpiry {
            checked_age,
            ..known(auth, at, warn_before, now)
        },
        None => CredentialExpiry {
            auth: auth.into(),
            expires_at: None,
            expires_in: None,
            warn_before,
            verdict: Verdict::Unknown,
            checked_age,
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Source, SourceKind, SourceSet};

    fn host() -> Host {
        let text = r#"host "h" {
    ssh "root@127.0.0.1"
    agent "a" {
        exec "/opt/a/run"
        user "agent"
        auth "tok" check="true" expires="tok expiry" warn-before="3d"
        auth "key" check="true" expires-at="2027-01-20"
        auth "old" check="true" expires-at="2027-01-01"
        auth "gh" check="true" expires="gh expiry"
        auth "new" check="true" expires="new expiry"
    }
}
"#;
        let set = SourceSet::new(vec![Source {
            path: "hosts/h.kdl".into(),
            kind: SourceKind::Host,
            text: text.into(),
        }]);
        // Decoded only: the checklist would want heartbeats and the rest.
        let mut diags = crate::diagnostic::Diagnostics::default();
        let docs = crate::syntax::parse(&set, &mut diags);
        let fleet = crate::resolve::resolve(&set, &docs, &mut diags);
        assert!(!diags.has_errors());
        fleet.hosts[0].clone()
    }

    #[test]
    fn credentials_show_their_expiry() {
        let h = host();
        let stdin = String::from_utf8(request(&h).stdin).unwrap();
        // Only the commands' answers come from the host.
        assert!(stdin.contains("expiry\ta\ttok\n") && stdin.contains("expiry\ta\tgh\n"));
        assert!(!stdin.contains("\tkey\n"));
        let now = 1_800_000_000u64; // 2027-01-15T08:00:00Z
        let out = format!(
            "now\t{now}\n\
             agent\ta\tloaded\tactive\trunning\t0\t{}\t{now}\t-\n\
             expiry\ta\ttok\twarn\t{}\t{}\n\
             expiry\ta\tgh\tunknown\t-\t{}\n\
             expiry\ta\tnew\t-\t-\t-\n",
            now - 60,
            now + 2 * 86_400,
            now - 100,
            now - 200,
        );
        let s = parse(&h, &Observed::default(), &out, false).unwrap();
        let a = &s.agents[0];
        let got: Vec<(&str, Option<i64>, Verdict, Option<u64>)> = a
            .expiries
            .iter()
            .map(|e| (e.auth.as_str(), e.expires_in, e.verdict, e.checked_age))
            .collect();
        assert_eq!(
            got,
            [
                ("gh", None, Verdict::Unknown, Some(200)),
                ("key", Some(5 * 86_400 - 8 * 3600), Verdict::Warn, None),
                ("new", None, Verdict::Unknown, None),
                (
                    "old",
                    Some(-(14 * 86_400 + 8 * 3600)),
                    Verdict::Expired,
                    None
                ),
                ("tok", Some(2 * 86_400), Verdict::Warn, Some(100)),
            ]
        );
        assert_eq!(
            a.expiries[1].expires_at.as_deref(),
            Some("2027-01-20T00:00:00Z")
        );
        assert_eq!(a.expiries[0].warn_before, 7 * 86_400);
        assert_eq!(a.expiries[4].warn_before, 3 * 86_400);
        // An expired credential, and one the host could not learn, are
        // problems; one not checked yet is not.
        assert_eq!(
            a.problems,
            [
                "the host cannot learn when credential `gh` expires: see `journalctl -u agent-a-expiry-gh.service`".to_string(),
                "credential `old` expired at 2027-01-01T00:00:00Z: renew it".to_string(),
            ]
        );
    }
}
