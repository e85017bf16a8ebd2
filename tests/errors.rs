//! Bad input: every kind of mistake `check` catches names the right file,
//! line and column, with a hint.

use provision::diagnostic::{Diagnostic, Severity};
use provision::source::{Source, SourceKind, SourceSet};

/// A minimal valid agent body, so each case breaks one thing only.
const GOOD_AGENT: &str = r#"
        exec "/opt/a/run"
        user "agent"
        auth "tok" check="true" { rotate every="30d" run="/bin/true" }
        heartbeat every="10m" alert="ops"
        failure-mode "x" "y""#;

fn host(body: &str) -> String {
    format!(
        "host \"h1\" {{\n    ssh \"root@127.0.0.1\"\n    journald max-use=\"1G\"\n    alert \"ops\" webhook=\"http://127.0.0.1:9/\" insecure=#true\n{body}\n}}\n"
    )
}

fn sources(files: &[(&str, &str)]) -> SourceSet {
    SourceSet::new(
        files
            .iter()
            .map(|(path, text)| Source {
                path: path.to_string(),
                kind: if path.starts_with("modules/") {
                    SourceKind::Module
                } else {
                    SourceKind::Host
                },
                text: text.to_string(),
            })
            .collect(),
    )
}

/// Compiles, renders every host (as `check` does) and returns the errors
/// with their file, line and column.
fn errors(files: &[(&str, &str)]) -> Vec<(String, usize, usize, Diagnostic)> {
    let set = sources(files);
    let (fleet, mut diags) = provision::compile(&set);
    let templates = provision::render::Templates::new(&set, &mut diags);
    if !diags.has_errors() {
        for h in &fleet.hosts {
            provision::render::render(h, &templates, &Default::default(), None, &mut diags);
        }
    }
    diags
        .into_sorted()
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let loc = d.location(&set).expect("every error has a place");
            (loc.file, loc.line, loc.column, d)
        })
        .collect()
}

/// Asserts exactly one error, at `file:line:col`, whose message contains `msg`
/// and whose hint contains `help`.
#[track_caller]
fn expect_one(files: &[(&str, &str)], file: &str, line: usize, col: usize, msg: &str, help: &str) {
    let errs = errors(files);
    let summary: Vec<String> = errs
        .iter()
        .map(|(f, l, c, d)| format!("{f}:{l}:{c}: {} (help: {:?})", d.message, d.help))
        .collect();
    assert_eq!(
        errs.len(),
        1,
        "expected one error, got:\n{}",
        summary.join("\n")
    );
    let (f, l, c, d) = &errs[0];
    assert_eq!(
        (f.as_str(), *l, *c),
        (file, line, col),
        "wrong place: {}",
        summary[0]
    );
    assert!(
        d.message.contains(msg),
        "message {:?} lacks {msg:?}",
        d.message
    );
    assert!(
        d.help.as_deref().unwrap_or("").contains(help),
        "help {:?} lacks {help:?}",
        d.help
    );
}

fn agent(extra: &str) -> String {
    host(&format!("    agent \"a1\" {{{GOOD_AGENT}\n{extra}\n    }}"))
}

#[test]
fn a_good_fleet_has_no_errors() {
    assert!(errors(&[("hosts/h1.kdl", &agent(""))]).is_empty());
}

#[test]
fn kdl_syntax_error() {
    let text = "host \"h1\" {\n    ssh \"root@x\" port=0o9\n}\n";
    let errs = errors(&[("hosts/h1.kdl", text)]);
    assert!(!errs.is_empty());
    let (f, l, _, d) = &errs[0];
    assert_eq!((f.as_str(), *l), ("hosts/h1.kdl", 2), "{}", d.message);
    assert!(d.message.starts_with("KDL syntax"), "{}", d.message);
}

#[test]
fn unknown_node_suggests_the_right_one() {
    // line 11: the extra line after GOOD_AGENT (host header is 4 lines, agent line 5, body 6..10).
    expect_one(
        &[("hosts/h1.kdl", &agent("        hartbeat every=\"5m\""))],
        "hosts/h1.kdl",
        11,
        9,
        "unknown node `hartbeat` in an agent",
        "did you mean `heartbeat`?",
    );
}

#[test]
fn unknown_property_suggests_the_right_one() {
    let text = agent("").replace(
        "heartbeat every=\"10m\"",
        "heartbeat evry=\"10m\" every=\"10m\"",
    );
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        9,
        19,
        "unknown property `evry`",
        "did you mean `every`?",
    );
}

#[test]
fn missing_required_value() {
    let text = agent("").replace("        exec \"/opt/a/run\"\n", "");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        5,
        5,
        "agent `a1` has no `exec`",
        "add `exec",
    );
}

#[test]
fn missing_argument() {
    let text = agent("        secret from=\"env:X\"");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        11,
        9,
        "`secret` needs one argument",
        "secret \"NAME\"",
    );
}

#[test]
fn wrong_type() {
    let text = host("").replace("journald max-use=\"1G\"", "journald max-use=1024");
    let errs = errors(&[("hosts/h1.kdl", &text)]);
    let (f, l, c, d) = &errs[0];
    assert_eq!((f.as_str(), *l, *c), ("hosts/h1.kdl", 3, 14));
    assert!(
        d.message.contains("must be a string, not an integer"),
        "{}",
        d.message
    );
    assert!(d.help.as_deref().unwrap().contains("double quotes"));
}

#[test]
fn wrong_type_for_a_port() {
    let text = host("").replace(
        "ssh \"root@127.0.0.1\"",
        "ssh \"root@127.0.0.1\" port=70000",
    );
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        2,
        26,
        "`port` is out of range",
        "1 to 65535",
    );
}

#[test]
fn duplicate_host_across_files() {
    let a = agent("");
    let errs = errors(&[("hosts/a.kdl", &a), ("hosts/b.kdl", &a)]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let (f, l, c, d) = &errs[0];
    assert_eq!((f.as_str(), *l, *c), ("hosts/b.kdl", 1, 1));
    assert!(d.message.contains("duplicate host `h1`"));
    let related = d.related.as_ref().expect("points at the first definition");
    assert_eq!(related.0.source, provision::source::SourceId(0));
}

#[test]
fn duplicate_agent() {
    let one = format!("    agent \"a1\" {{{GOOD_AGENT}\n    }}");
    let text = host(&format!("{one}\n{one}"));
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        12,
        5,
        "duplicate `agent \"a1\"`",
        "keep one",
    );
}

#[test]
fn bad_duration() {
    let text = agent("").replace("every=\"30d\"", "every=\"45 fortnights\"");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        8,
        42,
        "bad every: `fortnights` is not a unit of time",
        "`45d`",
    );
}

#[test]
fn bad_size() {
    let text = host("").replace("max-use=\"1G\"", "max-use=\"2X\"");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        3,
        14,
        "bad max-use: `X` is not a size unit",
        "`500M`",
    );
}

#[test]
fn bad_active_hours() {
    let text = agent("").replace(
        "heartbeat every=\"10m\"",
        "heartbeat every=\"10m\" active-hours=\"7-19\"",
    );
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        9,
        31,
        "bad active-hours",
        "HH:MM-HH:MM",
    );
}

#[test]
fn unknown_module() {
    let text = agent("        use \"agnet\"");
    let m = ("modules/agent.kdl", "user \"agent\"\n");
    expect_one(
        &[("hosts/h1.kdl", &text), m],
        "hosts/h1.kdl",
        11,
        9,
        "unknown module `agnet`",
        "did you mean `agent`?",
    );
}

#[test]
fn module_cycle() {
    let text = agent("        use \"a\"");
    let files = [
        ("hosts/h1.kdl", text.as_str()),
        ("modules/a.kdl", "use \"b\"\n"),
        ("modules/b.kdl", "env \"X\" \"1\"\nuse \"a\"\n"),
    ];
    expect_one(
        &files,
        "modules/b.kdl",
        2,
        1,
        "module cycle: a → b → a",
        "remove one `use`",
    );
}

#[test]
fn unknown_alert_name() {
    let text = agent("").replace("alert=\"ops\"", "alert=\"opz\"");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        9,
        9,
        "unknown alert channel `opz`",
        "did you mean `ops`?",
    );
}

#[test]
fn unknown_secret_scheme() {
    let text = agent("        secret \"TOKEN\" from=\"vault:kv/x\"");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        11,
        24,
        "unknown secret scheme `vault`",
        "`env:NAME`",
    );
}

#[test]
fn mistakes_in_a_module_point_into_the_module() {
    let text = agent("        use \"base\"");
    let files = [
        ("hosts/h1.kdl", text.as_str()),
        ("modules/base.kdl", "// defaults\nrestart \"sometimes\"\n"),
    ];
    expect_one(
        &files,
        "modules/base.kdl",
        2,
        9,
        "`sometimes` is not a systemd restart policy",
        "`on-failure`",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = agent("        hartbeat\n        secret \"X\" from=\"nope:1\"")
        .replace("max-use=\"1G\"", "max-use=\"1Q\"");
    let errs = errors(&[("hosts/h1.kdl", &text)]);
    let lines: Vec<usize> = errs.iter().map(|e| e.1).collect();
    assert_eq!(lines, [3, 11, 12], "{errs:?}");
    assert!(
        errs.iter().all(|e| !e.3.label.starts_with("checklist")),
        "no echoes of the checklist"
    );
}

#[test]
fn checklist_items_are_errors_at_the_agent() {
    let text = host(
        "    agent \"bare\" {\n        exec \"/bin/x\"\n        user \"agent\"\n        kill-mode \"process\"\n    }",
    );
    let errs = errors(&[("hosts/h1.kdl", &text)]);
    let found: Vec<(usize, usize, &str)> = errs
        .iter()
        .map(|(_, l, c, d)| (*l, *c, d.label.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (5, 5, "checklist: auth-check"),
            (5, 5, "checklist: failure-modes"),
            (5, 5, "checklist: heartbeat"),
            (8, 9, "checklist: kill-mode")
        ],
        "{errs:?}"
    );
}

#[test]
fn a_waived_item_is_a_warning_that_names_the_reason() {
    let body = "        exec \"/bin/x\"\n        user \"agent\"\n        auth \"t\" check=\"true\" { rotate every=\"30d\" run=\"/bin/true\" }\n        failure-mode \"x\" \"y\"\n        waive \"heartbeat\" reason=\"batch job, watched by its own timer\"";
    let text = host(&format!("    agent \"a2\" {{\n{body}\n    }}"));
    let set = sources(&[("hosts/h1.kdl", &text)]);
    let (_, diags) = provision::compile(&set);
    assert!(!diags.has_errors());
    let all = diags.into_sorted();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].severity, Severity::Warning);
    assert!(
        all[0].message.contains("waives `heartbeat`: batch job"),
        "{}",
        all[0].message
    );
    assert_eq!(all[0].location(&set).unwrap().line, 10);
}

#[test]
fn a_waiver_without_a_reason_is_an_error() {
    expect_one(
        &[("hosts/h1.kdl", &agent("        waive \"heartbeat\""))],
        "hosts/h1.kdl",
        11,
        9,
        "a waiver needs a reason",
        "reason=",
    );
}

#[test]
fn undefined_template_variable_names_template_and_variable() {
    let text = agent("        use \"custom\"");
    let files = [
        ("hosts/h1.kdl", text.as_str()),
        ("modules/custom.kdl", "env \"A\" \"1\"\n"),
    ];
    let mut set: Vec<Source> = sources(&files).iter().map(|(_, s)| s.clone()).collect();
    set.push(Source {
        path: "modules/custom/templates/AGENTS.md.tera".into(),
        kind: SourceKind::Template,
        text: "# {{ agent.nmae }}\n".into(),
    });
    let set = SourceSet::new(set);
    let (fleet, mut diags) = provision::compile(&set);
    let templates = provision::render::Templates::new(&set, &mut diags);
    provision::render::render(
        &fleet.hosts[0],
        &templates,
        &Default::default(),
        None,
        &mut diags,
    );
    let all = diags.into_sorted();
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        all[0]
            .message
            .contains("modules/custom/templates/AGENTS.md.tera"),
        "{}",
        all[0].message
    );
    assert!(all[0].message.contains("nmae"), "{}", all[0].message);
}
