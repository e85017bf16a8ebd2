//! Benchmark (not a test): `provision apply` against real Debian targets
//! (systemd-nspawn, see `tests/common/nspawn.rs`), compared with the floor of
//! one `ssh HOST true` per host, all at once.
//!
//! For 1 and 20 targets, each host holding 20 agents, it measures (5 rounds,
//! the three steps interleaved in each round so drift hits them alike):
//! - the floor: one `ssh root@ADDR true` per host, all started at once, wall
//!   time until the last exits;
//! - a no-op `provision apply --yes` (nothing changed; must print "No changes");
//! - a one-file `provision apply --yes`: agent `a01`'s script changes, so
//!   every host gets one new file, restarts one agent and verifies it.
//!
//! Every apply runs with `--parallel 20 --no-rollback` (see `apply_command`).
//! A round whose verified apply fails verification is not counted: it is
//! reported, the failing hosts' journals are shown, and the round is redone.
//!
//! It prints a markdown table (median, min, median/median of the floor) and
//! whether the targets are met (no-op within 1.2x the floor, one file within
//! 2.5x); missing them does not fail the bench. Then, to show where the time
//! goes: `provision check` (local work only), a no-op `provision plan`, a
//! one-file apply with `--no-verify`, and the per-host times provision
//! reports on stderr.
//!
//! Fleet mode, `FLEET=N cargo bench --bench apply` (N from 2 to 200), asks
//! instead how provision copes with many hosts: it boots N targets
//! (`BOOT_AT_ONCE` at a time, boot time reported), each with `FLEET_AGENTS`
//! agents (default 3), and measures in `ROUNDS` rounds (default 3), the
//! steps interleaved in each round:
//! - the floor: `ssh root@ADDR true` to all N at once;
//! - a no-op `provision plan --parallel N` (every host "No changes.");
//! - a no-op `provision apply --yes --parallel N` ("No changes");
//! - a one-file change (agent `a01`'s script) applied with `--no-verify
//!   --parallel N`;
//! - the same kind of change at the default `--parallel` (16), streaming
//!   through a fleet larger than `--parallel`.
//!
//! For each run it records the controller's peak RSS and CPU time (see
//! `Usage`) and how busy the whole machine was (`/proc/stat`), since on a
//! small machine the targets' sshd and systemd compete with the controller.
//! It prints a markdown table (median, min, median/median of the floor, peak
//! MiB, CPU s, busy %) and the goals: no-op plan and apply of all N under
//! 3 s, a one-file change under 10 s, the controller under 50 MiB; missing
//! them does not fail the bench. `FLEET_AGENTS` and `ROUNDS` are only read
//! in fleet mode; without `FLEET` the bench runs as described above.
//!
//! `cargo bench --bench apply`, as root. Without the harness it prints
//! `SKIPPED bench apply: <reason>` and exits 0. Every process it starts is
//! bounded and waited for; targets stop when their `Targets` drops, also on
//! errors and panics.

#[path = "../common/fleet.rs"]
mod fleet;
#[path = "../common/nspawn.rs"]
mod nspawn;
#[path = "../common/process.rs"]
mod process;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fleet::Fleet;
use nspawn::Target;
use process::reader;

/// Numbers of targets measured.
const SIZES: [usize; 2] = [1, 20];
/// Agents per host (`a01` … `a20`).
const AGENTS: usize = 20;
/// Measured rounds per step.
const ROUNDS: usize = 5;
/// `--parallel` for every apply: all hosts at once, like the floor.
const PARALLEL: &str = "20";
/// Bound for any one measured command (all its processes together).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound for the initial apply (20 hosts x 60 units took 200 s on 2 cores).
const INITIAL_TIMEOUT: Duration = Duration::from_secs(900);
/// How long a finished process's output may take to reach us (a grandchild,
/// such as an ssh master, could keep a pipe open).
const OUTPUT_GRACE: Duration = Duration::from_secs(5);
/// Targets from the issue, as multiples of the floor's median.
const NOOP_TARGET: f64 = 1.2;
const ONE_FILE_TARGET: f64 = 2.5;
/// inotify instances one running target takes from root's
/// `fs.inotify.max_user_instances` (counted: systemd 5, its user manager 3,
/// dbus, logind, agetty 1 each; containers share the host's uid 0).
const INOTIFY_PER_TARGET: usize = 12;

/// Fleet mode (`FLEET=N`): the numbers of targets it accepts.
const FLEET_SIZES: std::ops::RangeInclusive<usize> = 2..=200;
/// Fleet mode: agents per host (`FLEET_AGENTS`) and rounds (`ROUNDS`).
const FLEET_AGENTS: usize = 3;
const FLEET_ROUNDS: usize = 3;
/// Fleet mode: targets booting at once. A pool rather than all N at once,
/// so that 100 or more systemd start-ups do not share 2 cores with each
/// other against the harness's ready timeout.
const BOOT_AT_ONCE: usize = 8;
/// Fleet mode goals (from the issue): a no-op plan or apply of the whole
/// fleet, a one-file change, and the controller's peak RSS.
const FLEET_NOOP_GOAL: Duration = Duration::from_secs(3);
const FLEET_ONE_FILE_GOAL: Duration = Duration::from_secs(10);
const FLEET_RSS_GOAL_MIB: f64 = 50.0;
/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`, 100 on Linux: it
/// is part of the kernel's user-space ABI, whatever the kernel's own HZ).
const USER_HZ: f64 = 100.0;

fn main() {
    // A mistyped FLEET fails at once, harness or not.
    let fleet = match FleetConfig::from_env() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("bench apply: {e}");
            std::process::exit(1);
        }
    };
    if let Err(reason) = nspawn::available() {
        println!("SKIPPED bench apply: {reason}");
        return;
    }
    let started = Instant::now();
    // Once per process; done here so the first boot's time is only its own.
    if let Err(e) = nspawn::ensure_rootfs() {
        eprintln!("bench apply: {e}");
        std::process::exit(1);
    }
    // Before booting anything: can this machine hold the largest fleet?
    let largest = match &fleet {
        Some(f) => f.targets,
        None => SIZES.into_iter().max().unwrap_or(0),
    };
    if let Err(e) = check_inotify(largest) {
        eprintln!("bench apply: {e}");
        std::process::exit(1);
    }
    if let Some(f) = fleet {
        fleet_main(&f, started);
        return;
    }
    let mut results = Vec::new();
    for n in SIZES {
        // Every target of this size is stopped when `bench_size` returns,
        // whether it succeeded or not.
        match bench_size(n) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("bench apply: {n} target(s): {e}");
                // What was measured before still gets reported.
                report(&results);
                std::process::exit(1);
            }
        }
    }
    report(&results);
    println!("\nTotal run time: {:.1} s", started.elapsed().as_secs_f64());
}

/// What was measured for one number of targets.
struct SizeResult {
    targets: usize,
    boot: Duration,
    initial_apply: Duration,
    floor: Samples,
    noop: Samples,
    one_file: Samples,
    check: Samples,
    plan: Samples,
    one_file_no_verify: Samples,
    /// Per-host times from provision's stderr, one per measured apply.
    noop_hosts: Vec<HostTimes>,
    one_file_hosts: Vec<HostTimes>,
    /// Reports of verified applies that failed verification (not measured).
    verify_failures: Vec<String>,
}

/// Boots `n` targets, writes the repository, applies once, then measures.
fn bench_size(n: usize) -> Result<SizeResult, String> {
    let t0 = Instant::now();
    let targets = boot(n)?;
    let boot_time = t0.elapsed();
    eprintln!(
        "bench apply: {n} target(s) booted in {:.1} s",
        boot_time.as_secs_f64()
    );

    let repo = write_repo(&targets.0);

    // The initial apply: creates users, installs 20 agents per host. It is
    // not measured against a target, and its verification of 20 fresh agents
    // per host can fail under load (exit 3; there is no generation to switch
    // back to), so that is only a warning: the hosts are switched.
    let initial_apply = initial(apply_command(&repo, &[]), INITIAL_TIMEOUT)?;
    eprintln!(
        "bench apply: initial apply on {n} target(s): {:.1} s",
        initial_apply.as_secs_f64()
    );

    let mut r = SizeResult {
        targets: n,
        boot: boot_time,
        initial_apply,
        floor: Samples::default(),
        noop: Samples::default(),
        one_file: Samples::default(),
        check: Samples::default(),
        plan: Samples::default(),
        one_file_no_verify: Samples::default(),
        noop_hosts: Vec::new(),
        one_file_hosts: Vec::new(),
        verify_failures: Vec::new(),
    };
    // A verified apply can fail verification under load (see `Round`); such
    // a round is not counted: the hosts are put back in step and the round
    // is redone, at most `ROUNDS` extra times.
    let mut done = 0;
    for attempt in 1..=2 * ROUNDS {
        if done == ROUNDS {
            break;
        }
        match measure_round(&targets.0, &repo, attempt)? {
            Round::Measured(m) => {
                done += 1;
                r.floor.push(m.floor);
                r.noop.push(m.noop.0);
                r.noop_hosts.push(m.noop.1);
                r.one_file.push(m.one_file.0);
                r.one_file_hosts.push(m.one_file.1);
                r.one_file_no_verify.push(m.one_file_no_verify);
                r.check.push(m.check);
                r.plan.push(m.plan);
            }
            Round::VerifyFailed(report) => {
                eprintln!("bench apply: round {attempt}: verification failed:\n{report}");
                diagnose(&targets.0, &report)?;
                r.verify_failures.push(report);
                converge(&repo)?;
            }
        }
    }
    if done < ROUNDS {
        return Err(format!(
            "only {done} of {ROUNDS} rounds measured: verification kept failing"
        ));
    }

    last_change_everywhere(&targets.0, &repo)?;
    Ok(r)
    // `targets` drops here (and on every early return): all stop in parallel.
}

/// How a round ended.
enum Round {
    Measured(Measured),
    /// The verified one-file apply exited 3: an agent failed verification.
    /// Seen with 20 targets: an auth check run with `systemd-run` exits 219
    /// (CGROUP), because all targets share one cgroup tree (`/payload`, see
    /// the report). The report holds provision's error lines.
    VerifyFailed(String),
}

/// One round's measurements.
struct Measured {
    floor: Duration,
    noop: (Duration, HostTimes),
    one_file: (Duration, HostTimes),
    one_file_no_verify: Duration,
    check: Duration,
    plan: Duration,
}

/// `provision apply --yes --parallel 20 --no-rollback [EXTRA]`.
///
/// `--no-rollback` changes nothing when verification passes. When it fails
/// (under load the targets' auth checks can exit 219, see `Round`), the host
/// keeps the new generation and the round is simply redone. Switching back
/// instead reuses the unit name `provision-switch-N` of the earlier switch to
/// N; on these targets that unit is never garbage-collected, so systemd-run
/// refuses it and the host is left with a pending switch that no later apply
/// can finish.
fn apply_command(repo: &Fleet, extra: &[&str]) -> Command {
    let args = ["apply", "--yes", "--parallel", PARALLEL, "--no-rollback"];
    let mut cmd = repo_command(repo, &args);
    cmd.args(extra);
    cmd
}

/// The floor, a no-op apply and a one-file apply, then (to see where the
/// time goes) the same change unverified, `check` and a no-op `plan`.
fn measure_round(targets: &[Target], repo: &Fleet, attempt: usize) -> Result<Round, String> {
    let n = targets.len();
    let switched = format!(
        "Applied: {n} host{} switched, 0 unchanged, 0 failed.",
        if n == 1 { "" } else { "s" }
    );

    // (a) The floor: one `ssh HOST true` per host, all at once.
    let (floor, out) = run_all(targets.iter().map(ssh_true).collect(), RUN_TIMEOUT)?;
    for o in &out {
        o.expect_ok("ssh true")?;
    }

    // (b) A no-op apply.
    let (d, out) = run_all(vec![apply_command(repo, &[])], RUN_TIMEOUT)?;
    out[0].expect_ok("no-op apply")?;
    out[0].expect_stdout("No changes: nothing was written.", "no-op apply")?;
    let noop = (d, HostTimes::parse(&out[0].stderr));

    // (c) One changed file per host: agent a01's script.
    repo.agent_script("a01", &format!("v{attempt}"));
    let (d, out) = run_all(vec![apply_command(repo, &[])], RUN_TIMEOUT)?;
    if out[0].status.and_then(|s| s.code()) == Some(3) {
        return Ok(Round::VerifyFailed(error_lines(&out[0].stdout)));
    }
    out[0].expect_ok("one-file apply")?;
    out[0].expect_stdout(&switched, "one-file apply")?;
    let one_file = (d, HostTimes::parse(&out[0].stderr));

    // Where the time goes: the same change without verification, local
    // work only, and a no-op plan.
    repo.agent_script("a01", &format!("v{attempt}-no-verify"));
    let cmd = apply_command(repo, &["--no-verify"]);
    let (one_file_no_verify, out) = run_all(vec![cmd], RUN_TIMEOUT)?;
    out[0].expect_ok("one-file apply --no-verify")?;
    out[0].expect_stdout(&switched, "one-file apply --no-verify")?;

    let (check, out) = run_all(vec![repo_command(repo, &["check"])], RUN_TIMEOUT)?;
    out[0].expect_ok("check")?;
    let cmd = repo_command(repo, &["plan", "--parallel", PARALLEL]);
    let (plan, out) = run_all(vec![cmd], RUN_TIMEOUT)?;
    out[0].expect_ok("plan")?;

    Ok(Round::Measured(Measured {
        floor,
        noop,
        one_file,
        one_file_no_verify,
        check,
        plan,
    }))
}

/// provision's error and failed-check lines (its stdout for 20 hosts is
/// thousands of lines).
fn error_lines(stdout: &str) -> String {
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.starts_with("error:") || l.contains("FAIL") || l.contains("could not switch back")
        })
        .collect();
    lines.join("\n")
}

/// Applies until the hosts are where the repository says (at most 3 times),
/// after a round whose apply failed verification.
fn converge(repo: &Fleet) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..3 {
        let (_, out) = run_all(vec![apply_command(repo, &[])], RUN_TIMEOUT)?;
        if out[0].expect_ok("converge").is_ok() {
            return Ok(());
        }
        last = error_lines(&out[0].stdout);
    }
    Err(format!("the hosts do not converge:\n{last}"))
}

/// Prints, for each host named in `report` (`error: hNN: …`), what its
/// journal says about transient units and cgroups, and which switch units
/// are loaded: the evidence for a verification failure.
fn diagnose(targets: &[Target], report: &str) -> Result<(), String> {
    let failed: Vec<&Target> = targets
        .iter()
        .enumerate()
        .filter(|(i, _)| report.contains(&format!("error: h{i:02}:")))
        .map(|(_, t)| t)
        .collect();
    let script = "journalctl -b --no-pager -n 2000 -o short-monotonic \
        | grep -E 'run-u|provision-switch|cgroup|219|Too many' | tail -n 15; \
        systemctl list-units --all --no-legend 'provision-switch*'; \
        ls /run/systemd/transient";
    let cmds = failed.iter().map(|t| ssh(t, script)).collect();
    let (_, out) = run_all(cmds, RUN_TIMEOUT)?;
    for (t, o) in failed.iter().zip(&out) {
        eprintln!(
            "bench apply: {} ({}):\n{}{}",
            t.name, t.addr, o.stdout, o.stderr
        );
    }
    Ok(())
}

/// Running targets; dropping this stops them all, in parallel.
struct Targets(Vec<Target>);

impl Drop for Targets {
    fn drop(&mut self) {
        let all = std::mem::take(&mut self.0);
        std::thread::scope(|s| {
            for t in all {
                // `Target::drop` stops it (bounded by the harness).
                s.spawn(move || drop(t));
            }
        });
    }
}

/// Boots `n` targets in parallel. On any failure, the ones that booted are
/// stopped and the first error is returned.
fn boot(n: usize) -> Result<Targets, String> {
    let results: Vec<Result<Target, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| s.spawn(|| Target::boot("bench-apply")))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a boot thread panicked".to_string()))
            })
            .collect()
    });
    let mut targets = Targets(Vec::new());
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(t) => targets.0.push(t),
            Err(e) => errors.push(e),
        }
    }
    match errors.into_iter().next() {
        // `targets` drops here, stopping the ones that booted.
        Some(e) => Err(format!("boot: {e}")),
        None => Ok(targets),
    }
}

/// Fails early when root's inotify limit cannot hold `n` targets (systemd
/// in a target would die with "Too many open files"); warns when the
/// instances already in use leave too little room.
fn check_inotify(n: usize) -> Result<(), String> {
    let path = "/proc/sys/fs/inotify/max_user_instances";
    let Some(limit) = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
    else {
        return Ok(()); // Not readable: let the boot tell.
    };
    let need = n * INOTIFY_PER_TARGET;
    // Instances open now, by every process (root sees them all): one pass
    // over /proc, bounded by the number of open descriptors.
    let in_use = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|p| std::fs::read_dir(p.path().join("fd")).ok())
        .flat_map(|fds| fds.flatten())
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:inotify")
        })
        .count();
    // Room for these targets and what is open now, at least the 1024 that
    // 20 targets always had.
    let enough = (in_use + need).next_power_of_two().max(1024);
    let hint = format!(
        "{n} target(s) need about {need} inotify instances; \
         raise the limit with `sysctl -w fs.inotify.max_user_instances={enough}`"
    );
    if limit < need {
        return Err(format!("{path} is {limit}: {hint}"));
    }
    if limit < in_use + need {
        eprintln!("bench apply: warning: {path} is {limit} and {in_use} are in use: {hint}");
    }
    Ok(())
}

/// One repository: host `hNN` per target, each with agents `a01` … `a20`.
fn write_repo(targets: &[Target]) -> Fleet {
    write_repo_with(targets, AGENTS)
}

/// One repository: host `hNN` per target, each with agents `a01` … `aAGENTS`.
fn write_repo_with(targets: &[Target], agents: usize) -> Fleet {
    let f = Fleet::new();
    let names: Vec<String> = (1..=agents).map(|i| format!("a{i:02}")).collect();
    let body: String = names.iter().map(|a| fleet::agent(a, "")).collect();
    for a in &names {
        f.agent_script(a, "v0");
    }
    for (i, t) in targets.iter().enumerate() {
        let destination = format!("root@{}", t.addr);
        f.host(&format!("h{i:02}"), &destination, 22, &t.host_key, &body);
    }
    f
}

/// Runs the initial apply `cmd` within `timeout`, and how long it took. A
/// failed verification (exit 3) only warns: fresh agents on loaded targets
/// can miss it, and the hosts keep what was written, which is all the
/// rounds need.
fn initial(cmd: Command, timeout: Duration) -> Result<Duration, String> {
    let (took, out) = run_all(vec![cmd], timeout)?;
    if out[0].status.and_then(|s| s.code()) == Some(3) {
        eprintln!(
            "bench apply: warning: the initial apply failed verification (exit 3):\n{}",
            error_lines(&out[0].stdout)
        );
    } else {
        out[0].expect_ok("initial apply")?;
    }
    Ok(took)
}

/// `provision -C REPO ARGS`: the release binary cargo built for this bench.
fn repo_command(repo: &Fleet, args: &[&str]) -> Command {
    // `Fleet::command` runs `env!("CARGO_BIN_EXE_provision")`, which cargo
    // sets for benches too, built with the bench (release) profile.
    repo.command(args)
}

/// `ssh root@ADDR true`, the floor.
fn ssh_true(t: &Target) -> Command {
    ssh(t, "true")
}

/// `ssh root@ADDR REMOTE` with the options provision uses for these targets
/// (plus quiet logging and a connect timeout, which cost nothing).
fn ssh(t: &Target, remote: &str) -> Command {
    let mut c = Command::new("ssh");
    c.arg("-F")
        .arg("/dev/null")
        .arg("-i")
        .arg(&t.identity)
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "ConnectTimeout=10"])
        .args(["-o", "LogLevel=ERROR"])
        .arg(format!("root@{}", t.addr))
        .arg(remote);
    c
}

/// A finished process.
struct Finished {
    what: String,
    /// `None` when it was killed at the timeout.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    /// Its peak RSS (KiB), when sampled (see `run_sampled`).
    peak_kib: Option<u64>,
    /// Its own user+sys clock ticks at the last sample (not its children's).
    own_ticks: Option<u64>,
}

impl Finished {
    fn expect_ok(&self, step: &str) -> Result<(), String> {
        match self.status {
            Some(s) if s.success() => Ok(()),
            _ => Err(format!(
                "{step}: {} ended with {}\n--- stdout\n{}\n--- stderr\n{}",
                self.what,
                self.status
                    .map_or("a timeout".to_string(), |s| s.to_string()),
                tail(&self.stdout),
                tail(&self.stderr)
            )),
        }
    }

    fn expect_stdout(&self, needle: &str, step: &str) -> Result<(), String> {
        if self.stdout.contains(needle) {
            Ok(())
        } else {
            Err(format!(
                "{step}: expected {needle:?} in stdout\n--- stdout\n{}\n--- stderr\n{}",
                tail(&self.stdout),
                tail(&self.stderr)
            ))
        }
    }
}

/// The last lines of a command's output (a plan for 20 hosts is thousands).
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(60);
    let cut = if from > 0 { "[…]\n" } else { "" };
    format!("{cut}{}", lines[from..].join("\n"))
}

/// Starts every command at once and waits until all have exited, or until
/// `timeout`, when the ones still running are killed (and waited for).
/// Returns the wall time from the first start to the last exit (to about a
/// millisecond) and each process's outcome, in order.
fn run_all(cmds: Vec<Command>, timeout: Duration) -> Result<(Duration, Vec<Finished>), String> {
    run_sampled(cmds, timeout, false)
}

/// How often `run_sampled` reads a running process's peak RSS.
const RSS_EVERY: Duration = Duration::from_millis(10);

/// `run_all`; with `sample_rss`, it also reads each running process's
/// `VmHWM` (its peak RSS so far, see `Usage`) and its own CPU time every
/// `RSS_EVERY`.
fn run_sampled(
    cmds: Vec<Command>,
    timeout: Duration,
    sample_rss: bool,
) -> Result<(Duration, Vec<Finished>), String> {
    struct Running {
        what: String,
        child: Child,
        stdout: mpsc::Receiver<Vec<u8>>,
        stderr: mpsc::Receiver<Vec<u8>>,
        status: Option<ExitStatus>,
        peak_kib: Option<u64>,
        own_ticks: Option<u64>,
    }
    let start = Instant::now();
    let mut procs: Vec<Running> = Vec::new();
    for mut cmd in cmds {
        let what = format!("{cmd:?}");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match cmd.spawn() {
            Ok(mut child) => {
                let stdout = reader(child.stdout.take());
                let stderr = reader(child.stderr.take());
                procs.push(Running {
                    what,
                    child,
                    stdout,
                    stderr,
                    status: None,
                    peak_kib: None,
                    own_ticks: None,
                });
            }
            Err(e) => {
                // Do not leave the ones already started behind.
                for p in &mut procs {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                }
                return Err(format!("cannot start {what}: {e}"));
            }
        }
    }

    // Poll every millisecond (cheap, and precise enough for runs of 50+ ms);
    // bounded by the deadline.
    let deadline = start + timeout;
    let mut last_exit = start;
    let mut next_sample = start;
    loop {
        let mut running = 0;
        let sample = sample_rss && Instant::now() >= next_sample;
        if sample {
            next_sample += RSS_EVERY;
        }
        for p in procs.iter_mut().filter(|p| p.status.is_none()) {
            match p.child.try_wait() {
                Ok(Some(status)) => {
                    p.status = Some(status);
                    last_exit = Instant::now();
                }
                Ok(None) => {
                    running += 1;
                    // Not reaped yet, so the PID is still this child's (an
                    // exited one has no VmHWM; its last reading stays).
                    if sample {
                        let pid = p.child.id();
                        p.peak_kib = peak_rss_kib(pid).or(p.peak_kib);
                        p.own_ticks = own_cpu_ticks(pid).or(p.own_ticks);
                    }
                }
                Err(e) => return Err(format!("waiting for {}: {e}", p.what)),
            }
        }
        if running == 0 {
            break;
        }
        if Instant::now() >= deadline {
            for p in procs.iter_mut().filter(|p| p.status.is_none()) {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
            last_exit = Instant::now();
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = last_exit - start;

    let grace = Instant::now() + OUTPUT_GRACE;
    let text = |rx: &mpsc::Receiver<Vec<u8>>| {
        let left = grace.saturating_duration_since(Instant::now());
        String::from_utf8_lossy(&rx.recv_timeout(left).unwrap_or_default()).into_owned()
    };
    let finished = procs
        .into_iter()
        .map(|p| Finished {
            stdout: text(&p.stdout),
            stderr: text(&p.stderr),
            what: p.what,
            status: p.status,
            peak_kib: p.peak_kib,
            own_ticks: p.own_ticks,
        })
        .collect();
    Ok((elapsed, finished))
}

/// Durations of one measured step, in milliseconds.
#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1e3);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    fn median(&self) -> f64 {
        let v = self.sorted();
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
}

/// What provision's progress lines (stderr, not a terminal) say about one
/// run: `HOST: .. … switching to generation N (X s)` once a host is connected
/// and probed, `HOST: .. verifying generation N (X s)` once switched,
/// `HOST: ok … (X s)` when done; X counts from the host's first stage.
#[derive(Default)]
struct HostTimes {
    /// Slowest host from connecting to the start of its switch (ms).
    probed: Option<f64>,
    /// Slowest host from connecting to the start of its verification (ms).
    switched: Option<f64>,
    /// Slowest host from connecting to done (ms).
    done: Option<f64>,
}

impl HostTimes {
    fn parse(stderr: &str) -> HostTimes {
        let mut t = HostTimes::default();
        for line in stderr.lines() {
            let Some(secs) = line
                .rsplit_once('(')
                .and_then(|(_, s)| s.strip_suffix(" s)"))
                .and_then(|s| s.parse::<f64>().ok())
            else {
                continue;
            };
            let ms = secs * 1e3;
            let slot = if line.contains(": .. ") && line.contains(" switching ") {
                &mut t.probed
            } else if line.contains(": .. verifying ") {
                &mut t.switched
            } else if line.contains(": ok ") {
                &mut t.done
            } else {
                continue;
            };
            *slot = Some(slot.map_or(ms, |m: f64| m.max(ms)));
        }
        t
    }
}

/// Median of the present values, formatted, or "-".
fn median_of(values: impl Iterator<Item = Option<f64>>) -> String {
    let s = Samples(values.flatten().collect());
    if s.0.is_empty() {
        "-".to_string()
    } else {
        format!("{:.0}", s.median())
    }
}

fn report(results: &[SizeResult]) {
    println!(
        "\n## provision apply vs. the ssh floor ({AGENTS} agents per host, {ROUNDS} rounds)\n"
    );
    println!("| targets | step | median ms | min ms | ratio to floor | target |");
    println!("|---:|---|---:|---:|---:|---|");
    let mut verdicts = Vec::new();
    for r in results {
        let floor = r.floor.median();
        let rows = [
            ("ssh true floor", &r.floor, None),
            ("no-op apply", &r.noop, Some(NOOP_TARGET)),
            ("one-file apply", &r.one_file, Some(ONE_FILE_TARGET)),
        ];
        for (step, s, target) in rows {
            let ratio = s.median() / floor;
            let verdict = match target {
                Some(limit) => {
                    let met = ratio <= limit;
                    verdicts.push(format!(
                        "{} target(s), {step}: {ratio:.2}x the floor, target {limit}x: {}",
                        r.targets,
                        if met { "met" } else { "NOT met" }
                    ));
                    format!("≤ {limit}x: {}", if met { "met" } else { "NOT met" })
                }
                None => String::new(),
            };
            println!(
                "| {} | {step} | {:.0} | {:.0} | {ratio:.2} | {verdict} |",
                r.targets,
                s.median(),
                s.min()
            );
        }
    }
    println!();
    for v in &verdicts {
        println!("- {v}");
    }

    println!("\n## Where the time goes (medians, ms; host times: the slowest host of a run)\n");
    println!(
        "| targets | boot | initial apply | check (local only) | no-op plan | no-op apply: host connect→done | one-file apply: host connect→probed | →switched | →verified | one-file apply --no-verify |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {:.0} |",
            r.targets,
            r.boot.as_secs_f64() * 1e3,
            r.initial_apply.as_secs_f64() * 1e3,
            r.check.median(),
            r.plan.median(),
            median_of(r.noop_hosts.iter().map(|h| h.done)),
            median_of(r.one_file_hosts.iter().map(|h| h.probed)),
            median_of(r.one_file_hosts.iter().map(|h| h.switched)),
            median_of(r.one_file_hosts.iter().map(|h| h.done)),
            r.one_file_no_verify.median(),
        );
    }
    for r in results.iter().filter(|r| !r.verify_failures.is_empty()) {
        println!(
            "\n{} target(s): {} one-file apply(s) failed verification (exit 3); \
             their rounds were redone and are not in the table:\n",
            r.targets,
            r.verify_failures.len()
        );
        for f in &r.verify_failures {
            println!("```\n{f}\n```");
        }
    }
}

// ---------------------------------------------------------------------------
// Fleet mode: `FLEET=N`.

/// What fleet mode measures, from the environment.
struct FleetConfig {
    /// `FLEET`: targets booted.
    targets: usize,
    /// `FLEET_AGENTS`: agents per host.
    agents: usize,
    /// `ROUNDS`: measured rounds.
    rounds: usize,
}

impl FleetConfig {
    /// `None` without `FLEET`; an error when any of the variables is not a
    /// number in its range.
    fn from_env() -> Result<Option<FleetConfig>, String> {
        let Some(targets) = env_number("FLEET", FLEET_SIZES)? else {
            return Ok(None);
        };
        Ok(Some(FleetConfig {
            targets,
            agents: env_number("FLEET_AGENTS", 1..=AGENTS)?.unwrap_or(FLEET_AGENTS),
            rounds: env_number("ROUNDS", 1..=50)?.unwrap_or(FLEET_ROUNDS),
        }))
    }
}

/// The number in `$NAME`, `None` when it is not set.
fn env_number(name: &str, range: std::ops::RangeInclusive<usize>) -> Result<Option<usize>, String> {
    let Some(value) = std::env::var_os(name) else {
        return Ok(None);
    };
    match value.to_str().and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "{name} must be a number from {} to {}, not {value:?}",
            range.start(),
            range.end()
        )),
    }
}

/// The measured steps of a fleet round, in the order they run.
#[derive(Clone, Copy, PartialEq)]
enum Step {
    Floor,
    Plan,
    NoopApply,
    OneFile,
    OneFileDefault,
}

const STEPS: [Step; 5] = [
    Step::Floor,
    Step::Plan,
    Step::NoopApply,
    Step::OneFile,
    Step::OneFileDefault,
];

impl Step {
    fn label(self, n: usize) -> String {
        match self {
            Step::Floor => format!("ssh true floor ({n} at once)"),
            Step::Plan => format!("no-op plan --parallel {n}"),
            Step::NoopApply => format!("no-op apply --parallel {n}"),
            Step::OneFile => format!("one-file apply --no-verify --parallel {n}"),
            Step::OneFileDefault => "one-file apply --no-verify (default --parallel 16)".into(),
        }
    }

    fn goal(self) -> Option<Duration> {
        match self {
            Step::Floor => None,
            Step::Plan | Step::NoopApply => Some(FLEET_NOOP_GOAL),
            Step::OneFile | Step::OneFileDefault => Some(FLEET_ONE_FILE_GOAL),
        }
    }
}

/// What one run cost.
///
/// CPU: the growth of this process's `cutime + cstime` (`/proc/self/stat`)
/// across the run, which is what `getrusage(RUSAGE_CHILDREN)` deltas would
/// give: the user+sys time of the children reaped meanwhile (only the run's
/// own processes: nothing else is started or reaped during a run) and of
/// the descendants they reaped (provision's short-lived `ssh` processes;
/// not its ssh mux masters, which detach and are reaped by init).
///
/// Of that CPU time, provision's own (without its ssh children) is read
/// from `/proc/PID/stat` at each sample, so it misses up to `RSS_EVERY`.
///
/// Peak RSS: the largest `VmHWM` sampled from `/proc/PID/status` while the
/// child runs (`run_sampled`). `VmHWM` is the kernel's high-water mark of
/// the process's RSS, the figure `wait4` reports as `ru_maxrss`, and it
/// only grows, so the last reading misses at most what it grew in its last
/// `RSS_EVERY`. `ru_maxrss` itself is out of reach: `wait4` and
/// `getrusage` need `unsafe`, which the crate forbids for every target
/// (`[lints.rust]`), and `RUSAGE_CHILDREN`'s `ru_maxrss` is the largest
/// child ever reaped, so deltas of it cannot tell one run from another.
struct Usage {
    wall: Duration,
    cpu_secs: f64,
    /// The run's processes' own CPU time (s, without their children), if
    /// sampled.
    own_cpu_secs: Option<f64>,
    /// The largest peak RSS among the run's processes (MiB), if sampled.
    peak_mib: Option<f64>,
    /// Busy share of all CPUs of the machine during the run (0..=1).
    busy: Option<f64>,
}

/// Runs `cmds` like `run_all` (bounded by `RUN_TIMEOUT`) and says what they
/// cost; `sample_rss` reads their peak RSS (done for provision, not for the
/// floor's N ssh processes, where reading N status files every 10 ms would
/// slow down what it measures).
fn run_measured(cmds: Vec<Command>, sample_rss: bool) -> Result<(Usage, Vec<Finished>), String> {
    let cpu_before = children_cpu_ticks();
    let machine_before = machine_cpu();
    let (wall, out) = run_sampled(cmds, RUN_TIMEOUT, sample_rss)?;
    let machine_after = machine_cpu();
    let cpu_after = children_cpu_ticks();
    let cpu_secs = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / USER_HZ,
        _ => f64::NAN,
    };
    let busy = match (machine_before, machine_after) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            Some(b1.saturating_sub(b0) as f64 / (t1 - t0) as f64)
        }
        _ => None,
    };
    let own: Vec<u64> = out.iter().filter_map(|o| o.own_ticks).collect();
    let own_cpu_secs = (!own.is_empty()).then(|| own.iter().sum::<u64>() as f64 / USER_HZ);
    let peak_mib = out
        .iter()
        .filter_map(|o| o.peak_kib)
        .max()
        .map(|kib| kib as f64 / 1024.0);
    let usage = Usage {
        wall,
        cpu_secs,
        own_cpu_secs,
        peak_mib,
        busy,
    };
    Ok((usage, out))
}

/// `cutime + cstime` of this process, in clock ticks: the CPU time of its
/// reaped children (`/proc/self/stat`, fields 16 and 17).
fn children_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces; the first of them is field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let cutime: u64 = fields.get(16 - 3)?.parse().ok()?;
    let cstime: u64 = fields.get(17 - 3)?.parse().ok()?;
    Some(cutime + cstime)
}

/// `utime + stime` of process `pid`, in clock ticks: its own CPU time,
/// without its children's (`/proc/PID/stat`, fields 14 and 15).
fn own_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// The machine's busy and total clock ticks, all CPUs, from the first
/// (`cpu`) line of `/proc/stat`: user nice system idle iowait irq softirq
/// steal (guest time is already in user and nice).
fn machine_cpu() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 8 {
        return None;
    }
    let idle = v[3] + v[4];
    let total: u64 = v.iter().sum();
    Some((total - idle, total))
}

/// `VmHWM` of process `pid`, in KiB (`None` once it has exited).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    value.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Samples of one fleet step over the rounds.
#[derive(Default)]
struct StepSamples {
    wall: Samples,
    cpu_secs: Vec<f64>,
    own_cpu_secs: Vec<f64>,
    peak_mib: Vec<f64>,
    busy: Vec<f64>,
}

impl StepSamples {
    fn push(&mut self, u: &Usage) {
        self.wall.push(u.wall);
        self.cpu_secs.push(u.cpu_secs);
        self.own_cpu_secs.extend(u.own_cpu_secs);
        self.peak_mib.extend(u.peak_mib);
        self.busy.extend(u.busy);
    }
}

/// What fleet mode measured (as far as it got).
#[derive(Default)]
struct FleetResult {
    boot: Option<Duration>,
    initial_apply: Option<Duration>,
    /// Rounds fully measured.
    rounds: usize,
    /// One per `STEPS`, in order.
    steps: Vec<StepSamples>,
}

/// Runs fleet mode, prints what it measured (also after an error) and exits
/// 1 on an error. The targets are stopped before the report.
fn fleet_main(cfg: &FleetConfig, started: Instant) {
    let mut r = FleetResult {
        steps: STEPS.iter().map(|_| StepSamples::default()).collect(),
        ..FleetResult::default()
    };
    let outcome = bench_fleet(cfg, &mut r);
    if let Err(e) = &outcome {
        eprintln!("bench apply: fleet of {}: {e}", cfg.targets);
    }
    fleet_report(cfg, &r);
    if outcome.is_err() {
        std::process::exit(1);
    }
    println!("\nTotal run time: {:.1} s", started.elapsed().as_secs_f64());
}

/// Boots the fleet, writes the repository, applies once, then measures
/// `cfg.rounds` rounds into `r`.
fn bench_fleet(cfg: &FleetConfig, r: &mut FleetResult) -> Result<(), String> {
    let n = cfg.targets;
    let t0 = Instant::now();
    let targets = boot_bounded(n, BOOT_AT_ONCE)?;
    let boot_time = t0.elapsed();
    r.boot = Some(boot_time);
    eprintln!(
        "bench apply: {n} targets booted ({BOOT_AT_ONCE} at a time) in {:.1} s",
        boot_time.as_secs_f64()
    );

    let repo = write_repo_with(&targets.0, cfg.agents);
    let parallel = n.to_string();

    // The initial apply (users, agents). As in `bench_size`, a failed
    // verification (exit 3) only warns: with `--no-rollback` the hosts keep
    // what was written, which is all the rounds need.
    let timeout = INITIAL_TIMEOUT.max(Duration::from_secs(5 * n as u64));
    let apply = ["apply", "--yes", "--parallel", &parallel, "--no-rollback"];
    let initial = initial(repo_command(&repo, &apply), timeout)?;
    r.initial_apply = Some(initial);
    eprintln!(
        "bench apply: initial apply on {n} targets: {:.1} s",
        initial.as_secs_f64()
    );

    for round in 1..=cfg.rounds {
        for (i, step) in STEPS.into_iter().enumerate() {
            let u = fleet_step(step, &targets.0, &repo, round)?;
            eprintln!(
                "bench apply: round {round}/{}: {}: {:.2} s, controller {} MiB {:.2} s CPU ({} s its own), machine {} busy",
                cfg.rounds,
                step.label(n),
                u.wall.as_secs_f64(),
                u.peak_mib.map_or("-".into(), |m| format!("{m:.1}")),
                u.cpu_secs,
                u.own_cpu_secs.map_or("-".into(), |c| format!("{c:.2}")),
                u.busy.map_or("-".into(), |b| format!("{:.0} %", b * 100.0)),
            );
            r.steps[i].push(&u);
        }
        r.rounds = round;
    }

    last_change_everywhere(&targets.0, &repo)?;
    Ok(())
    // `targets` drops here (and on every early return): all stop in parallel.
}

/// Every host runs the repository's last a01 script, and a01 is up.
fn last_change_everywhere(targets: &[Target], repo: &Fleet) -> Result<(), String> {
    let script = std::fs::read_to_string(repo.path().join("agents/a01.sh"))
        .map_err(|e| format!("reading agents/a01.sh: {e}"))?;
    let marker = script.lines().nth(1).unwrap_or_default();
    let check = format!(
        "grep -qxF '{marker}' /opt/agents/a01/run.sh && systemctl is-active --quiet agent-a01.service"
    );
    let verify = targets.iter().map(|t| ssh(t, &check)).collect();
    let (_, out) = run_all(verify, RUN_TIMEOUT)?;
    for o in &out {
        o.expect_ok("checking the last change on the targets")?;
    }
    Ok(())
}

/// Runs one step of a fleet round and checks its outcome.
fn fleet_step(step: Step, targets: &[Target], repo: &Fleet, round: usize) -> Result<Usage, String> {
    let n = targets.len();
    let parallel = n.to_string();
    let switched = format!("Applied: {n} hosts switched, 0 unchanged, 0 failed.");
    let label = step.label(n);
    match step {
        Step::Floor => {
            let (u, out) = run_measured(targets.iter().map(ssh_true).collect(), false)?;
            for o in &out {
                o.expect_ok("ssh true")?;
            }
            Ok(u)
        }
        Step::Plan => {
            // Exit 0 only when no host has changes.
            let args = ["plan", "--detailed-exitcode", "--parallel", &parallel];
            let (u, out) = run_measured(vec![repo_command(repo, &args)], true)?;
            out[0].expect_ok(&label)?;
            let unchanged = out[0]
                .stdout
                .lines()
                .filter(|l| l.trim() == "No changes.")
                .count();
            if unchanged != n {
                return Err(format!(
                    "{label}: {unchanged} of {n} hosts say \"No changes.\"\n--- stdout\n{}",
                    tail(&out[0].stdout)
                ));
            }
            Ok(u)
        }
        Step::NoopApply => {
            let args = ["apply", "--yes", "--parallel", &parallel, "--no-rollback"];
            let (u, out) = run_measured(vec![repo_command(repo, &args)], true)?;
            out[0].expect_ok(&label)?;
            out[0].expect_stdout("No changes: nothing was written.", &label)?;
            Ok(u)
        }
        Step::OneFile | Step::OneFileDefault => {
            // A new a01 script every time, so each apply writes one file per
            // host and restarts one agent.
            let mut args = vec!["apply", "--yes", "--no-rollback", "--no-verify"];
            let marker = if step == Step::OneFile {
                args.extend(["--parallel", &parallel]);
                format!("fleet-r{round}")
            } else {
                format!("fleet-r{round}-default-parallel")
            };
            repo.agent_script("a01", &marker);
            let (u, out) = run_measured(vec![repo_command(repo, &args)], true)?;
            out[0].expect_ok(&label)?;
            out[0].expect_stdout(&switched, &label)?;
            Ok(u)
        }
    }
}

/// Boots `n` targets, at most `at_once` at a time (a pool of threads taking
/// the next boot as each finishes), sorted by IDX. After the first failure
/// no new boot starts; the ones that booted are stopped and the first error
/// is returned.
fn boot_bounded(n: usize, at_once: usize) -> Result<Targets, String> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    // Dropped (stopping its targets) on every return, also after a panic.
    let booted = Mutex::new(Targets(Vec::new()));
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..at_once.min(n) {
            s.spawn(|| {
                loop {
                    let failed = !errors.lock().unwrap_or_else(|e| e.into_inner()).is_empty();
                    if failed || next.fetch_add(1, Ordering::Relaxed) >= n {
                        break;
                    }
                    match Target::boot("bench-apply") {
                        Ok(t) => booted.lock().unwrap_or_else(|e| e.into_inner()).0.push(t),
                        Err(e) => errors.lock().unwrap_or_else(|e| e.into_inner()).push(e),
                    }
                }
            });
        }
    });
    let mut targets = booted.into_inner().unwrap_or_else(|e| e.into_inner());
    let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = errors.into_iter().next() {
        // `targets` drops here, stopping the ones that booted.
        return Err(format!("boot: {e}"));
    }
    targets.0.sort_by_key(Target::idx);
    Ok(targets)
}

/// Seconds with two decimals, from milliseconds.
fn secs(ms: f64) -> String {
    format!("{:.2}", ms / 1e3)
}

fn fleet_report(cfg: &FleetConfig, r: &FleetResult) {
    let n = cfg.targets;
    println!(
        "\n## provision on a fleet of {n} targets ({} agents per host, {} of {} rounds)\n",
        cfg.agents, r.rounds, cfg.rounds
    );
    let took =
        |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
    println!(
        "Boot: {} ({BOOT_AT_ONCE} at a time); initial apply: {}.\n",
        took(r.boot),
        took(r.initial_apply)
    );
    println!(
        "| step | median s | min s | x floor | controller peak MiB | controller CPU s | of which provision's own | machine busy % | goal |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let floor = r.steps.first().map_or(f64::NAN, |s| s.wall.median());
    let mut verdicts = Vec::new();
    for (step, s) in STEPS.iter().zip(&r.steps) {
        let label = step.label(n);
        let median = s.wall.median();
        let goal = match step.goal() {
            Some(g) if !s.wall.0.is_empty() => {
                let met = median <= g.as_secs_f64() * 1e3;
                let verdict = if met { "met" } else { "NOT met" };
                verdicts.push(format!(
                    "{label}: median {} s, goal under {} s: {verdict}",
                    secs(median),
                    g.as_secs()
                ));
                format!("< {} s: {verdict}", g.as_secs())
            }
            Some(g) => format!("< {} s", g.as_secs()),
            None => String::new(),
        };
        // The floor's figures are all N ssh clients together.
        let peak = s
            .peak_mib
            .iter()
            .copied()
            .reduce(f64::max)
            .map_or("-".to_string(), |m| format!("{m:.1}"));
        let cpu = Samples(s.cpu_secs.clone()).median();
        let own = if s.own_cpu_secs.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}", Samples(s.own_cpu_secs.clone()).median())
        };
        let busy = Samples(s.busy.clone()).median() * 100.0;
        println!(
            "| {label} | {} | {} | {:.2} | {peak} | {cpu:.2} | {own} | {busy:.0} | {goal} |",
            secs(median),
            secs(s.wall.min()),
            median / floor,
        );
    }
    let peak = r
        .steps
        .iter()
        .flat_map(|s| s.peak_mib.iter().copied())
        .reduce(f64::max);
    if let Some(peak) = peak {
        let verdict = if peak < FLEET_RSS_GOAL_MIB {
            "met"
        } else {
            "NOT met"
        };
        verdicts.push(format!(
            "controller peak RSS: {peak:.1} MiB over all runs, goal under {FLEET_RSS_GOAL_MIB} MiB: {verdict}"
        ));
    }
    println!(
        "\nMedians over the rounds (the upper one of an even number), except peak \
         MiB (the largest of any round). Controller CPU: provision and the ssh \
         processes it waited for (their key exchanges; not its detached mux \
         masters); the floor's is its {n} ssh clients together, its RSS is not \
         sampled. Busy: the share of all the machine's CPUs in use during the step.\n"
    );
    println!("Goals (missing one does not fail the bench):\n");
    for v in &verdicts {
        println!("- {v}");
    }
}
