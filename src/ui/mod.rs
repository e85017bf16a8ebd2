//! Output for people and machines: colour only on a terminal and never with
//! `NO_COLOR`, JSON with `--json`. Renders data the commands hand it; decides
//! nothing.

pub mod diagnostics;
pub mod plan;
pub mod progress;
pub mod verify;

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
