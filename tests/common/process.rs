//! Running a child process with a bound, for tests and benchmarks.
//! Every test file that includes `fleet.rs` or `nspawn.rs` includes this
//! first, with `#[path = "common/process.rs"] mod process;`: they use it.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `cmd` (its stdin as the caller set it), killing it by its PID after
/// `timeout`; a command that cannot start, or is killed, says so in its
/// stderr.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Output {
                status: failed_status(),
                stdout: Vec::new(),
                stderr: format!("cannot start {what}: {e}\n").into_bytes(),
            };
        }
    };
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());

    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let mut pause = Duration::from_millis(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| failed_status());
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(_) => {
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| failed_status());
            }
        }
    };

    // A grandchild could keep the pipes open; do not wait for it forever.
    let grace = Instant::now() + Duration::from_secs(5);
    let stdout = stdout
        .recv_timeout(grace.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    let mut stderr = stderr
        .recv_timeout(grace.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(
            format!(
                "\n[killed after {:.0} s timeout: {what}]\n",
                timeout.as_secs_f64()
            )
            .as_bytes(),
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Reads a pipe to its end on a thread; the bytes arrive on the channel.
pub fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

/// The status of a command that did not run to its end.
pub fn failed_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(1 << 8)
}
