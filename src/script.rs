//! The programs provision runs on hosts (every one of them, from
//! `src/script/`), how values are quoted for them, and the apply request for
//! one host: the fixed session program (`script/apply.sh`), a header of
//! shell-quoted parameters, and its input: the switch job's operations, the
//! checks against a stale plan, the record of the new generation, and the
//! contents the host's store lacks. Pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::content_id::ContentId;
use crate::model::Mode;
use crate::observed::{Observed, PathState};
use crate::plan::{Action, HostPlan};
use crate::record::{Record, Target};

// Every program provision runs on a host is a file under `src/script/`,
// included here and nowhere else, so that `tests/scripts.rs` parses and
// shellchecks each exactly as it is sent. All but the test alert and the
// confirmation start with the shared library (`lib.sh`): a fixed PATH, a clean environment and
// the primitives for touching files in directories others may write.

/// The probe: a read-only look at the host (see `src/script/probe.sh`).
pub const PROBE_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/probe.sh")
);
/// The session program (see `src/script/apply.sh`).
pub const APPLY_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/apply.sh")
);
/// The switch job (see `src/script/switch.sh`).
pub const SWITCH_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/switch.sh")
);
/// Lists the host's generations (see `src/script/generations.sh`).
pub const GENERATIONS_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/generations.sh")
);
/// The verification program (see `src/script/verify.sh`).
pub const VERIFY_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/verify.sh")
);
/// The status program (see `src/script/status.sh`).
pub const STATUS_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/status.sh")
);
/// Sends a test alert through each channel its header names (see
/// `src/script/test-alert.sh`). It runs only the host's alert script, by its
/// full path, so it goes without the library.
pub const TEST_ALERT_SH: &str = include_str!("script/test-alert.sh");
/// Sends a scheduled run's findings through a channel, once each
/// (`plan --alert`, `status --alert`).
pub const ALERT_FINDINGS_SH: &str = include_str!("script/alert-findings.sh");

/// Confirms the current generation: stops its dead-man switch (see
/// `src/script/confirm.sh`). Sent over a new connection once verification
/// passed, and over the existing one to disarm the dead-man switch. The
/// host's lock orders it against the dead-man switch's own switch back,
/// which holds the lock while it switches: a confirmation that comes after
/// that began says so and exits non-zero, printing why, instead of
/// confirming a generation the host is leaving. It needs nothing of the
/// library but the fixed PATH, its first line.
pub const CONFIRM_SH: &str = include_str!("script/confirm.sh");

/// The confirmation of `generation` (none: whichever is current, to disarm
/// the dead-man switch before switching back): [`CONFIRM_SH`] with its
/// header. A generation another run already confirmed confirms again.
pub fn confirm(generation: Option<u64>) -> String {
    let generation = generation.map(|n| n.to_string()).unwrap_or_default();
    format!("GEN={generation}\n{CONFIRM_SH}")
}

/// The facts `onboard` needs before it changes a fresh host (see
/// `src/script/onboard-facts.sh`). Read-only.
pub const ONBOARD_FACTS_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/onboard-facts.sh")
);
/// Waits for cloud-init and the dpkg lock, then installs missing packages
/// (see `src/script/onboard-prepare.sh`).
pub const ONBOARD_PREPARE_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/onboard-prepare.sh")
);
/// Creates the deploy user with its key and sudoers drop-in (see
/// `src/script/onboard-user.sh`).
pub const ONBOARD_USER_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/onboard-user.sh")
);

/// Records that onboard finished a step (see
/// `src/script/onboard-record.sh`).
pub const ONBOARD_RECORD_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/onboard-record.sh")
);

/// The record of onboard's step `step` (lower-case letters, digits, `-`).
pub fn onboard_record(step: &str) -> String {
    format!("STEP={}\n{ONBOARD_RECORD_SH}", sh_quote(step))
}

/// The preparation that installs `packages`, waiting up to `wait_secs` for
/// cloud-init and for the dpkg lock.
pub fn onboard_prepare(packages: &[&str], wait_secs: u64) -> String {
    format!(
        "PACKAGES={}\nWAIT={wait_secs}\n{ONBOARD_PREPARE_SH}",
        sh_quote(&packages.join(" "))
    )
}

/// The program that creates deploy user `user` (its public key on stdin).
pub fn onboard_user(user: &str) -> String {
    format!("DEPLOY_USER={}\n{ONBOARD_USER_SH}", sh_quote(user))
}

/// Hardens sshd behind a guard (see `src/script/onboard-harden.sh`).
pub const ONBOARD_HARDEN_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/onboard-harden.sh")
);

/// Confirms or undoes a guarded sshd hardening (see
/// `src/script/onboard-ssh-guard.sh`).
pub const ONBOARD_SSH_GUARD_SH: &str = concat!(
    include_str!("script/lib.sh"),
    include_str!("script/onboard-ssh-guard.sh")
);

/// The hardening that puts `drop_in` in place, expects `PermitRootLogin
/// root_login` to take effect, and arms a guard of `guard_secs` seconds.
pub fn onboard_harden(drop_in: &str, root_login: &str, guard_secs: u64) -> String {
    format!(
        "{}{ONBOARD_HARDEN_SH}",
        header(&[
            ("CONF", drop_in),
            ("ROOT", root_login),
            ("SECS", &guard_secs.to_string()),
        ])
    )
}

/// The guard program with `action` (`confirm` or `undo`).
pub fn onboard_ssh_guard(action: &str) -> String {
    format!("ACTION={}\n{ONBOARD_SSH_GUARD_SH}", sh_quote(action))
}

/// Every host program by name, for the tests that look at them all.
pub const PROGRAMS: &[(&str, &str)] = &[
    ("probe", PROBE_SH),
    ("apply", APPLY_SH),
    ("switch", SWITCH_SH),
    ("generations", GENERATIONS_SH),
    ("verify", VERIFY_SH),
    ("status", STATUS_SH),
    ("test-alert", TEST_ALERT_SH),
    ("alert-findings", ALERT_FINDINGS_SH),
    ("confirm", CONFIRM_SH),
    ("onboard-facts", ONBOARD_FACTS_SH),
    ("onboard-prepare", ONBOARD_PREPARE_SH),
    ("onboard-user", ONBOARD_USER_SH),
    ("onboard-record", ONBOARD_RECORD_SH),
    ("onboard-harden", ONBOARD_HARDEN_SH),
    ("onboard-ssh-guard", ONBOARD_SSH_GUARD_SH),
];

/// Exit status of the session when another run holds the host's lock.
pub const EXIT_LOCKED: i32 = 75;
/// Exit status of the session when the host changed since the plan.
pub const EXIT_STALE: i32 = 76;

/// A content the host's store lacks.
#[derive(Debug, Clone, Copy)]
pub struct Blob<'a> {
    /// The plain id of `bytes`, their hex sha256 (the host checks it).
    pub sha256: &'a ContentId,
    /// The content.
    pub bytes: &'a [u8],
}

/// What the request needs besides the plan.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    /// Who applies, for the lock holder (`user@machine`).
    pub who: &'a str,
    /// Seconds to wait for another run's lock; 0 refuses at once.
    pub lock_wait: u64,
    /// Generations to keep.
    pub keep: u32,
    /// The new generation's record (none for a rollback).
    pub record: Option<&'a Record>,
    /// Arm a dead-man switch: seconds to wait for the confirmation, and the
    /// operations that switch back to the previous generation.
    pub deadman: Option<(u64, String)>,
    /// This switch goes back in place of an armed dead-man switch: it goes
    /// ahead although the dead-man switch waits, and disarms it once it
    /// has switched; a switch that cannot switch leaves it armed.
    pub takeover: bool,
}

/// A script and its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// POSIX sh, parameters first.
    pub script: String,
    /// Fed to the script.
    pub stdin: Vec<u8>,
}

/// One operation of the switch job: a line of its `ops` file, read by
/// `script/switch.sh` with `while IFS="$tab" read -r op a b c d e`.
/// [`Display`](std::fmt::Display) is the only writer of these lines.
///
/// The fields are tab-separated, and `read` collapses a run of tabs and drops
/// leading and trailing ones, so no field may hold a tab or a newline, and no
/// field but the last may be empty. None can: paths hold no control
/// characters and every other string from the definition is one line
/// (`model::values::check_path_text`, `syntax`'s `entry_text`); unit names,
/// ids, modes and hook commands are provision's own. Spaces are kept (the
/// reader splits on tabs alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchOp<'a> {
    /// Puts the content `id` from the store at `path`, with its attributes.
    Write {
        /// Content id in the host's store.
        id: &'a str,
        /// Permission bits.
        mode: Mode,
        /// Owner.
        owner: &'a str,
        /// Group.
        group: &'a str,
        /// Absolute path.
        path: &'a str,
    },
    /// Runs `program` on the new content of `path` before any file is
    /// switched (users and directories must exist first).
    Early {
        /// The hook's input.
        path: &'a str,
        /// The command, without the path it ends with.
        program: &'a str,
    },
    /// `systemctl disable --now` a unit dropped from the definition.
    Stop(&'a str),
    /// Removes a file dropped from the definition.
    Remove(&'a str),
    /// Records generation N and points `current` at it.
    Record(u64),
    /// `systemctl daemon-reload`.
    Reload,
    /// Runs a hook's command with `sh -c`.
    Run(&'a str),
    /// `systemctl enable --now` a new unit.
    Enable(&'a str),
    /// `systemctl restart` a unit whose inputs changed.
    Restart(&'a str),
}

impl SwitchOp<'_> {
    /// The op's name, as `switch.sh` matches it.
    pub fn name(&self) -> &'static str {
        match self {
            SwitchOp::Write { .. } => "write",
            SwitchOp::Early { .. } => "early",
            SwitchOp::Stop(_) => "stop",
            SwitchOp::Remove(_) => "remove",
            SwitchOp::Record(_) => "record",
            SwitchOp::Reload => "reload",
            SwitchOp::Run(_) => "run",
            SwitchOp::Enable(_) => "enable",
            SwitchOp::Restart(_) => "restart",
        }
    }

    /// The fields after the name, as `switch.sh` reads them into `a`..`e`.
    pub fn args(&self) -> Vec<String> {
        match *self {
            SwitchOp::Write {
                id,
                mode,
                owner,
                group,
                path,
            } => vec![
                id.into(),
                mode.to_string(),
                owner.into(),
                group.into(),
                path.into(),
            ],
            SwitchOp::Early { path, program } => vec![path.into(), program.into()],
            SwitchOp::Stop(x)
            | SwitchOp::Remove(x)
            | SwitchOp::Run(x)
            | SwitchOp::Enable(x)
            | SwitchOp::Restart(x) => vec![x.into()],
            SwitchOp::Record(n) => vec![n.to_string()],
            SwitchOp::Reload => Vec::new(),
        }
    }
}

impl std::fmt::Display for SwitchOp<'_> {
    /// The line without its newline: the name, then each field after a tab.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())?;
        let args = self.args();
        for (i, arg) in args.iter().enumerate() {
            debug_assert!(
                !arg.contains(['\t', '\n']) && (i + 1 == args.len() || !arg.is_empty()),
                "{} field {arg:?} would not read back as one field",
                self.name()
            );
            write!(f, "\t{arg}")?;
        }
        Ok(())
    }
}

/// The switch job's operations, in the order it runs them (see
/// `switch.sh`): stops, early writes and hooks, writes, removals, the
/// record, then activation.
pub fn switch_ops<'a>(plan: &'a HostPlan, target: &'a Target) -> Vec<SwitchOp<'a>> {
    let changed: BTreeSet<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
    let early: Vec<_> = target
        .hooks
        .iter()
        .filter(|h| h.early && plan.activation.hooks.contains(&h.name))
        .collect();
    let early_inputs: BTreeSet<&str> = early
        .iter()
        .flat_map(|h| h.inputs.iter().map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for unit in &plan.activation.stop {
        out.push(SwitchOp::Stop(unit));
    }
    let write = |path: &'a str| {
        let (path, f) = target.files.get_key_value(path).expect("a planned file");
        SwitchOp::Write {
            id: f.id.as_str(),
            mode: f.mode,
            owner: &f.owner,
            group: &f.group,
            path,
        }
    };
    for path in &early_inputs {
        if changed.contains(path) && target.files.contains_key(*path) {
            out.push(write(path));
        }
    }
    for h in &early {
        for input in &h.inputs {
            let program = h.command.strip_suffix(input.as_str()).unwrap_or(&h.command);
            out.push(SwitchOp::Early {
                path: input,
                program: program.trim_end(),
            });
        }
    }
    for f in &plan.files {
        if f.action != Action::Delete && !early_inputs.contains(f.path.as_str()) {
            out.push(write(&f.path));
        }
    }
    for f in &plan.files {
        if f.action == Action::Delete {
            out.push(SwitchOp::Remove(&f.path));
        }
    }
    out.push(SwitchOp::Record(plan.number));
    if plan.activation.reload {
        out.push(SwitchOp::Reload);
    }
    for h in &target.hooks {
        if !h.early && plan.activation.hooks.contains(&h.name) {
            out.push(SwitchOp::Run(&h.command));
        }
    }
    for unit in &plan.activation.enable {
        out.push(SwitchOp::Enable(unit));
    }
    for unit in &plan.activation.restart {
        out.push(SwitchOp::Restart(unit));
    }
    out
}

/// The switch job's `ops` file: [`switch_ops`], one line each.
pub fn ops(plan: &HostPlan, target: &Target) -> String {
    switch_ops(plan, target)
        .iter()
        .map(|op| format!("{op}\n"))
        .collect()
}

/// The request that switches the host as `plan` says.
///
/// `blobs` holds the contents to upload, by id; `obs` is the probe the plan
/// was made from: every path the switch touches must still hash as it did.
pub fn apply(
    plan: &HostPlan,
    target: &Target,
    obs: &Observed,
    blobs: &BTreeMap<ContentId, Blob<'_>>,
    params: &Params<'_>,
) -> Request {
    let mut checks = String::new();
    for f in &plan.files {
        let expect = match obs.paths.get(&f.path) {
            Some(PathState::File { id, .. }) => id.as_str(),
            // The switch observes an unsafe path as `other` too.
            Some(PathState::Other(_) | PathState::Unsafe(_)) => "other",
            Some(PathState::Missing) | None => "-",
        };
        checks.push_str(&format!("{expect}\t{}\n", f.path));
    }
    let mut table = String::new();
    for (id, blob) in blobs {
        table.push_str(&format!("{id}\t{}\t{}\n", blob.sha256, blob.bytes.len()));
    }
    // The contents follow as one archive, which one `tar` on the host
    // unpacks; none when there are none.
    let data = if blobs.is_empty() {
        Vec::new()
    } else {
        crate::ustar::archive(blobs.iter().map(|(id, b)| (id, b.bytes)))
    };
    let (record_json, record_files) = match params.record {
        Some(r) => (format!("{}\n", r.to_json()), r.files_table()),
        None => (String::new(), String::new()),
    };
    let (deadman_ops, deadman_secs) = match &params.deadman {
        Some((secs, ops)) => (ops.clone(), format!("{secs}\n")),
        None => (String::new(), String::new()),
    };
    // An optional segment left empty is not sent: an absent record means
    // "no new record"; an absent dead-man, none.
    let segments = [
        ("ops", ops(plan, target), false),
        ("deadman.ops", deadman_ops, true),
        ("deadman.secs", deadman_secs, true),
        ("checks", checks, false),
        ("blobs", table, false),
        ("record.json", record_json, true),
        ("record.files", record_files, true),
        ("switch.sh", SWITCH_SH.to_string(), false),
        ("keep", format!("{}\n", params.keep), false),
    ];
    let mut stdin = Vec::new();
    let mut sizes = Vec::new();
    for (name, text, optional) in &segments {
        if text.is_empty() && *optional {
            continue;
        }
        sizes.push(format!("{name}:{}", text.len()));
        stdin.extend_from_slice(text.as_bytes());
    }
    stdin.extend_from_slice(&data);
    let header = header(&[
        ("MODE", "switch"),
        ("GEN", &plan.number.to_string()),
        ("EXPECT_CURRENT", &or_none(plan.current)),
        ("EXPECT_LATEST", &or_none(plan.latest)),
        ("WHO", params.who),
        ("LOCK_WAIT", &params.lock_wait.to_string()),
        ("TAKEOVER", if params.takeover { "yes" } else { "no" }),
        ("SEGMENTS", &sizes.join(" ")),
    ]);
    Request {
        script: format!("{header}{APPLY_SH}"),
        stdin,
    }
}

/// The request that finishes (or waits for) a switch the host did not finish.
pub fn resume(who: &str, lock_wait: u64) -> Request {
    let header = header(&[
        ("MODE", "resume"),
        ("GEN", "0"),
        ("EXPECT_CURRENT", "none"),
        ("EXPECT_LATEST", "none"),
        ("WHO", who),
        ("LOCK_WAIT", &lock_wait.to_string()),
        ("SEGMENTS", ""),
    ]);
    Request {
        script: format!("{header}{APPLY_SH}"),
        stdin: Vec::new(),
    }
}

fn or_none(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "none".into())
}

fn header(vars: &[(&str, &str)]) -> String {
    vars.iter()
        .map(|(name, value)| format!("{name}={}\n", sh_quote(value)))
        .collect()
}

/// Quotes a value as one POSIX sh word: single quotes, so nothing in it
/// expands (`$`, backquotes, globs; newlines are kept as they are), with `'`
/// written as `'\''`. The one quoting of values for sh: the programs'
/// headers and arguments, and the templates' `| sh` filter.
pub fn sh_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// How the session ended, read from its status and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Switched and activated: the job's log follows.
    Switched {
        /// The job's log.
        log: String,
    },
    /// Switched, but some activation step failed.
    ActivationFailed {
        /// What failed.
        reason: String,
        /// The job's log.
        log: String,
    },
    /// Nothing was switched.
    Aborted {
        /// Why, in the host's words.
        reason: String,
    },
    /// Another run holds the lock.
    Locked {
        /// Who, from where, since when.
        holder: String,
    },
    /// The host changed since the plan.
    Stale {
        /// What changed.
        reason: String,
    },
}

/// Reads the session's exit status and output.
pub fn outcome(status: i32, stdout: &str, stderr: &str) -> Outcome {
    let first = stdout.lines().next().unwrap_or_default();
    let rest = stdout
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with(PHASE_MARK))
        .collect::<Vec<_>>()
        .join("\n");
    match status {
        EXIT_LOCKED => Outcome::Locked {
            holder: first
                .strip_prefix("locked\t")
                .unwrap_or(first)
                .trim()
                .to_string(),
        },
        EXIT_STALE => Outcome::Stale {
            reason: first.strip_prefix("stale\t").unwrap_or(first).to_string(),
        },
        _ if first.starts_with("ok ") && status == 0 => Outcome::Switched { log: rest },
        _ if first.starts_with("failed ") => Outcome::ActivationFailed {
            reason: first
                .split_once(": ")
                .map(|(_, r)| r.to_string())
                .unwrap_or_else(|| first.to_string()),
            log: rest,
        },
        _ if first.starts_with("aborted ") => Outcome::Aborted {
            reason: first
                .split_once(": ")
                .map(|(_, r)| r.to_string())
                .unwrap_or_else(|| first.to_string()),
        },
        _ if first == "job\tunfinished" => Outcome::Aborted {
            reason: format!(
                "the switch job stopped before it finished; the next apply finishes it. Its log:\n{rest}"
            ),
        },
        _ => Outcome::Aborted {
            reason: if stderr.trim().is_empty() {
                format!(
                    "the apply script exited with status {status}: {}",
                    stdout.trim()
                )
            } else {
                stderr.trim().to_string()
            },
        },
    }
}

/// How a phase mark of the apply and switch scripts starts:
/// `phase<TAB>NAME<TAB>NANOSECONDS`, NAME starting then, by the host's clock.
const PHASE_MARK: &str = "phase\t";

/// The phases an apply's output marks, in the order they began, each with
/// how long it took until the next mark, in nanoseconds (the last mark,
/// `end`, only ends the one before). A phase marked more than once is
/// summed. Empty when the host's `date` does not give nanoseconds.
pub fn phases(stdout: &str) -> Vec<(String, u64)> {
    let mut marks: Vec<(u128, &str)> = Vec::new();
    for line in stdout.lines() {
        let Some(mark) = line.strip_prefix(PHASE_MARK) else {
            continue;
        };
        let Some((name, ns)) = mark.split_once('\t') else {
            return Vec::new();
        };
        let Ok(ns) = ns.parse::<u128>() else {
            return Vec::new();
        };
        marks.push((ns, name));
    }
    // The job's marks come in its log, the apply's after it.
    marks.sort_by_key(|(ns, _)| *ns);
    let mut out: Vec<(String, u64)> = Vec::new();
    for pair in marks.windows(2) {
        let (start, name) = pair[0];
        let took = u64::try_from(pair[1].0 - start).unwrap_or(u64::MAX);
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, sum)) => *sum += took,
            None => out.push((name.to_string(), took)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_timed_from_mark_to_mark_and_summed_by_name() {
        let out = "ok 3\nwrote /etc/x\nphase\tprepare\t1000000000\nphase\trename\t1002000000\n\
                   phase\tunits\t1003000000\nphase\trename\t1003500000\nphase\tjob-exit\t1004000000\n\
                   phase\tlock\t990000000\nphase\tupload\t995000000\nphase\tend\t1010000000\n";
        let ms = |n: u64| n * 1_000_000;
        assert_eq!(
            phases(out),
            vec![
                ("lock".to_string(), ms(5)),
                ("upload".to_string(), ms(5)),
                ("prepare".to_string(), ms(2)),
                ("rename".to_string(), 1_500_000),
                ("units".to_string(), 500_000),
                ("job-exit".to_string(), ms(6)),
            ]
        );
        // Not part of the log the report shows.
        let Outcome::Switched { log } = outcome(0, out, "") else {
            panic!("not switched");
        };
        assert_eq!(log, "wrote /etc/x");
        // A `date` without nanoseconds prints `%N`: no timings, no error.
        assert!(phases("ok 1\nphase\tlock\t1700000000%N\n").is_empty());
    }

    #[test]
    fn quoting_survives_any_text() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("''"), r"''\'''\'''");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a\nb"), "'a\nb'");
        assert_eq!(sh_quote("$HOME `id` *"), "'$HOME `id` *'");
    }

    /// A plan that uses every operation, with the text the switch job reads.
    fn every_op() -> (HostPlan, Target) {
        use crate::desired::Hook;
        use crate::plan::{Activation, FileChange, Kind};
        use crate::record::RecordFile;
        let file = |id: &str, mode: u32, owner: &str| RecordFile {
            id: ContentId::unchecked(id),
            mode: Mode(mode),
            owner: owner.into(),
            group: owner.into(),
            secret: false,
        };
        let change = |path: &str, action: Action| FileChange {
            path: path.into(),
            action,
            drift: false,
            secret: false,
            before: None,
            after: None,
            diff: None,
        };
        let hook = |name: &str, command: &str, input: &str, early: bool| Hook {
            name: name.into(),
            command: command.into(),
            inputs: [input.to_string()].into(),
            early,
        };
        let target = Target {
            generation: "g".into(),
            files: [
                (
                    "/etc/sysusers.d/provision.conf".into(),
                    file("u1", 0o644, "root"),
                ),
                ("/srv/my agent/a b.txt".into(), file("f1", 0o640, "bot")),
                (
                    "/etc/systemd/system/agent-a.service".into(),
                    file("s1", 0o644, "root"),
                ),
            ]
            .into(),
            units: BTreeMap::new(),
            hooks: vec![
                hook(
                    "create users",
                    "systemd-sysusers /etc/sysusers.d/provision.conf",
                    "/etc/sysusers.d/provision.conf",
                    true,
                ),
                hook(
                    "restart journald",
                    "systemctl restart systemd-journald",
                    "/etc/systemd/journald.conf.d/50-provision.conf",
                    false,
                ),
            ],
        };
        let plan = HostPlan {
            host: "h".into(),
            kind: Kind::Apply,
            generation: "g".into(),
            number: 7,
            current: Some(6),
            current_generation: None,
            latest: Some(6),
            base: String::new(),
            files: vec![
                change("/etc/old.conf", Action::Delete),
                change("/etc/sysusers.d/provision.conf", Action::Update),
                change("/etc/systemd/system/agent-a.service", Action::Create),
                change("/srv/my agent/a b.txt", Action::Create),
            ],
            activation: Activation {
                reload: true,
                enable: vec!["agent-a.service".into()],
                restart: vec!["agent-b.service".into()],
                stop: vec!["agent-c.service".into()],
                hooks: vec!["create users".into(), "restart journald".into()],
            },
            upload_bytes: 0,
            pending: None,
            warnings: Vec::new(),
            errors: Vec::new(),
        };
        (plan, target)
    }

    #[test]
    fn ops_are_the_lines_the_switch_job_reads() {
        let (plan, target) = every_op();
        assert_eq!(
            ops(&plan, &target),
            "stop\tagent-c.service\n\
             write\tu1\t0644\troot\troot\t/etc/sysusers.d/provision.conf\n\
             early\t/etc/sysusers.d/provision.conf\tsystemd-sysusers\n\
             write\ts1\t0644\troot\troot\t/etc/systemd/system/agent-a.service\n\
             write\tf1\t0640\tbot\tbot\t/srv/my agent/a b.txt\n\
             remove\t/etc/old.conf\n\
             record\t7\n\
             reload\n\
             run\tsystemctl restart systemd-journald\n\
             enable\tagent-a.service\n\
             restart\tagent-b.service\n"
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "would not read back as one field")]
    fn a_tab_in_an_op_field_is_refused() {
        let _ = SwitchOp::Run("a\tb").to_string();
    }

    #[test]
    fn outcomes() {
        assert!(matches!(
            outcome(0, "ok 3\nlog", ""),
            Outcome::Switched { .. }
        ));
        assert_eq!(
            outcome(75, "locked\tme@x from 1.2.3.4 since T\n", ""),
            Outcome::Locked {
                holder: "me@x from 1.2.3.4 since T".into()
            }
        );
        assert!(
            matches!(outcome(76, "stale\t/etc/x changed\n", ""), Outcome::Stale { reason } if reason == "/etc/x changed")
        );
        assert!(
            matches!(outcome(1, "failed 3: systemctl restart a failed\nlog", ""), Outcome::ActivationFailed { reason, .. } if reason == "systemctl restart a failed")
        );
        assert!(
            matches!(outcome(1, "aborted 3: cannot write /etc/x\n", ""), Outcome::Aborted { reason } if reason == "cannot write /etc/x")
        );
        assert!(
            matches!(outcome(1, "", "No space left on device\n"), Outcome::Aborted { reason } if reason.contains("No space"))
        );
    }
}
