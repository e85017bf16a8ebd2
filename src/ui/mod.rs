//! Output for people and machines: colour only on a terminal and never with
//! `NO_COLOR` (unless `CLICOLOR_FORCE` asks for it, or `--color`), none for
//! `TERM=dumb`, JSON with `--json`. Renders data the commands hand it;
//! decides nothing.

pub mod diagnostics;
pub mod json;
pub mod markdown;
pub mod onboard;
pub mod plan;
pub mod progress;
pub mod verify;

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::IsTerminal;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal unless NO_COLOR is set or TERM is dumb;
    /// CLICOLOR_FORCE=1 colours also when piped.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// How much a command tells besides its result: `-q`, `-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    /// `-q`: errors and the final summary only, no progress.
    Quiet,
    /// The default.
    #[default]
    Normal,
    /// `-v`: every step, also when the output is not a terminal.
    Verbose,
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
    /// Stream the JSON as JSON Lines events (`--json-lines`; `json` is set
    /// too).
    pub events: bool,
    /// How much to tell.
    pub verbosity: Verbosity,
}

/// The environment variables that decide colour and terminal features,
/// read once so that the decisions can be tested without touching the
/// process's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terminal {
    /// `NO_COLOR` is set and not empty (<https://no-color.org>).
    pub no_color: bool,
    /// `CLICOLOR_FORCE` is set and not `0`: colour even when piped.
    pub force_color: bool,
    /// `TERM=dumb`: a terminal that cannot take escape sequences, so no
    /// colour and no spinners (a spinner redraws its line with them).
    pub dumb: bool,
}

impl Terminal {
    /// Reads the variables from the environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// Reads the variables through `var`.
    pub fn from_vars<V: AsRef<OsStr>>(var: impl Fn(&str) -> Option<V>) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.as_ref().is_empty());
        Self {
            no_color: set("NO_COLOR").is_some(),
            force_color: set("CLICOLOR_FORCE").is_some_and(|v| v.as_ref() != "0"),
            dumb: var("TERM").is_some_and(|v| v.as_ref() == "dumb"),
        }
    }

    /// Whether to colour a stream that is (`tty`) or is not a terminal.
    /// `--color` decides when given; then `NO_COLOR` (it says no to colour
    /// anywhere), `CLICOLOR_FORCE`, and `TERM=dumb`.
    pub fn color(&self, choice: ColorChoice, tty: bool) -> bool {
        match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto if self.no_color => false,
            ColorChoice::Auto if self.force_color => true,
            ColorChoice::Auto => tty && !self.dumb,
        }
    }

    /// Whether a stream that is (`tty`) or is not a terminal can show
    /// spinners that redraw their lines.
    pub fn animate(&self, tty: bool) -> bool {
        tty && !self.dumb
    }
}

impl Style {
    /// Decides from the flags, the environment and the terminal.
    pub fn detect(choice: ColorChoice, json: bool, verbosity: Verbosity) -> Self {
        let term = Terminal::from_env();
        Self {
            color: term.color(choice, std::io::stdout().is_terminal()),
            color_err: term.color(choice, std::io::stderr().is_terminal()),
            json,
            events: false,
            verbosity,
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

    /// Prints one host's error on stderr, once: `error: MESSAGE`, then the
    /// indented lines of `log` (a switch's own account). Both quote the
    /// host, so they are cleaned for the terminal.
    pub fn host_error(&self, message: &str, log: &str) {
        let prefix = if self.color_err {
            "\x1b[1;31merror:\x1b[0m"
        } else {
            "error:"
        };
        let mut text = format!("{prefix} {}\n", clean(message));
        for line in log.lines() {
            text.push_str(&format!("    {}\n", clean(line)));
        }
        eprint!("{text}");
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

    fn terminal(vars: &[(&str, &str)]) -> Terminal {
        Terminal::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn colour_follows_the_flag_then_no_color_clicolor_force_and_term() {
        use ColorChoice::{Always, Auto, Never};
        let plain = terminal(&[]);
        assert!(plain.color(Auto, true));
        assert!(!plain.color(Auto, false));
        let forced = terminal(&[("CLICOLOR_FORCE", "1")]);
        assert!(forced.color(Auto, false));
        assert!(!forced.color(Never, false));
        assert!(!terminal(&[("CLICOLOR_FORCE", "0")]).color(Auto, false));
        assert!(!terminal(&[("CLICOLOR_FORCE", "")]).color(Auto, false));
        let none = terminal(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")]);
        assert!(!none.color(Auto, true));
        assert!(none.color(Always, false));
        assert!(terminal(&[("NO_COLOR", "")]).color(Auto, true));
        let dumb = terminal(&[("TERM", "dumb")]);
        assert!(!dumb.color(Auto, true));
        assert!(!dumb.animate(true));
        assert!(dumb.color(Always, true));
        assert!(terminal(&[("TERM", "dumb"), ("CLICOLOR_FORCE", "1")]).color(Auto, false));
        assert!(terminal(&[("TERM", "xterm-256color")]).animate(true));
        assert!(!plain.animate(false));
    }

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
