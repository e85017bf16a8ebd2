//! Value types of the language: durations, sizes, hours of the day, file modes
//! and names, each parsed from the text the operator wrote.
//!
//! Parse functions return `Err(hint)`; the decoder turns that into a
//! diagnostic at the value's span.

use std::fmt;

use serde::Serialize;

/// A length of time, as written (`45d`, `30m`, `1week`, `1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Duration {
    /// Whole seconds.
    pub secs: u64,
}

const DURATION_UNITS: &[(&[&str], u64)] = &[
    (&["s", "sec", "secs", "second", "seconds"], 1),
    (&["m", "min", "mins", "minute", "minutes"], 60),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600),
    (&["d", "day", "days"], 86_400),
    (&["w", "week", "weeks"], 604_800),
];

const DURATION_HINT: &str = "write a number and a unit, such as `30s`, `10m`, `2h`, `45d` or `1week` (units: s, m, h, d, w); parts may be combined: `1h30m`";

impl Duration {
    /// Parses `45d`, `30m`, `1week`, `1h30m`. Zero is allowed only where the
    /// caller allows it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err(format!("empty duration; {DURATION_HINT}"));
        }
        let mut secs: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!("`{text}` is not a duration; {DURATION_HINT}"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("`{text}` is too large"))?;
            rest = rest[digits..].trim_start();
            let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            let Some(&(_, mult)) = DURATION_UNITS
                .iter()
                .find(|(names, _)| names.contains(&unit))
            else {
                return Err(if unit.is_empty() {
                    format!("`{text}` has no unit; {DURATION_HINT}")
                } else {
                    format!("`{unit}` is not a unit of time; {DURATION_HINT}")
                });
            };
            secs = n
                .checked_mul(mult)
                .and_then(|v| v.checked_add(secs))
                .ok_or_else(|| format!("`{text}` is too large"))?;
            rest = rest[unit_len..].trim_start();
        }
        Ok(Self { secs })
    }

    /// From seconds.
    pub fn from_secs(secs: u64) -> Self {
        Self { secs }
    }
}

impl fmt::Display for Duration {
    /// systemd's time span syntax, largest units first (`1d 2h`), which is
    /// also what the operator would write.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secs == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.secs;
        let mut parts = Vec::new();
        // Weeks only when exact: `45d` reads better than `6w 3d`.
        let week = if rest.is_multiple_of(604_800) {
            604_800
        } else {
            u64::MAX
        };
        for (suffix, size) in [
            ("w", week),
            ("d", 86_400),
            ("h", 3_600),
            ("min", 60),
            ("s", 1),
        ] {
            if rest >= size {
                parts.push(format!("{}{suffix}", rest / size));
                rest %= size;
            }
        }
        f.write_str(&parts.join(" "))
    }
}

/// A size in bytes, as written (`2G`, `500M`, `64K`, `1T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Size {
    /// Bytes (binary multiples, as journald reads them).
    pub bytes: u64,
}

impl Size {
    /// Parses `2G`, `500M`, `64K`, `1T`, `4096`; also accepts `2GiB`/`2GB`
    /// (journald treats both as binary multiples).
    pub fn parse(text: &str) -> Result<Self, String> {
        let hint = "write a whole number with K, M, G or T, such as `500M` or `2G`";
        let t = text.trim();
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("`{text}` is not a size; {hint}"));
        }
        let n: u64 = t[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        let unit = t[digits..].trim();
        let mult: u64 = match unit.to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "K" | "KB" | "KIB" => 1 << 10,
            "M" | "MB" | "MIB" => 1 << 20,
            "G" | "GB" | "GIB" => 1 << 30,
            "T" | "TB" | "TIB" => 1 << 40,
            _ => return Err(format!("`{unit}` is not a size unit; {hint}")),
        };
        let bytes = n
            .checked_mul(mult)
            .ok_or_else(|| format!("`{text}` is too large"))?;
        Ok(Self { bytes })
    }
}

impl fmt::Display for Size {
    /// The largest exact unit (`2G`, `1536M`), as journald.conf accepts it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (suffix, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
            let unit = 1u64 << shift;
            if self.bytes >= unit && self.bytes.is_multiple_of(unit) {
                return write!(f, "{}{suffix}", self.bytes / unit);
            }
        }
        write!(f, "{}", self.bytes)
    }
}

/// Hours of the day in which a heartbeat is expected, `07:00-19:00`; may wrap
/// past midnight (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ActiveHours {
    /// Minutes after midnight the window opens.
    pub start: u16,
    /// Minutes after midnight the window closes.
    pub end: u16,
}

impl ActiveHours {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hint = "write two times of day as `HH:MM-HH:MM`, such as `07:00-19:00` (it may wrap past midnight: `22:00-06:00`)";
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| format!("`{text}` is not a range of hours; {hint}"))?;
        let parse = |s: &str| -> Result<u16, String> {
            let (h, m) = s
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("`{s}` is not a time of day; {hint}"))?;
            let ok = |v: &str| v.len() == 2 && v.chars().all(|c| c.is_ascii_digit());
            if !ok(h) || !ok(m) {
                return Err(format!("`{s}` is not a time of day; {hint}"));
            }
            let (h, m): (u16, u16) = (h.parse().unwrap_or(99), m.parse().unwrap_or(99));
            if h > 24 || m > 59 || (h == 24 && m != 0) {
                return Err(format!("`{s}` is not a time of day; {hint}"));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = (parse(a)?, parse(b)?);
        if start == end {
            return Err(format!("`{text}` is an empty window; {hint}"));
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for ActiveHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// A Unix permission mode (`0o644`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mode(pub u32);

impl Mode {
    /// Checks the range (no file type bits).
    pub fn new(bits: i128) -> Result<Self, String> {
        if (0..=0o7777).contains(&bits) {
            Ok(Self(bits as u32))
        } else {
            Err("a mode is at most 0o7777; write it in octal, such as `mode=0o640`".into())
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        u32::from_str_radix(&text, 8)
            .ok()
            .filter(|bits| *bits <= 0o7777)
            .map(Mode)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an octal mode")))
    }
}

/// Checks a name used in unit and file names (agents, auths): lower-case
/// letters, digits and `-`, starting with a letter.
pub fn check_name(text: &str) -> Result<(), String> {
    let ok = text.len() <= 48
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}` cannot be used in unit names; use lower-case letters, digits and `-`, starting with a letter (at most 48)"
        ))
    }
}

/// Checks a Unix user or group name (what `useradd` accepts on Debian, kept
/// portable).
pub fn check_account(text: &str) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= 32
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not a valid user or group name; use lower-case letters, digits, `-` and `_`, starting with a letter (at most 32)"
        ))
    }
}

/// Checks an absolute, normalised path on the host.
pub fn check_remote_path(text: &str) -> Result<(), String> {
    if !text.starts_with('/') {
        return Err(format!(
            "`{text}` is not absolute; paths on the host start with `/`"
        ));
    }
    if text.len() > 1 && text.ends_with('/') {
        return Err(format!("`{text}` ends with `/`; drop the trailing slash"));
    }
    if text
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "`{text}` is not normalised; remove `//`, `.` and `..` parts"
        ));
    }
    if text.chars().any(|c| c.is_control()) {
        return Err("a path may not hold control characters".into());
    }
    if text == "/var/lib/provision" || text.starts_with("/var/lib/provision/") {
        return Err("`/var/lib/provision` belongs to provision itself (store, generations, lock); pick another path".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("45d").unwrap().secs, 45 * 86_400);
        assert_eq!(Duration::parse("30m").unwrap().secs, 1_800);
        assert_eq!(Duration::parse("1week").unwrap().secs, 604_800);
        assert_eq!(Duration::parse("1h30m").unwrap().secs, 5_400);
        assert_eq!(Duration::parse("10 s").unwrap().secs, 10);
        for bad in [
            "",
            "45",
            "d",
            "5 fortnights",
            "1.5h",
            "-3m",
            "99999999999999999999w",
        ] {
            assert!(Duration::parse(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(Duration::parse("1h30m").unwrap().to_string(), "1h 30min");
        assert_eq!(Duration::from_secs(10).to_string(), "10s");
        assert_eq!(Duration::parse("45d").unwrap().to_string(), "45d");
        assert_eq!(Duration::parse("2w").unwrap().to_string(), "2w");
    }

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("2G").unwrap().bytes, 2 << 30);
        assert_eq!(Size::parse("500M").unwrap().bytes, 500 << 20);
        assert_eq!(Size::parse("500MiB").unwrap().to_string(), "500M");
        assert_eq!(Size::parse("1536M").unwrap().to_string(), "1536M");
        for bad in ["", "G", "2X", "1.5G", "-1G"] {
            assert!(Size::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn active_hours() {
        let h = ActiveHours::parse("07:00-19:00").unwrap();
        assert_eq!((h.start, h.end), (420, 1140));
        assert_eq!(
            ActiveHours::parse("22:00-06:00").unwrap().to_string(),
            "22:00-06:00"
        );
        for bad in [
            "7-19",
            "07:00",
            "25:00-26:00",
            "07:60-08:00",
            "07:00-07:00",
            "7:00-19:00",
        ] {
            assert!(ActiveHours::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn names_and_paths() {
        assert!(check_name("email-triage").is_ok());
        assert!(check_name("Email").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_account("agent").is_ok());
        assert!(check_account("9x").is_err());
        assert!(check_remote_path("/etc/motd").is_ok());
        for bad in [
            "etc/motd",
            "/etc/",
            "/etc//x",
            "/etc/../x",
            "/var/lib/provision/lock",
        ] {
            assert!(check_remote_path(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(Mode::new(0o644).unwrap().to_string(), "0644");
        assert!(Mode::new(0o17777).is_err());
    }
}
