//! `onboard`'s table of a host's facts.

use crate::onboard::facts::{Facts, MAX_SKEW_SECS, MIN_FREE_KIB};
use crate::ui::Style;

/// The facts as a two-column table, each row marked `ok` or with what is
/// wrong; `login` says how scripts become root (`root`, or `sudo -n` as
/// a user), `skew` is the host's clock minus the operator's.
pub fn facts(f: &Facts, login: &str, skew: Option<i64>, style: Style) -> String {
    let mib = |k: Option<u64>| k.map_or("unknown".to_string(), |k| format!("{} MiB", k / 1024));
    let mark = |good: bool| {
        if good {
            style.paint("32", "ok")
        } else {
            style.paint("1;31", "no")
        }
    };
    let os = format!(
        "{} {}{}",
        f.os_id,
        f.os_version,
        if f.os_like.is_empty() {
            String::new()
        } else {
            format!(" (like {})", f.os_like.join(" "))
        }
    );
    let tools = [
        "sh",
        "stat",
        "sha256sum",
        "mktemp",
        "flock",
        "setsid",
        "curl",
    ];
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !f.has(t)).collect();
    let rows: Vec<(&str, String, bool)> = vec![
        ("system", os, f.debian_like()),
        (
            "systemd",
            f.systemd
                .map_or("not running".into(), |v| format!("{v} (PID 1 {})", f.pid1)),
            f.pid1 == "systemd" && f.systemd.is_some(),
        ),
        ("cgroups", f.cgroup_fs.clone(), f.cgroup_fs == "cgroup2fs"),
        (
            "free in /var/lib",
            mib(f.var_lib_free_kib),
            f.var_lib_free_kib.is_some_and(|k| k >= MIN_FREE_KIB),
        ),
        ("memory available", mib(f.mem_available_kib), true),
        ("journal on", f.journal_fs.clone(), true),
        (
            "tools",
            if missing.is_empty() {
                tools.join(" ")
            } else {
                format!("missing {}", missing.join(" "))
            },
            missing.is_empty(),
        ),
        (
            "runs as root",
            format!(
                "{login}{}",
                f.uid.map_or(String::new(), |u| format!(" (uid {u})"))
            ),
            f.uid == Some(0),
        ),
        (
            "clock",
            skew.map_or("unknown".into(), |s| format!("{s:+} s from here")),
            skew.is_some_and(|s| s.abs() <= MAX_SKEW_SECS),
        ),
    ];
    let mut out = String::new();
    for (what, value, good) in rows {
        out.push_str(&format!("  {what:<18} {value:<46} {}\n", mark(good)));
    }
    out
}
