//! Value types of the language: durations, sizes, hours of the day, file modes
//! and names, each parsed from the text the operator wrote.
//!
//! Parse functions return `Err(hint)`; the decoder turns that into a
//! diagnostic at the value's span.

use std::fmt;

use serde::Serialize;

use crate::onhost::STATE_DIR;

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

/// Describes the first character of `text` that may not appear in a value
/// that lands in a generated file: C0 and C1 control characters, DEL, and the
/// Unicode line separators and bidirectional overrides that make text read
/// differently from what it does. `multiline` allows newline, carriage return
/// and tab (file contents). Returns (name, code point, how to fix).
pub fn forbidden_char(text: &str, multiline: bool) -> Option<(&'static str, u32, &'static str)> {
    let c = text.chars().find(|&c| {
        let control = c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        control && !(multiline && matches!(c, '\n' | '\r' | '\t'))
    })?;
    let (name, help) = match c {
        '\n' => (
            "a newline",
            "keep the value on one line (a `\\n` escape or a multi-line string is a newline too); a newline would start a new line of the file the value lands in",
        ),
        '\r' => (
            "a carriage return",
            "remove the carriage return (pasted Windows line ending?)",
        ),
        '\t' => ("a tab", "replace the tab with spaces"),
        '\0' => ("a NUL byte", "remove the NUL byte"),
        '\u{1b}' => (
            "an escape character",
            "remove the escape sequence (pasted terminal colours?)",
        ),
        '\u{7f}' => ("a DEL character", "remove the DEL character"),
        '\u{2028}' | '\u{2029}' => ("a Unicode line separator", "remove the line separator"),
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => (
            "a bidirectional override",
            "remove the bidirectional control character: it makes the text display differently from what it is",
        ),
        _ => (
            "a control character",
            "remove the control character: it would change the meaning of the file the value lands in",
        ),
    };
    Some((name, u32::from(c), help))
}

/// Hosts' virtual filesystems: provision never writes into them (what lands
/// there vanishes at boot or is not a file at all).
const VIRTUAL: &[&str] = &["/proc", "/sys", "/dev", "/run"];

/// Checks what every path on the host shares: absolute, normalised, and free
/// of the characters tmpfiles.d, sysusers.d and unit files split or unquote
/// (whitespace, quotes, backslashes).
fn check_path_text(text: &str) -> Result<(), String> {
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
    if let Some(c) = text
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        let what = match c {
            '"' | '\'' => "a quote",
            '\\' => "a backslash",
            _ => "whitespace",
        };
        return Err(format!(
            "`{text}` holds {what}; paths on the host may not hold whitespace, quotes or backslashes, which tmpfiles.d, sysusers.d and unit files would split or unquote"
        ));
    }
    Ok(())
}

fn under(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// Checks a path provision writes or creates on the host (`file`, `dir`,
/// `workdir`, `home`): absolute, normalised, no whitespace, quotes or
/// backslashes, not `/`, outside the virtual filesystems and provision's own
/// state.
pub fn check_remote_path(text: &str) -> Result<(), String> {
    check_path_text(text)?;
    if text == "/" {
        return Err("`/` is the root directory itself; name a path below it".into());
    }
    if let Some(v) = VIRTUAL.iter().find(|v| under(text, v)) {
        return Err(format!(
            "`{text}` is under `{v}`, a virtual filesystem: what is written there vanishes at boot or is not a file; pick a path on disk, such as under /srv, /opt or /var/lib"
        ));
    }
    if under(text, STATE_DIR) {
        return Err(format!(
            "`{STATE_DIR}` belongs to provision itself (store, generations, lock); pick another path"
        ));
    }
    Ok(())
}

/// Checks a home directory (`home=`): as [`check_remote_path`], except that
/// `/` is allowed (system users often have it; sysusers creates no home).
pub fn check_home_path(text: &str) -> Result<(), String> {
    if text == "/" {
        return Ok(());
    }
    check_remote_path(text)
}

/// Checks a program's path on the host (`exec`'s first word, `shell=`):
/// absolute, normalised, no whitespace, quotes or backslashes. Unlike
/// written paths it may live under /run (NixOS keeps programs in
/// /run/current-system).
pub fn check_program_path(text: &str) -> Result<(), String> {
    check_path_text(text)?;
    if text == "/" {
        return Err("`/` is a directory, not a program".into());
    }
    Ok(())
}

/// Checks the literal a mode was written as. KDL reads `0644` and `644` as
/// the decimal number 644 (0o1204), so only the `0o` form says what the
/// operator means. `repr` is the text of the number as written, when the
/// parser kept it; without it, decimal values that look octal are refused.
pub fn check_mode_literal(repr: Option<&str>, value: i128) -> Result<(), String> {
    let octal_digits = |s: &str| !s.is_empty() && s.chars().all(|c| matches!(c, '0'..='7'));
    let suggest = |digits: &str| {
        let d = digits.trim_start_matches('0');
        if d.is_empty() {
            "0".to_string()
        } else {
            d.to_string()
        }
    };
    match repr.map(|r| r.trim().trim_start_matches('+').replace('_', "")) {
        Some(r) if r.starts_with("0o") => Ok(()),
        Some(r) if r.starts_with("0x") || r.starts_with("0b") || r.starts_with('-') => {
            Err(format!(
                "`{r}` is not an octal mode; write modes in octal with the `0o` prefix, such as `mode=0o{value:o}`"
            ))
        }
        Some(r) => {
            let hint = if octal_digits(&r) {
                format!("0o{}", suggest(&r))
            } else {
                format!("0o{value:o}")
            };
            Err(format!(
                "`{r}` is the decimal number {value}, not an octal mode; write modes with the `0o` prefix: `mode={hint}` (KDL reads `0644` as the decimal 644)"
            ))
        }
        None => {
            let digits = value.to_string();
            if value > 7 && octal_digits(&digits) {
                Err(format!(
                    "`{digits}` is the decimal number {value}, not an octal mode; write modes with the `0o` prefix: `mode=0o{digits}`"
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// Checks a Telegram chat id: a number (`-100…` for groups and channels) or
/// a public `@channelname`.
pub fn check_chat_id(text: &str) -> Result<(), String> {
    let number = text.strip_prefix('-').unwrap_or(text);
    let ok = (!number.is_empty() && number.chars().all(|c| c.is_ascii_digit()))
        || text.strip_prefix('@').is_some_and(|n| {
            !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not a Telegram chat id; write the chat's number, such as `-1001234567890`, or `@channelname`"
        ))
    }
}

/// Checks an alert URL (`webhook=`, `api=`): `https://HOST[:PORT][/…]`, or
/// `http://` when `insecure` is set. The URL lands in an sh settings file and
/// in curl's configuration, so it may not hold spaces, quotes, backslashes or
/// anything outside printable ASCII, and it names a host without
/// credentials (`https://good.example@evil.example` reads as the first).
pub fn check_url(text: &str, insecure: bool) -> Result<(), String> {
    let hint = if insecure {
        "write `https://host/path` (or `http://…`)"
    } else {
        "write `https://host/path`"
    };
    if let Some(c) = text.chars().find(|c| {
        !c.is_ascii_graphic()
            || matches!(
                c,
                '"' | '\'' | '\\' | '`' | '<' | '>' | '{' | '}' | '|' | '^'
            )
    }) {
        let what = match c {
            ' ' => "a space".to_string(),
            '"' | '\'' | '`' => "a quote".to_string(),
            '\\' => "a backslash".to_string(),
            c if !c.is_ascii() => format!("`{c}`, which is not ASCII"),
            c => format!("`{c}`"),
        };
        return Err(format!(
            "`{text}` holds {what}; percent-encode it (`%20` for a space), or use the host's punycode name"
        ));
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!("`{text}` is not a URL; {hint}"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if insecure => {}
        "http" => {
            return Err(format!(
                "`{text}` is plain http: alerts would cross the network unencrypted; use `https://`, or say `insecure=#true` on the alert to allow http"
            ));
        }
        _ => return Err(format!("`{scheme}` is not http or https; {hint}")),
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err(format!(
            "`{text}` holds credentials before `@`; a URL here names only a host (put a token in the path or query instead)"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(format!("`{text}` has an unclosed `[`; {hint}"));
        };
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(format!("`[{addr}]` is not an IPv6 address; {hint}"));
        }
        match after {
            "" => (addr, None),
            p => match p.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None => return Err(format!("`{text}` has text after `]`; {hint}")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{text}` names no host; {hint}"));
    }
    if !authority.starts_with('[') {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        let name = host.strip_suffix('.').unwrap_or(host);
        if host.len() > 253 || !name.split('.').all(label_ok) {
            return Err(format!(
                "`{host}` is not a host name; use letters, digits, `-` and `.`"
            ));
        }
    }
    if let Some(p) = port
        && !(p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|p| p > 0))
    {
        return Err(format!("`{p}` is not a port; a port is 1 to 65535"));
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
        for bad in [
            "/srv/a b",
            "/srv/a\"b",
            "/srv/a\\b",
            "/",
            "/proc/x",
            "/run",
            "/sys/x",
            "/dev/shm/x",
        ] {
            assert!(check_remote_path(bad).is_err(), "{bad} should fail");
        }
        assert!(check_remote_path("/running/x").is_ok());
        assert!(check_home_path("/").is_ok());
        assert!(check_program_path("/run/current-system/sw/bin/bash").is_ok());
        assert!(check_program_path("bash").is_err());
    }

    #[test]
    fn forbidden_characters() {
        assert_eq!(forbidden_char("a\nb", false).map(|f| f.1), Some(0x0a));
        assert_eq!(forbidden_char("a\nb\t\r", true), None);
        assert_eq!(
            forbidden_char("a\u{1b}[0m", true).map(|f| f.0),
            Some("an escape character")
        );
        assert_eq!(forbidden_char("\u{9b}", false).map(|f| f.1), Some(0x9b));
        assert_eq!(
            forbidden_char("x\u{2066}", false).map(|f| f.0),
            Some("a bidirectional override")
        );
        assert_eq!(forbidden_char("ünïcode – ok", false), None);
    }

    #[test]
    fn mode_literals() {
        assert!(check_mode_literal(Some("0o644"), 0o644).is_ok());
        assert!(check_mode_literal(Some("0o2_770"), 0o2770).is_ok());
        assert_eq!(
            check_mode_literal(Some("0644"), 644).unwrap_err(),
            "`0644` is the decimal number 644, not an octal mode; write modes with the `0o` prefix: `mode=0o644` (KDL reads `0644` as the decimal 644)"
        );
        assert!(
            check_mode_literal(Some("420"), 420)
                .unwrap_err()
                .contains("`mode=0o420`")
        );
        assert!(
            check_mode_literal(Some("0x1a4"), 0x1a4)
                .unwrap_err()
                .contains("`mode=0o644`")
        );
        // Digits that are not all octal: the value's octal form.
        assert!(
            check_mode_literal(Some("489"), 489)
                .unwrap_err()
                .contains("`mode=0o751`")
        );
        assert!(check_mode_literal(Some("0"), 0).is_err());
        // Without the literal: decimal values that look octal are refused.
        assert!(check_mode_literal(None, 644).is_err());
        assert!(check_mode_literal(None, 2770).is_err());
        assert!(check_mode_literal(None, 0o755).is_ok());
        assert!(check_mode_literal(None, 7).is_ok());
    }

    #[test]
    fn urls() {
        for ok in [
            "https://api.telegram.org",
            "https://hooks.example.com:8443/a/b?c=d%20e#f",
            "https://[2001:db8::1]:443/x",
            "https://127.0.0.1/x",
        ] {
            assert_eq!(check_url(ok, false), Ok(()), "{ok}");
        }
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
        for (bad, why) in [
            ("http://x.example/", "plain http"),
            ("https://", "names no host"),
            ("https://:80/", "names no host"),
            ("https://a@b.example/", "credentials"),
            ("https://x.example/a b", "a space"),
            ("https://x.example/'", "a quote"),
            ("https://x.example/\\", "a backslash"),
            ("https://exämple.com/", "not ASCII"),
            ("https://x.example:0/", "not a port"),
            ("https://x.example:http/", "not a port"),
            ("https://-x.example/", "not a host name"),
            ("https://[zz]/", "not an IPv6 address"),
            ("ftp://x.example/", "not http or https"),
            ("x.example", "not a URL"),
        ] {
            let e = check_url(bad, false).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn chat_ids() {
        assert!(check_chat_id("-1001234567890").is_ok());
        assert!(check_chat_id("@ops_room").is_ok());
        for bad in ["", "-", "@", "ops room", "12a", "'1'"] {
            assert!(check_chat_id(bad).is_err(), "{bad}");
        }
    }
}
