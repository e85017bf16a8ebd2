//! What a hostile host writes reaches the operator redacted and harmless: a
//! managed file whose old text (shown in the plan's diff) holds a secret in
//! encoded forms and terminal control sequences.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/process.rs"]
mod process;

use base64::Engine as _;

const TOKEN: &str = "bot-T0ken-7Hq2/Zx+9Lm";

#[test]
fn a_hostile_old_file_is_shown_redacted_and_escaped() {
    let f = fleet::Fleet::new();
    f.agent_script("bot", "one");
    f.write(
        "hosts/h.kdl",
        &format!(
            r#"host "h" {{
    local "root"
    journald max-use="50M" keep-free="100M" retention="3d"
    alert "log" command="logger -t provision-alert \"$ALERT_MESSAGE\""
{}
}}
"#,
            fleet::agent("bot", r#"secret "BOT_TOKEN" from="env:BOT_TOKEN""#)
        ),
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("x{TOKEN}"));
    let url: String = TOKEN.bytes().map(|b| format!("%{b:02x}")).collect();
    // What the agent user left in a file provision manages.
    f.write(
        "root/opt/agents/bot/auth-check",
        &format!(
            "#!/bin/sh\n# {TOKEN}\n# {b64}\n# {url}\n# \x1b]0;owned\x07\x1b[2Jgone\u{202e}\nexit 0\n"
        ),
    );
    let plan_file = f.path().join("plan.json");
    let mut runs = Vec::new();
    for args in [
        vec!["plan"],
        vec!["--json", "plan"],
        vec!["plan", "-o", plan_file.to_str().unwrap()],
    ] {
        let mut cmd = f.command(&args);
        cmd.env("BOT_TOKEN", TOKEN);
        let run = fleet::Run::from(fleet::run_bounded(
            &mut cmd,
            std::time::Duration::from_secs(120),
        ));
        runs.push(run.expect(0));
    }
    let inner_b64 = &b64[4..b64.len() - 4];
    let saved = std::fs::read_to_string(&plan_file).unwrap();
    for text in [&runs[0].all(), &runs[1].all(), &saved] {
        for leak in [TOKEN, inner_b64, &url, &TOKEN[..TOKEN.len() - 2]] {
            assert!(!text.contains(leak), "{leak} leaked:\n{text}");
        }
        assert!(text.contains("[redacted]"), "{text}");
    }
    // On the terminal (or a pipe), the control sequences are shown, not obeyed.
    let shown = &runs[0].stdout;
    assert!(
        shown.contains("-# \\x1b]0;owned\\x07\\x1b[2Jgone\\u{202e}"),
        "{shown}"
    );
    assert!(!shown.contains(['\x1b', '\x07', '\u{202e}']), "{shown:?}");
}
