//! The command line as a user meets it: exit codes, output streams, JSON,
//! colour, and the language's module semantics end to end.

use assert_cmd::Command;
use predicates::prelude::*;

fn provision() -> Command {
    let mut c = Command::cargo_bin("provision").unwrap();
    c.env_remove("NO_COLOR");
    c
}

fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

const HOST: &str = r#"
host "web" {
    ssh "root@127.0.0.1"
    journald max-use="1G"
    alert "ops" webhook="http://127.0.0.1:9/hook" insecure=#true
    agent "bot" {
        use "base"
        exec "/opt/bot/run"
        heartbeat every="10m" alert="ops"
    }
}
"#;

const BASE: &str = r#"
user "botuser"
restart "on-failure" delay="15s"
auth "api" check="/opt/bot/check" { rotate every="30d" run="/opt/bot/rotate" }
failure-mode "api down" "retry later"
env "MODE" "base"
"#;

#[test]
fn check_on_the_bundled_example_is_clean() {
    provision()
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "checked 3 hosts, 5 agents: 0 errors",
        ));
}

#[test]
fn check_exits_1_and_prints_file_line_column() {
    let dir = repo(&[
        (
            "hosts/web.kdl",
            &HOST.replace("heartbeat every=\"10m\"", "heartbeat every=\"10 parsecs\""),
        ),
        ("modules/base.kdl", BASE),
    ]);
    provision()
        .args(["--color=never", "check"])
        .current_dir(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("[hosts/web.kdl:9:19]"))
        .stderr(predicate::str::contains("`parsecs` is not a unit of time"))
        .stdout(predicate::str::contains("1 error"));
}

#[test]
fn check_json_lists_diagnostics_with_locations() {
    let dir = repo(&[
        (
            "hosts/web.kdl",
            &HOST.replace("use \"base\"", "use \"bsae\""),
        ),
        ("modules/base.kdl", BASE),
    ]);
    let out = provision()
        .args(["--json", "check"])
        .current_dir(dir.path())
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["ok"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(
        (d["file"].as_str(), d["line"].as_u64(), d["column"].as_u64()),
        (Some("hosts/web.kdl"), Some(7), Some(9))
    );
    assert_eq!(d["help"], "did you mean `base`?");
}

#[test]
fn modules_give_defaults_that_the_agent_overrides() {
    let host = HOST.replace(
        "use \"base\"",
        "use \"base\"\n        env \"MODE\" \"agent\"\n        user \"override\"",
    );
    let dir = repo(&[("hosts/web.kdl", &host), ("modules/base.kdl", BASE)]);
    let out = tempfile::tempdir().unwrap();
    provision()
        .args(["render", "web", "--out"])
        .arg(out.path())
        .current_dir(dir.path())
        .assert()
        .success();
    let unit =
        std::fs::read_to_string(out.path().join("etc/systemd/system/agent-bot.service")).unwrap();
    assert!(unit.contains("Environment=\"MODE=agent\""), "{unit}");
    assert!(!unit.contains("MODE=base"));
    assert!(unit.contains("User=override"));
    assert!(
        unit.contains("RestartSec=15"),
        "the module's restart delay is kept"
    );
    let sysusers =
        std::fs::read_to_string(out.path().join("etc/sysusers.d/provision.conf")).unwrap();
    assert!(
        sysusers.contains("u override -"),
        "the agent's user is created: {sysusers}"
    );
}

#[test]
fn nested_modules_and_template_overrides() {
    let dir = repo(&[
        (
            "hosts/web.kdl",
            &HOST.replace("use \"base\"", "use \"outer\""),
        ),
        (
            "modules/outer/module.kdl",
            "use \"base\"\nenv \"LAYER\" \"outer\"\n",
        ),
        (
            "modules/outer/templates/AGENTS.md.tera",
            "# {{ agent.name }} on {{ host.name }}\n## WORKSTATE.md: custom protocol\n",
        ),
        ("modules/base.kdl", BASE),
    ]);
    let out = tempfile::tempdir().unwrap();
    provision()
        .args(["render", "web", "--out"])
        .arg(out.path())
        .current_dir(dir.path())
        .assert()
        .success();
    let unit =
        std::fs::read_to_string(out.path().join("etc/systemd/system/agent-bot.service")).unwrap();
    assert!(
        unit.contains("LAYER=outer") && unit.contains("MODE=base"),
        "{unit}"
    );
    let md = std::fs::read_to_string(out.path().join("var/lib/agents/bot/AGENTS.md")).unwrap();
    assert_eq!(md, "# bot on web\n## WORKSTATE.md: custom protocol\n");
}

#[test]
fn render_prints_files_then_the_generation_id() {
    let out = tempfile::tempdir().unwrap();
    let assert = provision()
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "render", "demo", "--out"])
        .arg(out.path())
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let last = stdout.lines().last().unwrap();
    assert_eq!(last.len(), 64);
    assert!(last.chars().all(|c| c.is_ascii_hexdigit()));
    let run = out.path().join("opt/agents/scheduler/run.sh");
    assert!(run.is_file(), "the agent's own script ships with it");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&run).unwrap().permissions().mode() & 0o7777,
        0o755
    );

    let json = provision()
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "--json",
            "render",
            "demo",
            "--out",
        ])
        .arg(out.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["generation_id"], last);
    let files = v["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .all(|f| f["sha256"].as_str().unwrap().len() == 64 && f["mode"].is_string())
    );
}

#[test]
fn render_with_secrets_resolves_env_and_file_and_keeps_them_0600() {
    let out = tempfile::tempdir().unwrap();
    provision()
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "render",
            "agents-1",
            "--with-secrets",
            "--out",
        ])
        .arg(out.path())
        .env("MOG_TOKEN", "mog-s3cret")
        .env("TELEGRAM_BOT_TOKEN", "123:tg-s3cret")
        .assert()
        .success()
        .stdout(predicate::str::contains("s3cret").not());
    let env = out.path().join("etc/provision/agents/email-triage.env");
    assert!(
        std::fs::read_to_string(&env)
            .unwrap()
            .contains("MOG_TOKEN=\"mog-s3cret\"")
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let tg = std::fs::read_to_string(out.path().join("etc/provision/alerts/ops.conf")).unwrap();
    assert!(tg.contains("TOKEN='123:tg-s3cret'"));
}

/// `render --with-secrets` into DIR, with the two secrets set.
fn render_secrets(out: &std::path::Path) -> assert_cmd::assert::Assert {
    provision()
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "render",
            "agents-1",
            "--with-secrets",
            "--out",
        ])
        .arg(out)
        .env("MOG_TOKEN", "mog-s3cret")
        .env("TELEGRAM_BOT_TOKEN", "123:tg-s3cret")
        .assert()
}

#[test]
fn render_refuses_a_symlinked_directory_in_the_output() {
    let out = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("provision")).unwrap();
    std::os::unix::fs::symlink(outside.path(), out.path().join("etc")).unwrap();
    let link = out.path().join("etc");
    render_secrets(out.path())
        .code(1)
        .stderr(predicate::str::contains(format!(
            "cannot write {}: it is a symlink",
            link.display()
        )))
        .stderr(predicate::str::contains("s3cret").not());
    // Nothing was written through the link.
    let mut left: Vec<_> = walk(outside.path());
    left.sort();
    assert_eq!(left, vec![outside.path().join("provision")]);
}

#[test]
fn render_refuses_a_symlinked_file_and_leaves_its_target_alone() {
    let out = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("authorized_keys");
    std::fs::write(&victim, "ssh-ed25519 AAAA mine\n").unwrap();
    let agents = out.path().join("etc/provision/agents");
    std::fs::create_dir_all(&agents).unwrap();
    let env = agents.join("email-triage.env");
    std::os::unix::fs::symlink(&victim, &env).unwrap();
    render_secrets(out.path())
        .code(1)
        .stderr(predicate::str::contains(format!(
            "cannot write {}: it is a symlink",
            env.display()
        )));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "ssh-ed25519 AAAA mine\n"
    );
    assert!(
        std::fs::symlink_metadata(&env)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn render_replaces_files_instead_of_writing_into_them() {
    use std::os::unix::fs::PermissionsExt;
    let out = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir_in(out.path().parent().unwrap()).unwrap();
    let victim = outside.path().join("notes");
    std::fs::write(&victim, "keep me\n").unwrap();
    let agents = out.path().join("etc/provision/agents");
    std::fs::create_dir_all(&agents).unwrap();
    let env = agents.join("email-triage.env");
    // A hard link looks like a regular file: it is replaced by a new file,
    // and what it shares with the outside stays as it was.
    std::fs::hard_link(&victim, &env).unwrap();
    render_secrets(out.path()).success();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    assert!(
        std::fs::read_to_string(&env)
            .unwrap()
            .contains("mog-s3cret")
    );
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Rendering again over the last render works, and leaves no temporary
    // files behind.
    render_secrets(out.path()).success();
    assert!(walk(out.path()).iter().all(|p| {
        !p.file_name()
            .unwrap()
            .to_string_lossy()
            .contains(".provision-")
    }));
}

/// Every path under `dir`, not following symlinks.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_missing_secret_is_an_error_that_names_the_reference_only() {
    let out = tempfile::tempdir().unwrap();
    provision()
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "render", "agents-1", "--with-secrets", "--out"])
        .arg(out.path())
        .env_remove("MOG_TOKEN")
        .env("TELEGRAM_BOT_TOKEN", "x")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("1 secret could not be resolved:\n  hosts/agents-1.kdl:13:9: secret `MOG_TOKEN` of agent `email-triage` (env:MOG_TOKEN): the environment variable MOG_TOKEN is not set"));
}

#[test]
fn unknown_host_suggests_one() {
    let out = tempfile::tempdir().unwrap();
    provision()
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "render",
            "agents-3",
            "--out",
        ])
        .arg(out.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "no host `agents-3` in this repository; did you mean `agents-1`?",
        ));
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let dir = repo(&[
        (
            "hosts/web.kdl",
            &HOST.replace("use \"base\"", "use \"nope\""),
        ),
        ("modules/base.kdl", BASE),
    ]);
    let plain = provision()
        .arg("check")
        .current_dir(dir.path())
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(
        !String::from_utf8_lossy(&plain).contains('\x1b'),
        "piped output is plain"
    );
    let forced = provision()
        .args(["--color=always", "check"])
        .current_dir(dir.path())
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&forced).contains('\x1b'));
}

#[test]
fn not_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    provision()
        .arg("check")
        .current_dir(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no hosts/ directory here"));
}

#[test]
fn file_nodes_ship_inline_repo_and_templated_content() {
    let host = HOST.replace(
        "use \"base\"",
        "use \"base\"\n        file \"/opt/bot/config.toml\" template=\"templates/config.toml.tera\" owner=\"botuser\" mode=0o640\n        file \"/opt/bot/run\" source=\"files/run\" mode=0o755",
    )
    .replace("    journald", "    file \"/etc/motd\" content=\"hello\\n\"\n    dir \"/srv/data\" owner=\"botuser\" mode=0o750\n    journald");
    let dir = repo(&[
        ("hosts/web.kdl", &host),
        ("modules/base.kdl", BASE),
        (
            "templates/config.toml.tera",
            "host = \"{{ host.name }}\"\nagent = \"{{ agent.name }}\"\n",
        ),
        ("files/run", "#!/bin/sh\nexec sleep infinity\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let json = provision()
        .args(["--json", "render", "web", "--out"])
        .arg(out.path())
        .current_dir(dir.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        std::fs::read_to_string(out.path().join("etc/motd")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("opt/bot/config.toml")).unwrap(),
        "host = \"web\"\nagent = \"bot\"\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("opt/bot/run")).unwrap(),
        "#!/bin/sh\nexec sleep infinity\n"
    );
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let cfg = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/opt/bot/config.toml")
        .unwrap();
    assert_eq!(
        (cfg["owner"].as_str(), cfg["mode"].as_str()),
        (Some("botuser"), Some("0640"))
    );
    let tmpfiles =
        std::fs::read_to_string(out.path().join("etc/tmpfiles.d/provision.conf")).unwrap();
    assert!(
        tmpfiles.contains("d /srv/data 0750 botuser botuser -"),
        "{tmpfiles}"
    );
    // The agent restarts when its own files change.
    let bot = v["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "agent-bot.service")
        .unwrap();
    let inputs: Vec<&str> = bot["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(
        inputs.contains(&"/opt/bot/config.toml") && inputs.contains(&"/opt/bot/run"),
        "{inputs:?}"
    );
}

#[test]
fn a_missing_repo_file_or_bad_template_is_an_error_at_the_node() {
    let host = HOST.replace("use \"base\"", "use \"base\"\n        file \"/opt/bot/a\" source=\"files/missing\"\n        file \"/opt/bot/b\" template=\"t.tera\"");
    let dir = repo(&[
        ("hosts/web.kdl", &host),
        ("modules/base.kdl", BASE),
        ("t.tera", "{{ agent.nmae }}"),
    ]);
    provision()
        .args(["--color=never", "check"])
        .current_dir(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "`files/missing` is not a file of the repository",
        ))
        .stderr(predicate::str::contains("[hosts/web.kdl:8:9]"))
        .stderr(predicate::str::contains(
            "template `t.tera` failed to render",
        ))
        .stderr(predicate::str::contains("nmae"));
}

/// The example of DESIGN.md, as written (plus the `sudo=#true` its deploy
/// login needs), with the `agent` module it uses.
#[test]
fn the_design_example_is_accepted_as_written() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/design");
    provision()
        .args(["--color=never", "-C", dir, "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "checked 1 host, 1 agent: 0 errors, 1 warning",
        ))
        .stderr(predicate::str::contains(
            "host key `ssh-ed25519 AAAAC3Nz...` is not a complete public key",
        ));
}

/// A webhook URL is a credential and may come from a secret source: it is
/// resolved like a token, written only into the 0600 channel file, and a
/// value that is not a URL is refused without being shown.
#[test]
fn a_webhook_url_can_come_from_a_secret_source() {
    let host = HOST.replace(
        r#"webhook="http://127.0.0.1:9/hook" insecure=#true"#,
        r#"webhook="env:OPS_HOOK""#,
    );
    let dir = repo(&[("hosts/web.kdl", &host), ("modules/base.kdl", BASE)]);
    let render = |value: &str, out: &std::path::Path| {
        provision()
            .args(["-C"])
            .arg(dir.path())
            .args(["render", "web", "--with-secrets", "--out"])
            .arg(out)
            .env("OPS_HOOK", value)
            .assert()
    };
    let out = tempfile::tempdir().unwrap();
    render("https://hooks.example/T0/s3cret-path", out.path())
        .success()
        .stdout(predicate::str::contains("s3cret").not())
        .stderr(predicate::str::contains("s3cret").not());
    let conf = out.path().join("etc/provision/alerts/ops.conf");
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .contains("URL='https://hooks.example/T0/s3cret-path'")
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Plain http without `insecure=#true`, and a value with a space: both
    // refused, and neither value appears in the message.
    for bad in [
        "http://hooks.example/s3cret-a",
        "https://hooks.example/s3cret b",
    ] {
        let out = tempfile::tempdir().unwrap();
        render(bad, out.path())
            .code(1)
            .stderr(predicate::str::contains(
                "the value of `env:OPS_HOOK` (alert `ops`) is not a webhook URL",
            ))
            .stderr(predicate::str::contains("s3cret").not())
            .stdout(predicate::str::contains("s3cret").not());
    }
    // Without secrets the channel file names only the value's source.
    let out = tempfile::tempdir().unwrap();
    provision()
        .args(["-C"])
        .arg(dir.path())
        .args(["render", "web", "--out"])
        .arg(out.path())
        .assert()
        .success();
    let conf = std::fs::read_to_string(out.path().join("etc/provision/alerts/ops.conf")).unwrap();
    assert!(conf.contains("# URL <- env:OPS_HOOK"), "{conf}");
    assert!(!conf.contains("URL='"), "{conf}");
}

/// `render --json` prints the manifest without writing anything; `render`
/// without `--out` or `--json` says what it needs.
#[test]
fn render_json_needs_no_out_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = provision()
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "--json", "render", "demo"])
        .current_dir(dir.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["command"], "render");
    assert!(!v["files"].as_array().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    provision()
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "render", "demo"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "render writes the files into --out DIR; pass --out, or --json for the manifest alone",
        ));
}

/// `init` starts a fleet that passes `check` and applies as written (its
/// example host is local); run again, it changes nothing and says so.
#[test]
fn init_starts_a_fleet_that_checks_and_applies_and_a_second_init_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    let d = dir.to_str().unwrap();
    provision()
        .args(["--color=never", "init", d])
        .assert()
        .success()
        .stdout(predicate::str::contains("+ hosts/example.kdl"))
        .stdout(predicate::str::contains("Started a fleet in"));
    let script = std::fs::metadata(dir.join("agents/hello/run.sh")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(script.permissions().mode() & 0o777, 0o755);
    provision()
        .args(["--color=never", "-C", d, "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "checked 1 host, 1 agent: 0 errors",
        ));
    provision()
        .args(["--color=never", "-C", d, "apply", "example", "--yes"])
        .env_remove("CI")
        .assert()
        .success();
    assert!(dir.join("example/root/opt/agents/hello/run.sh").exists());
    let before: Vec<(std::path::PathBuf, Vec<u8>)> = walk(&dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    provision()
        .args(["--color=never", "init", d])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "already holds a fleet (hosts/ and modules/ exist); nothing changed",
        ));
    for (p, bytes) in before {
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{} changed", p.display());
    }
    let ignore = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
    assert!(ignore.contains("/example/root/"), "{ignore}");
}

/// `plan --format markdown`: the pull-request summary of a real plan (a
/// local host), with its table row and folded paths, under the size asked.
#[test]
fn plan_prints_a_markdown_summary_for_a_pull_request() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    provision().args(["init", d]).assert().success();
    let out = provision()
        .args(["--color=never", "-C", d, "plan", "--format", "markdown"])
        .env_remove("CI")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let md = String::from_utf8(out).unwrap();
    assert!(
        md.starts_with("### provision plan: 1 host to change, 0 unchanged, 0 blocked or failed"),
        "{md}"
    );
    assert!(md.contains("| example | none → 1 |"), "{md}");
    assert!(md.contains("+ /opt/agents/hello/run.sh"), "{md}");
    assert!(md.contains("agent-hello.service"), "{md}");
    let small = provision()
        .args([
            "-C",
            d,
            "plan",
            "--format",
            "markdown",
            "--max-bytes",
            "600",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let small = String::from_utf8(small).unwrap();
    assert!(small.len() <= 600, "{}", small.len());
    assert!(
        small.contains("the full plan is in the artifact"),
        "{small}"
    );
    // Too small for even the header and table: refused, naming the minimum.
    provision()
        .args([
            "-C",
            d,
            "plan",
            "--format",
            "markdown",
            "--max-bytes",
            "100",
        ])
        .assert()
        .failure()
        .stdout("")
        .stderr(predicate::str::is_match(
            "--max-bytes 100 cannot hold the summary's header and table for these hosts: pass --max-bytes [0-9]+ or more",
        ).unwrap());
}

/// `--alert CHANNEL` names a channel no selected host has: refused before
/// any host is reached, naming the channels there are.
#[test]
fn an_alert_channel_no_host_has_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    provision().args(["init", d]).assert().success();
    for cmd in ["plan", "status"] {
        provision()
            .args(["-C", d, cmd, "--alert", "pager"])
            .assert()
            .failure()
            .stderr(predicate::str::contains(
                "--alert pager: no selected host has an alert channel `pager`; they have: ",
            ));
    }
    assert!(
        !tmp.path().join("example/root").exists(),
        "a host was touched"
    );
}
