//! Resolves secret references to values: once per run, before any host is
//! touched, every source once however many hosts share it. A failure is
//! kept with every place that needs the secret (host, agent or channel,
//! name, source, file:line:col), so all of them are reported together and
//! only the hosts that need a missing secret stop. Values never leave this
//! module except inside [`Secret`]s.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::age_file::Keys;
use crate::diagnostic::Diagnostic;
use crate::model::{AlertKind, Host, WebhookUrl};
use crate::render::SecretValues;
use crate::secret::{Secret, SecretRef, SecretSource};
use crate::source::{SourceSet, Span, line_col};

/// How long a `cmd:` source may run: a password manager waiting for a
/// login that never comes must not hang the run.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

static IDENTITY: OnceLock<Option<PathBuf>> = OnceLock::new();
static KEYS: OnceLock<Keys> = OnceLock::new();

/// Sets the age identity of this run (`--identity`, or
/// `PROVISION_AGE_IDENTITY`); called once, by `main`, before any command.
/// A process-wide setting, like the terminal's colours: every command that
/// resolves secrets reads it, and none may change it.
pub fn set_identity(path: Option<PathBuf>) {
    let _ = IDENTITY.set(path);
}

/// The operator's age identities for this run, loaded on first use.
pub fn keys() -> &'static Keys {
    KEYS.get_or_init(|| {
        let explicit = IDENTITY.get().cloned().flatten();
        Keys::new(explicit, std::env::var_os("HOME").map(PathBuf::from))
    })
}

/// Who needs a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// An agent's environment.
    Agent(String),
    /// An alert channel's token or URL.
    Alert(String),
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Agent(a) => write!(f, "agent `{a}`"),
            Owner::Alert(c) => write!(f, "alert channel `{c}`"),
        }
    }
}

/// One place a secret is used.
#[derive(Debug, Clone)]
pub struct Use<'h> {
    /// The host.
    pub host: &'h str,
    /// The agent or channel.
    pub owner: Owner,
    /// The reference.
    pub secret: &'h SecretRef,
}

/// Every secret a host uses, where it is used.
pub fn uses(host: &Host) -> Vec<Use<'_>> {
    let mut out = Vec::new();
    for a in &host.agents {
        for s in &a.secrets {
            out.push(Use {
                host: &host.name,
                owner: Owner::Agent(a.name.clone()),
                secret: s,
            });
        }
    }
    for ch in &host.alerts {
        let r = match &ch.kind {
            AlertKind::Telegram { token, .. } => token,
            AlertKind::Webhook {
                url: WebhookUrl::Secret(r),
                ..
            } => r,
            _ => continue,
        };
        out.push(Use {
            host: &host.name,
            owner: Owner::Alert(ch.name.clone()),
            secret: r,
        });
    }
    out
}

/// A secret that could not be resolved, where it is needed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The host.
    pub host: String,
    /// The agent or channel.
    pub owner: Owner,
    /// The secret's name.
    pub name: String,
    /// Its source (`env:NAME`, …; never a value).
    pub source: String,
    /// Its node.
    pub span: Span,
    /// Why, never with the value.
    pub reason: String,
}

impl Failure {
    /// One line: `FILE:LINE:COL: secret NAME of OWNER (SOURCE): REASON`.
    pub fn describe(&self, sources: &SourceSet) -> String {
        let src = sources.get(self.span.source);
        let (line, col) = line_col(&src.text, self.span.offset);
        format!(
            "{}:{line}:{col}: secret `{}` of {} ({}): {}",
            src.path, self.name, self.owner, self.source, self.reason
        )
    }

    /// As a diagnostic, for `check`-like reports.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::error(
            self.span,
            format!(
                "secret `{}` of {} on host `{}` ({}): {}",
                self.name, self.owner, self.host, self.source, self.reason
            ),
        )
        .label("cannot be resolved")
    }
}

/// Resolves sources, each once per run.
pub struct Resolver<'a> {
    root: &'a Path,
    keys: &'a Keys,
    done: BTreeMap<SecretSource, Result<Secret, String>>,
}

impl<'a> Resolver<'a> {
    /// A resolver for the repository at `root` (for `file:` and `age:`
    /// paths, and as the working directory of `cmd:`).
    pub fn new(root: &'a Path, keys: &'a Keys) -> Self {
        Resolver {
            root,
            keys,
            done: BTreeMap::new(),
        }
    }

    /// The value of `source`, resolved the first time it is asked for.
    pub fn value(&mut self, source: &SecretSource) -> Result<Secret, String> {
        if let Some(done) = self.done.get(source) {
            return done.clone();
        }
        let known: Vec<String> = self
            .done
            .values()
            .filter_map(|v| v.as_ref().ok())
            .map(|s| s.expose().to_string())
            .collect();
        let value = resolve_one(self.root, self.keys, source, &known);
        self.done.insert(source.clone(), value.clone());
        value
    }

    /// The host's secrets by source, or every one that failed, where it is
    /// needed.
    pub fn host(&mut self, host: &Host) -> Result<SecretValues, Vec<Failure>> {
        let mut values = SecretValues::new();
        let mut failures = Vec::new();
        for u in uses(host) {
            match self.value(&u.secret.source) {
                Ok(v) => {
                    values.insert(u.secret.source.to_string(), v);
                }
                Err(reason) => failures.push(Failure {
                    host: host.name.clone(),
                    owner: u.owner.clone(),
                    name: u.secret.name.clone(),
                    source: u.secret.source.to_string(),
                    span: u.secret.span,
                    reason,
                }),
            }
        }
        if failures.is_empty() {
            Ok(values)
        } else {
            Err(failures)
        }
    }
}

/// Resolves the host's secrets (a run of one host: `render --with-secrets`).
pub fn resolve(root: &Path, host: &Host) -> Result<SecretValues, Vec<Failure>> {
    Resolver::new(root, keys()).host(host)
}

fn resolve_one(
    root: &Path,
    keys: &Keys,
    source: &SecretSource,
    known: &[String],
) -> Result<Secret, String> {
    match source {
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            Ok(_) => Err(format!(
                "the environment variable {name} is empty; set it to the secret"
            )),
            Err(std::env::VarError::NotPresent) => Err(format!(
                "the environment variable {name} is not set; set it (in CI, from a CI secret)"
            )),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("the environment variable {name} is not UTF-8 text"))
            }
        },
        SecretSource::File(p) => {
            let path = root.join(p);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {}", path.display(), io_reason(&e)))?;
            Ok(Secret::new(text.strip_suffix('\n').unwrap_or(&text)))
        }
        SecretSource::Cmd(cmd) => run_cmd(root, cmd, known),
        SecretSource::Age(p) => keys.decrypt(&root.join(p), p),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Runs a `cmd:` source, bounded by [`CMD_TIMEOUT`]; its stdout is the
/// value. A failure says why in the command's own words (its stderr, the
/// last lines of it), with whatever it printed on stdout and every secret
/// known so far redacted.
fn run_cmd(root: &Path, cmd: &str, known: &[String]) -> Result<Secret, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = (&mut out).take(1 << 20).read_to_end(&mut bytes);
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = (&mut err).take(64 << 10).read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + CMD_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let mut redact: Vec<String> = known.to_vec();
    let printed = String::from_utf8_lossy(&stdout);
    redact.extend(
        printed
            .lines()
            .map(str::trim)
            .filter(|l| l.len() >= 4)
            .map(str::to_string),
    );
    let said = || {
        let text = crate::verify::redact(&String::from_utf8_lossy(&stderr), &redact);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &lines[lines.len().saturating_sub(5)..];
        if tail.is_empty() {
            "it printed nothing on stderr".to_string()
        } else {
            format!("it said: {}", tail.join(" / "))
        }
    };
    let Some(status) = status else {
        return Err(format!(
            "the command did not finish within {} s and was stopped; {}",
            CMD_TIMEOUT.as_secs(),
            said()
        ));
    };
    if !status.success() {
        let how = match status.code() {
            Some(127) => "exited with status 127 (command not found)".to_string(),
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        return Err(format!("the command {how}; {}", said()));
    }
    let text = String::from_utf8(stdout)
        .map_err(|_| "the command printed bytes that are not UTF-8 text".to_string())?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    if value.is_empty() {
        return Err(format!("the command printed nothing; {}", said()));
    }
    Ok(Secret::new(value))
}

/// What `check` can verify of a host's secrets without resolving them
/// (no identity, no command run, no value read): `file:` paths exist and
/// are readable, `age:` files exist and are age files.
pub fn check_sources(root: &Path, host: &Host) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for u in uses(host) {
        let problem = match &u.secret.source {
            SecretSource::File(p) => std::fs::File::open(root.join(p))
                .err()
                .map(|e| format!("`{p}` cannot be read: {}", io_reason(&e))),
            SecretSource::Age(p) => {
                let mut head = [0u8; 64];
                match std::fs::File::open(root.join(p)) {
                    Err(e) => Some(format!("`{p}` cannot be read: {}", io_reason(&e))),
                    Ok(mut f) => {
                        let n = f.read(&mut head).unwrap_or(0);
                        (!crate::age_file::looks_like_age(&head[..n])).then(|| {
                            format!("`{p}` is not an age file; encrypt it with `provision secrets edit {p}`")
                        })
                    }
                }
            }
            SecretSource::Env(_) | SecretSource::Cmd(_) => None,
        };
        if let Some(message) = problem {
            out.push(
                Diagnostic::error(
                    u.secret.span,
                    format!("secret `{}` of {}: {message}", u.secret.name, u.owner),
                )
                .label("its source is missing"),
            );
        }
    }
    out
}
