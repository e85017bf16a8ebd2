//! Verification of agents on a host: what to check (a request for the fixed
//! program `script/verify.sh`) and what the host said (a list of checks).
//! Pure; running the request is the transport's business.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde::Serialize;

use crate::expiry::{self, Verdict};
use crate::model::{Agent, ExpirySource, Host};
use crate::onhost;
use crate::script::{Request, TEST_ALERT_SH, VERIFY_SH, sh_quote};

/// What a check is about. Its name (in JSON, on the terminal and in the
/// host's `check` lines) is the lowercase variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// An agent's auth check ran as its user (on the host).
    Auth,
    /// An agent's heartbeat is fresh, or its probe passed (on the host).
    Heartbeat,
    /// A unit runs and did not restart during the check (on the host).
    Unit,
    /// A timer is active and scheduled (on the host).
    Timer,
    /// journald runs with the drop-in provision wrote (on the host).
    Journald,
    /// A new SSH connection works (and confirmed the generation).
    Ssh,
    /// The verification itself: it ran, or why it could not.
    Verify,
    /// A test alert went out through a channel (on the host).
    Alert,
    /// The new generation's activation.
    Activate,
    /// The host's current generation is confirmed (no dead-man switch
    /// waits to undo it).
    Generation,
    /// A watched credential has not expired, and its expiry could be
    /// learned (on the host).
    Expiry,
}

impl CheckKind {
    /// Every kind, in declaration order.
    pub const ALL: [CheckKind; 11] = [
        CheckKind::Auth,
        CheckKind::Heartbeat,
        CheckKind::Unit,
        CheckKind::Timer,
        CheckKind::Journald,
        CheckKind::Ssh,
        CheckKind::Verify,
        CheckKind::Alert,
        CheckKind::Activate,
        CheckKind::Generation,
        CheckKind::Expiry,
    ];

    /// The kind's name, as JSON and the host write it.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Auth => "auth",
            CheckKind::Heartbeat => "heartbeat",
            CheckKind::Unit => "unit",
            CheckKind::Timer => "timer",
            CheckKind::Journald => "journald",
            CheckKind::Ssh => "ssh",
            CheckKind::Verify => "verify",
            CheckKind::Alert => "alert",
            CheckKind::Activate => "activate",
            CheckKind::Generation => "generation",
            CheckKind::Expiry => "expiry",
        }
    }
}

impl fmt::Display for CheckKind {
    /// The name, padded as the format asks (the terminal aligns on it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name that is no check kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a kind of check")]
pub struct UnknownCheckKind(pub String);

impl FromStr for CheckKind {
    type Err = UnknownCheckKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| UnknownCheckKind(text.to_string()))
    }
}

/// Compares with a kind's name, as scripts and tests that read the host's
/// lines spell it.
impl PartialEq<&str> for CheckKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What it checked.
    pub kind: CheckKind,
    /// What was checked: an agent, a unit, a file.
    pub subject: String,
    /// Passed.
    pub ok: bool,
    /// Did not run (`detail` says why): neither passed nor failed, and
    /// never shown as passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// What was seen.
    pub detail: String,
    /// The output of a failed auth check, secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl Check {
    /// A check that ran and did not pass.
    pub fn failed(&self) -> bool {
        !self.ok && !self.skipped
    }

    /// A check that did not run, and why.
    pub fn skipped(kind: CheckKind, subject: &str, why: &str) -> Self {
        Check {
            kind,
            subject: subject.into(),
            ok: false,
            skipped: true,
            detail: why.into(),
            output: None,
        }
    }
}

/// Which heartbeats a verification accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// A standalone check: a beat younger than the agent's every + grace,
    /// or one written while the check runs.
    Now,
    /// After an apply that began at this host time (epoch seconds): a
    /// restarted agent's readiness beat, newer than its new process.
    Apply(u64),
    /// Confirming a generation an earlier run switched at host time `at`:
    /// an agent restarted since then as after an apply, the others as a
    /// standalone check. It waits up to `lock_wait` seconds for another
    /// run's verification to end, and never runs under one.
    Settle {
        /// When that switch began (host epoch seconds).
        at: u64,
        /// Seconds to wait for another run's verification.
        lock_wait: u64,
    },
}

/// The verification request for `agents` of `host` (all when `None`),
/// accepting the heartbeats `since` says, within `timeout` seconds unless
/// the agent sets its own.
pub fn request(
    host: &Host,
    agents: Option<&[String]>,
    journald: bool,
    since: Since,
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
        // Only a standalone verify judges expiries: an expired credential
        // is not the new generation's doing, and switching back for it
        // would only remove its watch.
        if since == Since::Now {
            input.push_str(&expiry_lines(a));
        }
    }
    if journald && host.journald.is_some() {
        input.push_str(&format!("journald\t{}\n", onhost::JOURNALD_DROPIN));
    }
    let header = match since {
        Since::Now => "SINCE=now\n".to_string(),
        Since::Apply(t) => format!("SINCE={t}\n"),
        Since::Settle { at, lock_wait } => {
            format!("SINCE={at}\nSETTLE=yes\nLOCK_WAIT={lock_wait}\n")
        }
    };
    Request {
        script: format!("{header}{VERIFY_SH}"),
        stdin: input.into_bytes(),
    }
}

fn agent_line(a: &Agent, timeout: u64) -> String {
    let env = if a.secrets.is_empty() {
        "-".to_string()
    } else {
        onhost::agent_env_file(&a.name)
    };
    let auth = if a.auths.iter().any(|x| x.check.is_some()) {
        onhost::auth_check(&a.name)
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
    let timeout = a.verify_wait(timeout);
    // A beat younger than every + grace is fresh: an agent that was not
    // restarted passes on its last beat, whatever its cadence.
    let max_age = a
        .heartbeat
        .as_ref()
        .map_or(0, |h| h.every.secs + h.grace.secs);
    let stable = a.verify_stable();
    format!(
        "agent\t{}\t{}\t{}\t{}\t{env}\t{auth}\t{}\t{timeout}\t{max_age}\t{stable}\t{}\n",
        a.name,
        onhost::agent_unit(&a.name),
        a.user,
        clean(&a.workdir),
        onhost::heartbeat_file(&a.name),
        clean(&probe)
    )
}

/// The `expiry` lines of an agent's watched credentials: the host learns
/// each expiry afresh (a command runs as the agent, like the auth check).
fn expiry_lines(a: &Agent) -> String {
    let mut out = String::new();
    for x in &a.auths {
        let Some(e) = &x.expiry else { continue };
        let (how, source) = match &e.source {
            ExpirySource::At(at) => ("at", at.to_string()),
            // The model holds no tab or newline (`check` refuses them).
            ExpirySource::Command(c) => ("run", c.replace(['\t', '\n'], " ")),
        };
        out.push_str(&format!(
            "expiry\t{}\t{}\t{}\t{how}\t{source}\n",
            a.name, x.name, e.warn_before.secs
        ));
    }
    out
}

/// The check of what the host learned about an expiry: `value` is the
/// expiry in epoch seconds, or `unknown: why`. An expiry that could not be
/// learned fails, as a check that cannot run does; one inside its warning
/// window passes, saying so (the host's expiry timer alerts about it).
fn expiry_check(subject: &str, warn: &str, value: &str, now: u64) -> Check {
    let auth = subject.split_once('/').map_or(subject, |(_, a)| a);
    let warn = warn.parse::<u64>().unwrap_or(0);
    let (ok, detail) = match expiry::parse_learned(value) {
        Some(at) => (
            expiry::verdict(now, at, warn) != Verdict::Expired,
            expiry::describe(auth, now, at, warn),
        ),
        None => (
            false,
            format!(
                "cannot learn when credential `{auth}` expires: {}",
                value
                    .strip_prefix("unknown: ")
                    .unwrap_or("the host's answer is not a time")
            ),
        ),
    };
    Check {
        kind: CheckKind::Expiry,
        subject: subject.into(),
        ok,
        skipped: false,
        detail,
        output: None,
    }
}

/// The timers of an agent: heartbeat checker, token rotations and expiry
/// checks.
pub fn timers(a: &Agent) -> Vec<String> {
    let mut out = Vec::new();
    if a.heartbeat.is_some() {
        out.push(onhost::timer(&onhost::heartbeat_stem(&a.name)));
    }
    for auth in &a.auths {
        if auth.rotate.is_some() {
            out.push(onhost::timer(&onhost::rotate_stem(&a.name, &auth.name)));
        }
        if auth.expiry.is_some() {
            out.push(onhost::timer(&onhost::expiry_stem(&a.name, &auth.name)));
        }
    }
    out
}

/// The request that sends a test alert through every channel of `host`,
/// from the host itself, answering with one `alert` check per channel.
pub fn test_alert_request(host: &Host) -> Request {
    // The channels are the program's arguments: `set --` in the header.
    let names: String = host
        .alerts
        .iter()
        .map(|a| format!(" {}", sh_quote(&a.name)))
        .collect();
    Request {
        script: format!("set --{names}\n{TEST_ALERT_SH}"),
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
    let redactor = Redactor::new(secrets);
    let redact = |text: &str| redactor.redact(text);
    let mut now = 0;
    let mut checks: Vec<Check> = Vec::new();
    let mut lines = stdout.lines();
    while let Some(line) = lines.next() {
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        match fields.as_slice() {
            [""] => {}
            ["now", n] => now = n.parse().map_err(|_| VerifyError(line.into()))?,
            ["check", kind, subject, state, detail] => checks.push(Check {
                kind: kind
                    .parse()
                    .map_err(|e| VerifyError(format!("{e}, in line {line:?}")))?,
                subject: (*subject).into(),
                ok: *state == "ok",
                skipped: false,
                detail: redact(detail),
                output: None,
            }),
            ["expiry", subject, warn, value] => {
                checks.push(expiry_check(subject, warn, &redact(value), now));
            }
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
                // The host cut the output before anyone could redact it.
                let text = redactor.redact_cut(&bytes, HOST_OUTPUT_LIMIT);
                if let Some(c) = checks
                    .iter_mut()
                    .rev()
                    .find(|c| c.subject == *subject && c.kind == CheckKind::Auth)
                {
                    c.output = Some(text);
                }
            }
            _ => return Err(VerifyError(format!("unexpected line {line:?}"))),
        }
    }
    Ok((now, checks))
}

/// How many bytes of a failed auth check's output the host sends: the
/// `head -c 4096` in `script/verify.sh`. Output this long was cut there.
pub const HOST_OUTPUT_LIMIT: usize = 4096;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not redacted: every one- or two-byte
/// string occurs in ordinary text, so blanking them would make the output
/// unreadable and would show which common letters the secret is made of,
/// while hiding nothing worth hiding.
pub const MIN_SECRET_BYTES: usize = 3;

/// An encoded fragment (base64, hex) shorter than this is not looked for:
/// three base64 letters match by chance in any long base64 text. Only the
/// shortest secrets have such fragments, and their plain and full-length
/// encoded forms are still redacted.
const MIN_FRAGMENT: usize = 4;

/// Replaces every secret value (see [`MIN_SECRET_BYTES`]) with
/// `[redacted]`, in plain text and in its common encodings. See
/// [`Redactor`].
pub fn redact(text: &str, secrets: &[String]) -> String {
    Redactor::new(secrets).redact(text)
}

/// Finds secrets in text from a host and replaces them with `[redacted]`.
///
/// A hostile program on the host (an auth check, an agent that writes files
/// provision later diffs) decides what that text is, so it may show a
/// secret in another form than the plain one. Each secret is also found
///
/// - percent-encoded, byte by byte or not, with upper or lower case hex,
///   `+` for a space (what URL and form encoders produce);
/// - in base64, standard and URL-safe alphabets, with or without padding,
///   alone or inside a longer base64 text: there the letters of the secret
///   depend on where it starts in a group of three bytes, so the letters
///   that depend on the secret alone are searched for at each of the three
///   alignments; a line break (as `base64` wraps lines) may fall anywhere
///   inside them;
/// - in hex, any case.
///
/// At a position where several forms match, the longest match is replaced.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    forms: Vec<Form>,
    /// For each byte value, the forms whose match can start with it.
    first: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    /// The secret's bytes, each literal or `%XX` (any case), `+` for a space.
    Text(Vec<u8>),
    /// Base64 letters, a line break allowed between any two.
    Base64(Vec<u8>),
    /// Lower case hex digits, matched in any case.
    Hex(Vec<u8>),
}

impl Form {
    /// The bytes a match can start with.
    fn first_bytes(&self) -> Vec<u8> {
        match self {
            Form::Text(s) => {
                let mut v = vec![s[0], b'%'];
                if s[0] == b' ' {
                    v.push(b'+');
                }
                v
            }
            Form::Base64(p) => vec![p[0]],
            Form::Hex(p) => vec![p[0], p[0].to_ascii_uppercase()],
        }
    }

    /// The longest text a match can span.
    fn max_span(&self) -> usize {
        match self {
            Form::Text(s) => 3 * s.len(),
            Form::Base64(p) => 3 * p.len(),
            Form::Hex(p) => p.len(),
        }
    }

    /// The end of the longest match starting at `at`.
    fn match_at(&self, t: &[u8], at: usize) -> Option<usize> {
        match self {
            Form::Text(s) => match_text(t, at, s),
            Form::Base64(p) => {
                let mut i = at;
                for (n, &c) in p.iter().enumerate() {
                    if n > 0 {
                        if t.get(i) == Some(&b'\r') && t.get(i + 1) == Some(&b'\n') {
                            i += 2;
                        } else if t.get(i) == Some(&b'\n') {
                            i += 1;
                        }
                    }
                    if t.get(i) != Some(&c) {
                        return None;
                    }
                    i += 1;
                }
                Some(i)
            }
            Form::Hex(p) => {
                let end = at + p.len();
                let found = t.get(at..end)?;
                found.eq_ignore_ascii_case(p).then_some(end)
            }
        }
    }
}

/// Matches `secret` at `at` with each byte literal, percent-encoded, or `+`
/// for a space; returns the end of the longest match. A literal `%` in the
/// secret makes two readings of the text possible (`%` or `%25`), so every
/// reading is followed at once.
fn match_text(t: &[u8], at: usize, secret: &[u8]) -> Option<usize> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut states = vec![at];
    for &b in secret {
        let mut next = Vec::with_capacity(states.len() + 1);
        for &p in &states {
            match t.get(p) {
                Some(&c) if c == b => next.push(p + 1),
                Some(b'+') if b == b' ' => next.push(p + 1),
                _ => {}
            }
            if t.get(p) == Some(&b'%')
                && let (Some(h), Some(l)) = (
                    t.get(p + 1).copied().and_then(hex),
                    t.get(p + 2).copied().and_then(hex),
                )
                && h * 16 + l == b
            {
                next.push(p + 3);
            }
        }
        next.sort_unstable();
        next.dedup();
        if next.is_empty() {
            return None;
        }
        states = next;
    }
    states.last().copied()
}

/// The letters of the base64 encoding of `secret` that depend on the secret
/// alone, when it starts `offset` bytes into a group of three.
fn base64_fragment(engine: &impl base64::Engine, secret: &[u8], offset: usize) -> Vec<u8> {
    let mut input = vec![0u8; offset];
    input.extend_from_slice(secret);
    let encoded = engine.encode(&input).into_bytes();
    // Letter c holds bits 6c..6c+6 of the input; the secret has bits
    // 8*offset..8*(offset+len).
    let start = (8 * offset).div_ceil(6);
    let end = (8 * (offset + secret.len())) / 6;
    encoded
        .get(start..end.min(encoded.len()))
        .unwrap_or_default()
        .to_vec()
}

impl Redactor {
    /// Prepares to redact `secrets` (those shorter than
    /// [`MIN_SECRET_BYTES`] are left out).
    pub fn new(secrets: &[String]) -> Self {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let mut forms = Vec::new();
        for s in secrets.iter().map(|s| s.as_bytes()) {
            if s.len() < MIN_SECRET_BYTES {
                continue;
            }
            forms.push(Form::Text(s.to_vec()));
            forms.push(Form::Hex(hex::encode(s).into_bytes()));
            for engine in [&STANDARD, &URL_SAFE] {
                // Alone: every letter, padding included (a match of the
                // unpadded form is a prefix of it).
                forms.push(Form::Base64(engine.encode(s).into_bytes()));
                let unpadded = engine.encode(s).trim_end_matches('=').as_bytes().to_vec();
                forms.push(Form::Base64(unpadded));
                for offset in 0..3 {
                    let fragment = base64_fragment(engine, s, offset);
                    if fragment.len() >= MIN_FRAGMENT {
                        forms.push(Form::Base64(fragment));
                    }
                }
            }
        }
        let mut unique = Vec::new();
        for f in forms {
            if !unique.contains(&f) {
                unique.push(f);
            }
        }
        let mut first = vec![Vec::new(); 256];
        for (i, f) in unique.iter().enumerate() {
            let mut bytes = f.first_bytes();
            bytes.sort_unstable();
            bytes.dedup();
            for b in bytes {
                first[b as usize].push(i);
            }
        }
        Redactor {
            forms: unique,
            first,
        }
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        if self.forms.is_empty() {
            return text.to_string();
        }
        let t = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let (mut i, mut copied) = (0, 0);
        while i < t.len() {
            let best = self.first[t[i] as usize]
                .iter()
                .filter_map(|&k| self.forms[k].match_at(t, i))
                .max();
            match best {
                Some(mut end) => {
                    // Matches start and end on ASCII or on the secret's own
                    // characters; never cut a character in any case.
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    out.push_str(&text[copied..i]);
                    out.push_str(REDACTED);
                    i = end;
                    copied = end;
                }
                None => i += 1,
            }
        }
        out.push_str(&text[copied..]);
        out
    }

    /// Redacts output that the host may have cut at `limit` bytes. Cut
    /// output can end in the first part of a secret, which no longer
    /// matches: so when `bytes` reaches `limit`, its last bytes (as many as
    /// the longest form of a secret can span) are dropped before redacting,
    /// and the text says it was cut.
    pub fn redact_cut(&self, bytes: &[u8], limit: usize) -> String {
        if bytes.len() < limit {
            return self.redact(&String::from_utf8_lossy(bytes));
        }
        let reach = self.forms.iter().map(Form::max_span).max().unwrap_or(1) - 1;
        let kept = &bytes[..bytes.len().saturating_sub(reach)];
        let mut text = self.redact(&String::from_utf8_lossy(kept));
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("[output cut at {limit} bytes]\n"));
        text
    }
}

/// Redacts what a plan quotes from the host: the diffs of text files (their
/// old side is the host's file, which an agent may have written a secret
/// into), the warnings and the errors. Done before the plan is shown, saved
/// (`plan -o`) or printed as JSON.
pub fn redact_plan(plan: &mut crate::plan::HostPlan, secrets: &[String]) {
    let r = Redactor::new(secrets);
    if r.forms.is_empty() {
        return;
    }
    for f in &mut plan.files {
        if let Some(diff) = &mut f.diff {
            *diff = r.redact(diff);
        }
    }
    for problem in plan.warnings.iter_mut().chain(plan.errors.iter_mut()) {
        problem.map_host_text(|text| r.redact(text));
    }
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
    fn expiries_from_the_host_are_judged_here() {
        let now = 1_800_000_000u64;
        let week = 7 * 86_400;
        let out = format!(
            "now\t{now}\n\
             expiry\tmail/mog\t{week}\t{}\n\
             expiry\tmail/gh\t{week}\t{}\n\
             expiry\tmail/old\t{week}\t{}\n\
             expiry\tmail/cmd\t{week}\tunknown: the expires command failed (status 2)\n\
             expiry\tmail/odd\t{week}\t2027-02-01\n",
            now + 60 * 86_400,
            now + 3 * 86_400 + 60,
            now - 86_400,
        );
        let (_, checks) = parse(&out, &[]).unwrap();
        let got: Vec<(&str, bool, &str)> = checks
            .iter()
            .map(|c| (c.subject.as_str(), c.ok, c.detail.as_str()))
            .collect();
        assert!(checks.iter().all(|c| c.kind == CheckKind::Expiry));
        assert_eq!(
            got,
            [
                (
                    "mail/mog",
                    true,
                    "credential `mog` expires at 2027-03-16T08:00:00Z, in 60 days"
                ),
                (
                    "mail/gh",
                    true,
                    "credential `gh` expires at 2027-01-18T08:01:00Z, in 3 days: inside its 7 days warning, renew it"
                ),
                (
                    "mail/old",
                    false,
                    "credential `old` expired at 2027-01-14T08:00:00Z, 1 day ago: renew it"
                ),
                (
                    "mail/cmd",
                    false,
                    "cannot learn when credential `cmd` expires: the expires command failed (status 2)"
                ),
                (
                    "mail/odd",
                    false,
                    "cannot learn when credential `odd` expires: the host's answer is not a time"
                ),
            ]
        );
    }

    #[test]
    fn only_a_standalone_verify_learns_expiries() {
        use crate::source::{Source, SourceKind, SourceSet};
        let text = r#"host "h" {
    ssh "root@127.0.0.1"
    agent "a" {
        exec "/opt/a/run"
        user "agent"
        auth "tok" check="true" expires="tok expiry" warn-before="3d"
        auth "key" check="true" expires-at="2027-01-20"
    }
}
"#;
        let set = SourceSet::new(vec![Source {
            path: "hosts/h.kdl".into(),
            kind: SourceKind::Host,
            text: text.into(),
        }]);
        let mut diags = crate::diagnostic::Diagnostics::default();
        let docs = crate::syntax::parse(&set, &mut diags);
        let fleet = crate::resolve::resolve(&set, &docs, &mut diags);
        let host = &fleet.hosts[0];
        let stdin = |since| String::from_utf8(request(host, None, true, since, 5).stdin).unwrap();
        let standalone = stdin(Since::Now);
        assert!(standalone.contains("expiry\ta\ttok\t259200\trun\ttok expiry\n"));
        assert!(standalone.contains("expiry\ta\tkey\t604800\tat\t1800403200\n"));
        assert!(standalone.contains("timer\tagent-a-expiry-tok.timer\n"));
        let after_apply = stdin(Since::Apply(1));
        assert!(!after_apply.contains("expiry\t"), "{after_apply}");
        assert!(after_apply.contains("timer\tagent-a-expiry-key.timer\n"));
    }

    #[test]
    fn check_kinds_keep_their_names() {
        for kind in CheckKind::ALL {
            let name = kind.as_str();
            assert_eq!(name.parse::<CheckKind>(), Ok(kind));
            assert_eq!(kind.to_string(), name);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
        // The terminal aligns the column on the padded name.
        assert_eq!(format!("[{:<9}]", CheckKind::Ssh), "[ssh      ]");
        let (_, checks) = parse("check\ttimer\tx.timer\tok\tnext soon\n", &[]).unwrap();
        assert_eq!(checks[0].kind, CheckKind::Timer);
    }

    #[test]
    fn the_host_programs_print_only_known_kinds() {
        let kinds: Vec<&str> = VERIFY_SH
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("check "))
            .filter_map(|rest| rest.split(' ').next())
            .chain(
                TEST_ALERT_SH
                    .split("'check\t")
                    .skip(1)
                    .filter_map(|rest| rest.split('\t').next()),
            )
            .collect();
        assert!(kinds.len() > 10, "{kinds:?}");
        for kind in kinds {
            assert!(kind.parse::<CheckKind>().is_ok(), "{kind}");
        }
    }

    #[test]
    fn an_unknown_check_kind_from_the_host_is_refused_with_its_line() {
        let line = "check\tmood\tmail\tok\tfine";
        let err = parse(&format!("now\t1\n{line}\n"), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the verification's answer is not understood: \"mood\" is not a kind of check, in line {line:?}"
            )
        );
        assert!(parse("check\tAuth\tmail\tok\tfine\n", &[]).is_err());
    }

    #[test]
    fn longer_secrets_are_redacted_first() {
        assert_eq!(
            redact("abcdef abc", &["abc".into(), "abcdef".into()]),
            "[redacted] [redacted]"
        );
        assert_eq!(redact("a b", &["a".into()]), "a b");
    }

    const TOKEN: &str = "ghp_Z3kq9vL2/mN8x+R4tY7wB1 é%&=?";

    /// Deterministic bytes that look random.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn short_secrets_and_ordinary_text_are_left_alone() {
        let text = "the auth check failed: token expired at 12:00 (see https://x.example/a?b=c)";
        assert_eq!(redact(text, &["ab".into(), "zzzzzz".into()]), text);
        assert_eq!(redact(text, &[]), text);
        // Three bytes is the shortest secret redacted.
        assert_eq!(redact("key=abc!", &["abc".into()]), "key=[redacted]!");
    }

    #[test]
    fn base64_forms_are_redacted_at_every_alignment() {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let secrets = [TOKEN.to_string()];
        let n = TOKEN.len();
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            // Alone.
            let alone = engine.encode(TOKEN);
            assert_eq!(redact(&format!("x {alone} y"), &secrets), "x [redacted] y");
            // Inside a longer stream, at each alignment, with other bytes
            // after it or none.
            for before in 0..6 {
                for after in [0, 1, 2, 7] {
                    let mut input = noise(before, before as u64 + 7);
                    input.extend_from_slice(TOKEN.as_bytes());
                    input.extend(noise(after, after as u64 + 3));
                    let stream = engine.encode(&input);
                    // The letters made of the secret's bits only.
                    let inner = &stream[(8 * before).div_ceil(6)..(8 * (before + n)) / 6];
                    let out = redact(&stream, &secrets);
                    assert!(
                        !out.contains(inner) && out.contains(REDACTED),
                        "{before} {after}: {stream} -> {out}"
                    );
                    // No long piece of the secret's letters survives.
                    for w in inner.as_bytes().windows(6) {
                        assert!(!out.contains(std::str::from_utf8(w).unwrap()), "{out}");
                    }
                }
            }
        }
    }

    #[test]
    fn wrapped_base64_is_redacted() {
        use base64::engine::general_purpose::STANDARD;
        let secret = String::from_utf8(
            noise(90, 11)
                .iter()
                .map(|b| b'a' + b % 26)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let mut input = noise(50, 5);
        input.extend_from_slice(secret.as_bytes());
        let flat = STANDARD.encode(&input);
        // As `base64` prints it: lines of 76 letters, here with CRLF too.
        for eol in ["\n", "\r\n"] {
            let wrapped: Vec<&str> = flat
                .as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            let wrapped = wrapped.join(eol);
            let out = redact(&wrapped, std::slice::from_ref(&secret));
            assert!(out.contains(REDACTED), "{out}");
            let inner = &flat[(8 * 50usize).div_ceil(6)..(8 * 140) / 6];
            for w in inner.as_bytes().windows(8) {
                let w = std::str::from_utf8(w).unwrap();
                assert!(!out.replace(eol, "").contains(w), "{w} in {out}");
            }
        }
    }

    #[test]
    fn url_encoded_forms_are_redacted() {
        let secrets = [TOKEN.to_string()];
        let every = |upper: bool| -> String {
            TOKEN
                .bytes()
                .map(|b| {
                    if upper {
                        format!("%{b:02X}")
                    } else {
                        format!("%{b:02x}")
                    }
                })
                .collect()
        };
        // What a form encoder writes: unreserved kept, space as `+`.
        let form: String = TOKEN
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        assert!(form.contains('+') && form.contains("%2F") && form.contains("%C3%A9"));
        // Hex case mixed, some bytes kept that others encode.
        let mixed: String = TOKEN
            .bytes()
            .enumerate()
            .map(|(i, b)| match b {
                b'/' | b'&' => (b as char).to_string(),
                _ if i % 2 == 0 => format!("%{b:02x}"),
                _ if b.is_ascii_alphanumeric() => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        for encoded in [every(true), every(false), form.clone(), mixed] {
            let text = format!("GET /cb?token={encoded}&x=1 HTTP/1.1");
            assert_eq!(
                redact(&text, &secrets),
                "GET /cb?token=[redacted]&x=1 HTTP/1.1",
                "{encoded}"
            );
        }
        // A `%` in the secret, literal or encoded, next to digits.
        let s = ["pa%25ss".to_string()];
        assert_eq!(redact("a pa%25ss b", &s), "a [redacted] b");
        assert_eq!(redact("a pa%2525ss b", &s), "a [redacted] b");
    }

    #[test]
    fn hex_forms_are_redacted() {
        let secrets = [TOKEN.to_string()];
        let lower = hex::encode(TOKEN);
        for h in [lower.clone(), lower.to_uppercase()] {
            assert_eq!(redact(&format!("sum={h}."), &secrets), "sum=[redacted].");
        }
    }

    #[test]
    fn cut_output_does_not_end_in_part_of_a_secret() {
        let r = Redactor::new(&[TOKEN.to_string()]);
        let half = &TOKEN[..TOKEN.len() / 2];
        // The host's `head -c` cut the secret in half.
        let mut out = "x".repeat(HOST_OUTPUT_LIMIT - half.len()).into_bytes();
        out.extend_from_slice(half.as_bytes());
        assert_eq!(out.len(), HOST_OUTPUT_LIMIT);
        let text = r.redact_cut(&out, HOST_OUTPUT_LIMIT);
        assert!(!text.contains(&half[..4]), "{text}");
        assert!(text.ends_with("[output cut at 4096 bytes]\n"), "{text}");
        assert!(text.starts_with("xxxx"));
        // The same for half a base64 form and half a percent-encoded one.
        for encoded in [
            base64::engine::general_purpose::STANDARD.encode(TOKEN),
            TOKEN.bytes().map(|b| format!("%{b:02X}")).collect(),
        ] {
            let cut = &encoded[..encoded.len() / 2];
            let mut out = "x".repeat(HOST_OUTPUT_LIMIT - cut.len()).into_bytes();
            out.extend_from_slice(cut.as_bytes());
            let text = r.redact_cut(&out, HOST_OUTPUT_LIMIT);
            assert!(!text.contains(&cut[..6]), "{text}");
        }
        // Output shorter than the limit was not cut: all of it is kept.
        assert_eq!(r.redact_cut(b"short", HOST_OUTPUT_LIMIT), "short");
    }

    #[test]
    fn the_host_cuts_output_where_parse_expects() {
        // The tail that may hold a cut secret is dropped only at this length.
        assert!(VERIFY_SH.contains(&format!("head -c {HOST_OUTPUT_LIMIT} ")));
    }

    #[test]
    fn parse_redacts_output_the_host_cut() {
        let half = &TOKEN[..TOKEN.len() / 2];
        let mut output = "y".repeat(HOST_OUTPUT_LIMIT - half.len());
        output.push_str(half);
        let out = format!(
            "now\t1\ncheck\tauth\tmail\tfail\tfailed\noutput\tmail\n{}\nend\n",
            base64::engine::general_purpose::STANDARD.encode(&output)
        );
        let (_, checks) = parse(&out, &[TOKEN.into()]).unwrap();
        let shown = checks[0].output.as_deref().unwrap();
        assert!(!shown.contains(&half[..4]), "{shown}");
        assert!(shown.contains("[output cut at 4096 bytes]"), "{shown}");
    }
}
