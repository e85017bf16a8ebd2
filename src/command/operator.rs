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

/// `user@machine`, for lock holders and generation records.
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
    format!("{user}@{machine}")
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
