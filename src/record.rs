//! Generations as the host keeps them: `/var/lib/provision/generations/N.json`
//! (this [`Record`], read back by the probe) and `N.files` (a tab-separated
//! table the host's scripts read). Files are named by the
//! [`ContentId`]s that name them in the host's store.
//!
//! A file's content id is its sha256, except for files holding secrets: their
//! id is an HMAC of the sha256 under a random key that only the host (and the
//! operator, through SSH) can read. A saved plan, a JSON report or a record
//! shows that id, which cannot be checked against guessed values offline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::content_id::ContentId;
use crate::desired::{DesiredState, Hook, UnitSpec, canonical_listing};
use crate::model::Mode;

/// One file of a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFile {
    /// Content id: plain, or keyed for secrets (see [`ContentId`]).
    pub id: ContentId,
    /// Permission bits.
    pub mode: Mode,
    /// Owner.
    pub owner: String,
    /// Group.
    pub group: String,
    /// Holds secrets: never shown, never diffed.
    pub secret: bool,
}

/// What a host should hold, by content id: a rendered state keyed for one
/// host, or a recorded generation to roll back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Generation id: sha256 of the canonical listing of ids.
    pub generation: String,
    /// Files by path.
    pub files: BTreeMap<String, RecordFile>,
    /// Units by name.
    pub units: BTreeMap<String, UnitSpec>,
    /// Hooks, in run order.
    pub hooks: Vec<Hook>,
}

impl Target {
    /// The target for a rendered state, with secret files named by their
    /// keyed id. Without secrets the generation id is the one `render` prints.
    pub fn from_desired(state: &DesiredState, key: &[u8]) -> Self {
        let files = state
            .files
            .iter()
            .map(|(path, f)| {
                let id = if f.secret {
                    ContentId::keyed(key, &f.sha256)
                } else {
                    f.sha256.clone()
                };
                let file = RecordFile {
                    id,
                    mode: f.mode,
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                    secret: f.secret,
                };
                (path.clone(), file)
            })
            .collect();
        Self::new(files, state.units.clone(), state.hooks.clone())
    }

    /// The target recorded as a generation.
    pub fn from_record(record: &Record) -> Self {
        Self {
            generation: record.generation.clone(),
            files: record.files.clone(),
            units: record
                .units
                .iter()
                .map(|u| (u.name.clone(), u.clone()))
                .collect(),
            hooks: record.hooks.clone(),
        }
    }

    fn new(
        files: BTreeMap<String, RecordFile>,
        units: BTreeMap<String, UnitSpec>,
        hooks: Vec<Hook>,
    ) -> Self {
        let listing = canonical_listing(
            files.iter().map(|(p, f)| {
                (
                    p.as_str(),
                    &f.id,
                    f.mode,
                    f.owner.as_str(),
                    f.group.as_str(),
                )
            }),
            units.values(),
            &hooks,
        );
        Self {
            generation: crate::desired::sha256_hex(listing.as_bytes()),
            files,
            units,
            hooks,
        }
    }

    /// The record of this target as generation `number`.
    pub fn record(&self, host: &str, number: u64, time: &str, by: &str) -> Record {
        Record {
            number,
            generation: self.generation.clone(),
            host: host.into(),
            time: time.into(),
            by: by.into(),
            files: self.files.clone(),
            units: self.units.values().cloned().collect(),
            hooks: self.hooks.clone(),
        }
    }
}

/// One generation as the host records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Its number on this host (1, 2, …).
    pub number: u64,
    /// Generation id.
    pub generation: String,
    /// Host name.
    pub host: String,
    /// When it was applied (UTC, RFC 3339), by the operator's clock.
    pub time: String,
    /// Who applied it (`user@machine`).
    pub by: String,
    /// Files by path.
    pub files: BTreeMap<String, RecordFile>,
    /// Units, by name.
    pub units: Vec<UnitSpec>,
    /// Hooks, in run order.
    pub hooks: Vec<Hook>,
}

impl Record {
    /// The record as one line of JSON (the probe reads it back as one line).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a record serialises")
    }

    /// `N.files`: one `ID MODE OWNER GROUP SECRET PATH` line per file,
    /// tab-separated, for the host's scripts (the probe reads the paths; the
    /// store's garbage collection reads the ids).
    pub fn files_table(&self) -> String {
        let mut out = String::new();
        for (path, f) in &self.files {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{path}\n",
                f.id,
                f.mode,
                f.owner,
                f.group,
                if f.secret { "s" } else { "-" }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_keeps_the_generation() {
        let mut state = DesiredState {
            host: "h".into(),
            files: BTreeMap::new(),
            units: BTreeMap::new(),
            hooks: vec![],
        };
        state.files.insert(
            "/etc/a b".into(),
            crate::desired::FileSpec::new(b"x".to_vec(), 0o640, "root", "adm"),
        );
        let target = Target::from_desired(&state, b"k");
        assert_eq!(target.generation, state.generation_id());
        let record = target.record("h", 3, "2026-01-01T00:00:00Z", "me@here");
        let back: Record = serde_json::from_str(&record.to_json()).unwrap();
        assert_eq!(back, record);
        assert_eq!(Target::from_record(&back), target);
        assert_eq!(
            record.files_table(),
            format!(
                "{}\t0640\troot\tadm\t-\t/etc/a b\n",
                crate::desired::sha256_hex(b"x")
            )
        );
    }
}
