//! Per-host progress on stderr: a spinner per host on a terminal, one plain
//! line per finished step otherwise (also on a `TERM=dumb` terminal, which
//! cannot redraw a spinner), nothing with `--json` or `-q`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Style, Terminal, Verbosity};
use crate::deploy::host::{Phase, Progress, Stage};
use crate::plan::human_bytes;

/// The progress display for one command, and the phases' times it was told
/// (for the report: `-v` and `--json`).
pub struct Display {
    /// Where progress goes.
    out: Out,
    /// Each host's phases, in the order they ended.
    phases: Mutex<BTreeMap<String, Vec<Phase>>>,
}

/// Where progress goes.
enum Out {
    /// Spinners on a terminal.
    Bars {
        /// The bars' container.
        multi: MultiProgress,
        /// One bar per host.
        bars: Mutex<BTreeMap<String, ProgressBar>>,
    },
    /// Plain lines on stderr.
    Lines {
        /// When each host started, for durations.
        started: Mutex<BTreeMap<String, Instant>>,
        /// Colour on stderr.
        color: bool,
        /// Also the steps that do not end anything (`-v`).
        every_step: bool,
    },
    /// JSON Lines events on stdout (`--json-lines`).
    Events {
        /// When each host started, for elapsed times.
        started: Mutex<BTreeMap<String, Instant>>,
    },
    /// Nothing.
    Quiet,
}

impl Display {
    /// Bars on a terminal, lines when piped, nothing for JSON.
    pub fn new(json: bool, color: bool) -> Self {
        Self::with(json, color, Verbosity::Normal)
    }

    /// The display `style` asks for: [`Display::new`], nothing with `-q`,
    /// and with `-v` a line for every step when there are no bars.
    pub fn for_style(style: Style) -> Self {
        if style.events {
            return Display::to(Out::Events {
                started: Mutex::new(BTreeMap::new()),
            });
        }
        Self::with(style.json, style.color_err, style.verbosity)
    }

    fn to(out: Out) -> Self {
        Display {
            out,
            phases: Mutex::new(BTreeMap::new()),
        }
    }

    /// Prints each host's phases on stderr, one line per host, with `-v`
    /// and without JSON.
    pub fn print_timings<'a>(&self, style: Style, hosts: impl IntoIterator<Item = &'a str>) {
        if style.json || style.events || style.verbosity != Verbosity::Verbose {
            return;
        }
        for host in hosts {
            let phases = self.phases(host);
            if !phases.is_empty() {
                let _ = writeln!(std::io::stderr(), "{}", timings_line(host, &phases));
            }
        }
    }

    /// The phases `host` was told to have taken, in order.
    pub fn phases(&self, host: &str) -> Vec<Phase> {
        let phases = self.phases.lock().expect("phases lock");
        phases.get(host).cloned().unwrap_or_default()
    }

    fn with(json: bool, color: bool, verbosity: Verbosity) -> Self {
        let animate = Terminal::from_env().animate(std::io::stderr().is_terminal());
        Display::to(if json || verbosity == Verbosity::Quiet {
            Out::Quiet
        } else if animate {
            Out::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(BTreeMap::new()),
            }
        } else {
            Out::Lines {
                started: Mutex::new(BTreeMap::new()),
                color,
                every_step: verbosity == Verbosity::Verbose,
            }
        })
    }

    /// Runs `f` with the bars hidden, so plain output does not tear them.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.out {
            Out::Bars { multi, .. } => multi.suspend(f),
            _ => f(),
        }
    }

    /// Removes the bars still spinning, before printing a report; a bar
    /// that ended stays as the host's result line (host, outcome, time).
    pub fn clear(&self) {
        if let Out::Bars { bars, .. } = &self.out {
            let mut bars = bars.lock().expect("progress lock");
            for bar in bars.values().filter(|b| !b.is_finished()) {
                bar.finish_and_clear();
            }
            bars.clear();
        }
    }
}

/// `HOST: took connect 120 ms, probe 45 ms, …`.
pub fn timings_line(host: &str, phases: &[Phase]) -> String {
    let parts: Vec<String> = phases
        .iter()
        .map(|p| format!("{} {} ms", p.phase, p.ms))
        .collect();
    super::clean_line(&format!("{host}: took {}", parts.join(", "))).into_owned()
}

/// One line about a stage. Failures and outcomes quote the host, so the
/// text is cleaned for the terminal.
fn describe(host: &str, stage: &Stage) -> String {
    let text = match stage {
        Stage::Failed(s) => format!(
            "FAILED: {}",
            s.strip_prefix(&format!("{host}: ")).unwrap_or(s)
        ),
        Stage::Connecting => "connecting".into(),
        Stage::Probing => "probing".into(),
        Stage::Finishing(n) => format!("finishing the interrupted switch to generation {n}"),
        Stage::Switching { number, bytes } if *bytes > 0 => {
            format!(
                "uploading {} and switching to generation {number}",
                human_bytes(*bytes)
            )
        }
        Stage::Switching { number, .. } => format!("switching to generation {number}"),
        Stage::Verifying {
            generation,
            wait_secs: 0,
        } => format!("verifying generation {generation}"),
        Stage::Verifying {
            generation,
            wait_secs,
        } => format!(
            "verifying generation {generation}: readiness beats and stability, up to {wait_secs} s"
        ),
        Stage::Confirming(n) => {
            format!(
                "verifying and confirming generation {n}, which an earlier run left unconfirmed"
            )
        }
        Stage::Checking { heartbeat_timeout } => format!(
            "checking units, auth and timers; waiting up to {heartbeat_timeout} s for heartbeats"
        ),
        Stage::Reading => "reading units, heartbeats and rotations".into(),
        Stage::Done(s) => s.clone(),
    };
    super::clean_line(&text).into_owned()
}

/// A stage as the fields of a `stage` event.
fn event(stage: &Stage) -> serde_json::Value {
    use serde_json::json;
    match stage {
        Stage::Connecting => json!({"stage": "connecting"}),
        Stage::Probing => json!({"stage": "probing"}),
        Stage::Finishing(n) => json!({"stage": "finishing", "generation": n}),
        Stage::Switching { number, bytes } => {
            json!({"stage": "switching", "generation": number, "upload_bytes": bytes})
        }
        Stage::Verifying {
            generation,
            wait_secs,
        } => json!({"stage": "verifying", "generation": generation, "wait_secs": wait_secs}),
        Stage::Confirming(n) => json!({"stage": "confirming", "generation": n}),
        Stage::Checking { heartbeat_timeout } => {
            json!({"stage": "checking", "heartbeat_timeout_secs": heartbeat_timeout})
        }
        Stage::Reading => json!({"stage": "reading"}),
        Stage::Done(s) => json!({"stage": "done", "summary": s}),
        Stage::Failed(s) => json!({"stage": "failed", "reason": s}),
    }
}

impl Progress for Display {
    fn phase(&self, host: &str, phase: &str, took: Duration) {
        let mut phases = self.phases.lock().expect("phases lock");
        phases.entry(host.to_string()).or_default().push(Phase {
            phase: phase.to_string(),
            ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        });
    }

    fn stage(&self, host: &str, stage: Stage) {
        match &self.out {
            Out::Quiet => {}
            Out::Events { started } => {
                let t0 = *started
                    .lock()
                    .expect("progress lock")
                    .entry(host.to_string())
                    .or_insert_with(Instant::now);
                let mut fields = event(&stage);
                fields["host"] = host.into();
                fields["elapsed_secs"] =
                    ((t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0).into();
                super::json::line("stage", &fields);
            }
            Out::Bars { multi, bars } => {
                let mut bars = bars.lock().expect("progress lock");
                let bar = bars.entry(host.to_string()).or_insert_with(|| {
                    let style =
                        ProgressStyle::with_template("{prefix:>14.bold} {spinner} {wide_msg}")
                            .expect("a valid template");
                    let bar = multi.add(
                        ProgressBar::new_spinner()
                            .with_style(style)
                            .with_prefix(host.to_string()),
                    );
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar
                });
                let ended = || {
                    format!(
                        "{} ({:.1} s)",
                        describe(host, &stage),
                        bar.elapsed().as_secs_f64()
                    )
                };
                match &stage {
                    Stage::Done(_) => bar.finish_with_message(ended()),
                    Stage::Failed(_) => bar.abandon_with_message(ended()),
                    _ => bar.set_message(describe(host, &stage)),
                }
            }
            Out::Lines {
                started,
                color,
                every_step,
            } => {
                let mut started = started.lock().expect("progress lock");
                let t0 = *started.entry(host.to_string()).or_insert_with(Instant::now);
                // Only outcomes: intermediate steps would flood CI logs.
                let (tag, code) = match &stage {
                    Stage::Done(_) => ("ok", "32"),
                    Stage::Failed(_) => ("FAILED", "1;31"),
                    Stage::Finishing(_)
                    | Stage::Switching { .. }
                    | Stage::Verifying { .. }
                    | Stage::Confirming(_)
                    | Stage::Checking { .. } => ("..", "2"),
                    Stage::Connecting | Stage::Probing | Stage::Reading if *every_step => {
                        ("..", "2")
                    }
                    Stage::Connecting | Stage::Probing | Stage::Reading => return,
                };
                let tag = if *color {
                    format!("\x1b[{code}m{tag}\x1b[0m")
                } else {
                    tag.to_string()
                };
                let _ = writeln!(
                    std::io::stderr(),
                    "{host}: {tag} {} ({:.1} s)",
                    describe(host, &stage).trim_start_matches("FAILED: "),
                    t0.elapsed().as_secs_f64()
                );
            }
        }
    }
}
