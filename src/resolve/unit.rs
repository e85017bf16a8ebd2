//! The agent's nodes that become its systemd unit: what it runs, as whom,
//! where, with which environment and secrets, and how it restarts and stops.

use super::Resolver;
use super::agent::AgentDraft;
use crate::diagnostic::Diagnostic;
use crate::model::values::{check_account, check_program_path, check_remote_path};
use crate::model::{DEFAULT_RESTART_DELAY, Duration, Restart, Setting};
use crate::secret::{SecretRef, SecretSource, is_env_name};
use crate::source::Span;
use crate::syntax::{Node, list};

pub(super) fn description(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    let a = &mut d.agent;
    a.description = r.dec.arg_str(c, 0, "the description");
    if a.description.as_ref().is_some_and(|d| d.ends_with('\\')) {
        let span = c.entry_span(c.args().next().expect("an argument was decoded"));
        r.dec.error(unit_line_end(span, "the description"));
    }
}

pub(super) fn exec(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    d.have_exec = true;
    let Some(e) = r.dec.arg_str(c, 0, "the command") else {
        return;
    };
    let span = c.entry_span(c.args().next().expect("an argument was decoded"));
    let program = e.split_whitespace().next().unwrap_or("");
    if !program.starts_with('/') {
        r.dec.error(
            Diagnostic::error(span, "`exec` must start with an absolute path")
                .label("relative command")
                .help("systemd runs the command without a shell; write the full path, such as `/usr/bin/python3 /opt/x/run.py`"),
        );
    } else if let Err(hint) = check_program_path(program) {
        r.dec.error(
            Diagnostic::error(span, format!("bad program of `exec`: {hint}"))
                .label("invalid program path")
                .help("write the program's plain absolute path first, then its arguments"),
        );
    } else if e.ends_with('\\') {
        r.dec.error(unit_line_end(span, "`exec`"));
    }
    d.agent.exec = e;
}

pub(super) fn user(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    d.have_user = true;
    if let Some(u) = r.dec.arg_parsed(c, 0, "user name", |s| {
        check_account(s).map(|()| s.to_string())
    }) {
        d.agent.user = u;
    }
}

pub(super) fn group(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    d.agent.group = r.dec.arg_parsed(c, 0, "group name", |s| {
        check_account(s).map(|()| s.to_string())
    });
}

pub(super) fn workdir(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    if let Some(w) = r.dec.arg_parsed(c, 0, "workdir", |s| {
        check_remote_path(s).map(|()| s.to_string())
    }) {
        d.agent.workdir = w;
        d.agent.workdir_span = c.span();
    }
}

pub(super) fn env(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    let (Some(k), Some(v)) = (
        r.dec.arg_str(c, 0, "the variable name"),
        r.dec.arg_str(c, 1, "the value"),
    ) else {
        return;
    };
    if is_env_name(&k) {
        d.agent.env.insert(k, v);
    } else {
        r.dec.error(
            Diagnostic::error(
                c.span(),
                format!("`{k}` is not an environment variable name"),
            )
            .help("use letters, digits and `_`, not starting with a digit"),
        );
    }
}

pub(super) fn secret(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    let name = r.dec.arg_str(c, 0, "the secret name");
    let source = r.dec.prop_parsed(c, "from", SecretSource::parse);
    if c.prop("from").is_none() {
        r.dec.error(
            Diagnostic::error(c.span(), "`secret` needs `from`")
                .label("missing source")
                .help("write `secret \"NAME\" from=\"env:VAR\"` (or file:PATH, cmd:COMMAND, age:PATH)"),
        );
    }
    let (Some(name), Some(source)) = (name, source) else {
        return;
    };
    if is_env_name(&name) {
        d.agent.secrets.push(SecretRef {
            name,
            source,
            span: c.span(),
        });
    } else {
        r.dec.error(
            Diagnostic::error(
                c.span(),
                format!("secret name `{name}` is not an environment variable name"),
            )
            .help("secrets reach the agent as environment variables: use letters, digits and `_`"),
        );
    }
}

pub(super) fn restart(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    if let Some(policy) = r.dec.arg_parsed(c, 0, "restart policy", parse_restart) {
        let delay = r
            .dec
            .prop_parsed(c, "delay", Duration::parse)
            .unwrap_or(DEFAULT_RESTART_DELAY);
        d.agent.restart = Restart {
            policy,
            delay,
            span: c.span(),
        };
    }
}

pub(super) fn kill_mode(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    if let Some(m) = r.dec.arg_parsed(c, 0, "kill mode", parse_kill_mode) {
        d.agent.kill_mode = Setting {
            value: m,
            span: c.span(),
        };
    }
}

pub(super) fn timeout_stop(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    if let Some(t) = r.dec.arg_parsed(c, 0, "duration", Duration::parse) {
        d.agent.timeout_stop = t;
    }
}

/// `alert "CHANNEL"`: where the unit's failures go.
pub(super) fn alert(r: &mut Resolver<'_, '_>, c: Node<'_>, d: &mut AgentDraft) {
    if let Some(ch) = r.dec.arg_str(c, 0, "the channel") {
        d.agent.alert = Some(Setting {
            value: ch,
            span: c.span(),
        });
    }
}

/// A value that would end a unit-file line with `\`, which systemd reads as
/// "the line continues", swallowing the next setting.
fn unit_line_end(span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(span, format!("{what} ends with a backslash"))
        .label("continues the unit-file line")
        .help("systemd joins a line ending in `\\` with the next one, so the next setting would be lost; remove the trailing backslash")
}

fn parse_restart(s: &str) -> Result<String, String> {
    const OK: &[&str] = &[
        "no",
        "on-success",
        "on-failure",
        "on-abnormal",
        "on-watchdog",
        "on-abort",
        "always",
    ];
    if OK.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a systemd restart policy; use one of {}",
            list(OK)
        ))
    }
}

fn parse_kill_mode(s: &str) -> Result<String, String> {
    const OK: &[&str] = &["control-group", "mixed", "process", "none"];
    if OK.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a systemd kill mode; use one of {}",
            list(OK)
        ))
    }
}
