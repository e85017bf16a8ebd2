//! Credential expiry: how near an expiry is, judged the same way by
//! `status`, `verify` and the host's expiry timer (`expiry-check.sh`, whose
//! `expiry_verdict` the tests hold to [`verdict`]), and how what the host
//! learned is read back. Pure.

use serde::Serialize;

use crate::date;

/// How near a credential's expiry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Further away than its warning window.
    Ok,
    /// Inside its warning window (`warn-before`), not yet passed.
    Warn,
    /// Passed.
    Expired,
    /// Not learned: the command failed or printed no date, or the host has
    /// not checked yet. Never counts as ok.
    Unknown,
}

impl Verdict {
    /// The name JSON, the host's state and the terminal use.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Expired => "expired",
            Verdict::Unknown => "unknown",
        }
    }
}

/// The verdict at `now` for a credential expiring at `expires` (both in
/// seconds since the epoch), warned about `warn_before` seconds ahead. A
/// credential expires at its moment: at `now == expires` it is expired.
pub fn verdict(now: u64, expires: u64, warn_before: u64) -> Verdict {
    if expires <= now {
        Verdict::Expired
    } else if expires - now <= warn_before {
        Verdict::Warn
    } else {
        Verdict::Ok
    }
}

/// The longest answer about an expiry read from the host. An epoch or an
/// RFC 3339 date-time is far shorter; anything longer is not one.
pub const MAX_LEARNED_LEN: usize = 40;

/// Reads an expiry the host learned: seconds since the epoch, as the host's
/// `expiry-check --learn` prints them. Anything else (too long, not digits,
/// beyond the year 9999) is refused: it came through a program the agent's
/// command fed.
pub fn parse_learned(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok().filter(|&s| s < 253_402_300_800)
}

/// `3 days`, `1 day`, `5 h`, `12 min`: the time to an expiry or since it, in
/// the largest whole unit.
pub fn span(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 86_400 => "1 day".into(),
        s if s >= 3600 => format!("{} h", s / 3600),
        s => format!("{} min", s / 60),
    }
}

/// What a verdict means, in a sentence about `auth`, for verify and
/// status: the date and the days left or passed.
pub fn describe(auth: &str, now: u64, expires: u64, warn_before: u64) -> String {
    let when = date::utc(expires);
    match verdict(now, expires, warn_before) {
        Verdict::Expired => format!(
            "credential `{auth}` expired at {when}, {} ago: renew it",
            span(now - expires)
        ),
        Verdict::Warn => format!(
            "credential `{auth}` expires at {when}, in {}: inside its {} warning, renew it",
            span(expires - now),
            span(warn_before)
        ),
        Verdict::Ok | Verdict::Unknown => format!(
            "credential `{auth}` expires at {when}, in {}",
            span(expires - now)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const NOW: u64 = 1_800_000_000;

    /// now, expiry, warn-before -> verdict; the host's `expiry_verdict`
    /// answers the same table (`tests/scripts.rs`).
    pub const TABLE: &[(u64, u64, u64, Verdict)] = &[
        (NOW, NOW + 30 * DAY, 7 * DAY, Verdict::Ok),
        (NOW, NOW + 7 * DAY + 1, 7 * DAY, Verdict::Ok),
        (NOW, NOW + 7 * DAY, 7 * DAY, Verdict::Warn),
        (NOW, NOW + 3 * DAY, 7 * DAY, Verdict::Warn),
        (NOW, NOW + 1, 7 * DAY, Verdict::Warn),
        (NOW, NOW, 7 * DAY, Verdict::Expired),
        (NOW, NOW - DAY, 7 * DAY, Verdict::Expired),
        (NOW, 0, 7 * DAY, Verdict::Expired),
        (NOW, NOW + 2 * 3600, 3600, Verdict::Ok),
        (NOW, NOW + 3600, 3600, Verdict::Warn),
    ];

    #[test]
    fn verdicts() {
        for &(now, expires, warn, want) in TABLE {
            assert_eq!(verdict(now, expires, warn), want, "{now} {expires} {warn}");
        }
    }

    #[test]
    fn learned_expiries_are_read_defensively() {
        assert_eq!(parse_learned("1801440000\n"), Some(1_801_440_000));
        assert_eq!(parse_learned(" 0 "), Some(0));
        for bad in [
            "",
            "-",
            "-5",
            "1e9",
            "2027-02-01",
            "12345678901234",
            "999999999999",
            "1801440000 1",
        ] {
            assert_eq!(parse_learned(bad), None, "{bad}");
        }
    }

    #[test]
    fn descriptions_say_the_date_and_the_days() {
        let three = describe("mog", NOW, NOW + 3 * DAY + 600, 7 * DAY);
        assert_eq!(
            three,
            format!(
                "credential `mog` expires at {}, in 3 days: inside its 7 days warning, renew it",
                date::utc(NOW + 3 * DAY + 600)
            )
        );
        assert!(describe("mog", NOW, NOW - 2 * DAY, DAY).contains("expired at 2027-01-13T"));
        assert!(describe("mog", NOW, NOW - 2 * DAY, DAY).ends_with("2 days ago: renew it"));
        assert!(describe("mog", NOW, NOW + 40 * DAY, DAY).ends_with("in 40 days"));
        assert_eq!(span(90), "1 min");
        assert_eq!(span(5 * 3600), "5 h");
        assert_eq!(span(DAY + 5), "1 day");
    }
}
