//! What a scheduled run alerts about (`plan --alert CHANNEL`,
//! `status --alert CHANNEL`), as pure functions: the findings of a run, the
//! host each is sent from, the request for the host's alert program, and its
//! answer.
//!
//! A finding is sent from a host through its installed alert sender, so the
//! channel's secrets never leave the hosts and CI needs none of them. A
//! finding about a host without that channel, or one that cannot be
//! reached, is sent from the first reachable selected host (by name) that
//! has it. Each sending host keeps, root-only, the digest of every finding
//! it sent (`/var/lib/provision/alerts/findings/`): a finding is sent once,
//! again when its digest changes, and again after a run in which it was
//! gone.

use crate::desired::sha256_hex;
use crate::model::Host;
use crate::plan::HostPlan;
use crate::script::{ALERT_FINDINGS_SH, Request, sh_quote};
use crate::status::HostStatus;

/// The run a finding belongs to: each clears only its own findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `plan --alert`: a host would change (drift or a change not applied),
    /// or cannot be reached.
    Plan,
    /// `status --alert`: a host or agent is unhealthy, or a host cannot be
    /// reached.
    Status,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Plan => "plan",
            Scope::Status => "status",
        }
    }
}

/// One thing to alert about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The host it is about.
    pub host: String,
    /// Its name among the host's findings: `changes`, `unreachable`,
    /// `health`, `agent.NAME`.
    pub key: String,
    /// What changes when the finding does (a new alert).
    pub digest: String,
    /// What the alert says.
    pub message: String,
}

impl Finding {
    /// A finding whose digest is its message.
    pub fn new(host: &str, key: &str, message: String) -> Self {
        Self::with_digest(host, key, &message.clone(), message)
    }

    /// A finding that changes when `basis` does.
    pub fn with_digest(host: &str, key: &str, basis: &str, message: String) -> Self {
        Finding {
            host: host.into(),
            key: key.into(),
            digest: sha256_hex(basis.as_bytes())[..16].to_string(),
            message: one_line(&message),
        }
    }

    /// A host that could not be reached or read.
    pub fn unreachable(host: &str, why: &str) -> Self {
        Finding::new(
            host,
            "unreachable",
            format!("{host} cannot be reached: {why}"),
        )
    }

    /// A status problem: ages and counts in it change every run, so its
    /// digest leaves the digits out and only a new kind of problem alerts
    /// again.
    pub fn health(host: &str, key: &str, message: String) -> Self {
        let basis: String = message.chars().filter(|c| !c.is_ascii_digit()).collect();
        Finding::with_digest(host, key, &basis, message)
    }

    /// Its name on the sending host: scope, host and key, in characters
    /// safe for a file name.
    pub fn state_name(&self, scope: Scope) -> String {
        safe(&format!("{}.{}.{}", scope.name(), self.host, self.key))
    }
}

/// What a plan finds on its host: a plan with errors, or a change to make
/// (drift, or a change not applied); `None` when the host is as defined.
pub fn of_plan(plan: &HostPlan) -> Option<Finding> {
    let host = &plan.host;
    if !plan.errors.is_empty() {
        return Some(Finding::new(
            host,
            "errors",
            format!("{host}: its plan has errors: {}", plan.error_text()),
        ));
    }
    if !plan.has_changes() {
        return None;
    }
    let (new, changed, removed) = plan.counts();
    let drifted: Vec<&str> = plan
        .files
        .iter()
        .filter(|f| f.drift)
        .map(|f| f.path.as_str())
        .collect();
    let mut message = format!(
        "{host}: not as defined: {new} file(s) to add, {changed} to change, {removed} to remove"
    );
    if !drifted.is_empty() {
        message.push_str(&format!(
            "; changed by hand on the host: {}",
            drifted.join(", ")
        ));
    }
    message.push_str("; `provision plan` shows it, `provision apply` puts it right");
    // The same drift alerts once; another hand edit, or another change to
    // the definition, is a new finding.
    let mut basis = plan.generation.clone();
    for f in &plan.files {
        basis.push_str(&format!(
            "\n{} {:?} {} {:?}",
            f.path, f.action, f.drift, f.before
        ));
    }
    Some(Finding::with_digest(host, "changes", &basis, message))
}

/// What a status finds: the host's own problems, and each agent's.
pub fn of_status(status: &HostStatus) -> Vec<Finding> {
    let host = &status.host;
    let mut out = Vec::new();
    if !status.problems.is_empty() {
        out.push(Finding::health(
            host,
            "health",
            format!("{host}: {}", status.problems.join("; ")),
        ));
    }
    for a in status.agents.iter().filter(|a| !a.problems.is_empty()) {
        out.push(Finding::health(
            host,
            &format!("agent.{}", a.name),
            format!("{host}: agent {}: {}", a.name, a.problems.join("; ")),
        ));
    }
    out
}

/// `text` on one line without control characters, at most 1,000 characters
/// (it becomes an argument of the host's alert program).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1000)
        .collect()
}

/// `text` with every character but `A-Za-z0-9._-` as `_`.
fn safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Why findings cannot be sent as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No selected host has the channel.
    NoChannel {
        /// The channel.
        channel: String,
        /// The channels the selected hosts do have.
        known: Vec<String>,
    },
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::NoChannel { channel, known } if known.is_empty() => write!(
                f,
                "--alert {channel}: no selected host has an alert channel; add `alert \"{channel}\" …` to a host"
            ),
            RouteError::NoChannel { channel, known } => write!(
                f,
                "--alert {channel}: no selected host has an alert channel `{channel}`; they have: {}",
                known.join(", ")
            ),
        }
    }
}

/// Checks, before anything runs, that a selected host has `channel`.
pub fn check_channel(hosts: &[Host], channel: &str) -> Result<(), RouteError> {
    if hosts
        .iter()
        .any(|h| h.alerts.iter().any(|a| a.name == channel))
    {
        return Ok(());
    }
    let mut known: Vec<String> = hosts
        .iter()
        .flat_map(|h| h.alerts.iter().map(|a| a.name.clone()))
        .collect();
    known.sort();
    known.dedup();
    Err(RouteError::NoChannel {
        channel: channel.into(),
        known,
    })
}

/// Where a run's findings go: each batch is sent from its host (every
/// reachable host with the channel gets one, empty or not, so it can clear
/// what is gone); `unsent` are those no reachable host could send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routes {
    /// Sending host and its findings, by host name.
    pub batches: Vec<(String, Vec<Finding>)>,
    /// Findings nobody can send.
    pub unsent: Vec<Finding>,
}

/// Routes `findings` over `hosts` (the selection, in name order);
/// `reachable` says which hosts answered this run.
pub fn route(
    hosts: &[Host],
    reachable: &dyn Fn(&str) -> bool,
    channel: &str,
    findings: Vec<Finding>,
) -> Routes {
    let senders: Vec<&str> = hosts
        .iter()
        .filter(|h| reachable(&h.name) && h.alerts.iter().any(|a| a.name == channel))
        .map(|h| h.name.as_str())
        .collect();
    let mut routes = Routes {
        batches: senders
            .iter()
            .map(|s| (s.to_string(), Vec::new()))
            .collect(),
        unsent: Vec::new(),
    };
    for f in findings {
        let own = senders.iter().position(|s| *s == f.host);
        match own.or((!senders.is_empty()).then_some(0)) {
            Some(i) => routes.batches[i].1.push(f),
            None => routes.unsent.push(f),
        }
    }
    routes
}

/// The request that sends `findings` through `channel` from their host,
/// and clears the host's other findings of `scope` about `selected` hosts
/// (a run never clears what it did not look at).
pub fn request(channel: &str, scope: Scope, selected: &[&str], findings: &[Finding]) -> Request {
    let hosts: String = selected
        .iter()
        .map(|h| format!(" {}", sh_quote(&safe(h))))
        .collect();
    let mut stdin = String::new();
    for f in findings {
        stdin.push_str(&format!(
            "{}\t{}\t{}\n",
            f.state_name(scope),
            f.digest,
            f.message
        ));
    }
    Request {
        script: format!(
            "set -- {} {}{hosts}\n{ALERT_FINDINGS_SH}",
            sh_quote(channel),
            sh_quote(scope.name())
        ),
        stdin: stdin.into_bytes(),
    }
}

/// What the host did with one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Sent now.
    Sent(String),
    /// Sent by an earlier run, unchanged since: not sent again.
    Already(String),
    /// Could not be sent, and why.
    Failed(String, String),
    /// Gone since an earlier run: forgotten, so it alerts when it comes back.
    Cleared(String),
}

/// Reads the program's answer: one line per finding.
pub fn parse(stdout: &str) -> Vec<Sent> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut f = line.splitn(3, '\t');
            let (what, name, why) = (f.next()?, f.next()?.to_string(), f.next());
            Some(match what {
                "sent" => Sent::Sent(name),
                "already" => Sent::Already(name),
                "cleared" => Sent::Cleared(name),
                "failed" => Sent::Failed(name, why.unwrap_or_default().to_string()),
                _ => return None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(host: &str) -> Finding {
        Finding::new(host, "changes", format!("{host} drifted"))
    }

    #[test]
    fn status_digests_leave_ages_out() {
        let a = Finding::health("h", "agent.x", "heartbeat 120 s old".into());
        let b = Finding::health("h", "agent.x", "heartbeat 900 s old".into());
        let c = Finding::health("h", "agent.x", "unit failed".into());
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
    }

    #[test]
    fn state_names_are_file_names() {
        let f = Finding::new("h/../x", "agent.a b", "m\nforged".into());
        assert_eq!(f.state_name(Scope::Plan), "plan.h_.._x.agent.a_b");
        assert_eq!(f.message, "m forged");
    }

    #[test]
    fn answers_read_back() {
        let out = "sent\ta\nalready\tb\nfailed\tc\tcurl: 500\ncleared\td\nnoise\n";
        assert_eq!(
            parse(out),
            [
                Sent::Sent("a".into()),
                Sent::Already("b".into()),
                Sent::Failed("c".into(), "curl: 500".into()),
                Sent::Cleared("d".into()),
            ]
        );
    }

    #[test]
    fn a_request_carries_one_line_per_finding() {
        let r = request("ops", Scope::Status, &["a", "b"], &[finding("a")]);
        assert!(
            r.script.starts_with("set -- 'ops' 'status' 'a' 'b'\n"),
            "{}",
            r.script
        );
        let stdin = String::from_utf8(r.stdin).unwrap();
        assert!(stdin.starts_with("status.a.changes\t"), "{stdin}");
        assert!(stdin.ends_with("\ta drifted\n"), "{stdin}");
    }

    #[test]
    fn routes_prefer_the_host_itself_then_the_first_that_can() {
        use crate::source::{Source, SourceKind, SourceSet};
        let text = |name: &str, alert: bool| {
            let channel = if alert {
                r#"alert "ops" command="true""#
            } else {
                ""
            };
            Source {
                path: format!("hosts/{name}.kdl"),
                kind: SourceKind::Host,
                text: format!(
                    "host \"{name}\" {{\n    ssh \"root@127.0.0.1\"\n    {channel}\n}}\n"
                ),
            }
        };
        let set = SourceSet::new(vec![text("a", false), text("b", true), text("c", true)]);
        let mut diags = crate::diagnostic::Diagnostics::default();
        let docs = crate::syntax::parse(&set, &mut diags);
        let mut hosts = crate::resolve::resolve(&set, &docs, &mut diags).hosts;
        hosts.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(check_channel(&hosts, "ops"), Ok(()));
        let e = check_channel(&hosts, "pager").unwrap_err().to_string();
        assert!(
            e.contains("no selected host has an alert channel `pager`; they have: ops"),
            "{e}"
        );
        let ch = "ops".to_string();
        let down = |h: &str| h != "c";
        let routes = route(
            &hosts,
            &down,
            &ch,
            vec![finding("a"), finding("b"), finding("c")],
        );
        assert_eq!(routes.batches.len(), 1, "{routes:?}");
        assert_eq!(routes.batches[0].0, "b");
        let sent: Vec<&str> = routes.batches[0]
            .1
            .iter()
            .map(|f| f.host.as_str())
            .collect();
        assert_eq!(sent, ["a", "b", "c"]);
        let nobody = route(&hosts, &|_| false, &ch, vec![finding("a")]);
        assert!(nobody.batches.is_empty());
        assert_eq!(nobody.unsent.len(), 1);
    }
}
