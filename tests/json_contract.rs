//! The machine interface is a contract: every command's `--json` document,
//! successes and failures alike, validates against
//! `schema/provision.schema.json`, and the schema is strict enough to
//! refuse the shapes it replaced.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/provision.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

fn valid(v: &jsonschema::Validator, doc: &Value) -> Result<(), String> {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// A repository with one local host (a directory) and one that cannot be
/// reached (a closed port on loopback).
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("hosts")).unwrap();
    std::fs::write(
        dir.path().join("hosts/demo.kdl"),
        "host \"demo\" {\n    local \"demo/root\"\n    tags \"lab\"\n    file \"/etc/motd\" content=\"one\\n\"\n}\n",
    )
    .unwrap();
    dir
}

fn with_gone(dir: &Path) {
    std::fs::write(
        dir.join("hosts/gone.kdl"),
        "host \"gone\" {\n    ssh \"root@127.0.0.1\" port=9\n    host-key \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIl1jnsMb4VZGd6VZJ1xXmHuIbAaIc1DwrDL5dTdRVo2\"\n}\n",
    )
    .unwrap();
}

/// Runs provision with `--json` and returns its exit code and document.
fn run(dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-C")
        .arg(dir)
        .arg("--json")
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{args:?} printed no JSON document ({e}):\n{text}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

#[test]
fn every_command_prints_a_document_the_schema_accepts() {
    let v = schema();
    let dir = repo();
    let d = dir.path();
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let mut seen = Vec::new();
    let mut expect = |args: &[&str], code: i32, command: &str| {
        let (got, doc) = run(d, args);
        assert_eq!(got, code, "{args:?}: {doc:#}");
        assert_eq!(doc["command"], command, "{doc:#}");
        assert_eq!(doc["format_version"], 1, "{doc:#}");
        if let Err(e) = valid(&v, &doc) {
            panic!("{args:?} printed a document the schema refuses:\n{e}\n{doc:#}");
        }
        seen.push(command.to_string());
        doc
    };
    expect(&["check"], 0, "check");
    let rendered = expect(&["render", "demo", "--out", out_dir], 0, "render");
    let plan = expect(&["plan"], 0, "plan");
    assert_eq!(plan["hosts"][0]["plan"]["generation"], 1);
    assert_eq!(
        plan["hosts"][0]["plan"]["generation_id"],
        rendered["generation_id"]
    );
    let applied = expect(&["apply", "--yes"], 0, "apply");
    assert_eq!(applied["hosts"][0]["outcome"]["result"], "switched");
    std::fs::write(
        d.join("hosts/demo.kdl"),
        "host \"demo\" {\n    local \"demo/root\"\n    file \"/etc/motd\" content=\"two\\n\"\n}\n",
    )
    .unwrap();
    expect(&["apply", "--yes"], 0, "apply");
    expect(&["status"], 0, "status");
    expect(&["verify"], 0, "verify");
    let gens = expect(&["generations", "demo"], 0, "generations");
    assert_eq!(gens["generations"][1]["generation"], 2);
    assert_eq!(gens["generations"][1]["current"], true);
    let back = expect(&["rollback", "demo", "--to", "1", "--yes"], 0, "rollback");
    assert_eq!(back["hosts"][0]["outcome"]["generation"], 1);
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    let alice = age::x25519::Identity::generate().to_public();
    std::fs::write(d.join("secrets/recipients"), format!("# alice\n{alice}\n")).unwrap();
    let listed = expect(&["secrets", "check"], 0, "secrets");
    assert_eq!(listed["secrets"], serde_json::json!([]));
    let rekeyed = expect(&["secrets", "rekey"], 0, "secrets");
    assert_eq!(rekeyed["recipients"], serde_json::json!(["alice"]));
    let fresh = tempfile::tempdir().unwrap();
    let new = fresh.path().join("new");
    let started = expect(&["init", new.to_str().unwrap()], 0, "init");
    assert_eq!(started["written"].as_array().unwrap().len(), 6);

    // Failures keep the envelope and carry a typed error.
    with_gone(d);
    let gone = |doc: &Value| {
        let hosts = doc["hosts"].as_array().expect("hosts");
        let entry = hosts
            .iter()
            .find(|h| h["host"] == "gone")
            .expect("gone is listed");
        assert_eq!(entry["ok"], false, "{doc:#}");
        entry["error"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let plan = expect(&["plan"], 4, "plan");
    assert_eq!(gone(&plan), "unreachable");
    // The advice apart from the message.
    let error = &plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "gone")
        .unwrap()["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("gone: cannot reach the host over SSH")
            && error["help"]
                .as_str()
                .unwrap()
                .starts_with("Check the address and port"),
        "{error:#}"
    );
    assert_eq!(
        gone(&expect(&["apply", "--yes"], 4, "apply")),
        "unreachable"
    );
    assert_eq!(gone(&expect(&["status"], 3, "status")), "unreachable");
    assert_eq!(gone(&expect(&["verify"], 4, "verify")), "unreachable");
    let unknown = expect(&["plan", "nohost"], 1, "plan");
    assert_eq!(unknown["error"]["kind"], "unknown-host");
    std::fs::write(
        d.join("hosts/bad.kdl"),
        "host \"bad\" {\n    sssh \"x\"\n}\n",
    )
    .unwrap();
    let broken = expect(&["plan"], 1, "plan");
    assert_eq!(broken["error"]["kind"], "invalid");
    // The unknown node, where it is.
    let diags = broken["diagnostics"].as_array().unwrap();
    assert!(
        diags.iter().any(|d| d["file"] == "hosts/bad.kdl"
            && d["line"] == 2
            && d["column"] == 5
            && d["message"].as_str().unwrap_or_default().contains("sssh")),
        "{broken:#}"
    );
    let checked = expect(&["check"], 1, "check");
    assert_eq!(checked["ok"], false);
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        [
            "apply",
            "check",
            "generations",
            "init",
            "plan",
            "render",
            "rollback",
            "secrets",
            "status",
            "verify"
        ]
    );
}

/// The schema refuses what it must: the shapes of before the contract
/// (an error as a bare string, a generation as a hash, no version).
#[test]
fn the_schema_refuses_documents_outside_the_contract() {
    let v = schema();
    let ok = serde_json::json!({
        "format_version": 1, "command": "plan", "ok": false,
        "error": {"kind": "secret", "message": "secret env:X could not be resolved"}
    });
    valid(&v, &ok).unwrap();
    for bad in [
        serde_json::json!({"ok": false, "error": "secret env:X could not be resolved"}),
        serde_json::json!({"format_version": 1, "command": "plan", "ok": false, "error": "text"}),
        serde_json::json!({"format_version": 2, "command": "plan", "ok": true, "changes": false, "blocked": 0, "hosts": []}),
        serde_json::json!({"format_version": 1, "command": "plan", "ok": false, "changes": false, "blocked": 0,
                           "hosts": [{"host": "a", "ok": false}]}),
        serde_json::json!({"format_version": 1, "command": "generations", "ok": true, "host": "a",
                           "generations": [{"generation": "3f2a", "generation_id": "3f2a", "time": "t", "by": "b",
                                            "files": {}, "status": "ok", "current": true}]}),
        serde_json::json!({"format_version": 1, "command": "status", "ok": false,
                           "hosts": [{"host": "a", "ok": false, "error": {"kind": "no-such-kind", "message": "m"}}]}),
    ] {
        assert!(valid(&v, &bad).is_err(), "the schema accepts {bad:#}");
    }
}

/// `--json-lines` streams a version line, a stage line per host and step,
/// and the command's document as the summary line, which the schema
/// accepts like `--json`'s.
#[test]
fn json_lines_stream_version_stages_and_summary() {
    let v = schema();
    let dir = repo();
    with_gone(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-C")
        .arg(dir.path())
        .args(["--json-lines", "apply", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 4, "{lines:#?}");
    let first = &lines[0];
    assert_eq!(
        (
            first["type"].as_str(),
            first["format_version"].as_u64(),
            first["command"].as_str()
        ),
        (Some("version"), Some(1), Some("apply"))
    );
    let stages = &lines[1..lines.len() - 1];
    assert!(
        stages
            .iter()
            .all(|l| l["type"] == "stage" && l["elapsed_secs"].is_number())
    );
    let last_stage = |host: &str| {
        stages
            .iter()
            .rev()
            .find(|l| l["host"] == host)
            .unwrap_or_else(|| panic!("no stage of {host}: {stages:#?}"))
    };
    assert_eq!(last_stage("demo")["stage"], "done");
    assert_eq!(last_stage("gone")["stage"], "failed");
    assert_eq!(last_stage("gone")["reason"], "unreachable");
    assert!(
        stages
            .iter()
            .any(|l| l["host"] == "demo" && l["stage"] == "switching" && l["generation"] == 1)
    );
    let mut summary = lines.last().unwrap().clone();
    assert_eq!(summary["type"], "summary");
    summary.as_object_mut().unwrap().remove("type");
    valid(&v, &summary).unwrap();
    assert_eq!(summary["command"], "apply");
    // A run that stops before its work still ends with its summary.
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-C")
        .arg(dir.path())
        .args(["--json-lines", "plan", "nohost"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["type"], "version");
    assert_eq!(lines[1]["type"], "summary");
    assert_eq!(lines[1]["error"]["kind"], "unknown-host");
}

/// Status of watched credentials: a known date is shown wherever the host
/// is (here a directory), with its units, and a command's answer not yet
/// recorded is unknown; the document holds to the schema.
#[test]
fn status_shows_expiries_by_the_schema() {
    let v = schema();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("hosts")).unwrap();
    std::fs::write(
        d.join("hosts/lab.kdl"),
        r#"host "lab" {
    local "lab/root"
    journald max-use="1G"
    alert "log" command="true"
    agent "a" {
        exec "/opt/a/run"
        user "agent"
        auth "cert" check="true" expires-at="2020-01-01"
        auth "tok" check="true" expires="tok expiry" warn-before="3d"
        heartbeat every="10m" alert="log"
        failure-mode "x" "y"
    }
}
"#,
    )
    .unwrap();
    let (code, applied) = run(d, &["apply", "--yes"]);
    assert_eq!(code, 0, "{applied:#}");
    let (code, doc) = run(d, &["status"]);
    assert_eq!(code, 0, "{doc:#}");
    valid(&v, &doc).unwrap_or_else(|e| panic!("{e}\n{doc:#}"));
    let expiries = &doc["hosts"][0]["status"]["agents"][0]["expiries"];
    assert_eq!(expiries[0]["auth"], "cert", "{doc:#}");
    assert_eq!(expiries[0]["expires_at"], "2020-01-01T00:00:00Z");
    assert_eq!(expiries[0]["verdict"], "expired");
    assert!(expiries[0]["expires_in_secs"].as_i64().unwrap() < 0);
    assert_eq!(expiries[0]["warn_before_secs"], 7 * 86_400);
    assert_eq!(expiries[1]["auth"], "tok");
    assert_eq!(expiries[1]["verdict"], "unknown");
    assert_eq!(expiries[1]["expires_in_secs"], Value::Null);
    assert_eq!(expiries[1]["checked_age_secs"], Value::Null);
    assert_eq!(expiries[1]["warn_before_secs"], 3 * 86_400);
    // The schema refuses an expiry without its units.
    let mut broken = doc.clone();
    broken["hosts"][0]["status"]["agents"][0]["expiries"][0]
        .as_object_mut()
        .unwrap()
        .remove("expires_in_secs");
    assert!(valid(&v, &broken).is_err());
}
