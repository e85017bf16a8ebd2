//! Verification of agents on a host: what to check (a request for the fixed
//! program `script/verify.sh`) and what the host said (a list of checks).
//! Pure; running the request is the transport's business.

use base64::Engine as _;
use serde::Serialize;

use crate::model::{Agent, Host};
use crate::render::views::state_dir;
use crate::script::{Request, sh_quote};

/// The verification program (see `src/script/verify.sh`).
pub const VERIFY_SH: &str = include_str!("script/verify.sh");

/// The journald drop-in provision writes.
pub const JOURNALD_DROPIN: &str = "/etc/systemd/journald.conf.d/50-provision.conf";

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `auth`, `heartbeat`, `unit`, `timer`, `journald`, `ssh`.
    pub kind: String,
    /// What was checked: an agent, a unit, a file.
    pub subject: String,
    /// Passed.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
    /// The output of a failed auth check, secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// The verification request for `agents` of `host` (all when `None`), with a
/// heartbeat since `since` (host epoch seconds; `None`: since the check
/// starts) within `timeout` seconds unless the agent sets its own.
pub fn request(
    host: &Host,
    agents: Option<&[String]>,
    journald: bool,
    since: Option<u64>,
    timeout: u64,
) -> Request {
    let mut input = String::new();
    let chosen = host
        .agents
        .iter()
        .filter(|a| agents.is_none_or(|list| list.contains(&a.name)));
    for a in chosen {
        input.push_str(&agent_line(a, timeout));
        for unit in timers(a) {
            input.push_str(&format!("timer\t{unit}\n"));
        }
    }
    if journald && host.journald.is_some() {
        input.push_str(&format!("journald\t{JOURNALD_DROPIN}\n"));
    }
    let since = since.map(|s| s.to_string()).unwrap_or_else(|| "now".into());
    Request {
        script: format!("SINCE={}\n{VERIFY_SH}", sh_quote(&since)),
        stdin: input.into_bytes(),
    }
}

fn agent_line(a: &Agent, timeout: u64) -> String {
    let env = if a.secrets.is_empty() {
        "-".to_string()
    } else {
        format!("/etc/provision/agents/{}.env", a.name)
    };
    let auth = if a.auths.iter().any(|x| x.check.is_some()) {
        format!("{}/agents/{}/auth-check", crate::render::LIB_DIR, a.name)
    } else {
        "-".into()
    };
    let probe = a
        .heartbeat
        .as_ref()
        .and_then(|h| h.probe.clone())
        .unwrap_or_else(|| "-".into());
    // Tabs and newlines would break the table; the model has none in these.
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    let timeout = a
        .heartbeat
        .as_ref()
        .and_then(|h| h.verify_timeout)
        .map_or(timeout, |d| d.secs);
    format!(
        "agent\t{}\tagent-{}.service\t{}\t{}\t{env}\t{auth}\t{}/heartbeat\t{timeout}\t{}\n",
        a.name,
        a.name,
        a.user,
        clean(&a.workdir),
        state_dir(a),
        clean(&probe)
    )
}

/// The timers of an agent: heartbeat checker and token rotations.
pub fn timers(a: &Agent) -> Vec<String> {
    let mut out = Vec::new();
    if a.heartbeat.is_some() {
        out.push(format!("agent-{}-heartbeat.timer", a.name));
    }
    for auth in &a.auths {
        if auth.rotate.is_some() {
            out.push(format!("agent-{}-rotate-{}.timer", a.name, auth.name));
        }
    }
    out
}

/// The request that sends a test alert through every channel of `host`,
/// from the host itself, answering with one `alert` check per channel.
pub fn test_alert_request(host: &Host) -> Request {
    let names: Vec<String> = host.alerts.iter().map(|a| sh_quote(&a.name)).collect();
    let script = format!(
        r#"set -u
for ch in {names}; do
    if out=$({lib}/alert --test --channel "$ch" provision-test "test alert from provision verify --test-alert" 2>&1); then
        printf 'check	alert	%s	ok	sent
' "$ch"
    else
        printf 'check	alert	%s	fail	%s
' "$ch" "$(printf '%s' "$out" | tr '
	' '  ')"
    fi
done
"#,
        names = names.join(" "),
        lib = crate::render::LIB_DIR,
    );
    Request {
        script,
        stdin: Vec::new(),
    }
}

/// Why a verification answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the verification's answer is not understood: {0}")]
pub struct VerifyError(pub String);

/// Reads the program's answer, replacing every secret value with
/// `[redacted]` in what the host said.
pub fn parse(stdout: &str, secrets: &[String]) -> Result<(u64, Vec<Check>), VerifyError> {
    let redact = |text: &str| redact(text, secrets);
    let mut now = 0;
    let mut checks: Vec<Check> = Vec::new();
    let mut lines = stdout.lines();
    while let Some(line) = lines.next() {
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        match fields.as_slice() {
            [""] => {}
            ["now", n] => now = n.parse().map_err(|_| VerifyError(line.into()))?,
            ["check", kind, subject, state, detail] => checks.push(Check {
                kind: (*kind).into(),
                subject: (*subject).into(),
                ok: *state == "ok",
                detail: redact(detail),
                output: None,
            }),
            ["output", subject] => {
                let mut encoded = String::new();
                for l in lines.by_ref() {
                    if l == "end" {
                        break;
                    }
                    encoded.push_str(l);
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| VerifyError(format!("the output of {subject} is not base64")))?;
                let text = redact(&String::from_utf8_lossy(&bytes));
                if let Some(c) = checks
                    .iter_mut()
                    .rev()
                    .find(|c| c.subject == *subject && c.kind == "auth")
                {
                    c.output = Some(text);
                }
            }
            _ => return Err(VerifyError(format!("unexpected line {line:?}"))),
        }
    }
    Ok((now, checks))
}

/// Replaces each secret value (of 3 bytes or more: shorter ones would
/// blank out ordinary words) with `[redacted]`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| s.len() >= 3).collect();
    // Longest first, so a secret containing another is replaced whole.
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        out = out.replace(s.as_str(), "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checks_and_redacts_secrets() {
        let out = format!(
            "now\t1700000000\ncheck\tauth\tmail\tfail\tthe auth check failed as agent (status 1)\n\
             output\tmail\n{}\nend\ncheck\tunit\tagent-mail.service\tok\tactive (running)\n",
            base64::engine::general_purpose::STANDARD.encode("token hunter22 expired\n")
        );
        let (now, checks) = parse(&out, &["hunter22".into()]).unwrap();
        assert_eq!(now, 1_700_000_000);
        assert_eq!(checks.len(), 2);
        assert!(!checks[0].ok);
        assert_eq!(
            checks[0].output.as_deref(),
            Some("token [redacted] expired\n")
        );
        assert!(checks[1].ok);
        assert!(parse("garbage\n", &[]).is_err());
    }

    #[test]
    fn longer_secrets_are_redacted_first() {
        assert_eq!(
            redact("abcdef abc", &["abc".into(), "abcdef".into()]),
            "[redacted] [redacted]"
        );
        assert_eq!(redact("a b", &["a".into()]), "a b");
    }
}
