//! What root runs on a host is steered by nothing a non-root user can write:
//! every root-run unit and script of the bundled fleet has a fixed,
//! root-owned PATH and none of an agent's environment; agent commands reach
//! root's helpers only through the agent's run-as (a transient unit as the
//! agent); the host programs start with the shared prologue.

#[path = "common/repo.rs"]
mod repo;

use provision::desired::DesiredState;

const PATH_LINE: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

fn states() -> Vec<DesiredState> {
    let states = repo::render_all(&repo::root());
    assert!(states.len() >= 3, "the bundled fleet has hosts");
    states
}

/// `[Service]` section lines of a unit.
fn service_lines(text: &str) -> Vec<&str> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[Service]";
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            out.push(line);
        }
    }
    out
}

#[test]
fn root_run_units_have_a_fixed_path_and_no_agent_environment() {
    let mut root_units = 0;
    for s in states() {
        for (path, f) in &s.files {
            if !path.ends_with(".service") {
                continue;
            }
            let text = String::from_utf8_lossy(&f.bytes);
            let lines = service_lines(&text);
            if lines.iter().any(|l| l.starts_with("User=")) {
                continue; // runs as the agent: its environment is the point
            }
            root_units += 1;
            assert!(
                lines.contains(&format!("Environment={PATH_LINE}").as_str()),
                "{}: {path} runs as root without a fixed PATH:\n{text}",
                s.host
            );
            for l in &lines {
                assert!(
                    !l.starts_with("EnvironmentFile=")
                        && !l.starts_with("PassEnvironment=")
                        && (!l.starts_with("Environment=")
                            || *l == format!("Environment={PATH_LINE}")),
                    "{}: {path} gives root an agent's environment: {l}",
                    s.host
                );
            }
        }
    }
    assert!(
        root_units >= 6,
        "only {root_units} root-run units were looked at"
    );
}

#[test]
fn root_run_scripts_set_the_path_first_and_run_agent_commands_through_run_as() {
    let mut scripts = 0;
    for s in states() {
        for (path, f) in &s.files {
            let text = String::from_utf8_lossy(&f.bytes);
            if !path.starts_with("/usr/local/lib/provision/") || !text.starts_with("#!/bin/sh") {
                continue;
            }
            // The auth check runs as the agent (ExecStartPre= of a unit with
            // User=): the agent's environment is its own.
            if path.ends_with("/auth-check") {
                continue;
            }
            scripts += 1;
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .unwrap_or_default();
            assert_eq!(
                first, PATH_LINE,
                "{}: {path} does not set PATH first",
                s.host
            );
            assert!(text.contains("export PATH"), "{}: {path}", s.host);
            for l in text.lines() {
                assert!(
                    !(l.contains("setpriv") || l.contains("runuser")) || !l.contains("sh -c"),
                    "{}: {path} runs an agent command as the agent outside run-as, with root's environment: {l}",
                    s.host
                );
                assert!(
                    !l.contains("/var/lib/provision-agents") || !l.contains('>'),
                    "{}: {path} writes into the agent's state directory as root: {l}",
                    s.host
                );
            }
        }
    }
    assert!(
        scripts >= 6,
        "only {scripts} root-run scripts were looked at"
    );
}

#[test]
fn host_programs_start_with_the_prologue() {
    let lib = include_str!("../src/script/lib.sh");
    for (name, program) in [
        ("probe", provision::script::PROBE_SH),
        ("apply", provision::script::APPLY_SH),
        ("switch", provision::script::SWITCH_SH),
        ("generations", provision::script::GENERATIONS_SH),
        ("verify", provision::script::VERIFY_SH),
        ("status", provision::script::STATUS_SH),
    ] {
        assert!(
            program.starts_with(lib),
            "{name} does not start with lib.sh"
        );
    }
    let first = lib
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    assert_eq!(first, PATH_LINE);
    assert!(provision::script::CONFIRM_SH.starts_with(PATH_LINE));
}
