//! An apply from CI, on a real Debian target (systemd-nspawn): the host's
//! lock holder names the CI run, so a second apply is refused naming the
//! run's URL; and a cancelled job (its `provision` killed by PID) does not
//! keep the lock.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_ci::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::Write as _;
use std::time::{Duration, Instant};

use fleet::{Fleet, agent, wait_line};

const RUN_URL: &str = "https://github.com/acme/fleet/actions/runs/9876543210";

#[test]
fn a_ci_run_holds_the_lock_by_name_and_releases_it_when_cancelled() {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_ci::lock: {reason}");
        return;
    }
    let t = nspawn::Target::boot("cilock").unwrap_or_else(|e| panic!("boot: {e}"));
    let f = Fleet::new();
    f.agent_script("alpha", "v1");
    // The agent's auth check takes 6 s: the switch holds the lock that long.
    let body = agent("alpha", "").replace("exit 0", "sleep 6; exit 0");
    f.host("t", &format!("root@{}", t.addr), 22, &t.host_key, &body);

    let mut first = f.command(&["apply", "--yes"]);
    first
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "acme/fleet")
        .env("GITHUB_RUN_ID", "9876543210")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = first.spawn().expect("provision starts");
    let rx = fleet_lines(&mut child);
    wait_line(&rx, "switching to generation 1", Duration::from_secs(60));

    let holder = t.sh("cat /var/lib/provision/lock.holder");
    assert!(
        holder.contains(&format!(
            "(GitHub Actions acme/fleet run 9876543210, {RUN_URL})"
        )),
        "{holder}"
    );
    assert_eq!(holder.lines().count(), 1, "{holder}");
    let second = f.run(&["apply", "--yes"]).expect(1);
    let text = second.all();
    assert!(
        text.contains("another apply holds the host's lock"),
        "{text}"
    );
    assert!(text.contains(RUN_URL), "{text}");

    // The job is cancelled: its provision killed.
    let killed = Instant::now();
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status();
    let _ = child.wait();
    let mut free = false;
    // The switch (6 s) finishes on the host; nothing else may hold on.
    while killed.elapsed() < Duration::from_secs(60) {
        if t.ssh("flock -n /var/lib/provision/lock true")
            .status
            .success()
        {
            free = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("the lock was free {:?} after the kill", killed.elapsed());
    assert!(
        free,
        "the lock is still held a minute after the run was killed"
    );
    // The next run goes ahead; the generation records the run that made it.
    f.run(&["apply", "--yes"]).expect(0);
    let record = t.sh("cat /var/lib/provision/generations/1.json");
    assert!(record.contains(RUN_URL), "{record}");
}

/// The stderr lines of `child`, as they come.
fn fleet_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
