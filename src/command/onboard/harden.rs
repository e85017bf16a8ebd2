//! `onboard --harden-ssh`, the effects: over a login made before the
//! change, the host puts the hardening drop-in in place, checks it with
//! `sshd -t` and `sshd -T`, arms the guard and reloads sshd
//! (`script/onboard-harden.sh`); then a fresh login, a new connection as
//! the user the fleet logs in as, with the pinned host key, confirms it
//! (`script/onboard-ssh-guard.sh`). When that login fails, the old login
//! puts the old configuration back at once; when both are gone, the guard
//! does it by itself.

use std::time::{Duration, Instant};

use crate::deploy::host::{HostError, READ_LIMIT};
use crate::error::Error;
use crate::onboard::harden::{self, Guarded, Hardened, RootLogin};
use crate::transport::{SshTarget, SshTransport, Transport, TransportError};
use crate::ui::Style;

/// How long one confirmation or undo may take on the host (its lock waits
/// 30 s at most).
const GUARD_CALL_LIMIT: Duration = Duration::from_secs(45);
/// The pause between two tries of the fresh login while sshd re-executes
/// itself after the reload (it listens again within a second).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What to harden.
pub(super) struct Harden<'a> {
    /// The host's name in the fleet.
    pub name: &'a str,
    /// The login the fleet will use, with the pinned host key.
    pub target: SshTarget,
    /// The user in it.
    pub user: &'a str,
    /// How long the guard waits for the fresh login.
    pub guard_secs: u64,
}

/// Hardens sshd on the host and confirms it with a fresh login, or leaves
/// the old configuration in place (now, or by the guard) and says so.
pub(super) fn run(
    runtime: &tokio::runtime::Runtime,
    h: &Harden,
    style: Style,
) -> Result<(), Error> {
    let root_login = RootLogin::for_fleet_user(h.user);
    progress(
        style,
        &format!(
            "{}: hardening sshd: PasswordAuthentication no, KbdInteractiveAuthentication no, PermitRootLogin {}",
            h.name,
            root_login.value()
        ),
    );
    if root_login == RootLogin::ProhibitPassword && !style.json {
        eprintln!(
            "note: the fleet logs in to {} as root, so root keeps logging in by key \
             (PermitRootLogin prohibit-password); onboard with --deploy-user NAME to turn root login off",
            h.name
        );
    }
    let old = runtime
        .block_on(SshTransport::connect(h.name, &h.target))
        .map_err(|e| Error::Host(HostError::from(e).to_string()))?;
    let old = Transport::Ssh(old);
    let result = runtime.block_on(harden(&old, h, root_login, style));
    runtime.block_on(old.close());
    result
}

async fn harden(
    old: &Transport,
    h: &Harden<'_>,
    root: RootLogin,
    style: Style,
) -> Result<(), Error> {
    let script = crate::script::onboard_harden(&harden::drop_in(root), root.value(), h.guard_secs);
    let out = old
        .run_within(&script, b"", READ_LIMIT, "hardening sshd")
        .await
        .map_err(|e| Error::Host(HostError::from(e).to_string()))?;
    let stdout = out.stdout_lossy();
    for note in harden::notes(&stdout) {
        progress(style, &format!("{}: {note}", h.name));
    }
    if !out.success() {
        return Err(Error::Host(format!(
            "{}: sshd was not hardened, and its configuration is as it was: {}",
            h.name,
            out.stderr_lossy().trim()
        )));
    }
    let secs = match harden::parse_hardened(&stdout) {
        Some(Hardened::Unchanged) => {
            progress(
                style,
                &format!("{}: sshd was hardened by an earlier onboard", h.name),
            );
            return Ok(());
        }
        Some(Hardened::Armed { secs }) => secs,
        None => {
            return Err(Error::Host(format!(
                "{}: the hardening answered {:?}; the guard puts the old sshd configuration back \
                 within {} s unless confirmed",
                h.name,
                stdout.trim(),
                h.guard_secs
            )));
        }
    };
    progress(
        style,
        &format!(
            "{}: sshd reloaded; confirming with a fresh login as {} \
             (without it the old configuration comes back in {secs} s)",
            h.name, h.target.destination
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(secs - harden::GUARD_MARGIN_SECS);
    let refused = match confirm(h, deadline).await {
        Ok(Guarded::Confirmed) => {
            progress(
                style,
                &format!("{}: the hardened sshd configuration is confirmed", h.name),
            );
            return Ok(());
        }
        Ok(Guarded::Restored) => {
            return Err(Error::Host(format!(
                "{}: the confirmation came too late: the guard had put the old sshd configuration \
                 back already; run onboard again (with a longer --harden-guard on a slow link)",
                h.name
            )));
        }
        Err(why) => why,
    };
    // The login made before the change still works: put the old
    // configuration back now instead of waiting for the guard.
    let undone = old
        .run_within(
            &crate::script::onboard_ssh_guard("undo"),
            b"",
            GUARD_CALL_LIMIT,
            "putting the old sshd configuration back",
        )
        .await;
    let what = match undone {
        Ok(out)
            if out.success()
                && harden::parse_guarded(&out.stdout_lossy()) == Some(Guarded::Restored) =>
        {
            "the old sshd configuration was put back at once".to_string()
        }
        _ => format!(
            "the guard on the host puts the old sshd configuration back by itself within {secs} s of the reload"
        ),
    };
    Err(Error::Host(format!(
        "{}: the hardened sshd did not let a fresh login as {} in ({refused}); {what}. \
         Check that {} logs in with a key, then run onboard again, or leave out --harden-ssh",
        h.name, h.target.destination, h.target.destination
    )))
}

/// Logs in anew (retrying while sshd is not listening yet, until
/// `deadline`) and confirms over that login; the error says why no
/// confirmation was made.
async fn confirm(h: &Harden<'_>, deadline: Instant) -> Result<Guarded, String> {
    let fresh = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no login within the guard's time".into());
        }
        let mut target = h.target.clone();
        target.connect_timeout = target.connect_timeout.min(left);
        match SshTransport::connect(h.name, &target).await {
            Ok(t) => break t,
            // sshd re-executes itself on the reload and does not listen
            // for a moment.
            Err(TransportError::Unreachable { .. })
                if deadline.saturating_duration_since(Instant::now()) > RETRY_PAUSE =>
            {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => return Err(HostError::from(e).to_string()),
        }
    };
    let fresh = Transport::Ssh(fresh);
    let out = fresh
        .run_within(
            &crate::script::onboard_ssh_guard("confirm"),
            b"",
            GUARD_CALL_LIMIT,
            "confirming the hardened sshd configuration",
        )
        .await;
    fresh.close().await;
    let out = out.map_err(|e| HostError::from(e).to_string())?;
    match harden::parse_guarded(&out.stdout_lossy()) {
        Some(g) => Ok(g),
        None => Err(format!(
            "the confirmation failed: {}",
            out.stderr_lossy().trim()
        )),
    }
}

/// A progress line on stderr (not under --quiet or --json).
fn progress(style: Style, line: &str) {
    if !style.json && style.verbosity != crate::ui::Verbosity::Quiet {
        eprintln!("{line}");
    }
}
