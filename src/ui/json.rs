//! Prints the machine interface's documents (see `crate::report`): one
//! pretty-printed JSON object per command on stdout, or with
//! `--json-lines` a stream of one-line events: a `version` line first, a
//! `stage` line per host and step (see `ui::progress`), and the document
//! last as the `summary` line.

use serde::Serialize;

use super::Style;
use crate::report::{Document, FORMAT_VERSION};

/// One line of the `--json-lines` stream.
#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    /// `version`, `stage` or `summary`.
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    fields: &'a T,
}

/// Prints a command's document (the summary line of a stream).
pub fn print<T: Serialize>(style: Style, doc: &Document<T>) {
    if style.events {
        line("summary", doc);
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(doc).expect("a report serialises")
        );
    }
}

/// Starts a stream: the version line, naming the command.
pub fn start(style: Style, command: &'static str) {
    if style.events {
        line(
            "version",
            &serde_json::json!({
                "format_version": FORMAT_VERSION,
                "command": command,
                "provision": env!("CARGO_PKG_VERSION"),
            }),
        );
    }
}

/// Prints one event line.
pub fn line<T: Serialize>(kind: &'static str, fields: &T) {
    println!(
        "{}",
        serde_json::to_string(&Event { kind, fields }).expect("an event serialises")
    );
}
