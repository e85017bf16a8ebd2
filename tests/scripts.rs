//! The programs `provision` runs on hosts are POSIX sh: they parse with
//! dash, and shellcheck (as `sh`, warnings and errors) finds nothing in them,
//! each checked as it runs: the shared library (`lib.sh`) and its body.
//! shellcheck is installed by the README's test command; without it that
//! half prints `SKIPPED scripts::shellcheck: …`.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// Each host program as it is sent: the library, then the program, written
/// under a directory of the caller's own (`tag`): the tests run in parallel
/// threads of one process, and one rewriting a file another is reading
/// truncates it.
fn scripts(tag: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/script");
    let lib = std::fs::read_to_string(dir.join("lib.sh")).unwrap();
    let out_dir =
        std::env::temp_dir().join(format!("provision-scripts-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .filter(|p| !p.ends_with("lib.sh"))
        .map(|p| {
            let body = std::fs::read_to_string(&p).unwrap();
            let program = out_dir.join(p.file_name().unwrap());
            std::fs::write(&program, format!("{lib}{body}")).unwrap();
            program
        })
        .collect();
    out.sort();
    assert!(out.len() >= 4, "the host programs are missing: {out:?}");
    out
}

#[test]
fn parse_as_posix_sh() {
    for s in scripts("parse") {
        let out = Command::new("sh").arg("-n").arg(&s).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            s.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn shellcheck() {
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED scripts::shellcheck: shellcheck is not installed (tests/harness/install-deps.sh installs it)"
        );
        return;
    }
    let out = Command::new("shellcheck")
        .args(["-s", "sh", "-S", "warning"])
        .args(scripts("shellcheck"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The loop `switch.sh` reads its operations with, twice (prepare, switch).
const OPS_LOOP: &str = r#"while IFS="$tab" read -r op a b c d e; do"#;

#[test]
fn switch_ops_read_back_as_written() {
    use provision::model::Mode;
    use provision::script::SwitchOp;
    let switch = include_str!("../src/script/switch.sh");
    assert_eq!(
        switch.matches(OPS_LOOP).count(),
        2,
        "switch.sh no longer reads its operations as this test does"
    );
    let ops = [
        SwitchOp::Write {
            id: "hmac-0a1b",
            mode: Mode(0o2750),
            owner: "my bot",
            group: "bots",
            path: "/srv/my agent/notes  two.md",
        },
        SwitchOp::Early {
            path: "/etc/sysusers.d/provision.conf",
            program: "systemd-sysusers --dry  run",
        },
        SwitchOp::Stop("agent-old one.service"),
        SwitchOp::Remove("/etc/a b/c"),
        SwitchOp::Record(12),
        SwitchOp::Reload,
        SwitchOp::Run("systemctl restart systemd-journald 'x  y'"),
        SwitchOp::Enable("agent-a.service"),
        SwitchOp::Restart("agent-b b.service"),
    ];
    let input: String = ops.iter().map(|op| format!("{op}\n")).collect();
    let lib = include_str!("../src/script/lib.sh");
    // Every field between brackets, so that spaces at either end show.
    let program = format!(
        "{lib}{OPS_LOOP}\n    printf '[%s]' \"$op\" \"$a\" \"$b\" \"$c\" \"$d\" \"$e\"\n    echo\ndone\n"
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let got: Vec<Vec<String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            l.strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .unwrap()
                .split("][")
                .map(str::to_string)
                .collect()
        })
        .collect();
    let want: Vec<Vec<String>> = ops
        .iter()
        .map(|op| {
            let mut fields = vec![op.name().to_string()];
            fields.extend(op.args());
            fields.resize(6, String::new());
            fields
        })
        .collect();
    assert_eq!(got, want);
}

/// The files checked above are the programs sent: each `src/script/*.sh`
/// but the library is one of `script::PROGRAMS`, as it is or after the
/// library, and each program is one of the files.
#[test]
fn every_program_is_a_checked_file() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/script");
    let lib = std::fs::read_to_string(dir.join("lib.sh")).unwrap();
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh") && !p.ends_with("lib.sh"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    let mut programs: Vec<&str> = provision::script::PROGRAMS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    programs.sort();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, programs, "src/script/ and script::PROGRAMS differ");
    for (name, program) in provision::script::PROGRAMS {
        let body = &files.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(
            program == body || *program == format!("{lib}{body}"),
            "{name} is not src/script/{name}.sh (after lib.sh)"
        );
    }
}

/// The test alert runs the host's alert script once per channel and answers
/// with a check each, which `verify::parse` reads; here against a stand-in
/// for the alert script that fails for one channel.
#[test]
fn a_test_alert_checks_every_channel() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sources = provision::load::load(&root).unwrap();
    let (fleet, _) = provision::compile(&sources);
    let host = fleet
        .hosts
        .iter()
        .find(|h| h.alerts.len() >= 2)
        .expect("a bundled host with two alert channels");
    let dir = std::env::temp_dir().join(format!("provision-scripts-{}-alert", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("alert");
    let last = &host.alerts.last().unwrap().name;
    std::fs::write(
        &fake,
        format!("#!/bin/sh\n[ \"$3\" != {last} ] || {{ printf 'no\\troute\\nhere'; exit 1; }}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let request = provision::verify::test_alert_request(host);
    let script = request
        .script
        .replace("/usr/local/lib/provision/alert", fake.to_str().unwrap());
    assert_ne!(script, request.script, "the alert script's path moved");
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success());
    let (_, checks) =
        provision::verify::parse(&String::from_utf8(out.stdout).unwrap(), &[]).unwrap();
    let subjects: Vec<&str> = checks.iter().map(|c| c.subject.as_str()).collect();
    let names: Vec<&str> = host.alerts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(subjects, names);
    assert!(checks.iter().all(|c| c.kind == "alert"));
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.detail.as_str())
        .collect();
    assert_eq!(failed, ["no route here"]);
}

/// A quoted value is one sh word that comes back as it was.
#[test]
fn quoted_values_read_back_under_sh() {
    let values = [
        "",
        "a b",
        "it's",
        "''",
        "a\nb\n",
        "$HOME `id` * \\ \"x\"",
        "\t",
    ];
    let words: Vec<String> = values
        .iter()
        .map(|v| provision::script::sh_quote(v))
        .collect();
    let program = format!("printf '%s\\0' {}", words.join(" "));
    let out = Command::new("sh").arg("-c").arg(&program).output().unwrap();
    assert!(out.status.success());
    let got = String::from_utf8(out.stdout).unwrap();
    let want: String = values.iter().map(|v| format!("{v}\0")).collect();
    assert_eq!(got, want);
}

/// The heartbeat verdicts of `verify.sh`, as a table, run by dash: after
/// an apply only a beat after the new process's start counts (to the
/// microsecond); a standalone verify passes a beat younger than every +
/// grace at once, whatever the cadence.
#[test]
fn heartbeat_verdicts() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/script/verify.sh"),
    )
    .unwrap();
    let start = text
        .find("heartbeat_verdict() {")
        .expect("the verdict function");
    let end = start + text[start..].find("\n}\n").expect("its end") + 3;
    let function = &text[start..end];
    const S: u64 = 1_800_000_000_000_000; // the check's start, in microseconds
    let half_hour = 1800 + 360; // every 30m + grace 6m, in seconds
    let table: &[(&str, Option<u64>, u64, u64, &str)] = &[
        // after an apply: FLOOR is the new process's start
        ("yes", Some(S + 2_000_000), S + 1_000_000, 0, "ready"),
        ("yes", Some(S + 1_000_001), S + 1_000_000, 0, "ready"),
        // the old process's beat in the same second as the new start
        ("yes", Some(S + 1_000_000), S + 1_000_000, 0, "wait"),
        ("yes", Some(S + 400_000), S + 900_000, 0, "wait"),
        // a recent beat does not stand for a restarted agent
        ("yes", Some(S - 60_000_000), S, half_hour, "wait"),
        ("yes", None, S, half_hour, "wait"),
        // standalone: a 30-minute agent's beat of 20 minutes ago is fresh
        ("no", Some(S - 1_200_000_000), S, half_hour, "fresh"),
        ("no", Some(S - 2_160_000_000), S, half_hour, "fresh"),
        ("no", Some(S - 2_161_000_000), S, half_hour, "wait"),
        ("no", Some(S + 5_000_000), S, half_hour, "ready"),
        ("no", None, S, half_hour, "wait"),
        // no heartbeat cadence (a probe agent): never fresh by age
        ("no", Some(S - 1_000_000), S, 0, "wait"),
    ];
    for (after, beat, floor, maxage, want) in table {
        let beat = beat.map(|b| b.to_string()).unwrap_or_default();
        let script = format!("{function}heartbeat_verdict {after} '{beat}' {floor} {S} {maxage}\n");
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            *want,
            "after={after} beat={beat} floor={floor} maxage={maxage}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A host with watched expiries, rendered: its files by path.
fn rendered_with_expiries() -> std::collections::BTreeMap<String, String> {
    use provision::source::{Source, SourceKind, SourceSet};
    let text = r#"host "h" {
    ssh "root@127.0.0.1"
    journald max-use="1G"
    alert "ops" webhook="http://127.0.0.1:9/" insecure=#true
    agent "a" {
        exec "/opt/a/run"
        user "agent"
        auth "tok" check="true" expires="tok expiry --at \"$HOME\" 100%" warn-before="3d" {
            rotate every="30d" run="/bin/true"
        }
        auth "key" check="true" expires-at="2027-02-01"
        heartbeat every="10m" alert="ops"
        failure-mode "x" "y"
    }
}
"#;
    let set = SourceSet::new(vec![Source {
        path: "hosts/h.kdl".into(),
        kind: SourceKind::Host,
        text: text.into(),
    }]);
    let (fleet, mut diags) = provision::compile(&set);
    let templates = provision::render::Templates::new(&set, &mut diags);
    let state = provision::render::render(
        &fleet.hosts[0],
        &templates,
        &Default::default(),
        None,
        &mut diags,
    );
    assert!(!diags.has_errors());
    state
        .files
        .into_iter()
        .map(|(p, f)| (p, String::from_utf8(f.bytes).unwrap()))
        .collect()
}

/// The expiry checker and the rotation that calls it, as rendered, are
/// POSIX sh that shellcheck passes.
#[test]
fn rendered_expiry_programs_are_checked_sh() {
    let files = rendered_with_expiries();
    let dir = std::env::temp_dir().join(format!("provision-scripts-{}-expiry", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for (path, name) in [
        (provision::onhost::EXPIRY_CHECK.to_string(), "expiry-check"),
        (provision::onhost::rotate_script("a", "tok"), "rotate-tok"),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, &files[&path]).unwrap();
        let out = Command::new("sh").arg("-n").arg(&p).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        paths.push(p);
    }
    assert!(
        files[&provision::onhost::rotate_script("a", "tok")]
            .contains("expiry-check a tok 259200 run ")
    );
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED scripts::rendered_expiry_programs_are_checked_sh (shellcheck): shellcheck is not installed"
        );
        return;
    }
    let out = Command::new("shellcheck")
        .args(["-s", "sh", "-S", "warning"])
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A shell function of the rendered expiry checker, by name.
fn expiry_function(name: &str) -> String {
    let text = rendered_with_expiries()[provision::onhost::EXPIRY_CHECK].clone();
    let start = text.find(&format!("{name}() {{")).expect("the function");
    let end = start + text[start..].find("\n}\n").expect("its end") + 3;
    text[start..end].to_string()
}

/// The host's expiry verdicts, run by dash, agree with provision's own
/// (`expiry::verdict`) over a table of now / expiry / warn-before.
#[test]
fn expiry_verdicts_agree_with_the_host() {
    use provision::expiry::{Verdict, verdict};
    let function = expiry_function("expiry_verdict");
    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;
    let table = [
        (NOW + 30 * DAY, 7 * DAY, Verdict::Ok),
        (NOW + 7 * DAY + 1, 7 * DAY, Verdict::Ok),
        (NOW + 7 * DAY, 7 * DAY, Verdict::Warn),
        (NOW + 3 * DAY, 7 * DAY, Verdict::Warn),
        (NOW + 1, 7 * DAY, Verdict::Warn),
        (NOW, 7 * DAY, Verdict::Expired),
        (NOW - DAY, 7 * DAY, Verdict::Expired),
        (0, 3600, Verdict::Expired),
        (NOW + 3601, 3600, Verdict::Ok),
    ];
    for (expires, warn, want) in table {
        assert_eq!(verdict(NOW, expires, warn), want);
        let script = format!("{function}expiry_verdict {NOW} {expires} {warn}\n");
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want.as_str(),
            "{expires} {warn}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What an expires command prints is read only as a Unix time or a date:
/// anything else (words date(1) would understand, options, long text)
/// reads as nothing.
#[test]
fn the_host_reads_an_expiry_defensively() {
    let function = expiry_function("expiry_of_text");
    let table = [
        ("1801440000", "1801440000"),
        ("2027-02-01", "1801440000"),
        ("2027-02-01T12:00:00Z", "1801483200"),
        ("2027-02-01T12:00:00+02:00", "1801476000"),
        ("", ""),
        ("tomorrow", ""),
        ("next week", ""),
        ("12:00", ""),
        ("-1", ""),
        ("+5", ""),
        ("--help", ""),
        ("2027-02-01 12:00", ""),
        ("1234567890123", ""),
        ("2027-02-01;id", ""),
        ("$(id)", ""),
    ];
    for (text, want) in table {
        let script = format!(
            "TZ=Asia/Tokyo; export TZ\n{function}expiry_of_text {}\n",
            provision::script::sh_quote(text)
        );
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want,
            "{text:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // provision reads what the host says back the same way.
        assert_eq!(
            provision::expiry::parse_learned(want),
            want.parse::<u64>().ok(),
            "{want}"
        );
    }
}
