//! `onboard --harden-ssh`, the pure half: which sshd settings the host
//! gets, the drop-in that carries them, how long the guard waits for a
//! fresh login to confirm them, and what the host programs
//! (`script/onboard-harden.sh`, `script/onboard-ssh-guard.sh`) answered.
//!
//! Turning off password and root login can lock the operator out, so the
//! change is guarded on the host: a transient timer puts the old sshd
//! configuration back unless a new login, made after sshd reloaded,
//! confirms it.

/// How long the guard waits for the confirming login, by default. A fresh
/// login takes a second or two even over a slow link; a minute leaves room
/// for retries while sshd re-executes itself after the reload.
pub const DEFAULT_GUARD_SECS: u64 = 60;
/// The shortest guard `--harden-guard` accepts: below it a slow login
/// would lose the race against the guard.
pub const MIN_GUARD_SECS: u64 = 15;
/// The longest guard `--harden-guard` accepts: a lock-out longer than an
/// hour is no longer a safety net.
pub const MAX_GUARD_SECS: u64 = 3600;
/// How much of the guard time the client leaves unused: it stops trying to
/// confirm this long before the guard fires, so its own undo and the
/// guard's never race.
pub const GUARD_MARGIN_SECS: u64 = 5;
// The shortest guard still leaves the login most of its time.
const _: () = assert!(GUARD_MARGIN_SECS * 2 < MIN_GUARD_SECS);

/// What `PermitRootLogin` becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootLogin {
    /// No root login at all: the fleet logs in as another user.
    No,
    /// Root by key only: the fleet itself logs in as root.
    ProhibitPassword,
}

impl RootLogin {
    /// The setting for a fleet that logs in as `user`: root login is
    /// closed only when the fleet does not need it.
    pub fn for_fleet_user(user: &str) -> RootLogin {
        if user == "root" {
            RootLogin::ProhibitPassword
        } else {
            RootLogin::No
        }
    }

    /// The value as written in sshd_config.
    pub fn value(self) -> &'static str {
        match self {
            RootLogin::No => "no",
            RootLogin::ProhibitPassword => "prohibit-password",
        }
    }
}

/// The drop-in's text. sshd keeps the first value it reads of a keyword,
/// so this file sorts first in sshd_config.d (the host program checks that
/// the values took effect with `sshd -T`).
pub fn drop_in(root: RootLogin) -> String {
    format!(
        "# Written by `provision onboard --harden-ssh`: key logins only.\n\
         # sshd keeps the first value of each keyword, so this file sorts first.\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin {}\n",
        root.value()
    )
}

/// Checks a `--harden-guard` value.
pub fn check_guard(secs: u64) -> Result<u64, String> {
    if (MIN_GUARD_SECS..=MAX_GUARD_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "--harden-guard {secs} is out of range: give {MIN_GUARD_SECS} to {MAX_GUARD_SECS} seconds (default {DEFAULT_GUARD_SECS})"
        ))
    }
}

/// What the hardening program did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hardened {
    /// The drop-in is in place, sshd reloaded, and the guard puts the old
    /// configuration back in `secs` seconds unless confirmed.
    Armed {
        /// The guard's time.
        secs: u64,
    },
    /// An earlier onboard hardened sshd the same way and a login confirmed
    /// it: nothing was done.
    Unchanged,
}

/// Reads the hardening program's last stdout line (`armed SECS` or
/// `unchanged`); `None` for anything else.
pub fn parse_hardened(stdout: &str) -> Option<Hardened> {
    let last = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    match last.split_once(' ') {
        Some(("armed", secs)) => secs.parse().ok().map(|secs| Hardened::Armed { secs }),
        None if last == "unchanged" => Some(Hardened::Unchanged),
        _ => None,
    }
}

/// The notes the hardening program printed before its outcome (`note: …`
/// lines), for the operator.
pub fn notes(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("note: "))
        .collect()
}

/// What the guard program answered to a confirmation or an undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// The new configuration is confirmed and the guard is gone.
    Confirmed,
    /// The old configuration is back (put back now, or by the guard
    /// already).
    Restored,
}

/// Reads the guard program's last stdout line (`confirmed`, `restored`).
pub fn parse_guarded(stdout: &str) -> Option<Guarded> {
    match stdout.lines().map(str::trim).rfind(|l| !l.is_empty())? {
        "confirmed" => Some(Guarded::Confirmed),
        "restored" => Some(Guarded::Restored),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_login_is_closed_only_when_the_fleet_does_not_need_it() {
        assert_eq!(RootLogin::for_fleet_user("deploy"), RootLogin::No);
        assert_eq!(
            RootLogin::for_fleet_user("root"),
            RootLogin::ProhibitPassword
        );
        let text = drop_in(RootLogin::No);
        for line in [
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
        ] {
            assert!(text.lines().any(|l| l == line), "{text}");
        }
        assert!(
            drop_in(RootLogin::ProhibitPassword).contains("PermitRootLogin prohibit-password\n")
        );
    }

    #[test]
    fn guard_times() {
        assert_eq!(check_guard(DEFAULT_GUARD_SECS), Ok(60));
        assert!(check_guard(MIN_GUARD_SECS).is_ok());
        let short = check_guard(5).unwrap_err();
        assert!(short.contains("15 to 3600"), "{short}");
        assert!(check_guard(MAX_GUARD_SECS + 1).is_err());
    }

    #[test]
    fn outcomes() {
        assert_eq!(
            parse_hardened("note: x\narmed 60\n"),
            Some(Hardened::Armed { secs: 60 })
        );
        assert_eq!(parse_hardened("unchanged\n"), Some(Hardened::Unchanged));
        for bad in ["", "armed", "armed soon", "ok"] {
            assert_eq!(parse_hardened(bad), None, "{bad:?}");
        }
        assert_eq!(notes("note: a b\nother\nnote: c\narmed 1"), ["a b", "c"]);
        assert_eq!(parse_guarded("confirmed\n"), Some(Guarded::Confirmed));
        assert_eq!(parse_guarded("x\nrestored"), Some(Guarded::Restored));
        assert_eq!(parse_guarded("confirm"), None);
    }
}
