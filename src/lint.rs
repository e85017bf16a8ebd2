//! The ops checklist: what every agent needs to run unattended, checked on the
//! typed fleet. A missing item is an error at the agent, unless the KDL waives
//! it with a reason (`waive "heartbeat" reason="…"`), which is a warning.
//!
//! Beside the checklist, two checks that need the whole host: declared
//! files may not take a path provision generates (or shares between
//! agents), and an agent that can read the journal is pointed out.
//!
//! Pure: reads a [`Fleet`], writes diagnostics.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Agent, Fleet, Host};
use crate::onhost;
use crate::source::Span;

/// The checklist items, as `waive` names them.
pub const ITEMS: &[&str] = &[
    "kill-mode",
    "restart",
    "auth-check",
    "rotation",
    "heartbeat",
    "journald",
    "workstate",
    "failure-modes",
    "alert",
];

/// Checks every agent of every host.
pub fn lint(fleet: &Fleet, diags: &mut Diagnostics) {
    for host in &fleet.hosts {
        reserved(host, diags);
        journal_readers(host, diags);
        for agent in &host.agents {
            for (item, span, message, help) in missing(host, agent) {
                match agent.waivers.iter().find(|w| w.item == item) {
                    Some(w) => diags.push(
                        Diagnostic::warning(
                            w.span,
                            format!("agent `{}` waives `{item}`: {}", agent.name, w.reason),
                        )
                        .label("waived")
                        .help(format!("without the waiver: {message}")),
                    ),
                    None => diags.push(
                        Diagnostic::error(span, format!("agent `{}`: {message}", agent.name))
                            .label(format!("checklist: {item}"))
                            .help(format!(
                                "{help}; or waive it: `waive \"{item}\" reason=\"…\"`"
                            )),
                    ),
                }
            }
            for w in &agent.waivers {
                if !missing(host, agent).iter().any(|m| m.0 == w.item) {
                    diags.push(
                        Diagnostic::warning(
                            w.span,
                            format!(
                                "agent `{}` waives `{}`, which it does not need to",
                                agent.name, w.item
                            ),
                        )
                        .label("unused waiver")
                        .help("remove the waiver"),
                    );
                }
            }
        }
    }
}

type Finding = (&'static str, Span, String, String);

/// The checklist items an agent lacks: (item, where, what, how to fix).
fn missing(host: &Host, a: &Agent) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    if a.kill_mode.value != "control-group" {
        out.push((
            "kill-mode",
            a.kill_mode.span,
            format!("KillMode={} can leave the agent's child processes running after a stop", a.kill_mode.value),
            "use `kill-mode \"control-group\"` (the default) so stop and restart end every process the agent started".into(),
        ));
    }
    let r = &a.restart;
    if !matches!(r.policy.as_str(), "on-failure" | "on-abnormal" | "always") || r.delay.secs == 0 {
        out.push((
            "restart",
            r.span,
            format!(
                "Restart={} with RestartSec={} does not bring a crashed agent back with a pause",
                r.policy, r.delay
            ),
            "use `restart \"on-failure\" delay=\"10s\"` (the default)".into(),
        ));
    }
    if !a.auths.iter().any(|x| x.check.is_some()) {
        out.push((
            "auth-check",
            a.span,
            "no auth check runs before start, so an expired token degrades the agent silently"
                .into(),
            "add `auth \"NAME\" check=\"command that exits 0 when the credential works\"`".into(),
        ));
    }
    for x in &a.auths {
        if x.check.is_none() {
            out.push((
                "auth-check",
                x.span,
                format!("auth `{}` has no `check`", x.name),
                format!("add `check=\"…\"` to `auth \"{}\"`", x.name),
            ));
        }
        // A watched expiry is the other way a credential does not lapse
        // unnoticed: the host alerts before it, for what cannot be rotated
        // by a command.
        if x.rotate.is_none() && x.expiry.is_none() {
            out.push((
                "rotation",
                x.span,
                format!("auth `{}` has neither a rotation nor a known expiry, so its token expires unnoticed", x.name),
                format!("add a block to `auth \"{}\"`: `{{ rotate every=\"45d\" run=\"…\" notify=\"ops\" }}`, or say when it expires: `expires=\"command printing the date\"` or `expires-at=\"2027-02-01\"`", x.name),
            ));
        }
    }
    if a.heartbeat.is_none() {
        out.push((
            "heartbeat",
            a.span,
            "no heartbeat, so a hung agent looks healthy".into(),
            "add `heartbeat every=\"30m\" grace=\"5m\" alert=\"ops\"` and touch $PROVISION_HEARTBEAT from the agent".into(),
        ));
    }
    if host.journald.as_ref().is_none_or(|j| j.max_use.is_none()) {
        out.push((
            "journald",
            host.journald.as_ref().map_or(a.span, |j| j.span),
            format!(
                "host `{}` does not cap the journal, so logs can fill the disk",
                host.name
            ),
            "add `journald max-use=\"2G\" keep-free=\"500M\" retention=\"1week\"` to the host"
                .into(),
        ));
    }
    if !a.workstate.value {
        out.push((
            "workstate",
            a.workstate.span,
            "AGENTS.md lacks the WORKSTATE.md checkpoint protocol, so a restart loses the agent's working context".into(),
            "remove `workstate #false`".into(),
        ));
    }
    if a.failure_modes.is_empty() {
        out.push((
            "failure-modes",
            a.span,
            "no failure modes documented for its tools".into(),
            "add `failure-mode \"what goes wrong\" \"what to do\"` for each tool".into(),
        ));
    }
    if host.alerts.is_empty() {
        out.push((
            "alert",
            a.span,
            format!(
                "host `{}` has no alert channel, so failures reach no one",
                host.name
            ),
            "declare one on the host: `alert \"ops\" webhook=\"https://…\"`".into(),
        ));
    }
    out
}

/// Directories whose whole content is provision's: nothing declared may go
/// inside them.
const TREES: &[(&str, &str)] = &[
    (
        onhost::CONFIG_DIR,
        "provision's configuration (alert channels, secrets files)",
    ),
    (onhost::LIB_DIR, "provision's scripts"),
    (
        onhost::AGENT_STATE_ROOT,
        "the agents' heartbeats and rotation stamps",
    ),
];

/// Every file provision writes on this host (or would, once the node that
/// asks for it is added), with what it is. Kept in step with `render` by
/// `tests/limits.rs`, which renders hosts and looks every file up here.
pub fn generated_files(host: &Host) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut add = |path: String, what: String| {
        out.entry(path).or_insert(what);
    };
    add(
        onhost::unit_path(onhost::ALERT_UNIT),
        "the alert unit".into(),
    );
    add(
        onhost::unit_path(onhost::BOOT_UNIT),
        "the unit that settles an interrupted switch at boot".into(),
    );
    add(
        onhost::SYSUSERS_CONF.into(),
        "the sysusers.d configuration of the host's users".into(),
    );
    add(
        onhost::TMPFILES_CONF.into(),
        "the tmpfiles.d configuration of the host's directories".into(),
    );
    add(
        onhost::JOURNALD_DROPIN.into(),
        "the journald drop-in with the journal caps".into(),
    );
    for a in &host.agents {
        let n = &a.name;
        add(
            onhost::unit_path(&onhost::agent_unit(n)),
            format!("the unit of agent `{n}`"),
        );
        for unit in [onhost::service, onhost::timer] {
            add(
                onhost::unit_path(&unit(&onhost::heartbeat_stem(n))),
                format!("the heartbeat check of agent `{n}`"),
            );
            for x in &a.auths {
                add(
                    onhost::unit_path(&unit(&onhost::rotate_stem(n, &x.name))),
                    format!("the `{}` rotation of agent `{n}`", x.name),
                );
                add(
                    onhost::unit_path(&unit(&onhost::expiry_stem(n, &x.name))),
                    format!("the `{}` expiry check of agent `{n}`", x.name),
                );
            }
        }
        add(
            onhost::agents_md(&a.workdir),
            format!("the AGENTS.md of agent `{n}`"),
        );
    }
    out
}

/// Directories provision creates: the agents' working and state directories.
fn generated_dirs(host: &Host) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in &host.agents {
        out.entry(a.workdir.clone())
            .or_insert_with(|| format!("the working directory of agent `{}`", a.name));
        out.entry(onhost::agent_state_dir(&a.name))
            .or_insert_with(|| format!("the state directory of agent `{}`", a.name));
    }
    out
}

/// The tree of [`TREES`] a path is in, when it is in one.
pub fn reserved_tree(path: &str) -> Option<(&'static str, &'static str)> {
    TREES
        .iter()
        .copied()
        .find(|(dir, _)| path == *dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
}

/// Declared files and directories against what provision generates, and
/// agents' working directories against each other: a collision would have
/// two owners for one path, and whichever wrote last would win silently.
fn reserved(host: &Host, diags: &mut Diagnostics) {
    let files = generated_files(host);
    let dirs = generated_dirs(host);
    // Each directory provision writes into, with one file it writes there:
    // a declared *file* at such a path would make that write fail.
    let mut parents: BTreeMap<&str, &str> = BTreeMap::new();
    for p in files.keys().chain(dirs.keys()) {
        let mut rest = p.as_str();
        while let Some(i) = rest.rfind('/').filter(|&i| i > 0) {
            rest = &rest[..i];
            if parents.insert(rest, p.as_str()).is_some() {
                break;
            }
        }
    }
    let declared = host
        .files
        .files
        .iter()
        .map(|f| (&f.path, f.span, "file"))
        .chain(host.files.dirs.iter().map(|d| (&d.path, d.span, "dir")))
        .chain(host.agents.iter().flat_map(|a| {
            a.files
                .files
                .iter()
                .map(|f| (&f.path, f.span, "file"))
                .chain(a.files.dirs.iter().map(|d| (&d.path, d.span, "dir")))
        }));
    for (path, span, kind) in declared {
        let problem = if let Some(what) = files.get(path) {
            Some((
                format!("`{path}` is generated by provision: {what}"),
                "pick another path; to change what provision writes there, change the KDL that asks for it or override the template (`modules/NAME/templates/`)".to_string(),
            ))
        } else if let Some(what) = dirs.get(path) {
            Some((
                format!("`{path}` is created by provision: {what}"),
                "remove this node; provision creates the directory for the agent (owner the agent's user, mode 0750)".to_string(),
            ))
        } else if let Some((tree, what)) = reserved_tree(path) {
            Some((
                format!("`{path}` is inside `{tree}`, which holds {what}"),
                format!("pick a path outside `{tree}`: provision owns everything in it"),
            ))
        } else {
            parents
                .get(path.as_str())
                .filter(|_| kind == "file")
                .map(|child| {
                    (
                        format!("`{path}` is a directory provision writes into (`{child}`)"),
                        "a file here would stop provision from writing into it; pick another path"
                            .to_string(),
                    )
                })
        };
        if let Some((message, help)) = problem {
            diags.push(
                Diagnostic::error(span, message)
                    .label("reserved path")
                    .help(help),
            );
        }
    }
    let mut workdirs: BTreeMap<&str, &Agent> = BTreeMap::new();
    for a in &host.agents {
        if let Some((tree, what)) = reserved_tree(&a.workdir) {
            diags.push(
                Diagnostic::error(
                    a.workdir_span,
                    format!("the working directory `{}` of agent `{}` is inside `{tree}`, which holds {what}", a.workdir, a.name),
                )
                .label("reserved path")
                .help(format!("pick a working directory outside `{tree}`, such as `/var/lib/agents/{}`", a.name)),
            );
        }
        if let Some(first) = workdirs.insert(&a.workdir, a) {
            diags.push(
                Diagnostic::error(
                    a.workdir_span,
                    format!(
                        "agents `{}` and `{}` share the working directory `{}`",
                        first.name, a.name, a.workdir
                    ),
                )
                .label("shared working directory")
                .related(first.workdir_span, format!("agent `{}` works here", first.name))
                .help(format!(
                    "each agent needs its own: its AGENTS.md and WORKSTATE.md live there; give one of them another `workdir`, such as `/var/lib/agents/{}`",
                    a.name
                )),
            );
            workdirs.insert(&first.workdir, first);
        }
    }
}

/// Groups whose members read the whole system journal.
const JOURNAL_GROUPS: &[&str] = &["systemd-journal", "adm", "wheel"];

/// Warns about agents whose user can read the journal: the auth checks, the
/// rotations and every other agent log there, so such an agent sees what is
/// meant for the operator.
fn journal_readers(host: &Host, diags: &mut Diagnostics) {
    for a in &host.agents {
        // `host.users` is sorted by name (resolve sorts it).
        let user = host
            .users
            .binary_search_by(|u| u.name.as_str().cmp(&a.user))
            .ok()
            .map(|i| &host.users[i]);
        let groups = user
            .into_iter()
            .flat_map(|u| u.groups.iter().chain(&u.group))
            .chain(&a.group);
        let Some(group) = groups
            .into_iter()
            .find(|g| JOURNAL_GROUPS.contains(&g.as_str()))
        else {
            continue;
        };
        let mut d = Diagnostic::warning(
            a.span,
            format!(
                "agent `{}` runs as `{}`, who can read the host's journal (group `{group}`)",
                a.name, a.user
            ),
        )
        .label("reads the journal")
        .help(format!(
            "auth checks, rotations and the other agents log to the journal, so this agent can read their output; run it as a user outside {}",
            crate::syntax::list(JOURNAL_GROUPS)
        ));
        if let Some(u) = user.filter(|u| u.declared) {
            d = d.related(u.span, "the user is declared here");
        }
        diags.push(d);
    }
}
