//! An agent: the nodes its block holds, and what it gets without them.

use std::collections::BTreeMap;

use super::host::HostDraft;
use super::schema::{Block, NodeKind};
use super::{Resolver, auth, files, heartbeat, runbook, unit};
use crate::diagnostic::Diagnostic;
use crate::model::values::check_name;
use crate::model::{
    Agent, DEFAULT_KILL_MODE, DEFAULT_RESTART_DELAY, DEFAULT_RESTART_POLICY, DEFAULT_TIMEOUT_STOP,
    DEFAULT_WORKDIR_PARENT, DEFAULT_WORKSTATE, Files, Restart, Setting,
};
use crate::syntax::Node;

/// The nodes of an agent's block.
pub(super) static BLOCK: Block<AgentDraft> = Block {
    place: "an agent",
    once: &[
        NodeKind {
            name: "description",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`description \"what it does\"`",
            decode: unit::description,
        },
        NodeKind {
            name: "exec",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`exec \"/opt/agent/bin/run --flag\"`",
            decode: unit::exec,
        },
        NodeKind {
            name: "user",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`user \"agent\"`",
            decode: unit::user,
        },
        NodeKind {
            name: "group",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`group \"agents\"`",
            decode: unit::group,
        },
        NodeKind {
            name: "workdir",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`workdir \"/srv/agents/NAME\"`",
            decode: unit::workdir,
        },
        NodeKind {
            name: "heartbeat",
            args: 0..=0,
            props: &[
                "every",
                "grace",
                "active-hours",
                "alert",
                "probe",
                "verify-timeout",
                "verify-stable",
            ],
            children: false,
            usage: heartbeat::USAGE,
            decode: heartbeat::heartbeat,
        },
        NodeKind {
            name: "restart",
            args: 1..=1,
            props: &["delay"],
            children: false,
            usage: "`restart \"on-failure\" delay=\"10s\"`",
            decode: unit::restart,
        },
        NodeKind {
            name: "kill-mode",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`kill-mode \"control-group\"`",
            decode: unit::kill_mode,
        },
        NodeKind {
            name: "timeout-stop",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`timeout-stop \"30s\"`",
            decode: unit::timeout_stop,
        },
        NodeKind {
            name: "alert",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`alert \"CHANNEL\"` (a channel declared on the host)",
            decode: unit::alert,
        },
        NodeKind {
            name: "workstate",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`workstate #true`",
            decode: runbook::workstate,
        },
    ],
    named: &[
        NodeKind {
            name: "env",
            args: 2..=2,
            props: &[],
            children: false,
            usage: "`env \"NAME\" \"value\"`",
            decode: unit::env,
        },
        NodeKind {
            name: "secret",
            args: 1..=1,
            props: &["from"],
            children: false,
            usage: "`secret \"NAME\" from=\"env:VAR\"` (or file:, cmd:, age:)",
            decode: unit::secret,
        },
        NodeKind {
            name: "auth",
            args: 1..=1,
            props: &["check", "expires", "expires-at", "warn-before"],
            children: true,
            usage: "`auth \"NAME\" check=\"command that exits 0 when logged in\" expires=\"command printing the expiry\" warn-before=\"7d\" { rotate every=\"45d\" run=\"…\" }`",
            decode: auth::auth,
        },
        NodeKind {
            name: "failure-mode",
            args: 2..=2,
            props: &["tool"],
            children: false,
            usage: "`failure-mode \"what goes wrong\" \"what to do\" tool=\"mog\"`",
            decode: runbook::failure_mode,
        },
        NodeKind {
            name: "waive",
            args: 1..=1,
            props: &["reason"],
            children: false,
            usage: "`waive \"heartbeat\" reason=\"why\"`",
            decode: runbook::waive,
        },
        NodeKind {
            name: "note",
            args: 1..=1,
            props: &[],
            children: false,
            usage: "`note \"text for AGENTS.md\"`",
            decode: runbook::note,
        },
        files::file(),
        files::dir(),
    ],
};

/// An agent while its nodes are decoded.
pub(super) struct AgentDraft {
    pub(super) agent: Agent,
    /// `exec` was written. Present counts: a value that failed to decode is
    /// reported as such, not also as a missing `exec`.
    pub(super) have_exec: bool,
    /// `user` was written (counted like `exec`).
    pub(super) have_user: bool,
}

impl files::HoldsFiles for AgentDraft {
    fn files(&mut self) -> &mut Files {
        &mut self.agent.files
    }
}

/// `agent "NAME" { … }` in a host.
pub(super) fn agent<'a>(r: &mut Resolver<'a, '_>, n: Node<'a>, h: &mut HostDraft) {
    let Some(name) = r.dec.arg_parsed(n, 0, "agent name", |s| {
        check_name(s).map(|()| s.to_string())
    }) else {
        return;
    };
    let mut used = Vec::new();
    r.broken_use = false;
    let children = r.expand(&BLOCK, n.children(), &mut Vec::new(), &mut used);
    let broken_use = r.broken_use;
    let span = n.span();
    let mut draft = AgentDraft {
        agent: Agent {
            workdir: format!("{DEFAULT_WORKDIR_PARENT}/{name}"),
            workdir_span: span,
            name,
            span,
            description: None,
            exec: String::new(),
            user: String::new(),
            group: None,
            env: BTreeMap::new(),
            secrets: Vec::new(),
            auths: Vec::new(),
            heartbeat: None,
            failure_modes: Vec::new(),
            restart: Restart {
                policy: DEFAULT_RESTART_POLICY.into(),
                delay: DEFAULT_RESTART_DELAY,
                span,
            },
            kill_mode: Setting {
                value: DEFAULT_KILL_MODE.to_string(),
                span,
            },
            timeout_stop: DEFAULT_TIMEOUT_STOP,
            alert: None,
            workstate: Setting {
                value: DEFAULT_WORKSTATE,
                span,
            },
            waivers: Vec::new(),
            notes: Vec::new(),
            files: Files::default(),
            modules: used,
        },
        have_exec: false,
        have_user: false,
    };
    r.decode_all(&BLOCK, children, &mut draft);
    let AgentDraft {
        agent: a,
        have_exec,
        have_user,
    } = draft;
    if !have_exec && !broken_use {
        r.dec.error(
            Diagnostic::error(n.span(), format!("agent `{}` has no `exec`", a.name))
                .label("missing `exec`")
                .help("add `exec \"/opt/…/run\"`: the command the agent's unit runs"),
        );
    }
    if !have_user && !broken_use {
        r.dec.error(
            Diagnostic::error(n.span(), format!("agent `{}` has no `user`", a.name))
                .label("missing `user`")
                .help("add `user \"agent\"` (created as a system user when the host lacks it), or `use` a module that sets one"),
        );
    }
    h.host.agents.push(a);
}
