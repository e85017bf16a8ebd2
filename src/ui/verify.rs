//! Verification checks for people: one line per check, the output of a
//! failed auth check indented under it. All of it is the host's text, so
//! all of it goes through [`clean`](super::clean).

use std::fmt::Write as _;

use super::{Style, clean, clean_line};
use crate::verify::Check;

/// The checks, failures first, as indented lines.
pub fn checks(checks: &[Check], style: Style) -> String {
    let mut out = String::new();
    let mut sorted: Vec<&Check> = checks.iter().collect();
    sorted.sort_by_key(|c| (!c.failed(), c.ok));
    for c in sorted {
        let tag = if c.ok {
            style.paint("32", "ok  ")
        } else if c.skipped {
            style.paint("33", "skip")
        } else {
            style.paint("1;31", "FAIL")
        };
        let _ = writeln!(
            out,
            "  {tag} {:<9} {}: {}",
            c.kind,
            clean_line(&c.subject),
            clean_line(&c.detail)
        );
        if let Some(output) = &c.output {
            for line in output.lines() {
                let _ = writeln!(out, "         | {}", clean(line));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_fill_their_column() {
        let c = Check {
            kind: crate::verify::CheckKind::Ssh,
            subject: "alpha".into(),
            ok: true,
            skipped: false,
            detail: "a new connection works".into(),
            output: None,
        };
        let style = Style {
            color: false,
            color_err: false,
            json: false,
            events: false,
            verbosity: Default::default(),
        };
        assert_eq!(
            checks(&[c], style),
            "  ok   ssh       alpha: a new connection works\n"
        );
    }

    #[test]
    fn check_output_is_escaped_line_by_line() {
        let c = Check {
            kind: crate::verify::CheckKind::Auth,
            subject: "mail\u{202e}".into(),
            ok: false,
            skipped: false,
            detail: "failed\x1b[2K\rall good".into(),
            output: Some("line one\x1b]8;;http://x\x07\nline\ttwo\x08\n".into()),
        };
        let style = Style {
            color: false,
            color_err: false,
            json: false,
            events: false,
            verbosity: Default::default(),
        };
        let text = checks(&[c], style);
        assert!(
            !text.contains(['\x1b', '\r', '\x07', '\x08', '\u{202e}']),
            "{text:?}"
        );
        assert!(
            text.contains("mail\\u{202e}: failed\\x1b[2K\\rall good"),
            "{text}"
        );
        // The output keeps its lines (and tabs), each one cleaned.
        assert!(
            text.contains("| line one\\x1b]8;;http://x\\x07\n"),
            "{text}"
        );
        assert!(text.contains("| line\ttwo\\x08\n"), "{text}");
    }
}
