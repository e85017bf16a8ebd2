//! What one host should hold: every managed file with its bytes, owner and
//! mode, the units to enable, and what each unit depends on. Identified by a
//! generation id, the sha256 of its canonical listing.
//!
//! Pure data; built by `render`, compared with the host by `plan`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::content_id::ContentId;
use crate::model::Mode;

/// Hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One managed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Exact content.
    pub bytes: Vec<u8>,
    /// The plain id of `bytes` (their hex sha256). For a secret file it is
    /// only the input of the keyed id the host is told: never shown.
    pub sha256: ContentId,
    /// Permission bits.
    pub mode: Mode,
    /// Owner.
    pub owner: String,
    /// Group.
    pub group: String,
    /// Holds secret values (or, unresolved, their references): never shown.
    pub secret: bool,
}

impl FileSpec {
    /// A file with its hash computed.
    pub fn new(bytes: Vec<u8>, mode: u32, owner: &str, group: &str) -> Self {
        Self {
            sha256: ContentId::of(&bytes),
            bytes,
            mode: Mode(mode),
            owner: owner.into(),
            group: group.into(),
            secret: false,
        }
    }

    /// Marks the file as holding secrets.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
}

/// A systemd unit provision manages, and what it depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitSpec {
    /// Full unit name (`agent-x.service`).
    pub name: String,
    /// `systemctl enable --now` it (agents and timers); otherwise it is only
    /// started by something else (a timer, OnFailure=).
    pub enable: bool,
    /// The managed files whose change restarts it.
    pub inputs: BTreeSet<String>,
}

/// A command the host runs when one of its input files changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// What it does, for plans.
    pub name: String,
    /// The command.
    pub command: String,
    /// Files whose change triggers it.
    pub inputs: BTreeSet<String>,
    /// Runs before any file is switched, on the new content of its single
    /// input (the command ends with that path): users and directories must
    /// exist before files are given to them.
    #[serde(default)]
    pub early: bool,
}

/// Everything one host should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredState {
    /// Host name.
    pub host: String,
    /// Files by absolute path.
    pub files: BTreeMap<String, FileSpec>,
    /// Managed units by name.
    pub units: BTreeMap<String, UnitSpec>,
    /// Activation hooks (sysusers, tmpfiles, journald restart), in run order.
    pub hooks: Vec<Hook>,
}

/// The text a generation id hashes: one line per file (path, content id,
/// mode, owner), unit and hook, in the order given (callers pass files sorted
/// by path and units by name). Shared by rendered states and recorded
/// generations, so both give the same id for the same content.
pub fn canonical_listing<'a>(
    files: impl Iterator<Item = (&'a str, &'a ContentId, Mode, &'a str, &'a str)>,
    units: impl Iterator<Item = &'a UnitSpec>,
    hooks: &[Hook],
) -> String {
    let mut out = String::from("provision-generation-v1\n");
    for (path, id, mode, owner, group) in files {
        out.push_str(&format!("file\t{path}\t{id}\t{mode}\t{owner}:{group}\n"));
    }
    for u in units {
        let inputs: Vec<&str> = u.inputs.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "unit\t{}\t{}\t{}\n",
            u.name,
            u.enable,
            inputs.join(",")
        ));
    }
    for h in hooks {
        out.push_str(&format!("hook\t{}\t{}\n", h.name, h.command));
    }
    out
}

/// One line of the manifest (`render --json`, the host's generation record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestEntry {
    /// Absolute path.
    pub path: String,
    /// Hex sha256 of the content.
    pub sha256: String,
    /// Octal mode, `0644`.
    pub mode: Mode,
    /// Owner.
    pub owner: String,
    /// Group.
    pub group: String,
    /// Holds secrets.
    pub secret: bool,
}

/// The manifest of a desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// Host name.
    pub host: String,
    /// Generation id.
    pub generation: String,
    /// Files, sorted by path.
    pub files: Vec<ManifestEntry>,
    /// Units, sorted by name.
    pub units: Vec<UnitSpec>,
}

impl DesiredState {
    /// The canonical listing the generation id hashes: one line per file and
    /// unit, sorted, tab-separated. Stable across machines and runs.
    pub fn canonical_listing(&self) -> String {
        let files = self.files.iter().map(|(path, f)| {
            (
                path.as_str(),
                &f.sha256,
                f.mode,
                f.owner.as_str(),
                f.group.as_str(),
            )
        });
        canonical_listing(files, self.units.values(), &self.hooks)
    }

    /// sha256 of the canonical listing.
    pub fn generation_id(&self) -> String {
        sha256_hex(self.canonical_listing().as_bytes())
    }

    /// The manifest (no file contents).
    pub fn manifest(&self) -> Manifest {
        Manifest {
            host: self.host.clone(),
            generation: self.generation_id(),
            files: self
                .files
                .iter()
                .map(|(path, f)| ManifestEntry {
                    path: path.clone(),
                    sha256: f.sha256.to_string(),
                    mode: f.mode,
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                    secret: f.secret,
                })
                .collect(),
            units: self.units.values().cloned().collect(),
        }
    }
}
