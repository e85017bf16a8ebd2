//! A throwaway OpenSSH server on 127.0.0.1 for integration tests.
//!
//! This file owns starting and stopping a private `sshd`: a fresh ed25519 host key, a fresh
//! client key that is the only authorized key, a free port, and every file in one temporary
//! directory. It uses only std and tempfile, so any test binary can include it with
//! `#[path = "common/sshd.rs"] mod sshd;`.
//!
//! The server must run as root (sshd's privilege separation needs it, and the tests log in as
//! root). It signals only processes it started: its own sshd and that sshd's descendants.
#![allow(dead_code)] // Each test binary uses a different part of it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const SSHD: &str = "/usr/sbin/sshd";

/// How many times to pick another port when the one chosen was taken in the meantime.
const PORT_ATTEMPTS: usize = 5;

/// How long sshd may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// A running sshd on 127.0.0.1. Dropping it kills the server and its sessions.
pub struct Sshd {
    /// The port it listens on.
    pub port: u16,
    /// The server's public host key line (`ssh-ed25519 AAAA...`).
    pub host_key_pub: String,
    /// The private key that may log in as root.
    pub identity: PathBuf,
    /// Holds the keys, the configuration, the pid file and the log (`sshd.log`).
    pub dir: TempDir,
    pid: u32,
    child: Option<Child>,
}

impl Sshd {
    /// Whether a test sshd can run here; `Err` says why not, for the skip message.
    pub fn available() -> Result<(), String> {
        if !Path::new(SSHD).exists() {
            return Err(format!(
                "{SSHD} is not installed (apt-get install openssh-server)"
            ));
        }
        for (program, arg) in [("ssh", "-V"), ("ssh-keygen", "-?"), ("ssh-keyscan", "-?")] {
            if Command::new(program)
                .arg(arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
            {
                return Err(format!(
                    "`{program}` is not installed (apt-get install openssh-client)"
                ));
            }
        }
        if !is_root() {
            return Err("the test sshd needs root (privilege separation, root login)".to_owned());
        }
        Ok(())
    }

    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> Result<Sshd, String> {
        Self::available()?;
        // sshd's privilege separation needs this directory. It is shared by every sshd on the
        // machine, so it is created if missing and never removed.
        fs::create_dir_all("/run/sshd").map_err(|e| format!("cannot create /run/sshd: {e}"))?;

        let dir = tempfile::Builder::new()
            .prefix("provision-sshd-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let (_, host_key_pub) = generate_key(dir.path(), "host_ed25519")?;
        let (identity, client_pub) = generate_key(dir.path(), "id_ed25519")?;
        fs::write(
            dir.path().join("authorized_keys"),
            format!("{client_pub}\n"),
        )
        .map_err(|e| format!("cannot write authorized_keys: {e}"))?;

        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let config = write_config(dir.path(), port)?;
            let log = dir.path().join("sshd.log");
            let log_file = fs::File::create(&log)
                .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .map_err(|e| format!("cannot start {SSHD}: {e}"))?;
            match wait_until_listening(&mut child, port) {
                Ok(()) => {
                    return Ok(Sshd {
                        port,
                        host_key_pub,
                        identity,
                        pid: child.id(),
                        child: Some(child),
                        dir,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log).unwrap_or_default();
                    last_error = format!("{e}; sshd said: {}", log.trim());
                    // Another process took the port between our check and sshd's bind: retry
                    // with another port. Anything else will not get better.
                    if !log.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        Err(format!("the test sshd did not start: {last_error}"))
    }

    /// The SSH destination to log in as root.
    pub fn destination(&self) -> String {
        "root@127.0.0.1".to_owned()
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's log so far (it logs with `-e` to this file).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Simulates the host going away: kills the server and every session process under it,
    /// which drops the clients' connections. Safe to call more than once.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Collect the tree before killing anything: once a parent dies its children are
        // re-parented and can no longer be told apart from unrelated processes.
        let tree = descendants(self.pid);
        let _ = child.kill();
        if !tree.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(tree.iter().map(u32::to_string))
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Generates an ed25519 key pair `<dir>/<name>` and `<dir>/<name>.pub` with no passphrase,
/// and returns the private key's path and the public key line.
pub fn generate_key(dir: &Path, name: &str) -> Result<(PathBuf, String), String> {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
    if !status.success() {
        return Err(format!(
            "ssh-keygen failed for {}: {status}",
            path.display()
        ));
    }
    let mut public_path = path.clone().into_os_string();
    public_path.push(".pub");
    let public = fs::read_to_string(&public_path)
        .map_err(|e| format!("cannot read the public key of {}: {e}", path.display()))?;
    Ok((path, public.trim().to_owned()))
}

/// `SetEnv SHLVL=1` keeps the tests independent of root's `~/.bashrc`: Debian's bash sources
/// it for commands started by sshd while SHLVL is below 2, and whatever it costs or prints
/// would show up in every command (on the machine these tests were written on, `pyenv init`
/// there added about 100 ms to each).
fn write_config(dir: &Path, port: u16) -> Result<PathBuf, String> {
    let d = dir.display();
    let config = format!(
        "ListenAddress 127.0.0.1:{port}\n\
         HostKey {d}/host_ed25519\n\
         PidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         StrictModes no\n\
         UsePAM no\n\
         MaxSessions 20\n\
         LogLevel VERBOSE\n\
         SetEnv SHLVL=1\n"
    );
    let path = dir.join("sshd_config");
    fs::write(&path, config).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// A port that was free a moment ago: the kernel picks it for a bind to port 0, then we let
/// it go for sshd. Someone else may take it in between, which `start` retries.
fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind a port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot read the bound port: {e}"))
}

/// Waits until something on `port` speaks SSH while our sshd is still running (if sshd could
/// not bind, it exits, and whoever holds the port is not ours).
fn wait_until_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("sshd exited with {status}"));
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut banner = [0u8; 4];
            let speaks_ssh = stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-";
            if speaks_ssh && matches!(child.try_wait(), Ok(None)) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nothing answered on port {port} within {START_TIMEOUT:?}"
            ));
        }
        sleep(Duration::from_millis(20));
    }
}

/// All processes below `root`, from `/proc`.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        children.entry(ppid).or_default().push(pid);
    }
    let mut seen = HashSet::new();
    let mut todo = vec![root];
    let mut found = Vec::new();
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(child) {
                found.push(child);
                todo.push(child);
            }
        }
    }
    found
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
