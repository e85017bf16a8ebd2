//! Prints the machine interface's documents (see `crate::report`): one
//! pretty-printed JSON object per command, on stdout.

use serde::Serialize;

use crate::report::Document;

/// Prints a command's document.
pub fn print<T: Serialize>(doc: &Document<T>) {
    println!(
        "{}",
        serde_json::to_string_pretty(doc).expect("a report serialises")
    );
}
