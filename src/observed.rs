//! What a host holds, as one probe saw it: its current generation and the
//! actual content hash, mode and owner of every path involved.
//!
//! [`probe`] builds the request (a fixed POSIX sh program and its input);
//! [`parse_probe`] reads the answer. Both are pure; running the script is the
//! transport's business.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;

use crate::content_id::ContentId;
use crate::desired::DesiredState;
use crate::record::{Record, Target};
use crate::script::PROBE_SH;

/// A path as the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathState {
    /// Nothing there.
    Missing,
    /// A regular file.
    File {
        /// Its content id: the hex sha256, or for a file that holds a secret
        /// (in the current or the next generation) the keyed id the host
        /// computed ([`ContentId::keyed`]): no plain hash of a secret leaves
        /// the host.
        id: ContentId,
        /// Permission bits, octal as `stat` prints them (`644`).
        mode: u32,
        /// Owner name (`UNKNOWN` when the uid has none).
        owner: String,
        /// Group name.
        group: String,
    },
    /// Something provision would not overwrite: a directory, a symlink.
    Other(String),
    /// A path provision does not reach: a directory on the way is a link or
    /// is writable by others. Holds the probe's reason.
    Unsafe(String),
}

impl PathState {
    /// What an unsafe path is, in words, with the probe's reason `why`.
    pub fn unsafe_text(why: &str) -> String {
        format!("path through a link or an unsafe directory ({why})")
    }
}

/// An interrupted switch found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switching {
    /// The generation it switches to.
    pub generation: u64,
    /// Its job is still running (a connection dropped while it ran).
    pub running: bool,
}

/// One probe's view of a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The host's clock when the probe ran (epoch seconds).
    pub now: Option<u64>,
    /// The host's fingerprint key (hex), if it could be read or made.
    pub key: Option<Vec<u8>>,
    /// The generation `current` points at.
    pub current: Option<u64>,
    /// Its record.
    pub record: Option<Record>,
    /// How its activation ended (`ok`, `failed: …`); `None` if it never
    /// finished.
    pub status: Option<String>,
    /// The highest generation number on the host.
    pub latest: Option<u64>,
    /// A switch that did not finish.
    pub switching: Option<Switching>,
    /// The current generation awaits its confirmation: the dead-man switch
    /// goes back to this generation unless it comes.
    pub unconfirmed: Option<u64>,
    /// When the switch to that unconfirmed generation began (host epoch
    /// seconds), before it restarted anything.
    pub switched_at: Option<u64>,
    /// Free bytes where the store lives.
    pub disk_free: Option<u64>,
    /// Size and free bytes of the journal's filesystem.
    pub journal_fs: Option<(u64, u64)>,
    /// Content ids the host's store holds (of those asked about).
    pub stored: BTreeSet<ContentId>,
    /// Every path looked at.
    pub paths: BTreeMap<String, PathState>,
    /// Old contents of text files that differ from the target, for diffs.
    pub contents: BTreeMap<String, Vec<u8>>,
    /// What the probe could not do.
    pub warnings: Vec<String>,
}

/// The probe's script and input: every path to look at, with its new sha256
/// when it is a plain (non-secret) file. For those the probe reports whether
/// the host's store has that content, and sends the old text when it differs.
pub fn probe<'a>(
    paths: impl Iterator<Item = (&'a str, Option<&'a ContentId>)>,
) -> (String, Vec<u8>) {
    let mut input = String::new();
    for (path, id) in paths {
        let (flag, sha) = match id {
            Some(id) => ("t", id.as_str()),
            None => ("k", "-"),
        };
        input.push_str(&format!("{flag}\t{sha}\t{path}\n"));
    }
    (PROBE_SH.to_string(), input.into_bytes())
}

/// The probe's paths for a rendered state (secret files never send content).
pub fn desired_paths(state: &DesiredState) -> Vec<(&str, Option<&ContentId>)> {
    state
        .files
        .iter()
        .map(|(p, f)| (p.as_str(), (!f.secret).then_some(&f.sha256)))
        .collect()
}

/// The probe's paths for a recorded target (a rollback).
pub fn target_paths(target: &Target) -> Vec<(&str, Option<&ContentId>)> {
    target
        .files
        .iter()
        .map(|(p, f)| (p.as_str(), (!f.secret).then_some(&f.id)))
        .collect()
}

/// Why a probe's answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the probe's answer is not understood: {0}")]
pub struct ProbeError(pub String);

/// Reads the probe's answer.
pub fn parse_probe(stdout: &str) -> Result<Observed, ProbeError> {
    let mut obs = Observed::default();
    let mut lines = stdout.lines();
    let bad = |line: &str| ProbeError(format!("unexpected line {:?}", truncate(line)));
    match lines.next() {
        Some("probe\t1") => {}
        other => {
            return Err(ProbeError(format!(
                "it does not start with the probe's header (got {:?}); is the host's shell POSIX sh?",
                other.map(truncate).unwrap_or_default()
            )));
        }
    }
    let number = |text: &str, line: &str| text.parse::<u64>().map_err(|_| bad(line));
    // Host text becomes a content id here, and only when it is one.
    let id = |text: &str, line: &str| {
        ContentId::parse(text).map_err(|e| ProbeError(format!("{e}, in line {:?}", truncate(line))))
    };
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["key", hex] => {
                obs.key = Some(hex::decode(hex).map_err(|_| bad(line))?);
            }
            ["warning", text] => obs.warnings.push((*text).to_string()),
            ["current", n] => obs.current = Some(number(n, line)?),
            ["now", n] => obs.now = Some(number(n, line)?),
            ["latest", n] => obs.latest = Some(number(n, line)?),
            ["status", s] => obs.status = Some((*s).to_string()),
            ["unconfirmed", n] => obs.unconfirmed = Some(n.parse().map_err(|_| bad(line))?),
            ["unconfirmed", n, t] => {
                obs.unconfirmed = Some(n.parse().map_err(|_| bad(line))?);
                obs.switched_at = Some(t.parse().map_err(|_| bad(line))?).filter(|t| *t > 0);
            }
            ["record", json] => {
                let record: Record = serde_json::from_str(json)
                    .map_err(|e| ProbeError(format!("the current generation's record: {e}")))?;
                obs.record = Some(record);
            }
            ["switching", n, state] => {
                obs.switching = Some(Switching {
                    generation: number(n, line)?,
                    running: *state == "running",
                });
            }
            ["disk", free] => obs.disk_free = Some(number(free, line)?),
            ["journalfs", size, free] => {
                obs.journal_fs = Some((number(size, line)?, number(free, line)?));
            }
            ["stored", text] => {
                obs.stored.insert(id(text, line)?);
            }
            ["missing", path] => {
                obs.paths.insert((*path).into(), PathState::Missing);
            }
            ["other", what, path] => {
                obs.paths
                    .insert((*path).into(), PathState::Other((*what).into()));
            }
            ["unsafe", why, path] => {
                obs.paths
                    .insert((*path).into(), PathState::Unsafe((*why).into()));
            }
            ["file", text, mode, owner, group, path] => {
                let id = id(text, line)?;
                let mode = u32::from_str_radix(mode, 8).map_err(|_| bad(line))?;
                obs.paths.insert(
                    (*path).into(),
                    PathState::File {
                        id,
                        mode,
                        owner: (*owner).into(),
                        group: (*group).into(),
                    },
                );
            }
            ["content", path] => {
                let mut encoded = String::new();
                loop {
                    match lines.next() {
                        Some("end") => break,
                        Some(l) => encoded.push_str(l),
                        None => {
                            return Err(ProbeError(format!("the content of {path} is cut short")));
                        }
                    }
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| ProbeError(format!("the content of {path} is not base64")))?;
                obs.contents.insert((*path).into(), bytes);
            }
            _ => return Err(bad(line)),
        }
    }
    Ok(obs)
}

impl Observed {
    /// Paths the host has that the probe was asked about and the current
    /// record names.
    pub fn recorded_paths(&self) -> BTreeSet<&str> {
        self.record
            .iter()
            .flat_map(|r| r.files.keys())
            .map(String::as_str)
            .collect()
    }
}

fn truncate(line: &str) -> String {
    line.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_line() {
        let sha = "a".repeat(64);
        let out = format!(
            "probe\t1\nkey\t0aff\ncurrent\t3\nlatest\t4\nstatus\tok\nswitching\t4\trunning\n\
             disk\t1000\nstored\t{sha}\njournalfs\t5000\t2000\nmissing\t/etc/x y\nother\tsymlink\t/etc/l\n\
             unsafe\t/srv/d is writable by every user\t/srv/d/f\n\
             file\t{sha}\t640\troot\tadm\t/etc/f\ncontent\t/etc/f\naGVs\nbG8K\nend\n"
        );
        let obs = parse_probe(&out).unwrap();
        assert_eq!(obs.key, Some(vec![0x0a, 0xff]));
        assert_eq!((obs.current, obs.latest), (Some(3), Some(4)));
        assert_eq!(
            obs.switching,
            Some(Switching {
                generation: 4,
                running: true
            })
        );
        assert_eq!(obs.disk_free, Some(1000));
        assert!(obs.stored.contains(&ContentId::parse(&sha).unwrap()));
        assert_eq!(obs.journal_fs, Some((5000, 2000)));
        assert_eq!(obs.paths["/etc/x y"], PathState::Missing);
        assert_eq!(obs.paths["/etc/l"], PathState::Other("symlink".into()));
        assert_eq!(
            obs.paths["/srv/d/f"],
            PathState::Unsafe("/srv/d is writable by every user".into())
        );
        assert_eq!(
            obs.paths["/etc/f"],
            PathState::File {
                id: ContentId::parse(&sha).unwrap(),
                mode: 0o640,
                owner: "root".into(),
                group: "adm".into()
            }
        );
        assert_eq!(obs.contents["/etc/f"], b"hello\n");
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        assert!(parse_probe("").is_err());
        assert!(parse_probe("bash: sh: not found\n").is_err());
        assert!(parse_probe("probe\t1\nfile\tshort\t644\troot\troot\t/x\n").is_err());
        assert!(parse_probe("probe\t1\ncontent\t/x\naGVs\n").is_err());
        assert!(parse_probe("probe\t1\nsomething\n").is_err());
    }

    #[test]
    fn content_ids_from_the_host_are_checked() {
        let hex = "0".repeat(64);
        let keyed = format!("probe\t1\nfile\thmac-{hex}\t600\troot\troot\t/x\nstored\t{hex}\n");
        let obs = parse_probe(&keyed).unwrap();
        assert!(matches!(&obs.paths["/x"], PathState::File { id, .. } if id.is_keyed()));
        assert!(obs.stored.iter().all(|id| !id.is_keyed()));
        for (line, id) in [
            (
                format!("file\thmac-{}\t644\troot\troot\t/x", &hex[1..]),
                format!("hmac-{}", &hex[1..]),
            ),
            (
                format!("file\tsha-{hex}\t644\troot\troot\t/x"),
                format!("sha-{hex}"),
            ),
            (format!("stored\t{hex}0"), format!("{hex}0")),
            ("stored\t../../etc/shadow".into(), "../../etc/shadow".into()),
        ] {
            let err = parse_probe(&format!("probe\t1\n{line}\n")).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "the probe's answer is not understood: {id:?} is not a content id \
                     (64 hex digits, or `hmac-` and 64 hex digits), in line {line:?}"
                )
            );
        }
    }
}
