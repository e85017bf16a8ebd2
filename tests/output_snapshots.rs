//! What the operator reads, pinned: the plan view, the apply report, the
//! status table, the generations list, and every command's JSON document,
//! on a local host. Reviewed by eye when they change (`cargo insta review`,
//! or `INSTA_UPDATE=always cargo test --test output_snapshots` and a diff).
//! Only what varies between runs is masked: the repository's path, times,
//! who ran it, and content ids (a generation's id covers its secrets' keyed
//! ids, and the key is the host's own; ids are pinned by
//! `tests/determinism.rs`).

use std::path::Path;
use std::process::Command;

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("hosts")).unwrap();
    write_host(dir.path(), "one");
    dir
}

fn write_host(dir: &Path, motd: &str) {
    std::fs::write(
        dir.join("hosts/demo.kdl"),
        format!(
            "host \"demo\" {{\n    local \"demo/root\"\n    file \"/etc/motd\" content=\"{motd}\\n\"\n    file \"/etc/app/token\" content=\"t-{motd}\\n\" secret=#true\n}}\n"
        ),
    )
    .unwrap();
}

/// Masks `RFC 3339` times (`2026-12-01T10:11:12Z`).
fn mask_times(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let shape = b"0000-00-00T00:00:00Z";
    while i < b.len() {
        let fits = i + shape.len() <= b.len()
            && shape.iter().zip(&b[i..]).all(|(s, c)| {
                if *s == b'0' {
                    c.is_ascii_digit()
                } else {
                    s == c
                }
            });
        if fits {
            out.push_str("[time]");
            i += shape.len();
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Masks hex runs of 12 or more digits (ids, hashes) as `[id]`.
fn mask_ids(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 12 && run.chars().any(|c| c.is_ascii_digit()) {
            out.push_str("[id]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() && (c.is_ascii_digit() || c.is_ascii_lowercase()) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env("USER", "operator")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let text = text.replace(&format!("operator@{}", host.trim()), "operator@[machine]");
    mask_durations(&mask_ids(&mask_times(
        &text.replace(dir.to_str().unwrap(), "[repo]"),
    )))
}

/// A phase's milliseconds (`"ms": 105` in `timings`) differ run to run.
fn mask_durations(text: &str) -> String {
    let mut out: String = text
        .lines()
        .map(|l| match l.split_once("\"ms\": ") {
            Some((head, ms)) if ms.trim_end_matches(',').bytes().all(|b| b.is_ascii_digit()) => {
                let comma = if ms.ends_with(',') { "," } else { "" };
                format!("{head}\"ms\": \"[ms]\"{comma}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    if !text.ends_with('\n') {
        out.pop();
    }
    out
}

#[test]
fn what_the_operator_reads() {
    let dir = repo();
    let d = dir.path();
    insta::assert_snapshot!("plan_first", run(d, &["plan"]));
    insta::assert_snapshot!("plan_first_json", run(d, &["--json", "plan"]));
    insta::assert_snapshot!("apply_first", run(d, &["apply", "--yes"]));
    write_host(d, "two");
    insta::assert_snapshot!("plan_change", run(d, &["plan"]));
    insta::assert_snapshot!("apply_change_json", run(d, &["--json", "apply", "--yes"]));
    insta::assert_snapshot!("status", run(d, &["status"]));
    insta::assert_snapshot!("status_json", run(d, &["--json", "status"]));
    insta::assert_snapshot!("generations", run(d, &["generations", "demo"]));
    insta::assert_snapshot!(
        "generations_json",
        run(d, &["--json", "generations", "demo"])
    );
    insta::assert_snapshot!("verify_json", run(d, &["--json", "verify"]));
    insta::assert_snapshot!("check_json", run(d, &["--json", "check"]));
    insta::assert_snapshot!(
        "render_json",
        run(
            d,
            &[
                "--json",
                "render",
                "demo",
                "--out",
                d.join("out").to_str().unwrap()
            ]
        )
    );
    insta::assert_snapshot!("rollback", run(d, &["rollback", "demo", "--yes"]));
    insta::assert_snapshot!(
        "plan_unknown_host_json",
        run(d, &["--json", "plan", "nohost"])
    );
}
