//! The operator's side of a run: asking before a change, who is running it,
//! and the time it is recorded with.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::error::Error;

/// Asks once, on a terminal, whether to go on. Without a terminal or with
/// CI=true it never asks: `--yes` is required.
pub fn confirm(question: &str, yes: bool) -> Result<bool, Error> {
    if yes {
        return Ok(true);
    }
    let answer = ask(
        &format!("{question} Only 'yes' is accepted: "),
        "not asking without a terminal (or with CI set): pass --yes to go ahead",
    )?;
    Ok(answer.trim() == "yes")
}

/// Prints `prompt` on stderr and reads one line of answer, on a terminal
/// only: without one, or with CI=true, nobody could answer, so it fails
/// with `refusal` (which says what to pass instead).
pub fn ask(prompt: &str, refusal: &str) -> Result<String, Error> {
    if !can_ask() {
        return Err(Error::Usage(refusal.into()));
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Usage(format!("cannot read the answer: {e}")))?;
    Ok(answer)
}

/// Whether [`ask`] would ask: on a terminal, without CI set.
pub fn can_ask() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    !ci && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// `user@machine`, and the CI run when there is one, for lock holders and
/// generation records.
pub fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_from_uid)
        .unwrap_or_else(|| "unknown".into());
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    holder(&format!("{user}@{machine}"), |k| std::env::var(k).ok())
}

/// The longest a CI variable may be in the holder line.
const FIELD_MAX: usize = 200;
/// The longest the holder line may be: it lands in host files that the
/// host's scripts read a line of.
pub const HOLDER_MAX: usize = 512;

/// The holder line for `base` (`user@machine`), naming the CI run `var`
/// describes: GitHub Actions (`GITHUB_REPOSITORY`, `GITHUB_RUN_ID`, the run's
/// URL from `GITHUB_SERVER_URL`) or GitLab CI (`CI_PROJECT_PATH`,
/// `CI_PIPELINE_ID`, `CI_JOB_URL`), so a waiting operator knows what to look
/// at. One line, without control or bidi characters, at most
/// [`HOLDER_MAX`] characters: the environment is not trusted to be tidy.
pub fn holder(base: &str, var: impl Fn(&str) -> Option<String>) -> String {
    let get = |k: &str| {
        var(k)
            .map(|v| tidy(v.trim(), FIELD_MAX))
            .filter(|v| !v.is_empty())
    };
    let ci = match (get("GITHUB_REPOSITORY"), get("GITHUB_RUN_ID")) {
        (Some(repo), Some(run)) => {
            let server = get("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
            let server = server.trim_end_matches('/');
            Some(format!(
                "GitHub Actions {repo} run {run}, {server}/{repo}/actions/runs/{run}"
            ))
        }
        _ => match (get("CI_PROJECT_PATH"), get("CI_PIPELINE_ID")) {
            (Some(project), Some(pipeline)) => Some(match get("CI_JOB_URL") {
                Some(url) => format!("GitLab CI {project} pipeline {pipeline}, {url}"),
                None => format!("GitLab CI {project} pipeline {pipeline}"),
            }),
            _ => None,
        },
    };
    match ci {
        Some(ci) => tidy(&format!("{base} ({ci})"), HOLDER_MAX),
        None => tidy(base, HOLDER_MAX),
    }
}

/// `text` without control or bidi characters (each becomes `?`), cut to
/// `max` characters.
fn tidy(text: &str, max: usize) -> String {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    text.chars()
        .map(|c| if c.is_control() || bidi(c) { '?' } else { c })
        .take(max)
        .collect()
}

/// The name of this process's uid, from /proc and /etc/passwd (no libc).
fn user_from_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_string())
    })
}

/// Now, UTC, RFC 3339 to the second.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::date::utc(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn outside_ci_the_holder_is_user_at_machine() {
        assert_eq!(holder("ana@laptop", env(&[])), "ana@laptop");
    }

    #[test]
    fn a_github_run_is_named_with_its_url() {
        let vars = [
            ("GITHUB_REPOSITORY", "acme/fleet"),
            ("GITHUB_RUN_ID", "9876543210"),
            ("GITHUB_SERVER_URL", "https://github.example.com/"),
        ];
        assert_eq!(
            holder("runner@fv-az1", env(&vars)),
            "runner@fv-az1 (GitHub Actions acme/fleet run 9876543210, https://github.example.com/acme/fleet/actions/runs/9876543210)"
        );
        let vars = [("GITHUB_REPOSITORY", "acme/fleet"), ("GITHUB_RUN_ID", "1")];
        assert!(
            holder("r@m", env(&vars)).ends_with(", https://github.com/acme/fleet/actions/runs/1)")
        );
    }

    #[test]
    fn a_gitlab_pipeline_is_named_with_its_job() {
        let vars = [
            ("CI_PROJECT_PATH", "ops/fleet"),
            ("CI_PIPELINE_ID", "42"),
            ("CI_JOB_URL", "https://gitlab.com/ops/fleet/-/jobs/7"),
        ];
        assert_eq!(
            holder("r@m", env(&vars)),
            "r@m (GitLab CI ops/fleet pipeline 42, https://gitlab.com/ops/fleet/-/jobs/7)"
        );
    }

    #[test]
    fn half_a_ci_environment_names_no_run() {
        assert_eq!(holder("r@m", env(&[("GITHUB_RUN_ID", "1")])), "r@m");
    }

    #[test]
    fn the_holder_is_one_bounded_line() {
        let long = "x".repeat(5000);
        let vars = [
            ("GITHUB_REPOSITORY", "acme/fleet\nLOCKED\tforged"),
            ("GITHUB_RUN_ID", "1\r\u{202e}2"),
            ("GITHUB_SERVER_URL", long.as_str()),
        ];
        let line = holder("r@m\x1b[31m", env(&vars));
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert!(!line.contains('\u{202e}'), "{line:?}");
        assert!(line.chars().count() <= HOLDER_MAX, "{}", line.len());
        assert!(line.contains("acme/fleet?LOCKED?forged run 1??2"), "{line}");
    }
}
