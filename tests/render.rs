//! The rendered files of the bundled example, reviewed as snapshots, and the
//! properties every rendering must have.

#[path = "common/repo.rs"]
mod repo;

#[test]
fn example_hosts_render_what_the_checklist_promises() {
    let states = repo::render_all(&repo::root());
    let names: Vec<&str> = states.iter().map(|s| s.host.as_str()).collect();
    assert_eq!(names, ["agents-1", "agents-2", "demo"]);
    for s in &states {
        for (unit, spec) in &s.units {
            assert!(
                s.files.contains_key(&format!("/etc/systemd/system/{unit}")),
                "{unit} has a unit file"
            );
            for input in &spec.inputs {
                assert!(
                    s.files.contains_key(input),
                    "{unit} depends on {input}, which is rendered"
                );
            }
        }
        for (path, f) in &s.files {
            if path.starts_with("/etc/systemd/system/agent-")
                && path.ends_with(".service")
                && !path.contains("-rotate-")
                && !path.contains("-heartbeat")
                && !path.contains("-expiry-")
            {
                let text = String::from_utf8_lossy(&f.bytes);
                for line in [
                    "KillMode=control-group",
                    "Restart=on-failure",
                    "RestartSec=10",
                    "TimeoutStopSec=30",
                    "ExecStartPre=/usr/local/lib/provision/agents/",
                    "OnFailure=provision-alert@%N.service",
                ] {
                    assert!(text.contains(line), "{path} lacks {line}");
                }
            }
            if path.ends_with(".env")
                || path.starts_with("/etc/provision/alerts/")
                    && path != "/etc/provision/alerts/routes"
            {
                assert_eq!(f.mode.0, 0o600, "{path} holds secrets or URLs: 0600");
            }
            if path.ends_with("AGENTS.md") {
                let text = String::from_utf8_lossy(&f.bytes);
                assert!(
                    text.contains("## WORKSTATE.md: checkpoint protocol"),
                    "{path}"
                );
                assert!(text.contains("## Failure modes"), "{path}");
            }
        }
    }
}

#[test]
fn unresolved_secrets_show_references_never_values() {
    // The example's doc-review token lives in secrets/graph-token.
    let value = std::fs::read_to_string(repo::root().join("secrets/graph-token")).unwrap();
    let states = repo::render_all(&repo::root());
    for s in &states {
        for (path, f) in &s.files {
            let text = String::from_utf8_lossy(&f.bytes);
            assert!(!text.contains(value.trim()), "{path} leaks the secret");
        }
    }
    let env = &states[0].files["/etc/provision/agents/doc-review.env"];
    assert!(env.secret);
    assert!(
        String::from_utf8_lossy(&env.bytes).contains("# GRAPH_TOKEN <- file:secrets/graph-token")
    );
}

/// One snapshot per file of the first example host: a person reviews these.
#[test]
fn snapshots_of_agents_1() {
    let states = repo::render_all(&repo::root());
    let s = &states[0];
    insta::assert_snapshot!(
        "agents-1-manifest",
        s.manifest()
            .files
            .iter()
            .map(|e| format!(
                "{} {}:{} {} {}",
                e.mode,
                e.owner,
                e.group,
                e.path,
                &e.sha256[..12]
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (path, f) in &s.files {
        let name = format!("agents-1{}", path.replace('/', "__"));
        insta::assert_snapshot!(name, String::from_utf8_lossy(&f.bytes));
    }
}

/// A `file` marked `secret=#true` is handled like an agent's secrets: 0600
/// unless its mode says otherwise, marked secret in the manifest (so plans
/// never diff it and name it by a keyed id).
#[test]
fn a_file_marked_secret_is_a_secret_file() {
    let root = repo::root();
    let sources = provision::load::load(&root).expect("the example loads");
    let edited: Vec<_> = sources
        .iter()
        .map(|(_, s)| {
            let mut s = s.clone();
            s.text = s.text.replace(
                "    tags \"prod\" \"za\"\n",
                "    tags \"prod\" \"za\"\n    file \"/etc/app/key\" content=\"k-123\\n\" secret=#true\n    file \"/etc/app/open\" content=\"x\\n\" secret=#true mode=0o640\n",
            );
            s
        })
        .collect();
    let states = repo::render_sources(&root, &provision::source::SourceSet::new(edited));
    let f = &states[0].files["/etc/app/key"];
    assert!(f.secret, "a secret file is not marked secret");
    assert_eq!(f.mode.0, 0o600);
    let g = &states[0].files["/etc/app/open"];
    assert!(g.secret);
    assert_eq!(g.mode.0, 0o640);
    assert!(
        !repo::render_all(&root)[0]
            .files
            .contains_key("/etc/app/key")
    );
}
