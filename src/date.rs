//! Dates as records and reports show them: UTC, RFC 3339, to the second.

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since the epoch of a civil date (proleptic Gregorian), the inverse
/// of the conversion in [`utc`].
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// How a date is written, for the hints below.
const DATE_HINT: &str = "write a date `2027-02-01` or an RFC 3339 date-time such as `2027-02-01T12:00:00Z` or `2027-02-01T12:00:00+02:00`";

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time
/// (`YYYY-MM-DDTHH:MM:SS` with an optional fraction, then `Z` or `±HH:MM`)
/// into seconds since the epoch. Dates before 1970 are refused: nothing
/// provision watches expired then. `Err` holds the hint, as value parsers do.
pub fn parse(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a date; {DATE_HINT}");
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = match (num(0, 4), num(5, 2), num(8, 2)) {
        (Some(y), Some(m), Some(d)) => (y, m, d),
        _ => return Err(bad()),
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return Err(format!(
            "`{text}` is not a day of the calendar; {DATE_HINT}"
        ));
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if b.len() > 10 {
        if !matches!(b[10], b'T' | b't') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let (hh, mm, ss) = match (num(11, 2), num(14, 2), num(17, 2)) {
            (Some(h), Some(m), Some(s)) if h < 24 && m < 60 && s < 61 => (h, m, s),
            _ => return Err(bad()),
        };
        secs += hh * 3600 + mm * 60 + ss;
        let mut i = 19;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(bad());
            }
        }
        match &b[i..] {
            [b'Z' | b'z'] => {}
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let (oh, om) = match (num(i + 1, 2), num(i + 4, 2)) {
                    (Some(h), Some(m)) if h < 24 && m < 60 => (h, m),
                    _ => return Err(bad()),
                };
                let offset = oh * 3600 + om * 60;
                secs += if *sign == b'+' { -offset } else { offset };
            }
            _ => {
                return Err(format!(
                    "`{text}` has no time zone; {DATE_HINT} (end it in `Z` or an offset)"
                ));
            }
        }
    }
    u64::try_from(secs).map_err(|_| format!("`{text}` is before 1970; {DATE_HINT}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_gnu_date_reads_them() {
        // The values `date -u -d TEXT +%s` gives.
        for (text, secs) in [
            ("1970-01-01", 0),
            ("2000-02-29", 951_782_400),
            ("2027-02-01", 1_801_440_000),
            ("2027-02-01T12:00:00Z", 1_801_483_200),
            ("2027-02-01T12:00:00.5Z", 1_801_483_200),
            ("2027-02-01T12:00:00+02:00", 1_801_476_000),
            ("2027-02-01t12:00:00-01:30", 1_801_488_600),
        ] {
            assert_eq!(parse(text), Ok(secs), "{text}");
            if text.len() == 20 {
                assert_eq!(utc(secs), text);
            }
        }
        for bad in [
            "",
            "2027-2-01",
            "2027-02-30",
            "2027-13-01",
            "2027-02-01 12:00:00Z",
            "2027-02-01T12:00:00",
            "2027-02-01T25:00:00Z",
            "2027-02-01T12:00:00+0200",
            "1969-12-31",
            "next friday",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("2027-02-01T12:00").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
