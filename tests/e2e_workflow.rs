//! The example GitHub Actions workflow (`examples/github/provision.yml`),
//! run as CI would run it: each job's `run:` steps in order, with bash
//! `-e -o pipefail`, no terminal, `CI=true`, `$GITHUB_ENV` carried from step
//! to step, and its secrets from the environment (the deploy key into an
//! ssh-agent, an age identity), against a real Debian target
//! (systemd-nspawn). Steps that only GitHub can run (`uses:`) and the
//! install step (the test puts the built binary on PATH) are left out. So
//! the example cannot rot: the pull-request job plans and summarises, the
//! main job applies the saved plan of the commit and refuses one made stale
//! by a hand edit on the host, and the drift job passes until a host is
//! changed by hand, then fails and alerts a webhook receiver from the host,
//! once.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_workflow::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use age::secrecy::ExposeSecret as _;
use fleet::{Fleet, agent};

const WORKFLOW: &str = include_str!("../examples/github/provision.yml");

/// One step of a job: its name and its `run:` script (none for `uses:`).
#[derive(Debug)]
struct Step {
    name: String,
    run: Option<String>,
}

/// The steps of `job` in the workflow, in order. A small reader of the
/// example's own layout (two-space YAML, `run: |` blocks), not of YAML.
fn steps(job: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut in_job = false;
    let mut lines = WORKFLOW.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            in_job = line.trim() == format!("{job}:");
            continue;
        }
        if !in_job {
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("- ") {
            let name = rest
                .strip_prefix("name: ")
                .or_else(|| rest.strip_prefix("uses: "))
                .unwrap_or(rest)
                .to_string();
            out.push(Step { name, run: None });
            continue;
        }
        if trimmed == "run: |" {
            let indent = line.len() - trimmed.len() + 2;
            let mut script = String::new();
            while let Some(next) = lines.peek() {
                if !next.trim().is_empty() && next.len() - next.trim_start().len() < indent {
                    break;
                }
                script.push_str(next.get(indent..).unwrap_or(""));
                script.push('\n');
                lines.next();
            }
            if let Some(step) = out.last_mut() {
                step.run = Some(script);
            }
        }
    }
    out
}

/// Runs `job`'s `run:` steps like a runner; returns each step's name and
/// whether it passed, stopping at the first that fails.
fn run_job(job: &str, repo: &Path, env: &BTreeMap<String, String>) -> Vec<(String, bool, String)> {
    run_job_with(job, repo, env, ("", &|| {}))
}

/// [`run_job`], calling `between.1` just before the step named `between.0`
/// (something that happens on the host while the job runs).
fn run_job_with(
    job: &str,
    repo: &Path,
    env: &BTreeMap<String, String>,
    between: (&str, &dyn Fn()),
) -> Vec<(String, bool, String)> {
    let runner = tempfile::tempdir().unwrap();
    let github_env = runner.path().join("env");
    std::fs::write(&github_env, "").unwrap();
    let mut carried: BTreeMap<String, String> = BTreeMap::new();
    let mut results = Vec::new();
    for step in steps(job) {
        let Some(script) = &step.run else { continue };
        if step.name == "install provision" {
            continue;
        }
        if step.name == between.0 {
            (between.1)();
        }
        let mut cmd = Command::new("bash");
        cmd.args([
            "--noprofile",
            "--norc",
            "-e",
            "-o",
            "pipefail",
            "-c",
            script,
        ])
        .current_dir(repo)
        .env_clear()
        .envs(env)
        .envs(&carried)
        .env("GITHUB_ENV", &github_env)
        .env("RUNNER_TEMP", runner.path());
        let out = process::run_bounded(&mut cmd, Duration::from_secs(300));
        let ok = out.status.success();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // What the step appended to $GITHUB_ENV reaches the later steps.
        for line in std::fs::read_to_string(&github_env).unwrap().lines() {
            if let Some((k, v)) = line.split_once('=') {
                carried.insert(k.to_string(), v.to_string());
            }
        }
        results.push((step.name.clone(), ok, log));
        if !ok {
            break;
        }
    }
    // The ssh-agent the job started is its own: stop it by its PID.
    if let Some(pid) = carried.get("SSH_AGENT_PID") {
        let _ = Command::new("kill").arg(pid).status();
    }
    results
}

#[track_caller]
fn passed(job: &str, results: &[(String, bool, String)]) {
    for (name, ok, log) in results {
        assert!(ok, "{job}: step `{name}` failed:\n{log}");
    }
}

#[test]
fn the_example_workflow_plans_applies_and_catches_drift() {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_workflow::example: {reason}");
        return;
    }
    let names: Vec<String> = steps("plan").into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"check".to_string()) && names.contains(&"plan".to_string()),
        "the reader found no steps: {names:?}"
    );
    let t = nspawn::Target::boot("workflow").unwrap_or_else(|e| panic!("boot: {e}"));
    let f = Fleet::new();
    f.agent_script("alpha", "v1");
    // The host as CI reaches it: no identity file, the key comes from the
    // ssh-agent the workflow loads; the host key is pinned.
    let body = agent("alpha", r#"secret "TOKEN" from="age:secrets/token.age""#);
    // The drift job's alerts come from the host: the receiver listens on
    // the host side of the target's link.
    let (url, alerts) = webhook(&t, Duration::from_secs(280));
    f.write(
        "hosts/t.kdl",
        &format!(
            "host \"t\" {{\n    ssh \"root@{}\"\n    host-key \"{}\"\n    journald max-use=\"50M\" keep-free=\"100M\" retention=\"3d\"\n    alert \"log\" command=\"logger -t provision-alert x\"\n    alert \"ops\" webhook=\"{url}\" insecure=#true\n{body}\n}}\n",
            t.addr, t.host_key
        ),
    );
    let id = age::x25519::Identity::generate();
    f.write("secrets/recipients", &format!("# ci\n{}\n", id.to_public()));
    let sealed = age::encrypt(&id.to_public(), b"tok-Wf81").unwrap();
    std::fs::write(f.path().join("secrets/token.age"), sealed).unwrap();

    let home = tempfile::tempdir().unwrap();
    let summary = home.path().join("summary.md");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_provision"));
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        format!(
            "{}:/usr/sbin:/usr/bin:/sbin:/bin",
            bin.parent().unwrap().display()
        ),
    );
    env.insert("HOME".to_string(), home.path().display().to_string());
    env.insert("CI".to_string(), "true".to_string());
    env.insert("NO_COLOR".to_string(), "1".to_string());
    env.insert(
        "GITHUB_STEP_SUMMARY".to_string(),
        summary.display().to_string(),
    );
    env.insert(
        "DEPLOY_SSH_KEY".to_string(),
        std::fs::read_to_string(&t.identity).unwrap(),
    );
    env.insert(
        "PROVISION_AGE_KEY".to_string(),
        id.to_string().expose_secret().to_string(),
    );

    // A pull request: check, plan, summary.
    passed("plan", &run_job("plan", f.path(), &env));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("### provision plan: 1 host to change"), "{md}");
    assert!(md.contains("| t | none → 1 |"), "{md}");
    assert!(!md.contains("tok-Wf81"));
    assert!(f.path().join("plan.json").exists());

    // main: the saved plan of the commit is applied, and verified.
    passed("apply", &run_job("apply", f.path(), &env));
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");
    let log = std::fs::read_to_string(f.path().join("apply.jsonl")).unwrap();
    assert!(
        log.lines().any(|l| l.contains(r#""type":"summary""#)),
        "{log}"
    );

    // The schedule: no drift, nothing alerted.
    passed("drift", &run_job("drift", f.path(), &env));
    assert!(
        alerts.recv_timeout(Duration::from_secs(2)).is_err(),
        "a healthy fleet alerted"
    );

    // main again, with a change; the host is edited by hand between the
    // plan of the commit and its apply: the saved plan is refused.
    f.agent_script("alpha", "v2");
    let edit = || {
        t.sh("echo edited >>/opt/agents/alpha/run.sh");
    };
    let results = run_job_with("apply", f.path(), &env, ("apply it", &edit));
    let (name, ok, log) = results.last().unwrap();
    assert!(
        !ok && name == "apply it",
        "the stale plan was applied:\n{log}"
    );
    assert!(
        log.contains("the host changed since the plan was made"),
        "{log}"
    );
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );

    // The schedule finds the hand edit and alerts once, from the host.
    let started = std::time::Instant::now();
    let results = run_job("drift", f.path(), &env);
    eprintln!("drift job with an alert: {:?}", started.elapsed());
    let (name, ok, log) = results.last().unwrap();
    assert!(
        !ok && name == "drift and health",
        "the drift job passed:\n{log}"
    );
    assert!(log.contains("--alert ops: 1 finding(s) sent"), "{log}");
    let got = alerts
        .recv_timeout(Duration::from_secs(30))
        .expect("the webhook got no alert");
    assert!(
        got.contains("changed by hand on the host: /opt/agents/alpha/run.sh"),
        "{got}"
    );
    assert!(got.contains(r#""host":"t""#), "{got}");
    assert!(!got.contains("tok-Wf81"), "{got}");
    // The same drift on the next run: nothing new is sent.
    let results = run_job("drift", f.path(), &env);
    let (_, ok, log) = results.last().unwrap();
    assert!(!ok, "{log}");
    assert!(
        log.contains("0 finding(s) sent, 1 already sent before"),
        "{log}"
    );
    assert!(
        alerts.recv_timeout(Duration::from_secs(3)).is_err(),
        "the same drift alerted twice"
    );
}

/// A webhook receiver on the host side of the target's link (the alert is
/// sent from the target): every request it gets is sent on the channel.
/// Stops after `life`.
fn webhook(t: &nspawn::Target, life: Duration) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::Read as _;
    let listener = std::net::TcpListener::bind((t.host_addr.as_str(), 0)).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + life;
        while std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = stream.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf);
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    (url, rx)
}
