//! Verification checks for people: one line per check, the output of a
//! failed auth check indented under it.

use std::fmt::Write as _;

use super::Style;
use crate::verify::Check;

/// The checks, failures first, as indented lines.
pub fn checks(checks: &[Check], style: Style) -> String {
    let mut out = String::new();
    let mut sorted: Vec<&Check> = checks.iter().collect();
    sorted.sort_by_key(|c| c.ok);
    for c in sorted {
        let tag = if c.ok {
            style.paint("32", "ok  ")
        } else {
            style.paint("1;31", "FAIL")
        };
        let _ = writeln!(out, "  {tag} {:<9} {}: {}", c.kind, c.subject, c.detail);
        if let Some(output) = &c.output {
            for line in output.lines() {
                let _ = writeln!(out, "         | {line}");
            }
        }
    }
    out
}
