//! The record of the last apply: each host's outcome class, kept in the
//! repository's working directory (`.provision/last-apply.json`, git-ignored)
//! so that `apply --retry-failed` can plan again only the hosts that did not
//! end where they should. Pure: what goes in the record, how it reads, and
//! which hosts a retry takes; `command::apply` reads and writes the file.
//!
//! The record holds names, outcome classes and error kinds only: never a
//! message, a log or a value, so nothing from a host or a secret lands in a
//! file that sits next to the repository.

use serde::{Deserialize, Serialize};

/// Where the record lives, relative to the repository.
pub const PATH: &str = ".provision/last-apply.json";

/// The version of the record's format.
pub const VERSION: u32 = 1;

/// The outcome classes `--retry-failed` takes again: every class in which
/// the host did not end at its planned generation, verified. `unchanged`,
/// `switched` and `confirmed` are where they should be.
pub const RETRIED: &[&str] = &[
    "failed",
    "refused",
    "verify-failed",
    "activation-failed",
    "withdrawn",
    "not-attempted",
];

/// One apply's outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastApply {
    /// [`VERSION`].
    pub version: u32,
    /// When the apply started switching, UTC, RFC 3339.
    pub time: String,
    /// Who ran it (`user@machine`, and the CI run when there was one).
    pub who: String,
    /// Each host the apply selected, in name order.
    pub hosts: Vec<Outcome>,
}

/// How one host's apply ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The host.
    pub host: String,
    /// Its outcome class, as the apply's JSON `result` names it
    /// (`failed` for a host that could not be planned).
    pub result: String,
    /// For a failure, its kind (`unreachable`, `timeout`, `locked`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Outcome {
    /// Whether a retry takes this host again.
    pub fn retried(&self) -> bool {
        RETRIED.contains(&self.result.as_str())
    }
}

impl LastApply {
    /// The record as written: pretty JSON with a final newline.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("plain data serializes");
        text.push('\n');
        text
    }

    /// Reads a record, or says why it cannot be used.
    pub fn parse(text: &str) -> Result<Self, String> {
        let record: LastApply = serde_json::from_str(text)
            .map_err(|e| format!("it is not a record of an apply: {e}"))?;
        if record.version != VERSION {
            return Err(format!(
                "it has version {}, this provision reads version {VERSION}",
                record.version
            ));
        }
        Ok(record)
    }

    /// The hosts a retry takes, in name order.
    pub fn failed(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .hosts
            .iter()
            .filter(|o| o.retried())
            .map(|o| o.host.as_str())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// One line naming the run, for the operator: "the apply of TIME by WHO".
    pub fn run(&self) -> String {
        format!("the apply of {} by {}", self.time, self.who)
    }
}

/// What a retry does with `selected` hosts (already in name order), given
/// the last record: the names to plan again, those selected hosts only.
pub fn retry<'a>(record: &LastApply, selected: &'a [String]) -> Vec<&'a str> {
    let failed = record.failed();
    selected
        .iter()
        .map(String::as_str)
        .filter(|h| failed.contains(h))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(host: &str, result: &str, kind: Option<&str>) -> Outcome {
        Outcome {
            host: host.into(),
            result: result.into(),
            kind: kind.map(str::to_string),
        }
    }

    fn record() -> LastApply {
        LastApply {
            version: VERSION,
            time: "2026-01-02T03:04:05Z".into(),
            who: "ci@runner".into(),
            hosts: vec![
                outcome("a", "switched", None),
                outcome("b", "failed", Some("unreachable")),
                outcome("c", "not-attempted", Some("not-attempted")),
                outcome("d", "unchanged", None),
                outcome("e", "verify-failed", Some("verification")),
                outcome("f", "confirmed", None),
            ],
        }
    }

    #[test]
    fn only_failure_classes_are_retried() {
        assert_eq!(record().failed(), ["b", "c", "e"]);
    }

    #[test]
    fn a_retry_keeps_the_selection() {
        let selected: Vec<String> = ["a", "c", "d", "e"].map(String::from).into();
        assert_eq!(retry(&record(), &selected), ["c", "e"]);
    }

    #[test]
    fn the_record_reads_back() {
        let r = record();
        assert_eq!(LastApply::parse(&r.to_text()).unwrap(), r);
        assert!(!r.to_text().contains("\"kind\": null"));
    }

    #[test]
    fn a_foreign_or_newer_record_is_refused() {
        assert!(LastApply::parse("{}").unwrap_err().contains("not a record"));
        let mut r = record();
        r.version = 9;
        let e = LastApply::parse(&r.to_text()).unwrap_err();
        assert!(e.contains("version 9"), "{e}");
    }
}
