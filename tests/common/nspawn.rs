//! Disposable end-to-end test targets: Debian bookworm with systemd as PID 1
//! and sshd, booted with systemd-nspawn by the scripts in `tests/harness/`.
//!
//! Include it from an integration test with
//! `#[path = "common/nspawn.rs"] mod nspawn;` and start every e2e test with
//! [`available`], skipping (loudly) when it returns `Err`:
//!
//! ```ignore
//! if let Err(reason) = nspawn::available() {
//!     eprintln!("SKIPPED my_test: {reason}");
//!     return;
//! }
//! let target = nspawn::Target::boot("mytest").unwrap();
//! let out = target.ssh("systemctl is-system-running");
//! ```
//!
//! Each [`Target`] gets its own IDX (network `10.213.IDX.0/24`), chosen with a
//! `flock`ed file `$STATE/idx/IDX`, so tests in several threads and processes
//! can boot targets in parallel. Dropping a `Target` stops it and cleans up.
//! Every external command runs with a timeout.
//!
//! Environment: `PROVISION_SKIP_E2E=1` skips, `PROVISION_TARGET_STATE`
//! (default `/var/tmp/provision-targets`) is the harness state directory,
//! `PROVISION_TARGET_KEEP=1` keeps a stopped target's overlay for inspection.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// IDX values handed out to tests (`10.213.IDX.0/24`). Lower values are left
/// for targets booted by hand with `target.sh`.
const IDX_RANGE: std::ops::Range<u32> = 20..250;
/// Bound for `rootfs.sh ensure` (a cold debootstrap takes about a minute).
const ROOTFS_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Bound for `target.sh boot` (returns in well under a second normally).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a target may take to accept ssh and reach `running`.
const READY_TIMEOUT_SECS: u64 = 90;
/// Bound for `target.sh stop` (clean halt is ~0.3-2.5 s, worst case ~40 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// Default bound for [`Target::ssh`].
pub const SSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Programs the harness needs on the host.
const REQUIRED_PROGRAMS: &[&str] = &[
    "bash",
    "systemd-nspawn",
    "debootstrap",
    "ip",
    "ssh",
    "ssh-keygen",
    "zstd",
    "flock",
    "setsid",
    "mountpoint",
];

/// Directory of the harness scripts (`tests/harness`).
pub fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness")
}

/// The harness state directory (`$PROVISION_TARGET_STATE`).
pub fn state_dir() -> PathBuf {
    match std::env::var_os("PROVISION_TARGET_STATE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/var/tmp/provision-targets"),
    }
}

/// `Ok` when end-to-end tests can run here; otherwise the reason to skip.
pub fn available() -> Result<(), String> {
    if std::env::var("PROVISION_SKIP_E2E").is_ok_and(|v| v == "1") {
        return Err("PROVISION_SKIP_E2E=1".into());
    }
    match effective_uid() {
        Some(0) => {}
        Some(uid) => {
            return Err(format!(
                "not running as root (uid {uid}); e2e targets need root (sudo -E cargo test)"
            ));
        }
        None => return Err("cannot determine the user id (/proc/self/status)".into()),
    }
    let missing: Vec<&str> = REQUIRED_PROGRAMS
        .iter()
        .copied()
        .filter(|p| find_program(p).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing program(s): {} (run tests/harness/install-deps.sh as root)",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// Runs `rootfs.sh ensure` once per process (build ~1 min, or restore from
/// the `.tar.zst` cache ~2 s, or nothing when current). Later calls return
/// the first result.
pub fn ensure_rootfs() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            let started = Instant::now();
            let mut cmd = Command::new("bash");
            cmd.arg(harness_dir().join("rootfs.sh")).arg("ensure");
            let out = run_with_timeout(&mut cmd, ROOTFS_TIMEOUT);
            if out.status.success() {
                eprintln!(
                    "nspawn: rootfs ready in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            } else {
                Err(format!(
                    "rootfs.sh ensure failed ({}):\n{}",
                    out.status,
                    tail(&out, 60)
                ))
            }
        })
        .clone()
}

/// A running target. Dropping it stops the target and frees its IDX.
#[derive(Debug)]
pub struct Target {
    /// Target (machine and host) name, `PREFIX-IDX`.
    pub name: String,
    /// The target's address, `10.213.IDX.2`; sshd listens on port 22.
    pub addr: String,
    /// The host side of the target's link, `10.213.IDX.1`; listeners bound
    /// here are reachable from the target.
    pub host_addr: String,
    /// Private key that logs in as root on the target.
    pub identity: PathBuf,
    /// The target's `/etc/ssh/ssh_host_ed25519_key.pub` (`ssh-ed25519 AAAA… root@NAME`),
    /// distinct per target, so tests can pin it.
    pub host_key: String,
    idx_lock: IdxLock,
}

impl Target {
    /// Picks a free IDX, boots a fresh target named `PREFIX-IDX` and waits
    /// (bounded) until root can log in over ssh and systemd reports
    /// `running` or `degraded`.
    pub fn boot(prefix: &str) -> Result<Target, String> {
        available()?;
        ensure_rootfs()?;
        let prefix = sanitize_prefix(prefix);
        let started = Instant::now();

        // An IDX can be taken by something outside our lock files (a target
        // booted by hand, a leftover); target.sh refuses it, we try another.
        let mut skip = Vec::new();
        let (idx_lock, name) = loop {
            let idx_lock = IdxLock::acquire(&state_dir().join("idx"), &skip)?;
            let name = format!("{prefix}-{}", idx_lock.idx);
            let out = target_sh(&["boot", &name, &idx_lock.idx.to_string()], BOOT_TIMEOUT);
            if out.status.success() {
                break (idx_lock, name);
            }
            // target.sh boot cleans up after its own failures.
            let log = tail(&out, 40);
            if log.contains("is in use") && skip.len() < 5 {
                skip.push(idx_lock.idx);
                continue;
            }
            return Err(format!(
                "target.sh boot {name} {} failed ({}):\n{log}",
                idx_lock.idx, out.status
            ));
        };

        let addr = script_value(&["addr", &name]);
        let host_addr = script_value(&["host-addr", &name]);
        let host_key = script_value(&["hostkey", &name]);
        let target = Target {
            name: name.clone(),
            addr: addr.clone().unwrap_or_default(),
            host_addr: host_addr.clone().unwrap_or_default(),
            identity: state_dir().join("id_ed25519"),
            host_key: host_key.clone().unwrap_or_default(),
            idx_lock,
        };
        // From here on, dropping `target` stops it.
        addr?;
        host_addr?;
        host_key?;

        let wait_secs = READY_TIMEOUT_SECS.to_string();
        let out = target_sh(
            &["wait", &name, &wait_secs],
            Duration::from_secs(READY_TIMEOUT_SECS + 30),
        );
        if !out.status.success() {
            return Err(format!(
                "target {name} did not become ready ({}):\n{}",
                out.status,
                tail(&out, 60)
            ));
        }
        eprintln!(
            "nspawn: {} (boot+wait {:.2} s)",
            String::from_utf8_lossy(&out.stdout).trim(),
            started.elapsed().as_secs_f64()
        );
        Ok(target)
    }

    /// A power loss and a boot: kills the container's PID 1 (nothing inside
    /// shuts down or finishes), boots the same root again and waits until
    /// root can log in and systemd has finished starting.
    pub fn powercycle(&self) -> Result<(), String> {
        let out = target_sh(&["powercycle", &self.name], BOOT_TIMEOUT);
        if !out.status.success() {
            return Err(format!(
                "target.sh powercycle {} failed ({}):\n{}",
                self.name,
                out.status,
                tail(&out, 40)
            ));
        }
        let wait_secs = READY_TIMEOUT_SECS.to_string();
        let out = target_sh(
            &["wait", &self.name, &wait_secs],
            Duration::from_secs(READY_TIMEOUT_SECS + 30),
        );
        if !out.status.success() {
            return Err(format!(
                "target {} did not come back after the power loss ({}):\n{}",
                self.name,
                out.status,
                tail(&out, 60)
            ));
        }
        Ok(())
    }

    /// The IDX of this target (`10.213.IDX.0/24`, host interface `pvh-IDX`).
    pub fn idx(&self) -> u32 {
        self.idx_lock.idx
    }

    /// The ssh options the harness uses (key login as root, host key not
    /// checked), without the destination.
    pub fn ssh_options(&self) -> Vec<String> {
        let mut opts = vec![
            "-F".to_string(),
            "/dev/null".to_string(),
            "-i".to_string(),
            self.identity.display().to_string(),
        ];
        for o in [
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "BatchMode=yes",
            "ConnectTimeout=5",
            "LogLevel=ERROR",
            "ServerAliveInterval=5",
            "ServerAliveCountMax=3",
        ] {
            opts.push("-o".to_string());
            opts.push(o.to_string());
        }
        opts
    }

    /// A `known_hosts` line that pins this target's host key.
    pub fn known_hosts_line(&self) -> String {
        let mut fields = self.host_key.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let key = fields.next().unwrap_or_default();
        format!("{} {kind} {key}", self.addr)
    }

    /// Runs `cmd` through the remote shell as root (bounded by [`SSH_TIMEOUT`]).
    pub fn ssh(&self, cmd: &str) -> Output {
        self.ssh_timeout(cmd, SSH_TIMEOUT)
    }

    /// Like [`Target::ssh`] with an explicit bound; on timeout ssh is killed
    /// and the returned status is unsuccessful.
    pub fn ssh_timeout(&self, cmd: &str, timeout: Duration) -> Output {
        let mut c = Command::new("ssh");
        c.args(self.ssh_options())
            .arg(format!("root@{}", self.addr))
            .arg(cmd);
        run_with_timeout(&mut c, timeout)
    }

    /// Runs `cmd` and returns its stdout without trailing blanks; panics
    /// with its status and stderr when it fails.
    pub fn sh(&self, cmd: &str) -> String {
        self.ssh_ok(cmd)
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
            .trim_end()
            .to_string()
    }

    /// Runs `cmd` and returns its stdout, or an error with status and stderr.
    pub fn ssh_ok(&self, cmd: &str) -> Result<String, String> {
        let out = self.ssh(cmd);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{}: `{cmd}` failed ({}):\n{}",
                self.name,
                out.status,
                tail(&out, 40)
            ))
        }
    }

    /// Runs `cmd` on the target until it succeeds, every 100 ms, for at most
    /// `timeout`; panics naming it otherwise.
    pub fn wait_for(&self, cmd: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.ssh(cmd).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{}: `{cmd}` did not succeed within {timeout:?}", self.name);
    }

    /// The fingerprint `ssh-keygen -lf` prints for the target's host key
    /// (`SHA256:…`), to check provision's against.
    pub fn fingerprint(&self) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.pub");
        fs::write(&file, format!("{}\n", self.host_key)).unwrap();
        key_fingerprint(&file)
    }

    /// Path of the target's console log (until the target is stopped).
    pub fn console_log(&self) -> PathBuf {
        state_dir()
            .join("targets")
            .join(&self.name)
            .join("console.log")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let keep = std::env::var("PROVISION_TARGET_KEEP").is_ok_and(|v| v == "1");
        let mut args = vec!["stop", self.name.as_str()];
        if keep {
            args.push("--keep");
        }
        let out = target_sh(&args, STOP_TIMEOUT);
        if !out.status.success() {
            eprintln!(
                "nspawn: stopping {} failed ({}); run `tests/harness/target.sh cleanup-all`:\n{}",
                self.name,
                out.status,
                tail(&out, 20)
            );
        }
        // `idx_lock` is dropped after this, releasing the IDX.
    }
}

/// An IDX reserved by an exclusive `flock` on `$STATE/idx/IDX`. The lock dies
/// with the process, so a crashed test never leaves an IDX reserved; an IDX
/// whose `pvh-IDX` interface exists (a leaked or hand-booted target) is
/// skipped.
#[derive(Debug)]
struct IdxLock {
    idx: u32,
    path: PathBuf,
    file: File,
}

impl IdxLock {
    fn acquire(dir: &Path, skip: &[u32]) -> Result<IdxLock, String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let len = IDX_RANGE.end - IDX_RANGE.start;
        // Start at a per-process offset to make collisions between processes rare.
        let offset = std::process::id() % len;
        for i in 0..len {
            let idx = IDX_RANGE.start + (offset + i) % len;
            if skip.contains(&idx) || Path::new(&format!("/sys/class/net/pvh-{idx}")).exists() {
                continue;
            }
            let path = dir.join(idx.to_string());
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => continue,
                Err(fs::TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()));
                }
            }
            // The previous owner may have removed the file between our open
            // and lock; then our lock is on an orphaned inode. Try the next.
            let same = match (fs::metadata(&path), file.metadata()) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if !same || Path::new(&format!("/sys/class/net/pvh-{idx}")).exists() {
                continue;
            }
            let mut lock = IdxLock { idx, path, file };
            let _ = lock.file.set_len(0);
            let _ = writeln!(lock.file, "{}", std::process::id());
            return Ok(lock);
        }
        Err(format!(
            "no free IDX in {}..{} (see {} and `ip link`)",
            IDX_RANGE.start,
            IDX_RANGE.end,
            dir.display()
        ))
    }
}

impl Drop for IdxLock {
    fn drop(&mut self) {
        // Remove while still holding the lock; the lock is released when
        // `file` is closed right after.
        let _ = fs::remove_file(&self.path);
    }
}

/// Runs `target.sh ARGS...` with a bound.
fn target_sh(args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(harness_dir().join("target.sh")).args(args);
    run_with_timeout(&mut cmd, timeout)
}

/// Runs a one-line query of `target.sh` (addr, host-addr, hostkey).
fn script_value(args: &[&str]) -> Result<String, String> {
    let out = target_sh(args, Duration::from_secs(30));
    let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !value.is_empty() {
        Ok(value)
    } else {
        Err(format!(
            "target.sh {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            tail(&out, 20)
        ))
    }
}

/// Runs `cmd` (stdin `/dev/null`, stdout and stderr captured) and kills it
/// if it is still running after `timeout`. On timeout, or when it cannot be
/// started, the status is unsuccessful and stderr says why.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null());
    crate::process::run_bounded(cmd, timeout)
}

/// An unsuccessful exit status (`false`'s), for commands that never ran.
/// Last `lines` lines of stdout and stderr, for error messages.
fn tail(out: &Output, lines: usize) -> String {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Target names must match `[a-z0-9][a-z0-9-]*` and stay short (they are
/// part of the netns name and the hostname).
fn sanitize_prefix(prefix: &str) -> String {
    let mut s: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    while s.starts_with('-') {
        s.remove(0);
    }
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() { "t".to_string() } else { s }
}

fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Uid: real effective saved fs
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Looks `name` up in `$PATH` plus the sbin directories (the harness scripts
/// add those to their `PATH`).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The fingerprint `ssh-keygen -lf` prints for the public key in `file`
/// (`SHA256:…`), as sshd logs it and provision shows it.
pub fn key_fingerprint(file: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // `256 SHA256:… root@NAME (ED25519)`
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}
