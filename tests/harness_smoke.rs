//! Smoke test of the end-to-end harness (`tests/harness/`, `tests/common/nspawn.rs`):
//! boots two systemd-nspawn targets in parallel and checks that they behave
//! like real hosts (systemd as PID 1, distinct pinnable host keys, units can
//! be started, the host is reachable from the target).
//!
//! Needs root and the harness packages; otherwise it prints
//! `SKIPPED harness_smoke: <reason>` and passes.

#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use nspawn::Target;

#[test]
fn harness_smoke() {
    if let Err(reason) = nspawn::available() {
        // Straight to the process's stderr: libtest's capture (which hides
        // `eprintln!` output of passing tests) does not apply to it.
        let _ = writeln!(std::io::stderr(), "SKIPPED harness_smoke: {reason}");
        return;
    }

    let started = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Target::boot("smoke"));
        let b = s.spawn(|| Target::boot("smoke"));
        (
            a.join().expect("boot thread panicked"),
            b.join().expect("boot thread panicked"),
        )
    });
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let errors: Vec<String> = [a.err(), b.err()].into_iter().flatten().collect();
            panic!("booting the targets failed:\n{}", errors.join("\n---\n"));
        }
    };
    eprintln!(
        "booted {} ({}) and {} ({}) in {:.2} s",
        a.name,
        a.addr,
        b.name,
        b.addr,
        started.elapsed().as_secs_f64()
    );

    assert_ne!(a.name, b.name);
    assert_ne!(a.addr, b.addr);
    assert_ne!(
        a.host_key, b.host_key,
        "each target must have its own host key"
    );

    let checks = Instant::now();
    std::thread::scope(|s| {
        let ha = s.spawn(|| check_target(&a, &b));
        let hb = s.spawn(|| check_target(&b, &a));
        let results = [ha.join(), hb.join()];
        for r in results {
            if let Err(panic) = r {
                std::panic::resume_unwind(panic);
            }
        }
    });
    eprintln!(
        "checks on both targets took {:.2} s",
        checks.elapsed().as_secs_f64()
    );

    let stopping = Instant::now();
    drop(a);
    drop(b);
    eprintln!(
        "stopped both targets in {:.2} s (total {:.2} s)",
        stopping.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// All checks on one target; `other` is the second target (for key pinning).
fn check_target(t: &Target, other: &Target) {
    let name = &t.name;

    // systemd is PID 1.
    let comm = t.ssh_ok("cat /proc/1/comm").unwrap();
    assert_eq!(comm.trim(), "systemd", "{name}: PID 1 is {comm:?}");
    let ps = t.ssh_ok("ps -p 1 -o comm=").unwrap();
    assert_eq!(ps.trim(), "systemd", "{name}: ps says PID 1 is {ps:?}");

    // The system finished booting.
    let out = t.ssh("systemctl is-system-running");
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        state == "running" || state == "degraded",
        "{name}: is-system-running = {state:?}; failed units:\n{}",
        String::from_utf8_lossy(&t.ssh("systemctl --failed --no-pager").stdout)
    );

    // Host key: the recorded one is the real one, and pinning it works
    // (while pinning the other target's key is refused).
    let actual = t.ssh_ok("cat /etc/ssh/ssh_host_ed25519_key.pub").unwrap();
    assert_eq!(actual.trim(), t.host_key, "{name}: host_key mismatch");
    assert!(t.host_key.starts_with("ssh-ed25519 "), "{}", t.host_key);
    let pinned = ssh_pinned(t, &t.known_hosts_line());
    assert!(
        pinned.status.success(),
        "{name}: ssh with the pinned host key failed: {}",
        String::from_utf8_lossy(&pinned.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&pinned.stdout).trim(), *name);
    let wrong = format!(
        "{} {}",
        t.addr,
        other.known_hosts_line().split_once(' ').unwrap().1
    );
    let refused = ssh_pinned(t, &wrong);
    assert!(
        !refused.status.success(),
        "{name}: ssh accepted the other target's host key"
    );

    // The target reaches a listener on the host side of its link.
    let listener = TcpListener::bind((t.host_addr.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    t.ssh_ok(&format!(
        "timeout 5 bash -c 'echo ssh-$(hostname) >/dev/tcp/{}/{port}'",
        t.host_addr
    ))
    .unwrap();
    assert_eq!(accept_line(&listener), format!("ssh-{name}"));
    // ... also with curl (HTTP), answered by a thread on the host.
    let body = std::thread::scope(|s| {
        let server = s.spawn(|| serve_http_once(&listener, name));
        let out = t.ssh_ok(&format!(
            "curl -sS --max-time 5 http://{}:{port}/from-{name}",
            t.host_addr
        ));
        let request = server.join().expect("http server thread panicked");
        assert_eq!(request, format!("GET /from-{name} HTTP/1.1"));
        out.unwrap()
    });
    assert_eq!(body, format!("hello {name}"));

    // A unit file is installed and started; it also reports to the host.
    let unit = format!(
        "[Unit]\n\
         Description=provision harness smoke test\n\
         [Service]\n\
         ExecStart=/bin/bash -c 'echo unit-%H >/dev/tcp/{}/{port}; exec sleep infinity'\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        t.host_addr
    );
    t.ssh_ok(&format!(
        "cat >/etc/systemd/system/pv-smoke.service <<'EOF'\n{unit}EOF\n\
         systemctl daemon-reload && systemctl start pv-smoke.service"
    ))
    .unwrap();
    assert_eq!(accept_line(&listener), format!("unit-{name}"));
    let active = t.ssh("systemctl is-active pv-smoke.service");
    assert_eq!(
        String::from_utf8_lossy(&active.stdout).trim(),
        "active",
        "{name}: pv-smoke.service is not active"
    );
    t.ssh_ok("systemctl stop pv-smoke.service").unwrap();
    let inactive = t.ssh("systemctl is-active pv-smoke.service");
    assert_eq!(String::from_utf8_lossy(&inactive.stdout).trim(), "inactive");
}

/// ssh to `t` with host key checking against a known_hosts file holding `line`.
fn ssh_pinned(t: &Target, line: &str) -> std::process::Output {
    let mut known_hosts = tempfile::NamedTempFile::new().unwrap();
    writeln!(known_hosts, "{line}").unwrap();
    let mut cmd = std::process::Command::new("ssh");
    cmd.args([
        "-F",
        "/dev/null",
        "-i",
        &t.identity.display().to_string(),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        &format!("UserKnownHostsFile={}", known_hosts.path().display()),
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "LogLevel=ERROR",
        &format!("root@{}", t.addr),
        "hostname",
    ]);
    nspawn::run_with_timeout(&mut cmd, Duration::from_secs(30))
}

/// Accepts one HTTP request (bounded), answers `hello NAME` and returns the
/// request line.
fn serve_http_once(listener: &TcpListener, name: &str) -> String {
    let mut stream = accept(listener);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    reader.read_line(&mut request).unwrap();
    // Skip the headers.
    let mut header = String::new();
    while reader.read_line(&mut header).unwrap_or(0) > 2 {
        header.clear();
    }
    let body = format!("hello {name}");
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    request.trim().to_string()
}

/// Accepts one connection (bounded) and returns its first line.
fn accept_line(listener: &TcpListener) -> String {
    let stream = accept(listener);
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim().to_string()
}

/// Accepts one connection, waiting at most 15 s.
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no connection on {:?} within 15 s",
                    listener.local_addr()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept failed: {e}"),
        }
    }
}
