//! `provision onboard USER@ADDR --name NAME`: brings a fresh Debian or
//! Ubuntu host into the fleet. First contact is verified (the host key's
//! fingerprint is the expected one, or the operator says so on a
//! terminal) and pinned from then on; the host's facts are read in one
//! round trip and an unusable host is refused with the fix; missing tools
//! are installed; an optional deploy user gets the operator's key and
//! passwordless sudo, proven by a second login; then the host is applied
//! and verified as if `hosts/NAME.kdl` existed, and only then is that file
//! written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

mod harden;

use super::{Repo, apply, operator};
use crate::deploy::Options;
use crate::deploy::host::{HostError, READ_LIMIT};
use crate::error::{Error, Exit};
use crate::onboard::facts::{self, Facts};
use crate::onboard::host_text::{self, NewHost};
use crate::onboard::keyscan::{self, ScannedKey};
use crate::onboard::{AgentSpec, parse_agent, split_destination, valid_name};
use crate::report::Document;
use crate::source::{Source, SourceKind};
use crate::transport::{Login, SshTarget, SshTransport, Transport, keyscan as scan};
use crate::ui::Style;

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// `USER@ADDR`, the first login.
    pub destination: String,
    /// The host's name in the fleet.
    pub name: String,
    /// The SSH port.
    pub port: u16,
    /// The private key to log in with (its `.pub` goes to a deploy user).
    pub ssh_key: Option<PathBuf>,
    /// The fingerprint the host key must have.
    pub expect_fingerprint: Option<String>,
    /// Modules the host uses.
    pub modules: Vec<String>,
    /// Agents, `[NAME=]TEMPLATE` each.
    pub agents: Vec<String>,
    /// How long (seconds) the host may take to finish cloud-init, and to
    /// free the dpkg lock, before installing.
    pub install_wait: u64,
    /// A deploy user to create and log in as from then on.
    pub deploy_user: Option<String>,
    /// Turn password login off, and root login off or to keys only,
    /// behind a guard that a fresh login must confirm.
    pub harden_ssh: bool,
    /// How long that guard waits, in seconds.
    pub harden_guard: u64,
    /// Do not ask before applying.
    pub yes: bool,
    /// Replace a `hosts/NAME.kdl` that describes another host.
    pub force: bool,
    /// How to reach, switch and verify the host.
    pub options: Options,
}

/// The JSON document's body.
#[derive(Serialize)]
struct Body<'a> {
    host: &'a str,
    destination: &'a str,
    fingerprint: &'a str,
    /// The host was already in the fleet: nothing was written.
    already: bool,
    /// hosts/NAME.kdl was written.
    written: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    login: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    facts: Option<&'a Facts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hosts: Option<serde_json::Value>,
}

/// Runs `onboard`.
pub fn run(root: &Path, req: &Request, style: Style) -> Result<Exit, Error> {
    if !valid_name(&req.name) {
        return Err(Error::Usage(format!(
            "{:?} cannot be a host name: use letters, digits, `.`, `-` and `_`, starting with a letter or digit",
            req.name
        )));
    }
    let Some((user, addr)) = split_destination(&req.destination) else {
        return Err(Error::Usage(format!(
            "{:?} is not USER@ADDR: write the login user and the address, e.g. root@203.0.113.7",
            req.destination
        )));
    };
    if let Some(u) = &req.deploy_user
        && (!valid_name(u) || u.chars().any(|c| c.is_ascii_uppercase() || c == '.'))
    {
        return Err(Error::Usage(format!(
            "{u:?} cannot be a user name: use lower-case letters, digits, `-` and `_`"
        )));
    }
    crate::onboard::harden::check_guard(req.harden_guard).map_err(Error::Usage)?;
    let mut agents: Vec<AgentSpec> = Vec::new();
    for spec in &req.agents {
        let a = parse_agent(spec).map_err(Error::Usage)?;
        if agents.iter().any(|b| b.name == a.name) {
            return Err(Error::Usage(format!(
                "two --agent are named {:?}: name one with --agent NAME={}",
                a.name, a.template
            )));
        }
        agents.push(a);
    }
    // apply's question comes after the host was prepared: refuse now, not
    // half-way, when nobody could answer it.
    if !req.yes && !operator::can_ask() {
        return Err(Error::Usage(
            "not asking without a terminal (or with CI set): pass --yes to go ahead".into(),
        ));
    }
    let repo = Repo::checked(root, style)?;
    let file = format!("hosts/{}.kdl", req.name);
    // A misspelt --module or --agent stops here, before anything reaches
    // the address.
    let modules: Vec<String> = repo
        .sources
        .iter()
        .filter(|(_, s)| s.kind == SourceKind::Module)
        .map(|(_, s)| crate::resolve::module_name(&s.path))
        .collect();
    let wanted = req
        .modules
        .iter()
        .map(String::as_str)
        .chain(agents.iter().map(|a| a.template.as_str()));
    if let Some(e) = crate::onboard::unknown_module(wanted, &modules) {
        return Err(Error::Usage(e));
    }
    let runtime = super::runtime();
    let timeout = req.options.timeout;

    // The host's file is checked with the repository before anything
    // reaches the address (an agent template that is no agent's stops
    // here), with a stand-in for the key that is not read yet.
    let destination = match &req.deploy_user {
        Some(deploy) => format!("{deploy}@{addr}"),
        None => req.destination.clone(),
    };
    let identity = req.ssh_key.as_ref().map(|p| absolute(p));
    let today = operator::now_utc()[..10].to_string();
    let text_for = |key: &ScannedKey| {
        host_text::render(&NewHost {
            name: &req.name,
            destination: &destination,
            port: req.port,
            identity: identity.as_deref(),
            // A login other than root goes through sudo (the first login
            // refuses one without passwordless sudo), and so does a deploy
            // user.
            sudo: req.deploy_user.is_some() || user != "root",
            host_key: &key.line,
            fingerprint: &key.fingerprint,
            modules: &req.modules,
            agents: &agents,
            date: &today,
        })
    };
    let stand_in = keyscan::parse(&format!("{addr} {STAND_IN_KEY}")).expect("a valid key");
    compile(root, &file, &text_for(&stand_in), style)?;

    // First contact: read the key before anything trusts it.
    progress(
        style,
        &format!(
            "{}: reading the host key of {addr} port {}",
            req.name, req.port
        ),
    );
    let scanned = runtime
        .block_on(scan::scan(&req.name, addr, req.port, timeout))
        .map_err(|e| Error::Host(HostError::from(e).to_string()))?;
    let key = keyscan::parse(&scanned).ok_or_else(|| {
        Error::Host(format!(
            "{}: no SSH server at {addr} port {} presented an ed25519 host key within {} s; \
             check the address and --port, and that the provider's firewall lets SSH in",
            req.name,
            req.port,
            timeout.as_secs()
        ))
    })?;
    if let Some(expected) = &req.expect_fingerprint
        && !keyscan::matches(expected, &key.fingerprint)
    {
        return Err(Error::Host(format!(
            "{}: the host presents {}, not the expected {}: nothing was done on it. \
             Check the fingerprint at the provider (the console's boot log prints it), \
             or whether something is in the way of {addr}",
            req.name,
            key.fingerprint,
            expected.trim()
        )));
    }

    // A host already in the fleet, at this address with this key.
    if let Some(existing) = repo.fleet.host(&req.name) {
        if describes(existing, addr, req.port, &key) {
            return already(repo, root, req, &key, style);
        }
        if !req.force {
            return Err(Error::Usage(format!(
                "{file} already describes {} as another host (its address or host key differ from \
                 {addr}'s {}); choose another --name, or pass --force to replace it",
                req.name, key.fingerprint
            )));
        }
    } else if root.join(&file).exists() && !req.force {
        return Err(Error::Usage(format!(
            "{file} exists but does not define host {:?}; choose another --name, or pass --force to replace it",
            req.name
        )));
    }
    if req.expect_fingerprint.is_none() {
        trust(&req.name, addr, &key)?;
    }

    // The host's file, checked with the repository; applied and verified
    // below as if it were on disk, and written only after that.
    let mut repo = compile(root, &file, &text_for(&key), style)?;
    // Every login from here on trusts the pinned key only.
    let target = |destination: String, login: Login| {
        let mut t = SshTarget::new(destination);
        t.port = Some(req.port);
        t.host_key = Some(key.line.clone());
        t.identity = req.ssh_key.clone();
        t.connect_timeout = timeout;
        t.login = login;
        t
    };
    progress(style, &format!("{}: logging in as {user}", req.name));
    let login = runtime
        .block_on(SshTransport::connect(
            &req.name,
            &target(req.destination.clone(), Login::Detect),
        ))
        .map_err(|e| Error::Host(HostError::from(e).to_string()))?;
    let login_kind = if login.uses_sudo() { "sudo" } else { "root" };
    let t = Transport::Ssh(login);
    let prepared = runtime.block_on(prepare(&t, req, user, style));
    let prepared = match prepared {
        Ok(facts) => facts,
        Err(e) => {
            runtime.block_on(t.close());
            return Err(e);
        }
    };
    let made = match &req.deploy_user {
        Some(deploy) => runtime.block_on(deploy_user(
            &t,
            req,
            deploy,
            (user, login_kind),
            &prepared,
            style,
        )),
        None => Ok(()),
    };
    runtime.block_on(t.close());
    made?;
    if let Some(deploy) = &req.deploy_user {
        // The proof: a second, new login as the deploy user, whose
        // connection checks that `sudo -n true` works.
        progress(style, &format!("{}: logging in as {deploy}", req.name));
        let second = runtime
            .block_on(SshTransport::connect(
                &req.name,
                &target(destination.clone(), Login::Sudo),
            ))
            .map_err(|e| {
                Error::Host(format!(
                    "{}: the deploy user was made, but logging in as it failed: {}",
                    req.name,
                    HostError::from(e)
                ))
            })?;
        if !second.uses_sudo() {
            runtime.block_on(second.close());
            return Err(Error::Host(format!(
                "{}: {destination} logs in as root, not as the deploy user",
                req.name
            )));
        }
        runtime.block_on(second.close());
    }
    if req.harden_ssh {
        let fleet_user = split_destination(&destination).map_or(user, |(u, _)| u);
        let login = if fleet_user == "root" {
            Login::Root { declared_at: None }
        } else {
            Login::Sudo
        };
        harden::run(
            &runtime,
            &harden::Harden {
                name: &req.name,
                target: target(destination.clone(), login),
                user: fleet_user,
                guard_secs: req.harden_guard,
            },
            style,
        )?;
    }
    drop(runtime);

    let host = repo.host(&req.name)?.clone();
    let applied = apply::switch(
        &mut repo,
        root,
        vec![host],
        None,
        req.yes,
        (&req.options, &crate::deploy::decide::Rollout::default()),
        style,
    )?;
    if !style.json {
        applied.print(style);
    }
    let ok = applied.ok();
    if ok {
        write_file(&root.join(&file), &text_for(&key))?;
    }
    if style.json {
        let body = Body {
            host: &req.name,
            destination: &destination,
            fingerprint: &key.fingerprint,
            already: false,
            written: ok,
            login: Some(login_kind),
            facts: Some(&prepared),
            hosts: Some(serde_json::to_value(applied.hosts()).expect("hosts serialise")),
        };
        crate::ui::json::print(style, &Document::new("onboard", ok, body));
    } else if ok {
        println!("Wrote {file}.");
        next_steps(&req.name, &file, &destination, &key);
    } else {
        eprintln!("{file} was not written: fix the above and run onboard again.");
    }
    Ok(applied.exit())
}

/// A well-formed ed25519 key of zero bytes (plainly no host's) that stands
/// in for the host's in the check made before the host is contacted.
const STAND_IN_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The repository as if `file` held `text`, or its problems reported.
fn compile(root: &Path, file: &str, text: &str, style: Style) -> Result<Repo, Error> {
    Repo::open_with(
        root,
        Source {
            path: file.to_string(),
            kind: SourceKind::Host,
            text: text.to_string(),
        },
    )?
    .or_report(style)
}

/// Whether the fleet's `host` is the one at `addr` with `key`.
fn describes(host: &crate::model::Host, addr: &str, port: u16, key: &ScannedKey) -> bool {
    let crate::model::Connection::Ssh {
        destination,
        port: p,
        ..
    } = &host.connection
    else {
        return false;
    };
    let same_addr =
        split_destination(destination).is_some_and(|(_, a)| a == addr) || destination == addr;
    let pinned = host.host_key.as_deref().map(|k| {
        let mut f = k.split_whitespace();
        format!("{} {}", f.next().unwrap_or(""), f.next().unwrap_or(""))
    });
    same_addr && p.unwrap_or(22) == port && pinned.as_deref() == Some(key.line.as_str())
}

/// The host is in the fleet already: say so and show its plan.
fn already(
    mut repo: Repo,
    root: &Path,
    req: &Request,
    key: &ScannedKey,
    style: Style,
) -> Result<Exit, Error> {
    let host = repo.host(&req.name)?.clone();
    let destination = match &host.connection {
        crate::model::Connection::Ssh { destination, .. } => destination.clone(),
        crate::model::Connection::Local { root } => root.clone(),
    };
    if !style.json {
        println!(
            "{} is already in the fleet (hosts/{}.kdl).",
            req.name, req.name
        );
    }
    let runtime = super::runtime();
    let display = std::sync::Arc::new(crate::ui::progress::Display::for_style(style));
    let prepared = super::plan_hosts(
        &mut repo,
        root,
        vec![host],
        &req.options,
        crate::deploy::Keep::None,
        style,
        &runtime,
        display,
    )?;
    let mut ok = true;
    let mut hosts = Vec::new();
    for p in prepared {
        match p {
            Ok(p) => {
                if !style.json {
                    println!("{}", crate::ui::plan::host(&p.plan, style));
                }
                hosts.push(serde_json::json!({"host": p.host.name, "ok": p.plan.errors.is_empty(), "changes": p.plan.has_changes()}));
                ok &= p.plan.errors.is_empty();
            }
            Err(f) => {
                ok = false;
                style.host_error(&f.error.to_string(), "");
                hosts.push(serde_json::json!({"host": f.host, "ok": false, "error": crate::report::Failure::from(&f.error)}));
            }
        }
    }
    if style.json {
        let body = Body {
            host: &req.name,
            destination: &destination,
            fingerprint: &key.fingerprint,
            already: true,
            written: false,
            login: None,
            facts: None,
            hosts: Some(serde_json::Value::Array(hosts)),
        };
        crate::ui::json::print(style, &Document::new("onboard", ok, body));
    }
    Ok(if ok { Exit::Ok } else { Exit::Error })
}

/// Asks the operator, on a terminal, whether the key is the host's.
fn trust(name: &str, addr: &str, key: &ScannedKey) -> Result<(), Error> {
    let refusal = format!(
        "{name}: {addr} presents {}; not trusting it without a terminal (or with CI set): \
         check it at the provider and pass --expect-fingerprint {}",
        key.fingerprint, key.fingerprint
    );
    let prompt = format!(
        "{addr} presents the host key\n  {}\n  {}\nCompare it with the fingerprint your provider shows (its console or boot log).\nTrust this key? [y/N] ",
        key.line, key.fingerprint
    );
    let answer = operator::ask(&prompt, &refusal)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::Host(format!(
            "{name}: the key was not trusted; nothing was done on {addr}"
        )))
    }
}

/// Reads the host's facts, prints them, refuses an unusable host, and
/// installs what it lacks.
async fn prepare(t: &Transport, req: &Request, user: &str, style: Style) -> Result<Facts, Error> {
    let host_error = |e| Error::Host(HostError::from(e).to_string());
    let out = t
        .run_within(
            crate::script::ONBOARD_FACTS_SH,
            b"",
            READ_LIMIT,
            "reading the host's facts",
        )
        .await
        .map_err(host_error)?;
    if !out.success() {
        return Err(Error::Host(format!(
            "{}: reading the host's facts failed (status {}): {}",
            req.name,
            out.status,
            out.stderr_lossy().trim()
        )));
    }
    let f = facts::parse(&out.stdout_lossy());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if !style.json {
        let login = match t {
            Transport::Ssh(s) if s.uses_sudo() => format!("through sudo -n as {user}"),
            _ => "logged in as root".to_string(),
        };
        print!(
            "{}",
            crate::ui::onboard::facts(&f, &login, f.skew(now), style)
        );
    }
    let unusable = f.unusable();
    if !unusable.is_empty() {
        let list: Vec<String> = unusable
            .iter()
            .map(|u| format!("  {}: {}", u.problem, u.fix))
            .collect();
        return Err(Error::Host(format!(
            "{} cannot join the fleet:\n{}",
            req.name,
            list.join("\n")
        )));
    }
    if let Some(skew) = f.skew(now).filter(|s| s.abs() > facts::MAX_SKEW_SECS) {
        eprintln!(
            "warning: {}'s clock is {skew} s off this machine's; heartbeats and the dead-man switch are timed on the host (install systemd-timesyncd or chrony)",
            req.name
        );
    }
    let mut packages = f.missing_packages();
    if req.deploy_user.is_some() && !f.has("visudo") {
        packages.push("sudo");
    }
    // cloud-init is waited for once: after an earlier run prepared the
    // host, only what is missing now is installed.
    let waited = f.done.contains("prepared");
    if !packages.is_empty() || (f.has("cloud-init") && !waited) {
        if !packages.is_empty() {
            progress(
                style,
                &format!(
                    "{}: installing {} (waiting up to {} s for the dpkg lock)",
                    req.name,
                    packages.join(" "),
                    req.install_wait
                ),
            );
        }
        let out = t
            .run_within(
                &crate::script::onboard_prepare(&packages, req.install_wait),
                b"",
                Duration::from_secs(req.install_wait.max(1) * 10),
                "installing packages",
            )
            .await
            .map_err(host_error)?;
        if !out.success() {
            return Err(Error::Host(crate::onboard::install::failure(
                &req.name,
                &packages,
                req.install_wait,
                &out.stderr_lossy(),
            )));
        }
    }
    if !waited {
        record(t, &req.name, "prepared").await?;
    }
    Ok(f)
}

/// Creates the deploy user with the operator's public key and passwordless
/// sudo.
async fn deploy_user(
    t: &Transport,
    req: &Request,
    deploy: &str,
    (user, login): (&str, &str),
    facts: &Facts,
    style: Style,
) -> Result<(), Error> {
    let step = format!("deploy-user-{deploy}");
    // An earlier run made the user and stopped later; this run logs in as
    // it (root's login may be closed by now), and goes on from there.
    if user == deploy && facts.done.contains(&step) {
        progress(
            style,
            &format!("{}: user {deploy} was made by an earlier onboard", req.name),
        );
        return Ok(());
    }
    if login != "root" {
        return Err(Error::Usage(format!(
            "--deploy-user needs a root login, and {} is not root: log in as root@…, or leave out --deploy-user",
            req.destination
        )));
    }
    let public = public_key(req.ssh_key.as_deref())?;
    let key = std::fs::read_to_string(&public)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", public.display())))?;
    let key = key.trim();
    crate::transport::fingerprint(key).map_err(|e| {
        Error::Usage(format!(
            "{} is not an OpenSSH public key ({e}); pass --ssh-key FILE whose FILE.pub is",
            public.display()
        ))
    })?;
    progress(
        style,
        &format!(
            "{}: creating user {deploy} with {} and passwordless sudo",
            req.name,
            public.display()
        ),
    );
    let out = t
        .run_within(
            &crate::script::onboard_user(deploy),
            format!("{key}\n").as_bytes(),
            READ_LIMIT,
            "creating the deploy user",
        )
        .await
        .map_err(|e| Error::Host(HostError::from(e).to_string()))?;
    if !out.success() {
        return Err(Error::Host(format!(
            "{}: creating user {deploy} failed: {}",
            req.name,
            out.stderr_lossy().trim()
        )));
    }
    record(t, &req.name, &step).await
}

/// Notes on the host that `step` is done.
async fn record(t: &Transport, name: &str, step: &str) -> Result<(), Error> {
    let out = t
        .run_within(
            &crate::script::onboard_record(step),
            b"",
            READ_LIMIT,
            "recording a finished step",
        )
        .await
        .map_err(|e| Error::Host(HostError::from(e).to_string()))?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::Host(format!(
            "{name}: cannot record that {step} is done: {}",
            out.stderr_lossy().trim()
        )))
    }
}

/// The public key a deploy user gets: `--ssh-key`'s `FILE.pub`, or that of
/// the first default key ssh would try.
fn public_key(ssh_key: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(key) = ssh_key {
        let mut public = key.as_os_str().to_owned();
        public.push(".pub");
        return Ok(PathBuf::from(public));
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| Error::Usage("HOME is not set: pass --ssh-key FILE".into()))?;
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|k| home.join(".ssh").join(format!("{k}.pub")))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Usage(
                "no ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub for the deploy user: pass --ssh-key FILE (FILE.pub is its public key)"
                    .into(),
            )
        })
}

/// `path` from the current directory, as the host file must name it (a
/// relative `identity=` is read from the repository).
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Writes the host file through a temporary file and a rename, so it is
/// whole or absent.
fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    let err = |e: std::io::Error| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let tmp = path.with_extension("kdl.tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// A progress line on stderr (not under --quiet or --json).
fn progress(style: Style, line: &str) {
    if !style.json && style.verbosity != crate::ui::Verbosity::Quiet {
        eprintln!("{line}");
    }
}

/// What the operator does next.
fn next_steps(name: &str, file: &str, destination: &str, key: &ScannedKey) {
    println!(
        "Next:\n  git add {file} && git commit -m 'onboard {name}'\n  \
         CI reaches {name} as {destination} with the host key pinned in {file} \
         ({}); give CI the private key that logs in there (a deploy key) and nothing else.",
        key.fingerprint
    );
}
