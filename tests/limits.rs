//! Bounds and escaping: the loader finishes on hostile shapes of input (deep
//! `use` chains, `use` diamonds, huge blocks) with an error or a result, and
//! values that reach generated files are escaped for the file they land in.
//! No timing assertions: each case runs under a generous hang guard only.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use provision::diagnostic::{Diagnostic, Severity};
use provision::model::Fleet;

#[path = "common/repo.rs"]
mod repo;

/// Runs `f` on a thread of its own and fails the test if it has not
/// finished after `secs` (a hang guard, far above the expected time).
fn bounded<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("did not finish within {secs}s: {e}"))
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A host whose one agent holds `body` (and whatever the checklist needs).
fn host(body: &str) -> String {
    format!(
        r#"host "h1" {{
    ssh "root@127.0.0.1"
    journald max-use="1G"
    alert "ops" webhook="https://alerts.example/x"
    agent "a1" {{
        exec "/opt/a/run"
        user "agent"
        auth "tok" check="true" {{ rotate every="30d" run="/bin/true" }}
        heartbeat every="10m" alert="ops"
        failure-mode "x" "y"
{body}
    }}
}}
"#
    )
}

/// Loads the repository at `root` as the CLI does, compiles it and returns
/// the fleet and its errors as `file:line:col: message`.
fn check(root: &Path) -> (Fleet, Vec<String>) {
    let sources = provision::load::load(root).unwrap();
    let (fleet, diags) = provision::compile(&sources);
    let errors = diags
        .into_sorted()
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d: Diagnostic| {
            let l = d.location(&sources).unwrap();
            format!("{}:{}:{}: {}", l.file, l.line, l.column, d.message)
        })
        .collect();
    (fleet, errors)
}

#[test]
fn a_use_chain_of_10000_modules_stops_at_the_depth_limit() {
    let errors = bounded(300, || {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "hosts/h1.kdl", &host("        use \"m0\""));
        for i in 0..10_000 {
            write(
                dir.path(),
                &format!("modules/m{i}.kdl"),
                &format!("use \"m{}\"\n", i + 1),
            );
        }
        write(dir.path(), "modules/m10000.kdl", "env \"DEEP\" \"1\"\n");
        check(dir.path()).1
    });
    assert_eq!(
        errors,
        [
            "modules/m63.kdl:1:1: modules nest more than 64 deep: m0 → m1 → m2 → … (59 more) … → m62 → m63 → m64"
        ]
    );
}

/// `d{i}` uses `a{i+1}` and `b{i+1}`, which both use `d{i+1}`: expanding
/// every path would take 2^levels expansions.
fn diamond(root: &Path, levels: usize) {
    write(root, "hosts/h1.kdl", &host("        use \"d0\""));
    for i in 0..levels {
        let next = i + 1;
        write(
            root,
            &format!("modules/d{i}.kdl"),
            &format!("use \"a{next}\"\nuse \"b{next}\"\n"),
        );
        for side in ["a", "b"] {
            write(
                root,
                &format!("modules/{side}{next}.kdl"),
                &format!("use \"d{next}\"\nenv \"FROM_{side}\" \"{next}\"\n"),
            );
        }
    }
    write(
        root,
        &format!("modules/d{levels}.kdl"),
        "env \"BOTTOM\" \"1\"\n",
    );
}

#[test]
fn a_use_diamond_30_levels_deep_expands_each_module_once() {
    let (fleet, errors) = bounded(300, || {
        let dir = tempfile::tempdir().unwrap();
        diamond(dir.path(), 30);
        check(dir.path())
    });
    assert!(errors.is_empty(), "{errors:?}");
    let a = &fleet.hosts[0].agents[0];
    assert_eq!(a.env["BOTTOM"], "1");
    // Later modules override earlier ones, at every level: b1 (after a1)
    // brings d1's FROM_a, which the chain of b's carries up from a30.
    assert_eq!(a.env["FROM_a"], "30");
    assert_eq!(a.env["FROM_b"], "1");
    // d0..d30, a1..a30, b1..b30, each once, outermost first.
    assert_eq!(a.modules.len(), 31 + 30 + 30);
    assert_eq!(&a.modules[..4], ["d0", "a1", "d1", "a2"]);
    let mut unique = a.modules.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), a.modules.len());
}

#[test]
fn a_use_diamond_40_levels_deep_is_a_depth_error_not_exponential_work() {
    let errors = bounded(300, || {
        let dir = tempfile::tempdir().unwrap();
        diamond(dir.path(), 40);
        check(dir.path()).1
    });
    // The chain d0 → a1 → d1 → … reaches 64 modules at a32 (and b32); every
    // other path reuses what was expanded.
    let files: Vec<&str> = errors
        .iter()
        .map(|e| e.split(':').next().unwrap())
        .collect();
    assert_eq!(files, ["modules/a32.kdl", "modules/b32.kdl"], "{errors:?}");
    assert!(
        errors[0].ends_with(
            "modules nest more than 64 deep: d0 → a1 → d1 → … (59 more) … → d31 → a32 → d32"
        ),
        "{errors:?}"
    );
}

#[test]
fn a_block_of_100000_nodes_is_checked_and_rendered() {
    let (count, errors) = bounded(600, || {
        let dir = tempfile::tempdir().unwrap();
        let mut body = String::new();
        for i in 0..100_000 {
            body.push_str(&format!("        env \"V{i}\" \"{i}\"\n"));
        }
        // A module gives a default that the block overrides, so merging
        // runs over the whole block.
        body.push_str("        use \"base\"\n");
        write(dir.path(), "hosts/h1.kdl", &host(&body));
        write(dir.path(), "modules/base.kdl", "env \"V7\" \"module\"\n");
        let sources = provision::load::load(dir.path()).unwrap();
        let (fleet, mut diags) = provision::compile(&sources);
        let templates = provision::render::Templates::new(&sources, &mut diags);
        let state = provision::render::render(
            &fleet.hosts[0],
            &templates,
            &Default::default(),
            None,
            &mut diags,
        );
        let unit = String::from_utf8(
            state.files["/etc/systemd/system/agent-a1.service"]
                .bytes
                .clone(),
        )
        .unwrap();
        assert!(unit.contains("Environment=\"V7=7\"\n"));
        let errors: Vec<String> = diags
            .into_sorted()
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.message)
            .collect();
        (fleet.hosts[0].agents[0].env.len(), errors)
    });
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(count, 100_000);
}

/// Every file `render` writes is either declared in the KDL or known to
/// `lint::generated_files` / a reserved tree, so a declared `file` can never
/// silently replace one.
#[test]
fn every_generated_file_is_reserved() {
    let root = repo::root();
    let sources = provision::load::load(&root).unwrap();
    let (fleet, _) = provision::compile(&sources);
    let states = repo::render_sources(&root, &sources);
    let mut checked = 0;
    for (host, state) in fleet.hosts.iter().zip(&states) {
        let declared: Vec<&String> = host
            .files
            .files
            .iter()
            .chain(host.agents.iter().flat_map(|a| &a.files.files))
            .map(|f| &f.path)
            .collect();
        let generated = provision::lint::generated_files(host);
        for path in state.files.keys() {
            if declared.contains(&path) {
                continue;
            }
            assert!(
                generated.contains_key(path) || provision::lint::reserved_tree(path).is_some(),
                "{}: `{path}` is rendered but not reserved",
                host.name
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked}");
}

/// A host whose values hold every character that means something to
/// systemd, tmpfiles.d or sysusers.d.
const TRICKY: &str = r#"host "h1" {
    ssh "root@127.0.0.1"
    journald max-use="1G"
    alert "ops" webhook="https://alerts.example/x?q=100%25"
    user "agent" home="/var/lib/100%home" shell="/bin/s%h"
    dir "/srv/50%x" owner="agent"
    agent "a1" {
        description "50% of \"the\" work \\ done"
        exec "/opt/a/run --rate 5%"
        user "agent"
        workdir "/srv/w%n"
        env "V" "a\"b\\c%d$e 'f'"
        auth "tok" check="true" { rotate every="30d" run="/bin/true" }
        heartbeat every="10m" alert="ops" probe="test -e \"$HOME\" && echo 100% \\o/"
        failure-mode "x" "y" tool="a|b"
    }
}
"#;

#[test]
fn values_are_escaped_for_the_file_they_land_in() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hosts/h1.kdl", TRICKY);
    let (fleet, errors) = check(dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    let state = &repo::render_all(dir.path())[0];
    let text = |p: &str| String::from_utf8(state.files[p].bytes.clone()).unwrap();
    let unit = text("/etc/systemd/system/agent-a1.service");
    for line in [
        r#"Description=50%% of "the" work \ done"#,
        "Documentation=file:///srv/w%%n/AGENTS.md",
        "WorkingDirectory=/srv/w%%n",
        r#"Environment="V=a\"b\\c%%d$e 'f'""#,
        r#"Environment="PROVISION_WORKSTATE=/srv/w%%n/WORKSTATE.md""#,
        "ExecStart=/opt/a/run --rate 5%%",
    ] {
        assert!(unit.lines().any(|l| l == line), "no `{line}` in:\n{unit}");
    }
    let heartbeat = text("/etc/systemd/system/agent-a1-heartbeat.service");
    assert!(
        heartbeat.contains(r#" "test -e \"$$HOME\" && echo 100%% \\o/""#),
        "{heartbeat}"
    );
    let tmpfiles = text("/etc/tmpfiles.d/provision.conf");
    assert!(
        tmpfiles.contains("d /srv/50%%x 0755 agent agent -\n"),
        "{tmpfiles}"
    );
    assert!(
        tmpfiles.contains("d /srv/w%%n 0750 agent agent -\n"),
        "{tmpfiles}"
    );
    let sysusers = text("/etc/sysusers.d/provision.conf");
    assert!(
        sysusers.contains(" /var/lib/100%%home /bin/s%%h\n"),
        "{sysusers}"
    );
    let agents_md = text("/srv/w%n/AGENTS.md");
    assert!(agents_md.contains("| a\\|b | x | y |"), "{agents_md}");
    // The model keeps the values as written: escaping is the renderer's.
    assert_eq!(
        fleet.hosts[0].agents[0].description.as_deref(),
        Some(r#"50% of "the" work \ done"#)
    );

    // systemd reads the units without complaint.
    let have = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED systemd-analyze verify of the escaped units: systemd-analyze is not installed"
        );
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for name in ["agent-a1.service", "agent-a1-heartbeat.service"] {
        let p = out_dir.path().join(name);
        std::fs::write(
            &p,
            &state.files[&format!("/etc/systemd/system/{name}")].bytes,
        )
        .unwrap();
        units.push(p);
    }
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_lowercase();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| {
            [
                "unknown key",
                "failed to parse",
                "invalid",
                "bad-setting",
                "unbalanced quoting",
                "ignoring",
                "missing '='",
                "specifier",
            ]
            .iter()
            .any(|p| l.contains(p))
        })
        .collect();
    assert!(bad.is_empty(), "systemd-analyze verify:\n{text}");
}
