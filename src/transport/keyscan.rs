//! First contact: the host keys a server presents, read with `ssh-keyscan`
//! before anything trusts them. ssh-keyscan only prints what it is shown:
//! it writes no known_hosts file and logs in nowhere.

use std::process::Stdio;
use std::time::Duration;

use super::TransportError;

/// The ed25519 host key lines `ADDR:PORT` presents (ssh-keyscan's output),
/// waiting at most `timeout` for the server and a few seconds more for
/// ssh-keyscan itself, which is then killed.
pub async fn scan(
    host: &str,
    addr: &str,
    port: u16,
    timeout: Duration,
) -> Result<String, TransportError> {
    let secs = timeout.as_secs().max(1);
    let mut cmd = tokio::process::Command::new("ssh-keyscan");
    cmd.args([
        "-T",
        &secs.to_string(),
        "-t",
        "ed25519",
        "-p",
        &port.to_string(),
    ])
    // An address starting with `-` would be an option: the caller
    // refuses it before we get here.
    .arg(addr)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let io = |message: String| TransportError::Io {
        host: host.to_owned(),
        message,
    };
    let child = cmd.spawn().map_err(|e| {
        io(format!(
            "cannot run ssh-keyscan (install openssh-client): {e}"
        ))
    })?;
    let bound = timeout + Duration::from_secs(5);
    match tokio::time::timeout(bound, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(Err(e)) => Err(io(format!("ssh-keyscan failed: {e}"))),
        Err(_) => Err(TransportError::TimedOut {
            host: host.to_owned(),
            what: format!("reading the host key of {addr} port {port}"),
            secs: bound.as_secs(),
        }),
    }
}
