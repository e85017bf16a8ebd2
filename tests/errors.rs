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

// Values that land in generated files: each check, at its file:line:col.

#[test]
fn a_newline_in_exec_is_an_error_at_the_value() {
    let text = agent("").replace(
        "exec \"/opt/a/run\"",
        "exec \"/opt/a/run\\nExecStartPre=/bin/evil\"",
    );
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        6,
        14,
        "the command of `exec` holds a newline (U+000A)",
        "keep the value on one line",
    );
}

#[test]
fn an_escape_character_in_a_description_is_an_error() {
    expect_one(
        &[(
            "hosts/h1.kdl",
            &agent("        description \"red \\u{1b}[31m text\""),
        )],
        "hosts/h1.kdl",
        11,
        21,
        "the description of `description` holds an escape character (U+001B)",
        "pasted terminal colours",
    );
}

#[test]
fn a_tab_in_an_env_value_is_an_error() {
    expect_one(
        &[("hosts/h1.kdl", &agent("        env \"A\" \"x\\ty\""))],
        "hosts/h1.kdl",
        11,
        17,
        "the value of `env` holds a tab (U+0009)",
        "spaces",
    );
}

#[test]
fn a_nul_in_an_auth_check_is_an_error() {
    let text = agent("").replace("check=\"true\"", "check=\"true\\u{0}\"");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        8,
        20,
        "`check` of `auth` holds a NUL byte (U+0000)",
        "NUL",
    );
}

#[test]
fn a_c1_control_in_a_tag_and_del_in_a_failure_mode_are_errors() {
    let text = agent("        failure-mode \"disk\\u{7f}\" \"stop\"")
        .replace("    journald", "    tags \"prod\\u{85}\"\n    journald");
    let errs = errors(&[("hosts/h1.kdl", &text)]);
    let found: Vec<(usize, usize, &str)> = errs
        .iter()
        .map(|(_, l, c, d)| (*l, *c, d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (3, 10, "a tag of `tags` holds a control character (U+0085)"),
            (
                12,
                22,
                "the failure of `failure-mode` holds a DEL character (U+007F)"
            ),
        ],
        "{errs:?}"
    );
}

#[test]
fn a_bidirectional_override_in_a_note_is_an_error() {
    expect_one(
        &[(
            "hosts/h1.kdl",
            &agent("        note \"fine \\u{202E}txet\""),
        )],
        "hosts/h1.kdl",
        11,
        14,
        "the note of `note` holds a bidirectional override (U+202E)",
        "display differently",
    );
}

#[test]
fn file_content_may_span_lines_but_holds_no_escape_sequences() {
    let ok = agent("        file \"/opt/a/conf\" content=\"a\\n\\tb\\r\\n\"");
    assert!(errors(&[("hosts/h1.kdl", &ok)]).is_empty());
    expect_one(
        &[(
            "hosts/h1.kdl",
            &agent("        file \"/opt/a/conf\" content=\"a\\u{1b}[0m\\n\""),
        )],
        "hosts/h1.kdl",
        11,
        28,
        "`content` of `file` holds an escape character (U+001B)",
        "escape sequence",
    );
}

#[test]
fn a_trailing_backslash_in_a_description_is_an_error() {
    expect_one(
        &[("hosts/h1.kdl", &agent("        description \"first \\\\\""))],
        "hosts/h1.kdl",
        11,
        21,
        "the description ends with a backslash",
        "systemd joins a line ending in",
    );
}

#[test]
fn whitespace_in_a_directory_path_is_an_error() {
    expect_one(
        &[("hosts/h1.kdl", &agent("        dir \"/srv/my dir\""))],
        "hosts/h1.kdl",
        11,
        13,
        "bad path: `/srv/my dir` holds whitespace",
        "tmpfiles.d, sysusers.d and unit files would split or unquote",
    );
}

#[test]
fn a_quote_in_a_home_is_an_error() {
    expect_one(
        &[(
            "hosts/h1.kdl",
            &agent("").replace(
                "    agent",
                "    user \"agent\" home=\"/var/lib/a'b\"\n    agent",
            ),
        )],
        "hosts/h1.kdl",
        5,
        18,
        "bad home: `/var/lib/a'b` holds a quote",
        "may not hold whitespace, quotes or backslashes",
    );
}

#[test]
fn a_relative_shell_and_a_shell_with_arguments_are_errors() {
    let text = agent("").replace(
        "    agent",
        "    user \"agent\" shell=\"bash\"\n    user \"other\" shell=\"/bin/sh -x\"\n    agent",
    );
    let errs = errors(&[("hosts/h1.kdl", &text)]);
    let found: Vec<(usize, usize, &str)> = errs
        .iter()
        .map(|(_, l, c, d)| (*l, *c, d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (5, 18, "bad shell: `bash` is not absolute"),
            (6, 18, "bad shell: `/bin/sh -x` holds whitespace"),
        ],
        "{errs:?}"
    );
}

#[test]
fn a_group_name_with_a_space_is_an_error() {
    let text = agent("").replace(
        "    agent",
        "    user \"agent\" {\n        groups \"ok\" \"sys journal\"\n    }\n    agent",
    );
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        6,
        21,
        "bad group name: `sys journal` is not a valid user or group name",
        "",
    );
}

#[test]
fn an_unnormalised_program_in_exec_is_an_error() {
    let text = agent("").replace("exec \"/opt/a/run\"", "exec \"/opt/../bin/x --flag\"");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        6,
        14,
        "bad program of `exec`: `/opt/../bin/x` is not normalised",
        "plain absolute path first",
    );
}

#[test]
fn paths_under_virtual_filesystems_are_errors() {
    let text = agent(
        "        file \"/proc/sys/kernel/x\" content=\"1\"\n        dir \"/run/agent\"\n        workdir \"/dev/shm/a1\"",
    );
    let errs = errors(&[("hosts/h1.kdl", &text)]);
    let found: Vec<(usize, usize, &str)> = errs
        .iter()
        .map(|(_, l, c, d)| (*l, *c, d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                11,
                14,
                "bad path: `/proc/sys/kernel/x` is under `/proc`, a virtual filesystem: what is written there vanishes at boot or is not a file"
            ),
            (
                12,
                13,
                "bad path: `/run/agent` is under `/run`, a virtual filesystem: what is written there vanishes at boot or is not a file"
            ),
            (
                13,
                17,
                "bad workdir: `/dev/shm/a1` is under `/dev`, a virtual filesystem: what is written there vanishes at boot or is not a file"
            ),
        ],
        "{errs:?}"
    );
}

#[test]
fn a_mode_written_in_decimal_is_an_error_that_says_0o() {
    let cases = [
        (
            "0644",
            "`0644` is the decimal number 644, not an octal mode",
            "`mode=0o644`",
        ),
        (
            "755",
            "`755` is the decimal number 755, not an octal mode",
            "`mode=0o755`",
        ),
        ("0x1ed", "`0x1ed` is not an octal mode", "`mode=0o755`"),
    ];
    for (mode, msg, help) in cases {
        expect_one(
            &[(
                "hosts/h1.kdl",
                &agent(&format!("        dir \"/srv/x\" mode={mode}")),
            )],
            "hosts/h1.kdl",
            11,
            22,
            &format!("bad mode: {msg}"),
            help,
        );
    }
    let ok = agent("        dir \"/srv/x\" mode=0o2770");
    assert!(errors(&[("hosts/h1.kdl", &ok)]).is_empty());
}

#[test]
fn plain_http_alerts_need_insecure() {
    let text = agent("").replace(" insecure=#true", "");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        4,
        17,
        "bad webhook: `http://127.0.0.1:9/` is plain http: alerts would cross the network unencrypted",
        "`insecure=#true`",
    );
}

#[test]
fn alert_urls_are_parsed() {
    let cases = [
        (
            "webhook=\"https://a b/x\"",
            "bad webhook: `https://a b/x` holds a space",
            "percent-encode",
        ),
        (
            "webhook=\"https://ops:pw@hooks.example/x\"",
            "holds credentials before `@`",
            "token in the path",
        ),
        (
            "webhook=\"https:///x\"",
            "bad webhook: `https:///x` names no host",
            "https://host/path",
        ),
        (
            "webhook=\"https://x.example/\\\"a\"",
            "holds a quote",
            "percent-encode",
        ),
        (
            "webhook=\"https://x.example:99999/\"",
            "bad webhook: `99999` is not a port",
            "1 to 65535",
        ),
        (
            "api=\"ftp://tg.example\" telegram-chat=\"-100\" bot-token=\"env:T\"",
            "bad api: `ftp` is not http or https",
            "https://host/path",
        ),
    ];
    for (props, msg, help) in cases {
        let text = agent("").replace("webhook=\"http://127.0.0.1:9/\" insecure=#true", props);
        expect_one(&[("hosts/h1.kdl", &text)], "hosts/h1.kdl", 4, 17, msg, help);
    }
}

#[test]
fn a_bad_telegram_chat_id_is_an_error() {
    let text = agent("").replace(
        "webhook=\"http://127.0.0.1:9/\" insecure=#true",
        "telegram-chat=\"ops room\" bot-token=\"env:T\"",
    );
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        4,
        17,
        "bad telegram-chat: `ops room` is not a Telegram chat id",
        "`@channelname`",
    );
}

#[test]
fn an_ssh_destination_that_reads_as_an_option_is_an_error() {
    let text = agent("").replace("ssh \"root@127.0.0.1\"", "ssh \"-oProxyCommand=sh\"");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        2,
        5,
        "the ssh destination `-oProxyCommand=sh` starts with `-`",
        "ssh_config",
    );
}

#[test]
fn files_at_generated_paths_are_errors() {
    let cases = [
        (
            "        file \"/etc/systemd/system/agent-a1.service\" content=\"x\"",
            "`/etc/systemd/system/agent-a1.service` is generated by provision: the unit of agent `a1`",
            "override the template",
        ),
        (
            "        file \"/var/lib/agents/a1/AGENTS.md\" content=\"x\"",
            "`/var/lib/agents/a1/AGENTS.md` is generated by provision: the AGENTS.md of agent `a1`",
            "pick another path",
        ),
        (
            "        file \"/etc/provision/alerts/ops.conf\" content=\"x\"",
            "`/etc/provision/alerts/ops.conf` is inside `/etc/provision`, which holds provision's configuration",
            "outside `/etc/provision`",
        ),
        (
            "        file \"/usr/local/lib/provision/alert\" content=\"x\"",
            "`/usr/local/lib/provision/alert` is inside `/usr/local/lib/provision`, which holds provision's scripts",
            "provision owns everything in it",
        ),
        (
            "        file \"/etc/sysusers.d/provision.conf\" content=\"x\"",
            "is generated by provision: the sysusers.d configuration",
            "pick another path",
        ),
        (
            "        file \"/etc/systemd/journald.conf.d/50-provision.conf\" content=\"x\"",
            "is generated by provision: the journald drop-in",
            "pick another path",
        ),
        (
            "        dir \"/var/lib/agents/a1\"",
            "`/var/lib/agents/a1` is created by provision: the working directory of agent `a1`",
            "remove this node",
        ),
        (
            "        file \"/etc/systemd\" content=\"x\"",
            "`/etc/systemd` is a directory provision writes into",
            "pick another path",
        ),
    ];
    for (line, msg, help) in cases {
        expect_one(
            &[("hosts/h1.kdl", &agent(line))],
            "hosts/h1.kdl",
            11,
            9,
            msg,
            help,
        );
    }
}

#[test]
fn two_agents_sharing_a_workdir_is_an_error_at_the_second() {
    let one = |name: &str| {
        format!("    agent \"{name}\" {{{GOOD_AGENT}\n        workdir \"/srv/w\"\n    }}")
    };
    let text = host(&format!("{}\n{}", one("a1"), one("a2")));
    let errs = errors(&[("hosts/h1.kdl", &text)]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let (f, l, c, d) = &errs[0];
    assert_eq!(
        (f.as_str(), *l, *c),
        ("hosts/h1.kdl", 19, 9),
        "{}",
        d.message
    );
    assert_eq!(
        d.message,
        "agents `a1` and `a2` share the working directory `/srv/w`"
    );
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("give one of them another `workdir`")
    );
    let (related, _) = d
        .related
        .as_ref()
        .expect("points at the first agent's workdir");
    assert_eq!(provision::source::line_col(&text, related.offset), (11, 9));
}

#[test]
fn an_agent_that_can_read_the_journal_is_a_warning() {
    let text = agent("").replace(
        "    agent",
        "    user \"agent\" {\n        groups \"adm\"\n    }\n    agent",
    );
    assert!(errors(&[("hosts/h1.kdl", &text)]).is_empty());
    let set = sources(&[("hosts/h1.kdl", &text)]);
    let (_, diags) = provision::compile(&set);
    let all = diags.into_sorted();
    assert_eq!(all.len(), 1, "{all:?}");
    let d = &all[0];
    assert_eq!(d.severity, Severity::Warning);
    let loc = d.location(&set).unwrap();
    assert_eq!(
        (loc.file.as_str(), loc.line, loc.column),
        ("hosts/h1.kdl", 8, 5)
    );
    assert_eq!(
        d.message,
        "agent `a1` runs as `agent`, who can read the host's journal (group `adm`)"
    );
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("outside `systemd-journal`, `adm` and `wheel`")
    );
}

#[test]
fn blocks_nested_too_deep_are_an_error_not_a_crash() {
    let deep = format!(
        "host \"h1\" {{\n{}{}\n}}\n",
        "a {".repeat(40),
        "}".repeat(40)
    );
    expect_one(
        &[("hosts/h1.kdl", &deep)],
        "hosts/h1.kdl",
        2,
        48,
        "blocks nest more than 16 levels deep",
        "close the blocks",
    );
    // Braces inside strings and comments do not count.
    let braces = agent(&format!(
        "        note \"{}\"\n        // {}\n        note #\"{}\"#",
        "{".repeat(40),
        "{".repeat(41),
        "{".repeat(42)
    ));
    assert!(errors(&[("hosts/h1.kdl", &braces)]).is_empty());
}

/// An auth with the extra properties `props`, on line 11.
fn auth_with(props: &str) -> String {
    agent(&format!(
        "        auth \"exp\" check=\"true\" {props} {{ rotate every=\"30d\" run=\"/bin/true\" }}"
    ))
}

#[test]
fn an_expiry_is_a_command_or_a_date() {
    for good in [
        r#"expires="tok expiry""#,
        r#"expires="tok expiry" warn-before="3d""#,
        r#"expires-at="2027-02-01""#,
        r#"expires-at="2027-02-01T12:00:00+02:00" warn-before="1h""#,
    ] {
        let errs = errors(&[("hosts/h1.kdl", &auth_with(good))]);
        assert!(errs.is_empty(), "{good}: {:?}", errs[0].3.message);
    }
    expect_one(
        &[(
            "hosts/h1.kdl",
            &auth_with(r#"expires="tok expiry" expires-at="2027-02-01""#),
        )],
        "hosts/h1.kdl",
        11,
        9,
        "`expires` and `expires-at` both say when it expires",
        "not both",
    );
}

#[test]
fn bad_expiry_values_point_at_the_value() {
    // Column 33: the property after `        auth "exp" check="true" `.
    expect_one(
        &[("hosts/h1.kdl", &auth_with(r#"expires-at="2027-02-30""#))],
        "hosts/h1.kdl",
        11,
        33,
        "bad expires-at: `2027-02-30` is not a day of the calendar",
        "RFC 3339",
    );
    expect_one(
        &[("hosts/h1.kdl", &auth_with(r#"expires-at="soon""#))],
        "hosts/h1.kdl",
        11,
        33,
        "bad expires-at: `soon` is not a date",
        "`2027-02-01T12:00:00Z`",
    );
    expect_one(
        &[(
            "hosts/h1.kdl",
            &auth_with(r#"expires="tok expiry" warn-before="a week""#),
        )],
        "hosts/h1.kdl",
        11,
        54,
        "bad warn-before",
        "`1week`",
    );
    expect_one(
        &[(
            "hosts/h1.kdl",
            &auth_with(r#"expires="tok expiry" warn-before="30m""#),
        )],
        "hosts/h1.kdl",
        11,
        54,
        "warning less than an hour before the expiry",
        "at least `1h`",
    );
    expect_one(
        &[("hosts/h1.kdl", &auth_with(r#"expires=" ""#))],
        "hosts/h1.kdl",
        11,
        33,
        "`expires` is an empty command",
        "expires-at",
    );
    expect_one(
        &[("hosts/h1.kdl", &auth_with(r#"warn-before="3d""#))],
        "hosts/h1.kdl",
        11,
        9,
        "`warn-before` without an expiry",
        "remove `warn-before`",
    );
    expect_one(
        &[("hosts/h1.kdl", &auth_with(r#"expires="tok\u{7}""#))],
        "hosts/h1.kdl",
        11,
        33,
        "`expires` of `auth` holds",
        "",
    );
}

#[test]
fn an_auth_needs_a_rotation_or_a_known_expiry() {
    let bare = |props: &str| agent(&format!("        auth \"exp\" check=\"true\" {props}"));
    // A watched expiry stands in for a rotation.
    for props in [r#"expires="tok expiry""#, r#"expires-at="2027-02-01""#] {
        let errs = errors(&[("hosts/h1.kdl", &bare(props))]);
        assert!(errs.is_empty(), "{props}: {:?}", errs[0].3.message);
    }
    expect_one(
        &[("hosts/h1.kdl", &bare(""))],
        "hosts/h1.kdl",
        11,
        9,
        "auth `exp` has neither a rotation nor a known expiry",
        "`expires-at=\"2027-02-01\"`",
    );
    // Waived, it is a warning at the waiver, saying what is missing.
    let waived = agent(
        "        auth \"exp\" check=\"true\"\n        waive \"rotation\" reason=\"renewed by hand\"",
    );
    assert!(errors(&[("hosts/h1.kdl", &waived)]).is_empty());
    let set = sources(&[("hosts/h1.kdl", &waived)]);
    let (_, diags) = provision::compile(&set);
    let warning = diags
        .into_sorted()
        .into_iter()
        .find(|d| d.severity == Severity::Warning && d.message.contains("waives `rotation`"))
        .expect("a warning for the waiver");
    let loc = warning.location(&set).unwrap();
    assert_eq!(
        (loc.file.as_str(), loc.line, loc.column),
        ("hosts/h1.kdl", 12, 9)
    );
    assert!(
        warning
            .help
            .as_deref()
            .unwrap_or("")
            .contains("neither a rotation nor a known expiry"),
        "{:?}",
        warning.help
    );
}

#[test]
fn a_login_other_than_root_needs_sudo_declared() {
    let text = host("").replace("ssh \"root@127.0.0.1\"", "ssh \"deploy@127.0.0.1\" port=22");
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        2,
        5,
        "`deploy` is not root, and the ssh node does not say `sudo=#true`",
        "add `sudo=#true` to this node and give deploy passwordless sudo (`deploy ALL=(ALL) NOPASSWD:ALL`",
    );
    // Declared, it is no error; a destination without a user is judged at connect time.
    for ssh in ["ssh \"deploy@127.0.0.1\" sudo=#true", "ssh \"127.0.0.1\""] {
        let text = host("").replace("ssh \"root@127.0.0.1\"", ssh);
        let set = sources(&[("hosts/h1.kdl", &text)]);
        let (fleet, diags) = provision::compile(&set);
        assert!(diags.into_sorted().is_empty(), "{ssh}");
        let sudo = ssh.contains("sudo");
        assert!(
            matches!(&fleet.hosts[0].connection, provision::model::Connection::Ssh { sudo: s, declared_at, .. } if *s == sudo && declared_at == "hosts/h1.kdl:2"),
            "{:?}",
            fleet.hosts[0].connection
        );
    }
    let text = host("").replace(
        "ssh \"root@127.0.0.1\"",
        "ssh \"deploy@127.0.0.1\" sudo=\"yes\"",
    );
    expect_one(
        &[("hosts/h1.kdl", &text)],
        "hosts/h1.kdl",
        2,
        28,
        "`sudo` takes #true or #false",
        "#true",
    );
}

#[test]
fn sudo_on_a_root_login_is_a_warning() {
    let text = host("").replace(
        "ssh \"root@127.0.0.1\"",
        "ssh \"root@127.0.0.1\" sudo=#true",
    );
    let set = sources(&[("hosts/h1.kdl", &text)]);
    let (fleet, diags) = provision::compile(&set);
    assert!(!diags.has_errors());
    let all = diags.into_sorted();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].severity, Severity::Warning);
    assert!(
        all[0]
            .message
            .contains("`sudo=#true` on a root login does nothing")
    );
    assert!(
        all[0]
            .help
            .as_deref()
            .unwrap()
            .contains("remove `sudo=#true`")
    );
    assert_eq!(all[0].location(&set).unwrap().line, 2);
    assert_eq!(fleet.hosts.len(), 1);
}
