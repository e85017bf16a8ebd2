//! Output for people and machines: colour only on a terminal and never with
//! `NO_COLOR`, JSON with `--json`. Renders data the commands hand it; decides
//! nothing.

pub mod diagnostics;
pub mod json;
pub mod plan;
pub mod progress;
pub mod verify;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::IsTerminal;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Use ANSI colour on stdout.
    pub color: bool,
    /// Use ANSI colour on stderr.
    pub color_err: bool,
    /// Print JSON instead of text.
    pub json: bool,
}

impl Style {
    /// Decides from the flags, the environment and the terminal.
    pub fn detect(choice: ColorChoice, json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let pick = |tty: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color,
        };
        Self {
            color: pick(std::io::stdout().is_terminal()),
            color_err: pick(std::io::stderr().is_terminal()),
            json,
        }
    }

    /// Wraps `text` in an ANSI style when colour is on.
    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Host text made safe to print on a terminal, keeping its lines and tabs.
///
/// What a host says (auth-check output, old file contents in diffs, unit
/// states, error messages with the host's stderr) is written by whoever
/// controls the host, and a terminal obeys control sequences: an escape
/// sequence can rewrite what the operator saw above, a carriage return or
/// backspaces can hide part of a line, a bidi override can make text read
/// in another order than it is stored. Each such character is shown as an
/// escape instead: C0 controls other than newline and tab, DEL and C1
/// controls as `\x1b`, `\r`, `\x7f`, `\u{9b}`; bidi controls (U+061C,
/// U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the line and paragraph
/// separators U+2028 and U+2029 as `\u{202e}`. A backslash is left as it
/// is, so text that already reads `\x1b` is not told apart from an escaped
/// ESC; that hides nothing.
pub fn clean(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// [`clean`] for text that must stay on one line (a table cell, a check's
/// detail, a progress message): newlines and tabs are escaped too.
pub fn clean_line(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, one_line: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| match c {
        '\n' | '\t' => one_line,
        _ => needs_escape(c),
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Characters a terminal would act on or that reorder text.
fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_shown_escaped() {
        let hostile = "ok\x1b[2K\x1b]0;title\x07\rFAKE\x08\x08\u{9b}31m \u{202e}txt.exe\u{2066}x\u{2069}\x7f\0";
        let shown = clean(hostile);
        assert_eq!(
            shown,
            "ok\\x1b[2K\\x1b]0;title\\x07\\rFAKE\\x08\\x08\\u{9b}31m \\u{202e}txt.exe\\u{2066}x\\u{2069}\\x7f\\x00"
        );
        assert!(!shown.chars().any(needs_escape));
        for c in [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{2067}', '\u{2068}', '\u{85}',
        ] {
            assert!(!clean(&c.to_string()).contains(c), "{c:?}");
        }
    }

    #[test]
    fn lines_and_tabs_stay_unless_one_line_is_asked_for() {
        let text = "a\tb\nc: é ✓ \\x1b";
        assert!(matches!(clean(text), Cow::Borrowed(_)));
        assert_eq!(clean(text), text);
        assert_eq!(clean_line(text), "a\\tb\\nc: é ✓ \\x1b");
        assert_eq!(clean("line\r\nnext"), "line\\r\nnext");
    }
}
