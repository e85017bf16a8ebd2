//! Secrets stay out of everything written, on a real Debian target
//! (systemd-nspawn): with a known value from every source kind (env, file,
//! cmd, age), every command that reads the secrets runs, in text and
//! `--json`, on its success and its failure paths, and every output, the
//! saved plan, the operator's home and temporary directory, the repository,
//! the host's world-readable files and its journal are searched for the
//! values and their base64 forms.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_secrets::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use age::secrecy::ExposeSecret as _;
use base64::Engine as _;
use fleet::{Fleet, Run, agent};

const ENV: &str = "env-Tq7Lz3Wp";
const FILE: &str = "file-Rw8Kp1Xd";
const CMD: &str = "cmd-Mv2Xs9Qa";
const AGE: &str = "age-Hn5Bd4Ty";
const VALUES: [&str; 4] = [ENV, FILE, CMD, AGE];

/// Every form a value must never take where it does not belong.
fn forms() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for v in VALUES {
        out.push(v.to_string());
        out.push(b64.encode(v));
        out.push(b64.encode(format!("{v}\n")));
    }
    out
}

/// Where a leak was found, if anywhere.
fn leaks(text: &str) -> Vec<String> {
    forms().into_iter().filter(|f| text.contains(f)).collect()
}

#[track_caller]
fn clean(what: &str, text: &str) {
    let found = leaks(text);
    assert!(found.is_empty(), "{what} holds {found:?}:\n{text}");
}

/// Every regular file under `dir`, skipping `skip` (relative paths).
fn files(dir: &Path, skip: &[&str]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if skip
                .iter()
                .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
            {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

fn with_json<'a>(args: &[&'a str], json: bool) -> Vec<&'a str> {
    let mut v = args.to_vec();
    if json {
        v.push("--json");
    }
    v
}

#[test]
fn no_secret_value_reaches_any_output_file_or_log() {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_secrets::leaks: {reason}");
        return;
    }
    let t = nspawn::Target::boot("leaks").unwrap_or_else(|e| panic!("boot: {e}"));
    let f = Fleet::new();
    f.agent_script("alpha", "v1");
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let id = age::x25519::Identity::generate();
    let key = home.path().join(".config/age/keys.txt");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(&key, id.to_string().expose_secret()).unwrap();
    f.write(
        "secrets/recipients",
        &format!("# alice\n{}\n", id.to_public()),
    );
    f.write("secrets/file-token", &format!("{FILE}\n"));
    let secrets = r#"secret "ENV_TOKEN" from="env:E2E_ENV_TOKEN"
        secret "FILE_TOKEN" from="file:secrets/file-token"
        secret "CMD_TOKEN" from="cmd:printf 'cmd-%s' Mv2Xs9Qa"
        secret "AGE_TOKEN" from="age:secrets/age-token.age"
        restart "on-failure" delay="1s""#;
    let good = agent("alpha", secrets);
    f.host("t", &format!("root@{}", t.addr), 22, &t.host_key, &good);
    let out_dir = tempfile::tempdir().unwrap();
    let saved = tmp.path().join("plan.json");

    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut run = |args: &[&str], env: &[(&str, &str)], code: i32| -> Run {
        let mut cmd = f.command(args);
        cmd.env("E2E_ENV_TOKEN", ENV)
            .env("HOME", home.path())
            .env("TMPDIR", tmp.path())
            .env_remove("XDG_RUNTIME_DIR")
            .envs(env.iter().copied());
        let r = Run::from(fleet::run_bounded(&mut cmd, Duration::from_secs(150)));
        outputs.push((args.join(" "), r.all()));
        r.expect(code)
    };

    // The age file, made by `secrets edit`.
    let typed = home.path().join("typed");
    std::fs::write(&typed, AGE).unwrap();
    let editor = format!("cp {}", typed.display());
    run(
        &["secrets", "edit", "secrets/age-token.age"],
        &[("EDITOR", editor.as_str())],
        0,
    );
    std::fs::remove_file(&typed).unwrap();

    let out = out_dir.path().to_str().unwrap();
    let saved_s = saved.to_str().unwrap();
    for json in [false, true] {
        run(&with_json(&["check"], json), &[], 0);
        run(&with_json(&["render", "t", "--out", out], json), &[], 0);
        run(&with_json(&["secrets", "check"], json), &[], 0);
        run(&with_json(&["plan"], json), &[], 0);
    }
    run(&["plan", "-o", saved_s], &[], 0);
    run(&["apply", "--yes", saved_s], &[], 0);
    // The values did land, 0600, in the agent's environment file.
    let env_file =
        t.sh("stat -c %a /etc/provision/agents/alpha.env; cat /etc/provision/agents/alpha.env");
    assert!(env_file.starts_with("600\n"), "{env_file}");
    for v in VALUES {
        assert!(env_file.contains(v), "{v} is not in the env file");
    }
    for json in [false, true] {
        run(&with_json(&["verify"], json), &[], 0);
        run(&with_json(&["status"], json), &[], 0);
        run(&with_json(&["generations", "t"], json), &[], 0);
        run(&with_json(&["plan", "--detailed-exitcode"], json), &[], 0);
    }

    // Failure paths. The auth check fails printing every token: verify and
    // apply redact them, the host is switched back.
    let bad = good.replace(
        "exit 0",
        r#"echo \"expired: $ENV_TOKEN $FILE_TOKEN $CMD_TOKEN $AGE_TOKEN\" >&2; exit 1"#,
    );
    f.host("t", &format!("root@{}", t.addr), 22, &t.host_key, &bad);
    let failed = run(&["apply", "--yes", "--heartbeat-timeout", "30"], &[], 3);
    assert!(
        failed.all().contains("expired: [redacted]"),
        "{}",
        failed.all()
    );
    run(
        &["apply", "--yes", "--json", "--heartbeat-timeout", "30"],
        &[],
        3,
    );
    f.host("t", &format!("root@{}", t.addr), 22, &t.host_key, &good);
    f.agent_script("alpha", "v2");
    run(&["apply", "--yes"], &[], 0);
    run(&["rollback", "t", "--to", "1", "--yes"], &[], 0);
    run(&["rollback", "t", "--to", "4", "--yes", "--json"], &[], 0);
    // A `cmd:` that fails after printing its value on both streams.
    let noisy = good.replace(
        "cmd:printf 'cmd-%s' Mv2Xs9Qa",
        "cmd:printf 'cmd-%s' Mv2Xs9Qa; printf 'denied for cmd-%s' Mv2Xs9Qa >&2; exit 2",
    );
    f.host("t", &format!("root@{}", t.addr), 22, &t.host_key, &noisy);
    let r = run(&["plan"], &[], 1);
    assert!(r.all().contains("denied for [redacted]"), "{}", r.all());
    run(&["plan", "--json"], &[], 1);
    run(&["render", "t", "--with-secrets", "--out", out], &[], 1);
    f.host("t", &format!("root@{}", t.addr), 22, &t.host_key, &good);
    // A missing environment variable, and a wrong identity.
    run(&["plan"], &[("E2E_ENV_TOKEN", "")], 1);
    let other = home.path().join("bob.key");
    std::fs::write(
        &other,
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret(),
    )
    .unwrap();
    run(&["verify", "--identity", other.to_str().unwrap()], &[], 1);
    // Rekey to a second recipient, text and JSON.
    let bob = age::x25519::Identity::generate();
    f.write(
        "secrets/recipients",
        &format!("# alice\n{}\n# bob\n{}\n", id.to_public(), bob.to_public()),
    );
    run(&["secrets", "rekey"], &[], 0);
    run(&["secrets", "rekey", "--json"], &[], 0);
    run(&["secrets", "check", "--json"], &[], 0);

    // Every output.
    for (args, text) in &outputs {
        clean(&format!("the output of `{args}`"), text);
    }
    // The saved plan.
    clean("the saved plan", &std::fs::read_to_string(&saved).unwrap());
    // The operator's home and temporary directory (the identity aside).
    for p in files(home.path(), &[".config/age/keys.txt", "bob.key"])
        .into_iter()
        .chain(files(tmp.path(), &[]))
    {
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        clean(&p.display().to_string(), &text);
    }
    // The repository, but for the `file:` secret itself.
    for p in files(f.path(), &["secrets/file-token"]) {
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        clean(&p.display().to_string(), &text);
    }
    // `render` without --with-secrets wrote references only.
    for p in files(out_dir.path(), &[]) {
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        clean(&p.display().to_string(), &text);
    }
    // The host: every world-readable file, and the journal.
    let patterns: Vec<String> = forms().iter().map(|f| format!("-e '{f}'")).collect();
    let found = t.sh(&format!(
        "find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -type f -perm -o+r -print0 2>/dev/null | xargs -0 grep -l -F {} 2>/dev/null || true",
        patterns.join(" ")
    ));
    assert_eq!(found, "", "world-readable files on the host hold a secret");
    let found = t.sh(&format!(
        "find /run -type f -perm -o+r -print0 2>/dev/null | xargs -0 grep -l -F {} 2>/dev/null || true",
        patterns.join(" ")
    ));
    assert_eq!(found, "", "world-readable files under /run hold a secret");
    let journal = t.sh("journalctl --no-pager -o cat 2>/dev/null || true");
    assert!(journal.len() > 1000, "the journal is empty?\n{journal}");
    clean("the host's journal", &journal);
}
