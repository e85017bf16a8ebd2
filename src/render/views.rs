//! What templates see: the model flattened into strings that are already
//! escaped for where they land (systemd unit files, sh scripts, env files).
//! Escaping lives here so that no template can forget it.

use serde::Serialize;

use crate::model::{Agent, ExpirySource, Host, Journald};
use crate::onhost;

use crate::script::sh_quote;

/// A value quoted for a systemd `Environment=` line: `"KEY=value"`. `%` is a
/// specifier in unit files, so it is doubled.
fn unit_env(key: &str, value: &str) -> String {
    let mut out = String::from("\"");
    for c in format!("{key}={value}").chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value quoted for a systemd `EnvironmentFile=`: double quotes, with the
/// characters systemd's parser treats specially escaped; newlines stay literal.
pub fn env_file_quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A command line for `ExecStart=`: `%` doubled (specifiers); `$VAR` is kept,
/// systemd expands it from the unit's environment.
fn unit_command(s: &str) -> String {
    s.replace('%', "%%")
}

/// A plain unit-file value (`Description=`, `WorkingDirectory=`,
/// `Documentation=`): systemd expands `%` specifiers in them, so `%` is
/// doubled. Control characters and a trailing backslash never get here:
/// `check` refuses them.
fn unit_value(s: &str) -> String {
    s.replace('%', "%%")
}

/// One argument of an `ExecStart=` line, passed through exactly: double
/// quotes (systemd unquotes them and undoes `\\` and `\"`), `%` doubled
/// (specifiers) and `$` doubled (systemd would expand `$VAR` itself).
fn unit_arg(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A field of a tmpfiles.d or sysusers.d line: both expand `%` specifiers
/// in paths, homes and shells. Whitespace, quotes and backslashes (which
/// they would split or unquote) are refused by `check`.
fn config_field(s: &str) -> String {
    s.replace('%', "%%")
}

/// The host, for templates.
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    name: String,
    name_sh: String,
    tags: Vec<String>,
}

impl HostView {
    /// Flattens a host.
    pub fn new(h: &Host) -> Self {
        Self {
            name: h.name.clone(),
            name_sh: sh_quote(&h.name),
            tags: h.tags.clone(),
        }
    }
}

/// An alert channel's settings file.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    pub(super) name: String,
    pub(super) kind: &'static str,
    pub(super) repeat_secs: u64,
    /// `KEY='value'` lines.
    pub(super) settings: Vec<String>,
}

/// The journal caps.
#[derive(Debug, Clone, Serialize)]
pub struct JournaldView {
    max_use: Option<String>,
    keep_free: Option<String>,
    max_file_size: Option<String>,
    retention: Option<String>,
}

impl JournaldView {
    /// Formats the caps as journald.conf reads them.
    pub fn new(j: &Journald) -> Self {
        Self {
            max_use: j.max_use.map(|s| s.to_string()),
            keep_free: j.keep_free.map(|s| s.to_string()),
            max_file_size: j.max_file_size.map(|s| s.to_string()),
            retention: j.retention.map(|d| d.to_string().replace(' ', "")),
        }
    }
}

/// An auth, for templates.
#[derive(Debug, Clone, Serialize)]
pub struct AuthView {
    name: String,
    check_sh: Option<String>,
    pub(super) rotate: Option<RotateView>,
    /// How its expiry is learned, when it is watched.
    pub(super) expiry: Option<ExpiryView>,
}

/// A watched expiry, for templates: the arguments of `expiry-check`.
#[derive(Debug, Clone, Serialize)]
pub struct ExpiryView {
    warn_before: String,
    warn_secs: u64,
    /// `at` (a known date) or `run` (a command).
    how: &'static str,
    /// The date (epoch seconds) or the command, as one `ExecStart=` argument.
    source_arg: String,
    /// The same, as one sh word.
    source_sh: String,
    /// Unit name without suffix.
    pub(super) unit: String,
}

/// A rotation schedule, for templates.
#[derive(Debug, Clone, Serialize)]
pub struct RotateView {
    every: String,
    every_secs: u64,
    run_sh: String,
    notify: Option<String>,
    /// Unit name without suffix.
    pub(super) unit: String,
    /// Path of the rotation script.
    pub(super) script: String,
}

#[derive(Debug, Clone, Serialize)]
struct HeartbeatView {
    every: String,
    grace: String,
    max_age_secs: u64,
    check_every_secs: u64,
    active_hours: String,
    window: Option<String>,
    probe_arg: Option<String>,
    probe_plain: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct FailureView {
    tool: String,
    when: String,
    then: String,
}

#[derive(Debug, Clone, Serialize)]
struct SecretView {
    name: String,
    /// `scheme:reference`, never the value.
    source: String,
}

/// An agent, for templates.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    name: String,
    description: String,
    /// The description for `Description=` (`%` doubled).
    description_unit: String,
    description_given: bool,
    /// Unit name with suffix.
    pub(super) unit: String,
    user: String,
    /// Group it runs as.
    pub(super) group: String,
    workdir: String,
    /// The working directory for unit files (`%` doubled).
    workdir_unit: String,
    state_dir: String,
    exec: String,
    exec_plain: String,
    environment: Vec<String>,
    /// The secrets file, when the agent has secrets.
    pub(super) env_file: Option<String>,
    /// The auth-check script, when the agent has checks.
    pub(super) auth_check: Option<String>,
    /// Auths.
    pub(super) auths: Vec<AuthView>,
    restart: String,
    restart_sec: u64,
    restart_delay: String,
    start_limit_interval: u64,
    kill_mode: String,
    timeout_stop_sec: u64,
    heartbeat_file: String,
    heartbeat: Option<HeartbeatView>,
    failure_modes: Vec<FailureView>,
    notes: Vec<String>,
    workstate: bool,
    secrets: Vec<SecretView>,
}

impl AgentView {
    /// Flattens an agent.
    pub fn new(host: &Host, a: &Agent) -> Self {
        let group = a
            .group
            .clone()
            .unwrap_or_else(|| primary_group(host, &a.user));
        let state_dir = onhost::agent_state_dir(&a.name);
        let heartbeat_file = onhost::heartbeat_file(&a.name);
        let mut environment = vec![
            unit_env("PROVISION_AGENT", &a.name),
            unit_env("PROVISION_HEARTBEAT", &heartbeat_file),
            unit_env("PROVISION_WORKSTATE", &onhost::workstate_md(&a.workdir)),
        ];
        environment.extend(a.env.iter().map(|(k, v)| unit_env(k, v)));
        let auths = a
            .auths
            .iter()
            .map(|x| AuthView {
                name: x.name.clone(),
                check_sh: x.check.as_deref().map(sh_quote),
                rotate: x.rotate.as_ref().map(|r| RotateView {
                    every: r.every.to_string(),
                    every_secs: r.every.secs,
                    run_sh: sh_quote(&r.run),
                    notify: r.notify.as_ref().map(|n| n.value.clone()),
                    unit: onhost::rotate_stem(&a.name, &x.name),
                    script: onhost::rotate_script(&a.name, &x.name),
                }),
                expiry: x.expiry.as_ref().map(|e| {
                    let (how, source) = match &e.source {
                        ExpirySource::At(at) => ("at", at.to_string()),
                        ExpirySource::Command(c) => ("run", c.clone()),
                    };
                    ExpiryView {
                        warn_before: e.warn_before.to_string(),
                        warn_secs: e.warn_before.secs,
                        how,
                        source_arg: unit_arg(&source),
                        source_sh: sh_quote(&source),
                        unit: onhost::expiry_stem(&a.name, &x.name),
                    }
                }),
            })
            .collect();
        let heartbeat = a.heartbeat.as_ref().map(|h| HeartbeatView {
            every: h.every.to_string(),
            grace: h.grace.to_string(),
            max_age_secs: h.every.secs + h.grace.secs,
            // Check often enough to alert within the grace period, never more than once a minute.
            check_every_secs: h.grace.secs.clamp(60, 3600),
            active_hours: h
                .active_hours
                .map_or_else(|| "always".into(), |w| w.to_string()),
            window: h.active_hours.map(|w| w.to_string()),
            probe_arg: h.probe.as_deref().map(unit_arg),
            probe_plain: h.probe.clone(),
        });
        let start_limit_interval = (a.restart.delay.secs * 10).max(60);
        let description = a
            .description
            .clone()
            .unwrap_or_else(|| format!("provision agent {}", a.name));
        Self {
            name: a.name.clone(),
            description_unit: unit_value(&description),
            description,
            description_given: a.description.is_some(),
            unit: onhost::agent_unit(&a.name),
            user: a.user.clone(),
            group,
            workdir: a.workdir.clone(),
            workdir_unit: unit_value(&a.workdir),
            state_dir,
            exec: unit_command(&a.exec),
            exec_plain: a.exec.clone(),
            environment,
            env_file: (!a.secrets.is_empty()).then(|| onhost::agent_env_file(&a.name)),
            auth_check: a
                .auths
                .iter()
                .any(|x| x.check.is_some())
                .then(|| onhost::auth_check(&a.name)),
            auths,
            restart: a.restart.policy.clone(),
            restart_sec: a.restart.delay.secs,
            restart_delay: a.restart.delay.to_string(),
            start_limit_interval,
            kill_mode: a.kill_mode.value.clone(),
            timeout_stop_sec: a.timeout_stop.secs,
            heartbeat_file,
            heartbeat,
            failure_modes: a
                .failure_modes
                .iter()
                .map(|f| FailureView {
                    tool: f.tool.as_deref().unwrap_or("any").replace('|', "\\|"),
                    when: f.when.replace('|', "\\|"),
                    then: f.then.replace('|', "\\|"),
                })
                .collect(),
            notes: a.notes.clone(),
            workstate: a.workstate.value,
            secrets: a
                .secrets
                .iter()
                .map(|s| SecretView {
                    name: s.name.clone(),
                    source: s.source.to_string(),
                })
                .collect(),
        }
    }
}

/// The primary group of a user: declared, or the group of the same name
/// that sysusers creates. `host.users` is sorted by name (resolve sorts it),
/// so a host with many agents does not search it linearly for each.
fn primary_group(host: &Host, user: &str) -> String {
    host.users
        .binary_search_by(|u| u.name.as_str().cmp(user))
        .ok()
        .and_then(|i| host.users[i].group.clone())
        .unwrap_or_else(|| user.to_string())
}

/// sysusers.d lines for the host's groups and users.
pub fn sysusers_lines(host: &Host) -> Vec<String> {
    let mut out = Vec::new();
    for g in &host.groups {
        out.push(format!(
            "g {} {}",
            g.name,
            g.gid.map_or("-".into(), |v| v.to_string())
        ));
    }
    for u in &host.users {
        if let Some(g) = &u.group
            && !host.groups.iter().any(|x| &x.name == g)
        {
            out.push(format!("g {g} -"));
        }
    }
    for u in &host.users {
        let id = match (&u.uid, &u.group) {
            (Some(uid), Some(g)) => format!("{uid}:{g}"),
            (Some(uid), None) => uid.to_string(),
            (None, Some(g)) => format!("-:{g}"),
            (None, None) => "-".into(),
        };
        let gecos = if u.declared {
            format!("\"provision user {}\"", u.name)
        } else {
            format!("\"provision agent user {}\"", u.name)
        };
        let home = u.home.as_deref().map_or_else(|| "-".into(), config_field);
        let shell = config_field(u.shell.as_deref().unwrap_or("/usr/sbin/nologin"));
        out.push(format!("u {} {id} {gecos} {home} {shell}", u.name));
        for g in &u.groups {
            out.push(format!("m {} {g}", u.name));
        }
    }
    out
}

/// tmpfiles.d lines: agents' working and state directories, then declared directories.
pub fn tmpfiles_lines(host: &Host) -> Vec<String> {
    let mut out = Vec::new();
    for a in &host.agents {
        let group = a
            .group
            .clone()
            .unwrap_or_else(|| primary_group(host, &a.user));
        out.push(format!(
            "d {} 0750 {} {group} -",
            config_field(&a.workdir),
            a.user
        ));
        out.push(format!(
            "d {} 0750 {} {group} -",
            config_field(&onhost::agent_state_dir(&a.name)),
            a.user
        ));
    }
    let dirs = host
        .files
        .dirs
        .iter()
        .chain(host.agents.iter().flat_map(|a| a.files.dirs.iter()));
    for d in dirs {
        out.push(format!(
            "d {} {} {} {} -",
            config_field(&d.path),
            d.perms.mode,
            d.perms.owner,
            d.perms.group
        ));
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(unit_env("A", "x \"y\" 50%"), r#""A=x \"y\" 50%%""#);
        assert_eq!(env_file_quote("a$b\"c\\"), r#""a\$b\"c\\""#);
        assert_eq!(unit_command("/bin/x --rate 5%"), "/bin/x --rate 5%%");
        assert_eq!(unit_value("50% done"), "50%% done");
        assert_eq!(
            unit_arg(r#"curl -s "$URL" | grep '100%' \ x"#),
            r#""curl -s \"$$URL\" | grep '100%%' \\ x""#
        );
        assert_eq!(config_field("/srv/100%"), "/srv/100%%");
    }
}
