//! The plan: what applying a target to one host would change, computed from
//! the target and one probe of the host. Pure.
//!
//! A plan is one serialisable value: the terminal view, `--json` and saved
//! plan files are renderings of it. It holds content ids, never contents of
//! secret files nor their plain hashes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::content_id::ContentId;
pub use crate::problem::Problem;

use crate::desired::sha256_hex;
use crate::model::{Journald, Mode};
use crate::observed::{Observed, PathState, Switching};
use crate::onhost;
use crate::record::{RecordFile, Target};
use crate::render::HOOK_RESTART_JOURNALD;

/// What happens to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new file.
    Create,
    /// A file whose content, mode or owner changes.
    Update,
    /// A file dropped from the definition.
    Delete,
}

/// A file's identity and attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Content id: plain, or keyed for secrets.
    pub id: ContentId,
    /// Permission bits.
    pub mode: Mode,
    /// Owner.
    pub owner: String,
    /// Group.
    pub group: String,
}

impl FileState {
    /// What a generation records for a file.
    pub fn of(f: &RecordFile) -> Self {
        FileState {
            id: f.id.clone(),
            mode: f.mode,
            owner: f.owner.clone(),
            group: f.group.clone(),
        }
    }

    /// Same content and mode, and same owner unless the host is local
    /// (whose owners are not applied).
    pub fn matches(&self, other: &FileState, local: bool) -> bool {
        self.id == other.id
            && self.mode == other.mode
            && (local || self.owner == other.owner && self.group == other.group)
    }
}

/// A path as the probe saw it, named by content id (keyed with the host's
/// key when the file holds secrets); `None` when it is not a regular file.
pub fn observed_state(obs: &Observed, path: &str) -> Option<FileState> {
    match obs.paths.get(path)? {
        PathState::File {
            id,
            mode,
            owner,
            group,
        } => Some(FileState {
            // Keyed by the host already when the file holds a secret.
            id: id.clone(),
            mode: Mode(*mode),
            owner: owner.clone(),
            group: group.clone(),
        }),
        _ => None,
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Absolute path on the host.
    pub path: String,
    /// What happens.
    pub action: Action,
    /// The host's file differs from what provision last wrote there (it was
    /// changed by hand): apply puts it back.
    pub drift: bool,
    /// Holds secrets: shown only as "(secret changed)".
    pub secret: bool,
    /// As the host has it.
    pub before: Option<FileState>,
    /// As it will be.
    pub after: Option<FileState>,
    /// Unified diff of the old and new text, for plain text files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// What the activation does with units and hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// `systemctl daemon-reload` (a unit file changed).
    pub reload: bool,
    /// New units: `systemctl enable --now`.
    pub enable: Vec<String>,
    /// Units whose own inputs changed: `systemctl restart`.
    pub restart: Vec<String>,
    /// Units dropped from the definition: `systemctl disable --now`.
    pub stop: Vec<String>,
    /// Hooks that run (by name): creating users, directories, restarting
    /// journald.
    pub hooks: Vec<String>,
}

impl Activation {
    /// journald is restarted (its drop-in changed), so verification checks
    /// the new drop-in is in effect.
    pub fn restarts_journald(&self) -> bool {
        self.hooks.iter().any(|h| h == HOOK_RESTART_JOURNALD)
    }

    fn is_empty(&self) -> bool {
        !self.reload
            && self.enable.is_empty()
            && self.restart.is_empty()
            && self.stop.is_empty()
            && self.hooks.is_empty()
    }
}

/// Switch to a new generation, or back to a recorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Record the target as a new generation.
    Apply,
    /// Switch back to a generation the host recorded.
    Rollback,
}

/// What one host would go through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    /// Host name.
    pub host: String,
    /// Apply or rollback.
    pub kind: Kind,
    /// The generation id switched to (`generation_id` in JSON).
    #[serde(rename = "generation_id")]
    pub generation: String,
    /// The generation number switched to, new for apply (`generation` in
    /// JSON).
    #[serde(rename = "generation")]
    pub number: u64,
    /// The host's current generation number, when it has one.
    pub current: Option<u64>,
    /// The host's current generation id, when it has one.
    #[serde(rename = "current_generation_id")]
    pub current_generation: Option<String>,
    /// The host's highest generation number.
    pub latest: Option<u64>,
    /// Fingerprint of everything the plan relied on; a saved plan is refused
    /// when the host no longer gives the same.
    pub base: String,
    /// Changed paths, sorted.
    pub files: Vec<FileChange>,
    /// Units and hooks.
    pub activation: Activation,
    /// Bytes to upload (contents the host's store lacks).
    pub upload_bytes: u64,
    /// A switch the host did not finish; apply finishes it first.
    pub pending: Option<u64>,
    /// Worth knowing; does not stop an apply. (Not read back from a saved
    /// plan: applying one plans again.)
    #[serde(default, skip_deserializing)]
    pub warnings: Vec<Problem>,
    /// Stops the apply of this host.
    #[serde(default, skip_deserializing)]
    pub errors: Vec<Problem>,
}

impl HostPlan {
    /// The errors, as one message.
    pub fn error_text(&self) -> String {
        let texts: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        texts.join("; ")
    }

    /// Refuses this plan when it no longer matches the saved plan `saved`
    /// of the same host was made as: the repository, a secret or the host
    /// changed since.
    pub fn check_saved(&mut self, saved: &HostPlan) {
        let why = if saved.generation != self.generation {
            Some("the repository or a secret changed since the plan was made")
        } else if saved.base != self.base {
            Some("the host changed since the plan was made")
        } else {
            None
        };
        if let Some(why) = why {
            self.errors.push(Problem::SavedPlanStale(why));
        }
    }

    /// Whether applying would change anything on the host.
    pub fn has_changes(&self) -> bool {
        !self.files.is_empty()
            || !self.activation.is_empty()
            || self.current_generation.as_deref() != Some(self.generation.as_str())
            || self.kind == Kind::Rollback && self.current != Some(self.number)
    }

    /// Counts of created, updated and deleted paths.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |a: Action| self.files.iter().filter(|f| f.action == a).count();
        (
            count(Action::Create),
            count(Action::Update),
            count(Action::Delete),
        )
    }
}

/// Everything `plan` needs besides the target and the probe.
#[derive(Debug, Clone, Default)]
pub struct Inputs<'a> {
    /// The new content of text files, for diffs (none for rollbacks).
    pub contents: BTreeMap<&'a str, &'a [u8]>,
    /// The size of each content id of the target, when known.
    pub sizes: BTreeMap<ContentId, u64>,
    /// The host is a local directory: owners are not applied, so not compared.
    pub local: bool,
    /// Journal caps, for the fit warning.
    pub journald: Option<&'a Journald>,
}

/// Compares the target with what the host has.
pub fn plan(
    host: &str,
    kind: Kind,
    number: u64,
    target: &Target,
    obs: &Observed,
    inputs: &Inputs<'_>,
) -> HostPlan {
    let recorded = obs.record.as_ref();
    let mut errors = Vec::new();
    let mut warnings: Vec<Problem> = obs.warnings.iter().cloned().map(Problem::Host).collect();

    let same = |a: &FileState, b: &FileState| a.matches(b, inputs.local);

    let mut files = Vec::new();
    if !target.files.is_empty() && obs.key.is_none() && target.files.values().any(|f| f.secret) {
        errors.push(Problem::NoKey);
    }
    for (path, f) in &target.files {
        // Something planted where a managed file belongs (by a user who
        // can write the directory): the switch moves it into the root-only
        // quarantine and writes the file, or refuses this path alone when a
        // directory on the way is a link or not safe.
        match obs.paths.get(path) {
            Some(PathState::Unsafe(why)) => warnings.push(Problem::Unreachable {
                path: path.clone(),
                what: PathState::unsafe_text(why),
            }),
            Some(PathState::Other(what)) => warnings.push(Problem::Planted {
                path: path.clone(),
                what: what.clone(),
            }),
            _ => {}
        }
        let after = FileState::of(f);
        let mut before = observed_state(obs, path);
        if inputs.local
            && let Some(b) = &mut before
        {
            // A local host's owners are not applied, so not shown either.
            b.owner.clone_from(&after.owner);
            b.group.clone_from(&after.group);
        }
        let action = match &before {
            None => Action::Create,
            Some(b) if same(b, &after) => continue,
            Some(_) => Action::Update,
        };
        // Drift: provision recorded this path, the host's copy no longer
        // matches that record.
        let drift = match (recorded.and_then(|r| r.files.get(path)), &before) {
            (Some(rec), Some(b)) => !same(b, &FileState::of(rec)),
            (Some(_), None) => true,
            _ => false,
        };
        let diff = match (action, f.secret) {
            (Action::Update, false) => {
                let old = obs.contents.get(path);
                let new = inputs.contents.get(path.as_str());
                match (old, new) {
                    (Some(old), Some(new)) => text_diff(path, old, new),
                    _ => None,
                }
            }
            _ => None,
        };
        files.push(FileChange {
            path: path.clone(),
            action,
            drift,
            secret: f.secret,
            before,
            after: Some(after),
            diff,
        });
    }
    if let Some(rec) = recorded {
        for (path, f) in &rec.files {
            if target.files.contains_key(path) {
                continue;
            }
            if let Some(before) = observed_state(obs, path) {
                files.push(FileChange {
                    path: path.clone(),
                    action: Action::Delete,
                    drift: !same(&before, &FileState::of(f)),
                    secret: f.secret,
                    before: Some(before),
                    after: None,
                    diff: None,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let changed: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let old_units: BTreeMap<&str, bool> = recorded
        .map(|r| {
            r.units
                .iter()
                .map(|u| (u.name.as_str(), u.enable))
                .collect()
        })
        .unwrap_or_default();
    let mut activation = Activation {
        reload: changed.iter().any(|p| onhost::in_unit_dir(p)),
        ..Activation::default()
    };
    for u in target.units.values() {
        if !u.enable {
            continue;
        }
        match old_units.get(u.name.as_str()) {
            Some(true) if u.inputs.iter().any(|i| changed.contains(i.as_str())) => {
                activation.restart.push(u.name.clone())
            }
            Some(true) => {}
            // New, or newly enabled.
            _ => activation.enable.push(u.name.clone()),
        }
    }
    for name in old_units.keys() {
        if !target.units.contains_key(*name) {
            activation.stop.push((*name).to_string());
        }
    }
    for h in &target.hooks {
        if h.inputs.iter().any(|i| changed.contains(i.as_str())) {
            activation.hooks.push(h.name.clone());
        }
    }

    // A switch back uploads nothing: every content must be in the store
    // (secrets are kept under their keyed ids and checked on the host).
    if kind == Kind::Rollback {
        for f in &files {
            if let Some(a) = &f.after
                && !a.id.is_keyed()
                && !obs.stored.contains(&a.id)
            {
                errors.push(Problem::NotInStore(f.path.clone()));
            }
        }
    }
    let upload_bytes = files
        .iter()
        .filter_map(|f| f.after.as_ref())
        .filter(|a| !obs.stored.contains(&a.id))
        .map(|a| inputs.sizes.get(&a.id).copied().unwrap_or(0))
        .sum();
    if let Some(free) = obs.disk_free
        && upload_bytes > free
    {
        errors.push(Problem::NoRoom {
            free,
            upload: upload_bytes,
        });
    }
    if let (Some(j), Some((size, free))) = (inputs.journald, obs.journal_fs) {
        warnings.extend(journald_fit(j, size, free));
    }
    if let Some(status) = &obs.status
        && status != "ok"
        && obs.switching.is_none()
    {
        warnings.push(Problem::Activation {
            generation: obs.current,
            status: status.clone(),
        });
    }
    let pending = obs
        .switching
        .as_ref()
        .map(|Switching { generation, .. }| *generation);
    if let Some(back) = obs.unconfirmed {
        warnings.push(Problem::Unconfirmed {
            current: obs.current,
            back,
        });
    }
    if let Some(n) = pending {
        warnings.push(Problem::Pending(n));
    }

    HostPlan {
        host: host.into(),
        kind,
        generation: target.generation.clone(),
        number,
        current: obs.current,
        current_generation: recorded.map(|r| r.generation.clone()),
        latest: obs.latest,
        base: base(obs),
        files,
        activation,
        upload_bytes,
        pending,
        warnings,
        errors,
    }
}

/// A fingerprint of what the plan relied on: the host's generations and the
/// observed id, mode and owner of every path involved (secret paths keyed).
fn base(obs: &Observed) -> String {
    let mut text = format!(
        "base-v1\t{:?}\t{:?}\t{:?}\n",
        obs.current, obs.latest, obs.switching
    );
    for (path, state) in &obs.paths {
        let line = match state {
            PathState::Missing => "missing".to_string(),
            PathState::Other(what) => format!("other {what}"),
            // Saved plans hold this fingerprint: an unsafe path is written
            // in the words the tampering warning uses, as those plans expect.
            PathState::Unsafe(why) => format!("other {}", PathState::unsafe_text(why)),
            PathState::File {
                id,
                mode,
                owner,
                group,
            } => format!("{id} {mode:o} {owner}:{group}"),
        };
        text.push_str(&format!("{path}\t{line}\n"));
    }
    sha256_hex(text.as_bytes())
}

/// A unified diff of two texts, or `None` when either is not UTF-8 text.
pub fn text_diff(path: &str, old: &[u8], new: &[u8]) -> Option<String> {
    let old = std::str::from_utf8(old).ok()?;
    let new = std::str::from_utf8(new).ok()?;
    if old.contains('\0') || new.contains('\0') {
        return None;
    }
    let diff = similar::TextDiff::from_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(path, path)
        .to_string();
    // The header lines are shown by the plan itself.
    Some(text.lines().skip(2).map(|l| format!("{l}\n")).collect())
}

/// Warnings when journald's caps cannot hold on the journal's filesystem.
fn journald_fit(j: &Journald, size: u64, free: u64) -> Vec<Problem> {
    let max_use = j.max_use.map(|s| s.bytes).unwrap_or(0);
    let keep_free = j.keep_free.map(|s| s.bytes).unwrap_or(0);
    if max_use + keep_free > size {
        vec![Problem::JournalTooSmall {
            max_use,
            keep_free,
            size,
        }]
    } else if keep_free > free {
        vec![Problem::JournalFull { keep_free, free }]
    } else {
        Vec::new()
    }
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::desired::{DesiredState, FileSpec, Hook, UnitSpec};
    use crate::model::Size;

    const KEY: &[u8] = b"host-key";

    fn state(files: &[(&str, &str, bool)]) -> DesiredState {
        let mut s = DesiredState {
            host: "h".into(),
            files: BTreeMap::new(),
            units: BTreeMap::new(),
            hooks: vec![Hook {
                name: "create users".into(),
                command: "systemd-sysusers /etc/sysusers.d/p.conf".into(),
                inputs: ["/etc/sysusers.d/p.conf".to_string()].into(),
                early: true,
            }],
        };
        for (path, text, secret) in files {
            let mut f = FileSpec::new(text.as_bytes().to_vec(), 0o644, "root", "root");
            f.secret = *secret;
            s.files.insert(path.to_string(), f);
        }
        for (name, input) in [
            ("a.service", "/etc/systemd/system/a.service"),
            ("b.service", "/etc/systemd/system/b.service"),
        ] {
            let inputs = [input.to_string(), "/etc/a.env".to_string()]
                .into_iter()
                .filter(|i| s.files.contains_key(i) && (name == "a.service" || i != "/etc/a.env"))
                .collect();
            s.units.insert(
                name.into(),
                UnitSpec {
                    name: name.into(),
                    enable: true,
                    inputs,
                },
            );
        }
        s
    }

    /// What a host looks like after applying `s` as generation 1.
    fn applied(s: &DesiredState) -> Observed {
        let target = Target::from_desired(s, KEY);
        let mut obs = Observed {
            key: Some(KEY.to_vec()),
            current: Some(1),
            latest: Some(1),
            record: Some(target.record("h", 1, "t", "me")),
            status: Some("ok".into()),
            ..Observed::default()
        };
        for (path, f) in &s.files {
            obs.paths.insert(
                path.clone(),
                PathState::File {
                    // The host keys the ids of files that hold secrets.
                    id: target.files[path].id.clone(),
                    mode: f.mode.0,
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                },
            );
            obs.contents.insert(path.clone(), f.bytes.clone());
            obs.stored.insert(f.sha256.clone());
        }
        obs
    }

    fn plan_of(s: &DesiredState, obs: &Observed) -> HostPlan {
        let target = Target::from_desired(s, KEY);
        let inputs = Inputs {
            contents: s
                .files
                .iter()
                .map(|(p, f)| (p.as_str(), f.bytes.as_slice()))
                .collect(),
            sizes: target
                .files
                .iter()
                .map(|(p, f)| (f.id.clone(), s.files[p].bytes.len() as u64))
                .collect(),
            ..Inputs::default()
        };
        plan(
            "h",
            Kind::Apply,
            obs.latest.unwrap_or(0) + 1,
            &target,
            obs,
            &inputs,
        )
    }

    fn base_files() -> Vec<(&'static str, &'static str, bool)> {
        vec![
            (
                "/etc/systemd/system/a.service",
                "[Service]\nExecStart=/a\n",
                false,
            ),
            (
                "/etc/systemd/system/b.service",
                "[Service]\nExecStart=/b\n",
                false,
            ),
            ("/etc/a.env", "TOKEN=one\n", true),
            ("/etc/sysusers.d/p.conf", "u agent - -\n", false),
        ]
    }

    #[test]
    fn a_fresh_host_gets_everything_and_every_unit_started() {
        let s = state(&base_files());
        let obs = Observed {
            key: Some(KEY.to_vec()),
            ..Observed::default()
        };
        let p = plan_of(&s, &obs);
        assert_eq!(p.counts(), (4, 0, 0));
        assert!(p.activation.reload);
        assert_eq!(p.activation.enable, ["a.service", "b.service"]);
        assert_eq!(p.activation.hooks, ["create users"]);
        assert_eq!(p.number, 1);
        assert!(p.upload_bytes > 0);
    }

    #[test]
    fn a_changed_journald_drop_in_restarts_journald() {
        let path = "/etc/systemd/journald.conf.d/50-provision.conf";
        let mut s = state(&base_files());
        let hook = |name: &str| Hook {
            name: name.into(),
            command: "systemctl restart systemd-journald".into(),
            inputs: [path.to_string()].into(),
            early: false,
        };
        s.hooks.push(hook(HOOK_RESTART_JOURNALD));
        let obs = applied(&s);
        assert!(!plan_of(&s, &obs).activation.restarts_journald());
        s.files.insert(
            path.into(),
            FileSpec::new(b"[Journal]\n".to_vec(), 0o644, "root", "root"),
        );
        let p = plan_of(&s, &obs);
        assert_eq!(p.activation.hooks, [HOOK_RESTART_JOURNALD]);
        assert!(p.activation.restarts_journald());
        // Only that hook's name says so.
        s.hooks = vec![hook("restart journald later")];
        assert!(!plan_of(&s, &obs).activation.restarts_journald());
    }

    #[test]
    fn nothing_changed_is_no_change() {
        let s = state(&base_files());
        let p = plan_of(&s, &applied(&s));
        assert!(!p.has_changes(), "{p:#?}");
        assert_eq!(p.upload_bytes, 0);
    }

    #[test]
    fn a_changed_secret_restarts_only_its_unit_and_never_shows_its_hash() {
        let s = state(&base_files());
        let obs = applied(&s);
        let mut files = base_files();
        files[2].1 = "TOKEN=two\n";
        let p = plan_of(&state(&files), &obs);
        assert_eq!(p.counts(), (0, 1, 0));
        let change = &p.files[0];
        assert!(change.secret && change.diff.is_none());
        assert!(!p.activation.reload);
        assert_eq!(p.activation.restart, ["a.service"]);
        let json = serde_json::to_string(&p).unwrap();
        for secret in ["TOKEN=one", "TOKEN=two"] {
            let plain = sha256_hex(secret.as_bytes());
            assert!(!json.contains(&plain) && !json.contains(secret), "{json}");
        }
        assert!(json.contains("hmac-"));
    }

    #[test]
    fn a_hand_edit_is_drift_with_a_diff() {
        let s = state(&base_files());
        let mut obs = applied(&s);
        let path = "/etc/systemd/system/b.service";
        let edited = "[Service]\nExecStart=/evil\n";
        obs.paths.insert(
            path.into(),
            PathState::File {
                id: ContentId::of(edited.as_bytes()),
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
            },
        );
        obs.contents.insert(path.into(), edited.as_bytes().to_vec());
        let p = plan_of(&s, &obs);
        assert_eq!(p.files.len(), 1);
        assert!(p.files[0].drift);
        let diff = p.files[0].diff.as_deref().unwrap();
        assert!(
            diff.contains("-ExecStart=/evil") && diff.contains("+ExecStart=/b"),
            "{diff}"
        );
        assert!(p.activation.reload);
        assert_eq!(p.activation.restart, ["b.service"]);
    }

    #[test]
    fn a_dropped_unit_is_stopped_and_its_files_removed() {
        let s = state(&base_files());
        let obs = applied(&s);
        let mut smaller = state(&base_files());
        smaller.files.remove("/etc/systemd/system/b.service");
        smaller.units.remove("b.service");
        let p = plan_of(&smaller, &obs);
        assert_eq!(p.counts(), (0, 0, 1));
        assert_eq!(p.files[0].path, "/etc/systemd/system/b.service");
        assert_eq!(p.activation.stop, ["b.service"]);
        assert!(p.activation.reload && p.activation.restart.is_empty());
    }

    #[test]
    fn owners_are_compared_except_on_local_hosts() {
        let s = state(&base_files());
        let mut obs = applied(&s);
        if let Some(PathState::File { owner, .. }) = obs.paths.get_mut("/etc/sysusers.d/p.conf") {
            *owner = "someone".into();
        }
        let p = plan_of(&s, &obs);
        assert_eq!(p.counts(), (0, 1, 0));
        let target = Target::from_desired(&s, KEY);
        let local = Inputs {
            local: true,
            ..Inputs::default()
        };
        assert!(!plan("h", Kind::Apply, 2, &target, &obs, &local).has_changes());
    }

    #[test]
    fn something_planted_at_a_managed_path_is_tampering_and_the_file_is_written() {
        let s = state(&base_files());
        let mut obs = applied(&s);
        obs.paths
            .insert("/etc/a.env".into(), PathState::Other("directory".into()));
        let p = plan_of(&s, &obs);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert!(
            p.warnings.iter().any(|w| w
                .to_string()
                .starts_with("tampering: /etc/a.env is a directory")
                && w.to_string().contains(onhost::QUARANTINE)),
            "{:?}",
            p.warnings
        );
        let f = p.files.iter().find(|f| f.path == "/etc/a.env").unwrap();
        assert_eq!(f.action, Action::Create);
    }

    #[test]
    fn a_managed_path_behind_an_unsafe_directory_is_tampering_and_refused() {
        let s = state(&base_files());
        let mut obs = applied(&s);
        let why = "/etc is writable by every user: provision does not write under it";
        obs.paths
            .insert("/etc/a.env".into(), PathState::Unsafe(why.into()));
        let p = plan_of(&s, &obs);
        assert_eq!(
            p.warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [format!(
                "tampering: /etc/a.env: path through a link or an unsafe directory ({why}); apply refuses to write it"
            )]
        );
        // A planted file whose description reads the same is not mistaken
        // for one.
        obs.paths.insert(
            "/etc/a.env".into(),
            PathState::Other(PathState::unsafe_text(why)),
        );
        assert!(
            plan_of(&s, &obs).warnings[0]
                .to_string()
                .contains("quarantine")
        );
    }

    #[test]
    fn journald_caps_that_cannot_fit_are_warned_about() {
        let j = Journald {
            span: crate::source::Span {
                source: crate::source::SourceId(0),
                offset: 0,
                len: 0,
            },
            max_use: Some(Size { bytes: 2 << 30 }),
            keep_free: Some(Size { bytes: 1 << 30 }),
            retention: None,
            max_file_size: None,
        };
        assert_eq!(journald_fit(&j, 2 << 30, 1 << 30).len(), 1);
        assert!(journald_fit(&j, 8 << 30, 4 << 30).is_empty());
        assert!(
            journald_fit(&j, 8 << 30, 512 << 20)[0]
                .to_string()
                .contains("keep-free")
        );
    }

    #[test]
    fn the_base_changes_with_the_host() {
        let s = state(&base_files());
        let obs = applied(&s);
        let a = plan_of(&s, &obs).base;
        let mut other = obs.clone();
        other.latest = Some(2);
        assert_ne!(plan_of(&s, &other).base, a);
        assert_eq!(plan_of(&s, &obs).base, a);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(300 << 20), "300 MiB");
    }
}
