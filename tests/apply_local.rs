//! `plan`, `apply`, `generations` and `rollback` through the local transport,
//! by running the real binary on a copy of the bundled demo host
//! (`hosts/demo.kdl`, `modules/`, `demo/agents/`) in a temporary directory.
//! The demo host's `/` is `demo/root` there, and the same POSIX sh scripts
//! that run over SSH run locally (systemctl and chown skipped), so everything
//! but activation is checked here, without a target machine.
//!
//! The lock test needs `flock` and the prompt test `script` (util-linux);
//! without `script` the prompt test prints `SKIPPED` and passes.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/process.rs"]
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet::{Fleet, Run};
use provision::desired::sha256_hex;
use provision::script::sh_quote;
use serde_json::Value;

/// The bundled repository this test copies from.
const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The demo host's root, relative to the repository (`local "demo/root"`).
const DEMO_ROOT: &str = "demo/root";
/// The agent script the demo host installs, and where.
const SCRIPT_SRC: &str = "demo/agents/scheduler/run.sh";
const SCRIPT: &str = "/opt/agents/scheduler/run.sh";
/// The agent's secrets file on the host.
const ENV_FILE: &str = "/etc/provision/agents/scheduler.env";
/// A secret for the demo agent (the syntax of `hosts/agents-1.kdl`).
const SECRET: &str = r#"secret "TOKEN" from="env:DEMO_TOKEN""#;
/// How long any one command may take before the test gives up on it.
const BOUND: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// The repository under test.

/// A throwaway repository holding a copy of the demo host and what it needs:
/// the project's modules (copied by [`Fleet::new`]), `hosts/demo.kdl` and
/// `demo/agents/`. No other host, and no `demo/root`: every test starts from
/// a host that has never been applied.
struct Demo {
    fleet: Fleet,
    /// The original `hosts/demo.kdl`, which [`Demo::define`] extends.
    kdl: String,
    /// The original agent script, which [`Demo::script`] extends.
    script: Vec<u8>,
}

impl Demo {
    fn new() -> Demo {
        let fleet = Fleet::new();
        let kdl = read_text(&Path::new(REPO).join("hosts/demo.kdl"));
        assert!(
            kdl.contains(&format!("local \"{DEMO_ROOT}\"")),
            "hosts/demo.kdl no longer says `local \"{DEMO_ROOT}\"`; this test relies on it"
        );
        fleet.write("hosts/demo.kdl", &kdl);
        fleet::copy_dir(
            &Path::new(REPO).join("demo/agents"),
            &fleet.path().join("demo/agents"),
        );
        let script = std::fs::read(fleet.path().join(SCRIPT_SRC)).unwrap();
        Demo { fleet, kdl, script }
    }

    /// The repository's directory.
    fn path(&self) -> &Path {
        self.fleet.path()
    }

    /// A path in the repository's directory (for saved plans: `plan -o` and
    /// `apply FILE` read paths relative to the working directory, not `-C`).
    fn file(&self, name: &str) -> String {
        self.path().join(name).to_str().unwrap().to_string()
    }

    /// The host's `/`.
    fn root(&self) -> PathBuf {
        self.path().join(DEMO_ROOT)
    }

    /// Where provision keeps its state on the host.
    fn state(&self) -> PathBuf {
        self.root().join("var/lib/provision")
    }

    /// A host path under the root.
    fn on_host(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    /// Rewrites `hosts/demo.kdl` as the original plus `host_nodes` in the
    /// host block and `agent_nodes` in the agent block.
    fn define(&self, host_nodes: &str, agent_nodes: &str) {
        let anchor = "agent \"scheduler\" {\n";
        let at = self
            .kdl
            .find(anchor)
            .expect("hosts/demo.kdl has agent \"scheduler\"")
            + anchor.len();
        let mut text = format!(
            "{}        {agent_nodes}\n{}",
            &self.kdl[..at],
            &self.kdl[at..]
        );
        let end = text.rfind('}').expect("the host block ends");
        text.insert_str(end, &format!("    {host_nodes}\n"));
        self.fleet.write("hosts/demo.kdl", &text);
    }

    /// Rewrites the agent script as the original plus a `# marker` line;
    /// returns its bytes, which the host should then hold at [`SCRIPT`].
    fn script(&self, marker: &str) -> Vec<u8> {
        let mut bytes = self.script.clone();
        bytes.extend_from_slice(format!("# {marker}\n").as_bytes());
        std::fs::write(self.path().join(SCRIPT_SRC), &bytes).unwrap();
        bytes
    }

    /// `provision -C REPO ARGS`, without a terminal, colour, CI or secrets.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.fleet.command(args);
        cmd.env_remove("DEMO_TOKEN").env_remove("DEMO_API_KEY");
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        Run::from(fleet::run_bounded(&mut cmd, BOUND))
    }

    /// The manifest `render --json` gives for the demo host, with each file's
    /// bytes from the rendered tree: what a first apply must write.
    fn manifest(&self) -> Manifest {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().to_str().unwrap();
        let run = self
            .run(&["render", "demo", "--json", "--out", dir])
            .expect(0);
        let v = json(&run);
        let files = v["files"]
            .as_array()
            .expect("the manifest lists files")
            .iter()
            .map(|f| {
                let path = f["path"].as_str().unwrap().to_string();
                let bytes = std::fs::read(out.path().join(path.trim_start_matches('/'))).unwrap();
                ManifestFile {
                    mode: octal(f["mode"].as_str().unwrap()),
                    sha256: f["sha256"].as_str().unwrap().to_string(),
                    bytes,
                    path,
                }
            })
            .collect();
        Manifest {
            generation: v["generation_id"].as_str().unwrap().to_string(),
            files,
        }
    }

    /// Where `current` points, such as `generations/2.json`.
    fn current(&self) -> String {
        let link = std::fs::read_link(self.state().join("current")).expect("current is a link");
        link.to_str().unwrap().to_string()
    }

    /// The generation numbers recorded under `generations/`, sorted.
    fn generations(&self) -> Vec<u64> {
        let mut out: Vec<u64> = std::fs::read_dir(self.state().join("generations"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Generation `n`'s record.
    fn record(&self, n: u64) -> Value {
        let path = self.state().join(format!("generations/{n}.json"));
        serde_json::from_str(&read_text(&path)).unwrap()
    }

    /// The names of the files in the host's store.
    fn store(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.state().join("store"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }
}

struct Manifest {
    generation: String,
    files: Vec<ManifestFile>,
}

struct ManifestFile {
    path: String,
    mode: u32,
    sha256: String,
    bytes: Vec<u8>,
}

// ---------------------------------------------------------------------------
// Looking at the host's root.

/// What identifies one entry's on-disk state: anything that writes, renames,
/// chmods or recreates it changes at least one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    link: Option<PathBuf>,
}

/// Every entry under `dir` (directories, files, links, not following links),
/// by path relative to `dir`; `dir` itself is "".
type Footprint = BTreeMap<String, Stamp>;

fn footprint(dir: &Path) -> Footprint {
    fn walk(base: &Path, path: &Path, out: &mut Footprint) {
        let m = std::fs::symlink_metadata(path).unwrap();
        let rel = path
            .strip_prefix(base)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        // The probe's own record of the files it read: it is how a plan
        // avoids reading them again, not a change to the host.
        if rel == "var/lib/provision/stat" || rel.starts_with("var/lib/provision/stat/") {
            return;
        }
        let link = m
            .file_type()
            .is_symlink()
            .then(|| std::fs::read_link(path).unwrap());
        out.insert(
            rel,
            Stamp {
                ino: m.ino(),
                mode: m.mode(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
                link,
            },
        );
        if m.is_dir() {
            for e in std::fs::read_dir(path).unwrap() {
                walk(base, &e.unwrap().path(), out);
            }
        }
    }
    let mut out = Footprint::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Fails naming every entry that appeared, disappeared or changed.
#[track_caller]
fn assert_unchanged(before: &Footprint, after: &Footprint, what: &str) {
    let mut diffs = Vec::new();
    for (path, b) in before {
        match after.get(path) {
            None => diffs.push(format!("removed {path:?}")),
            Some(a) if a != b => diffs.push(format!("changed {path:?}: {b:?} -> {a:?}")),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        diffs.push(format!("created {path:?}"));
    }
    assert!(
        diffs.is_empty(),
        "{what} touched the host:\n{}",
        diffs.join("\n")
    );
}

/// Regular files under `dir`, relative.
fn regular_files(dir: &Path) -> BTreeSet<String> {
    footprint(dir)
        .into_iter()
        .filter(|(p, _)| std::fs::symlink_metadata(dir.join(p)).unwrap().is_file())
        .map(|(p, _)| p)
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn octal(text: &str) -> u32 {
    u32::from_str_radix(text, 8).unwrap_or_else(|_| panic!("{text:?} is not an octal mode"))
}

// ---------------------------------------------------------------------------
// Reading output.

#[track_caller]
fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", run.all()))
}

#[track_caller]
fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

/// The plan's line for one path (`  ~ /path notes`), or a failure showing
/// the plan.
#[track_caller]
fn plan_line<'a>(plan: &'a str, path: &str) -> &'a str {
    plan.lines()
        .find(|l| {
            let mut words = l.split_whitespace();
            matches!(words.next(), Some("+" | "~" | "-")) && words.next() == Some(path)
        })
        .unwrap_or_else(|| panic!("no line for {path} in the plan:\n{plan}"))
}

/// The host names of a `plan --json`.
fn planned_hosts(run: &Run) -> Vec<String> {
    json(run)["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap().to_string())
        .collect()
}

/// Everything a test printed or saved, to check for secret values at the end.
#[derive(Default)]
struct Shown(Vec<String>);

impl Shown {
    fn run(&mut self, run: Run) -> Run {
        self.0.push(run.all());
        run
    }

    fn file(&mut self, path: &str) {
        self.0.push(read_text(Path::new(path)));
    }
}

// ---------------------------------------------------------------------------
// Processes.

/// A real `flock` holding the host's lock, the way another apply would.
///
/// Its command is `cat`, which ends when we close its stdin: the test decides
/// when the lock is released instead of racing a `sleep`. Dropping it
/// releases the lock too, so a failing test leaves no process behind.
struct LockHolder {
    child: Child,
}

impl LockHolder {
    /// Starts `flock LOCK cat` and waits until it holds the lock.
    fn start(lock: &Path) -> LockHolder {
        let child = Command::new("flock")
            .arg(lock)
            .arg("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("flock (util-linux) runs");
        let mut holder = LockHolder { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // `flock -n` fails with 99 only while someone else holds it.
            let probe = Command::new("flock")
                .args(["-n", "-E", "99"])
                .arg(lock)
                .arg("true")
                .status()
                .unwrap();
            if probe.code() == Some(99) {
                return holder;
            }
            assert!(
                holder.child.try_wait().unwrap().is_none(),
                "flock ended before it held the lock"
            );
            assert!(Instant::now() < deadline, "flock never took the lock");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Releases the lock and waits for the holder to end.
    fn release(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Our own child only, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A command running in the background, its stdout in a file; killed (by
/// its PID) if the test ends before it does.
struct Background {
    child: Child,
    out: tempfile::TempDir,
}

impl Background {
    fn start(mut cmd: Command) -> Background {
        let out = tempfile::tempdir().unwrap();
        let child = cmd
            .stdout(std::fs::File::create(out.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(out.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        Background { child, out }
    }

    fn stdout(&self) -> String {
        read_text(&self.out.path().join("stdout"))
    }

    /// Waits for it to end; its exit code and stdout.
    fn wait(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), self.stdout());
            }
            assert!(Instant::now() < deadline, "still running after {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether a process whose argv is `argv` runs below `ancestor` (by PID).
fn has_descendant(ancestor: u32, argv: &[&str]) -> bool {
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.filter_map(Result::ok).any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            return false;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let words: Vec<&[u8]> = cmdline
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .collect();
        if words.len() != argv.len() || words.iter().zip(argv).any(|(w, a)| *w != a.as_bytes()) {
            return false;
        }
        let mut p = pid;
        for _ in 0..64 {
            match parent(p) {
                Some(pp) if pp == ancestor => return true,
                Some(pp) if pp > 1 => p = pp,
                _ => return false,
            }
        }
        false
    })
}

/// Whether `script` (util-linux), which gives a command a terminal, is here.
fn have_script() -> bool {
    Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `provision ARGS` on a terminal (stdin, stdout and stderr on a pty,
/// by `script`), typing `answer` and a newline. `ci` sets CI. Stdout holds
/// everything the terminal showed.
fn on_terminal(demo: &Demo, args: &[&str], answer: &str, ci: Option<&str>) -> Run {
    let mut words = vec![
        env!("CARGO_BIN_EXE_provision").to_string(),
        "-C".into(),
        demo.path().to_str().unwrap().into(),
    ];
    words.extend(args.iter().map(|a| a.to_string()));
    let line: Vec<String> = words.iter().map(|w| sh_quote(w)).collect();
    let input = demo.path().join(".answer");
    std::fs::write(&input, format!("{answer}\n")).unwrap();
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env_remove("CI")
        .env_remove("DEMO_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(std::fs::File::open(&input).unwrap());
    if let Some(ci) = ci {
        cmd.env("CI", ci);
    }
    Run::from(fleet::run_bounded(&mut cmd, BOUND))
}

// ---------------------------------------------------------------------------
// 1. First apply, and a no-op second apply.

#[test]
fn first_apply_writes_every_file_and_a_second_apply_writes_nothing() {
    let demo = Demo::new();
    let manifest = demo.manifest();
    assert!(manifest.files.len() > 10, "the demo host renders few files");

    let first = demo.run(&["apply", "--yes"]).expect(0);
    assert_contains(
        &first.stdout,
        "Applied: 1 host switched, 0 unchanged, 0 failed.",
    );

    // Every file of the definition, with its bytes and mode; nothing else
    // outside provision's own state.
    for f in &manifest.files {
        let p = demo.on_host(&f.path);
        assert!(
            std::fs::read(&p).unwrap() == f.bytes,
            "{} differs from the rendered file",
            f.path
        );
        assert_eq!(mode(&p), f.mode, "mode of {}", f.path);
    }
    let written: BTreeSet<String> = regular_files(&demo.root())
        .into_iter()
        .filter(|p| !p.starts_with("var/lib/provision/"))
        .map(|p| format!("/{p}"))
        .collect();
    let defined: BTreeSet<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(written, defined);

    // Generation 1 recorded, as render names it (no secrets: same id).
    assert_eq!(demo.current(), "generations/1.json");
    assert_eq!(demo.generations(), [1]);
    let record = demo.record(1);
    assert_eq!(record["number"], 1);
    assert_eq!(record["host"], "demo");
    assert_eq!(record["generation"], manifest.generation.as_str());
    let recorded: BTreeSet<String> = record["files"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(recorded, defined);
    assert_eq!(
        read_text(&demo.state().join("generations/1.status")),
        "ok\n"
    );
    assert!(read_text(&demo.state().join("last-switch")).starts_with("ok 1\n"));

    // The store holds each content once, named by its sha256.
    let wanted: BTreeSet<String> = manifest.files.iter().map(|f| f.sha256.clone()).collect();
    assert_eq!(demo.store(), wanted);
    for id in &wanted {
        let bytes = std::fs::read(demo.state().join("store").join(id)).unwrap();
        assert_eq!(&sha256_hex(&bytes), id, "store/{id} is damaged");
    }
    assert_eq!(mode(&demo.state()), 0o700);
    assert_eq!(mode(&demo.state().join("key")), 0o600);

    // Again: nothing to do, and nothing under the root is touched, not even
    // provision's own state.
    let before = footprint(&demo.root());
    let again = demo.run(&["apply", "--yes"]).expect(0);
    assert_contains(&again.stdout, "No changes: nothing was written.");
    assert_contains(&again.stdout, "demo generation 1 (");
    assert_unchanged(&before, &footprint(&demo.root()), "a no-op apply");
    assert_eq!(demo.generations(), [1]);
}

// ---------------------------------------------------------------------------
// 2. Confirmation.

#[test]
fn apply_refuses_without_yes_when_it_cannot_ask() {
    let demo = Demo::new();

    // A host never applied: nothing of the definition appears. The probe
    // creates the host's fingerprint key on first contact (by design, see
    // probe.sh); that is all.
    let refused = demo.run(&["apply"]).expect(1);
    assert_contains(&refused.stderr, "pass --yes");
    let added = format!("Plan: {} to add", demo.manifest().files.len());
    assert_contains(&refused.stdout, &added);
    assert_eq!(
        regular_files(&demo.root()),
        BTreeSet::from(["var/lib/provision/key".to_string()])
    );

    // Applied, then a change pending: refused without a terminal, and with
    // CI set, and nothing is written either way.
    demo.run(&["apply", "--yes"]).expect(0);
    demo.script("v2");
    let before = footprint(&demo.root());
    for ci in [None, Some("true")] {
        let mut cmd = demo.command(&["apply"]);
        if let Some(ci) = ci {
            cmd.env("CI", ci);
        }
        let run = Run::from(fleet::run_bounded(&mut cmd, BOUND)).expect(1);
        assert_contains(&run.stderr, "pass --yes");
        assert!(!run.stdout.contains("Applied"), "CI={ci:?}: {}", run.all());
        assert_unchanged(&before, &footprint(&demo.root()), "a refused apply");
    }
    // The change is still pending, and a no-op apply needs no --yes.
    demo.run(&["plan", "--detailed-exitcode"]).expect(2);
    demo.run(&["apply", "--yes"]).expect(0);
    let noop = demo.run(&["apply"]).expect(0);
    assert_contains(&noop.stdout, "No changes: nothing was written.");
}

#[test]
fn apply_asks_on_a_terminal_but_never_with_ci_set() {
    if !have_script() {
        eprintln!(
            "SKIPPED apply_local::apply_asks_on_a_terminal_but_never_with_ci_set: no `script`"
        );
        return;
    }
    let demo = Demo::new();
    demo.run(&["apply", "--yes"]).expect(0);
    demo.script("v2");
    let before = footprint(&demo.root());

    // CI set: refuses without asking, even on a terminal and with "yes" typed.
    let ci = on_terminal(&demo, &["apply"], "yes", Some("true")).expect(1);
    assert_contains(&ci.stdout, "pass --yes");
    assert!(
        !ci.stdout.contains("Only 'yes'"),
        "asked with CI set:\n{}",
        ci.stdout
    );
    assert_unchanged(&before, &footprint(&demo.root()), "an apply with CI set");

    // A terminal: asks once; anything but "yes" is a no.
    let no = on_terminal(&demo, &["apply"], "y", None).expect(1);
    assert_contains(&no.stdout, "Only 'yes' is accepted");
    assert_contains(&no.stdout, "Not applied.");
    assert_unchanged(&before, &footprint(&demo.root()), "an apply answered `y`");

    // "yes" applies: the terminal really reaches provision.
    let yes = on_terminal(&demo, &["apply"], "yes", None).expect(0);
    assert_contains(&yes.stdout, "1 host switched");
    assert_eq!(demo.current(), "generations/2.json");
}

// ---------------------------------------------------------------------------
// 3. The host's lock.

#[test]
fn a_held_lock_refuses_apply_and_lock_wait_waits_for_it() {
    let demo = Demo::new();
    demo.run(&["apply", "--yes"]).expect(0);
    let v2 = demo.script("v2");

    // Held as apply.sh holds it: the holder line first, then flock.
    let holder = "tester@ci.example from 192.0.2.7 since 2026-01-01T00:00:00Z";
    std::fs::write(demo.state().join("lock.holder"), format!("{holder}\n")).unwrap();
    let lock = LockHolder::start(&demo.state().join("lock"));

    let before = footprint(&demo.root());
    let refused = demo.run(&["apply", "--yes"]).expect(1);
    // The host's error, once, on stderr; its progress line says only what
    // kind of failure it was.
    let said = format!("another apply holds the host's lock: {holder}");
    assert_eq!(
        refused.stderr.matches(&said).count(),
        1,
        "{}",
        refused.all()
    );
    assert!(!refused.stdout.contains(&said), "{}", refused.all());
    assert_contains(&refused.stderr, "--lock-wait");
    assert_contains(&refused.stderr, "demo: FAILED locked (");
    // The refused session opened the lock and made sure of the state
    // directory (chmod 700, which sets its ctime), nothing more.
    let mut after = footprint(&demo.root());
    let mut before = before;
    before.remove("var/lib/provision");
    after.remove("var/lib/provision");
    assert_unchanged(&before, &after, "an apply refused by the lock");
    assert_eq!(demo.current(), "generations/1.json");

    // --lock-wait: the apply blocks in `flock -w` (an unusual number of
    // seconds, to find its process) until the lock is released.
    let mut waiting = Background::start(demo.command(&["apply", "--yes", "--lock-wait", "37"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_descendant(waiting.child.id(), &["flock", "-w", "37", "9"]) {
        if let Some(status) = waiting.child.try_wait().unwrap() {
            panic!(
                "apply ended ({status}) instead of waiting for the lock:\n{}",
                waiting.stdout()
            );
        }
        assert!(Instant::now() < deadline, "apply never waited for the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        demo.current(),
        "generations/1.json",
        "switched while locked"
    );

    lock.release();
    let (code, text) = waiting.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{text}");
    assert_contains(&text, "1 host switched");
    assert_eq!(demo.current(), "generations/2.json");
    assert!(std::fs::read(demo.on_host(SCRIPT)).unwrap() == v2);
    // The apply that took the lock names itself as its holder.
    let now = read_text(&demo.state().join("lock.holder"));
    assert!(!now.contains("tester@ci.example"), "{now}");
    assert_contains(&now, "from this machine since ");
}

// ---------------------------------------------------------------------------
// 4. Saved plans.

#[test]
fn a_saved_plan_is_applied_as_made_and_refused_once_stale() {
    let demo = Demo::new();
    demo.run(&["apply", "--yes"]).expect(0);

    // Saved, then applied: exactly that generation, without asking.
    let v2 = demo.script("v2");
    let saved = demo.file("plan.json");
    let before = footprint(&demo.root());
    demo.run(&["plan", "-o", &saved]).expect(0);
    assert_unchanged(&before, &footprint(&demo.root()), "plan -o");
    let plan: Value = serde_json::from_str(&read_text(Path::new(&saved))).unwrap();
    assert_eq!(plan["format"], "provision-plan-v2");
    assert_eq!(plan["hosts"][0]["host"], "demo");
    assert_eq!(plan["hosts"][0]["generation"], 2);
    let generation = plan["hosts"][0]["generation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let applied = demo.run(&["apply", &saved]).expect(0);
    assert_contains(&applied.stdout, "1 host switched");
    assert_eq!(demo.current(), "generations/2.json");
    assert_eq!(demo.record(2)["generation"], generation.as_str());
    assert!(std::fs::read(demo.on_host(SCRIPT)).unwrap() == v2);

    // The same plan again: the host moved on, so it is stale.
    let before = footprint(&demo.root());
    let again = demo.run(&["apply", &saved]).expect(1);
    assert_contains(&again.stdout, "changed since the plan was made");
    assert_unchanged(&before, &footprint(&demo.root()), "a stale saved plan");

    // Saved, then the repository changes: refused, nothing written.
    demo.script("v3");
    demo.run(&["plan", "-o", &saved]).expect(0);
    demo.script("v4");
    let stale = demo.run(&["apply", &saved]).expect(1);
    assert_contains(
        &stale.stdout,
        "the repository or a secret changed since the plan was made",
    );
    assert_unchanged(
        &before,
        &footprint(&demo.root()),
        "a saved plan of an older repository",
    );
    assert!(std::fs::read(demo.on_host(SCRIPT)).unwrap() == v2);

    // Saved, then the host changes by hand: refused, nothing written.
    demo.run(&["plan", "-o", &saved]).expect(0);
    let alert = demo.on_host("/usr/local/lib/provision/alert");
    std::fs::set_permissions(&alert, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let before = footprint(&demo.root());
    let moved = demo.run(&["apply", &saved]).expect(1);
    assert_contains(&moved.stdout, "the host changed since the plan was made");
    assert_unchanged(
        &before,
        &footprint(&demo.root()),
        "a saved plan of an older host",
    );
    assert_eq!(demo.generations(), [1, 2]);
}

// ---------------------------------------------------------------------------
// 5. Plan: exit codes, JSON, drift, removals.

#[test]
fn plan_reports_pending_changes_drift_and_removals() {
    let demo = Demo::new();
    let motd = r#"file "/etc/motd" content="managed\n""#;
    demo.define(motd, "");

    // Pending: exit 2 with --detailed-exitcode, 0 without; JSON agrees.
    demo.run(&["plan", "--detailed-exitcode"]).expect(2);
    demo.run(&["plan"]).expect(0);
    let pending = json(&demo.run(&["plan", "--json"]).expect(0));
    assert_eq!(pending["changes"], true);
    let files = pending["hosts"][0]["plan"]["files"].as_array().unwrap();
    assert_eq!(files.len(), demo.manifest().files.len());
    assert!(files.iter().all(|f| f["action"] == "create"));

    // Applied: nothing pending, and plan is read-only.
    demo.run(&["apply", "--yes"]).expect(0);
    let before = footprint(&demo.root());
    demo.run(&["plan", "--detailed-exitcode"]).expect(0);
    let clean = json(&demo.run(&["plan", "--json"]).expect(0));
    assert_eq!(clean["changes"], false);
    assert_eq!(clean["hosts"][0]["plan"]["files"], serde_json::json!([]));
    assert_eq!(clean["hosts"][0]["plan"]["current"], 1);
    assert_unchanged(&before, &footprint(&demo.root()), "plan");

    // Drift: content, mode and a deleted file, all changed by hand.
    let script = demo.on_host(SCRIPT);
    let original = std::fs::read(&script).unwrap();
    let mut edited = original.clone();
    edited.extend_from_slice(b"# by hand\n");
    std::fs::write(&script, &edited).unwrap();
    let alert = demo.on_host("/usr/local/lib/provision/alert");
    std::fs::set_permissions(&alert, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::remove_file(demo.on_host("/etc/provision/alerts/routes")).unwrap();
    let before = footprint(&demo.root());
    let plan = demo.run(&["plan", "--detailed-exitcode"]).expect(2);
    let drift = "drift: changed on the host since provision wrote it";
    let line = plan_line(&plan.stdout, SCRIPT);
    assert!(
        line.trim_start().starts_with('~') && line.contains(drift),
        "{line}"
    );
    assert_contains(&plan.stdout, "-# by hand");
    let line = plan_line(&plan.stdout, "/usr/local/lib/provision/alert");
    assert!(
        line.contains("mode 0700 -> 0755") && line.contains(drift),
        "{line}"
    );
    let line = plan_line(&plan.stdout, "/etc/provision/alerts/routes");
    assert!(
        line.trim_start().starts_with('+') && line.contains(drift),
        "{line}"
    );
    assert_contains(
        &plan.stdout,
        "Plan: 1 to add, 2 to change, 0 to remove (3 drifted)",
    );
    let v = json(&demo.run(&["plan", "--json"]).expect(0));
    let drifted: Vec<&str> = v["hosts"][0]["plan"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["drift"] == true)
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        drifted,
        [
            "/etc/provision/alerts/routes",
            SCRIPT,
            "/usr/local/lib/provision/alert"
        ]
    );
    assert_unchanged(&before, &footprint(&demo.root()), "plan of a drifted host");

    // Apply puts it all back.
    demo.run(&["apply", "--yes"]).expect(0);
    assert!(std::fs::read(&script).unwrap() == original);
    assert_eq!(mode(&alert), 0o755);
    assert!(demo.on_host("/etc/provision/alerts/routes").is_file());
    demo.run(&["plan", "--detailed-exitcode"]).expect(0);

    // A file dropped from the definition is removed from the host.
    demo.define("", "");
    let plan = demo.run(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan_line(&plan.stdout, "/etc/motd")
            .trim_start()
            .starts_with('-')
    );
    assert_contains(&plan.stdout, "0 to add, 0 to change, 1 to remove");
    demo.run(&["apply", "--yes"]).expect(0);
    assert!(!demo.on_host("/etc/motd").exists());
    demo.run(&["plan", "--detailed-exitcode"]).expect(0);
}

/// A plan reads again only the files whose device, inode, size, mtime and
/// ctime changed since it last read them (the host's root-only
/// `stat/record`), and a hand edit that keeps the size and puts the mtime
/// back is still drift: its ctime moved, which only root can set back.
#[test]
fn a_same_size_edit_with_its_mtime_put_back_is_still_drift() {
    let demo = Demo::new();
    demo.define(r#"file "/etc/motd" content="managed\n""#, "");
    demo.run(&["apply", "--yes"]).expect(0);
    // A file whose ctime is not at least 2 whole seconds behind the host's
    // clock is not recorded (a second write in the same clock tick could
    // leave every value equal): wait past the 3 s that can take.
    std::thread::sleep(Duration::from_millis(3200));
    demo.run(&["plan", "--detailed-exitcode"]).expect(0);
    let record_file = demo.state().join("stat/record");
    let record = std::fs::read_to_string(&record_file).unwrap();
    assert_eq!(mode(&record_file), 0o600);
    let managed = sha256_hex(b"managed\n");
    let line = record
        .lines()
        .find(|l| l.ends_with("\t/etc/motd"))
        .unwrap_or_else(|| panic!("/etc/motd is not recorded:\n{record}"));
    assert!(line.contains(&format!("\t{managed}\t")), "{line}");

    // The record is believed while the file matches it: a forged id for an
    // untouched file shows as drift, so the file was not read again.
    let forged = record.replace(&managed, &sha256_hex(b"forged\n"));
    std::fs::write(&record_file, forged).unwrap();
    let plan = demo.run(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan_line(&plan.stdout, "/etc/motd").contains("drift"),
        "{}",
        plan.stdout
    );
    std::fs::write(&record_file, &record).unwrap();
    demo.run(&["plan", "--detailed-exitcode"]).expect(0);

    // Same size, mtime put back to the nanosecond: ctime still gives it away.
    let motd = demo.on_host("/etc/motd");
    let mtime = std::fs::metadata(&motd).unwrap().modified().unwrap();
    std::fs::write(&motd, "MANAGED\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&motd)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let now = std::fs::metadata(&motd).unwrap();
    assert_eq!(now.modified().unwrap(), mtime);
    assert_eq!(now.len(), 8);
    let plan = demo.run(&["plan", "--detailed-exitcode"]).expect(2);
    let line = plan_line(&plan.stdout, "/etc/motd");
    assert!(
        line.trim_start().starts_with('~') && line.contains("drift"),
        "{}",
        plan.stdout
    );
}

#[test]
fn plan_writes_nothing_but_the_fingerprint_key() {
    let demo = Demo::new();
    demo.run(&["plan"]).expect(0);
    // The key that makes secret fingerprints unguessable is created on first
    // contact (probe.sh says so); nothing else.
    assert_eq!(
        regular_files(&demo.root()),
        BTreeSet::from(["var/lib/provision/key".to_string()])
    );
    assert_eq!(mode(&demo.state().join("key")), 0o600);
    let before = footprint(&demo.root());
    demo.run(&["plan", "--json"]).expect(0);
    demo.run(&["plan", "--detailed-exitcode"]).expect(2);
    assert_unchanged(&before, &footprint(&demo.root()), "a second plan");
}

#[test]
fn a_symlink_at_a_managed_path_is_quarantined_never_written_through() {
    let demo = Demo::new();
    demo.run(&["apply", "--yes"]).expect(0);
    let routes = demo.on_host("/etc/provision/alerts/routes");
    let outside = demo.path().join("outside");
    std::fs::write(&outside, "not the host's\n").unwrap();
    std::fs::remove_file(&routes).unwrap();
    std::os::unix::fs::symlink(&outside, &routes).unwrap();

    let plan = demo.run(&["plan", "--detailed-exitcode"]).expect(2);
    assert_contains(
        &plan.stdout,
        "tampering: /etc/provision/alerts/routes is a symlink to",
    );
    assert_contains(&plan.stdout, "quarantine");
    demo.run(&["apply", "--yes"]).expect(0);
    assert_eq!(read_text(&outside), "not the host's\n");
    let meta = std::fs::symlink_metadata(&routes).unwrap();
    assert!(meta.file_type().is_file(), "{meta:?}");
    let log = read_text(&demo.state().join("quarantine/log"));
    assert!(
        log.contains("/etc/provision/alerts/routes") && log.contains("symlink to"),
        "{log}"
    );
    demo.run(&["plan", "--detailed-exitcode"]).expect(0);
}

// ---------------------------------------------------------------------------
// 6. Secrets.

const TOKEN_ONE: &str = "tok-one-8Fq2Zx";
const TOKEN_TWO: &str = "tok-two-Lm4Rw9";
const TOKEN_THREE: &str = "tok-three-Pq7Nc3";
const BY_HAND: &str = "by-hand-Vb5Ty1";

#[test]
fn secrets_never_leave_the_host_and_land_with_mode_0600() {
    let demo = Demo::new();
    demo.define("", SECRET);
    let one = [("DEMO_TOKEN", TOKEN_ONE)];
    let two = [("DEMO_TOKEN", TOKEN_TWO)];
    let three = [("DEMO_TOKEN", TOKEN_THREE)];
    // Every output and every saved plan, checked for values at the end.
    let mut shown = Shown::default();

    // New: shown as a secret file, never its value.
    let plan = shown.run(demo.run_env(&["plan"], &one).expect(0));
    assert_contains(plan_line(&plan.stdout, ENV_FILE), "(secret)");
    let v = json(&shown.run(demo.run_env(&["plan", "--json"], &one).expect(0)));
    let entry = v["hosts"][0]["plan"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == ENV_FILE)
        .unwrap()
        .clone();
    assert_eq!(entry["secret"], true);
    assert!(entry["diff"].is_null(), "{entry}");
    let saved = demo.file("plan-1.json");
    shown.run(demo.run_env(&["plan", "-o", &saved], &one).expect(0));
    shown.file(&saved);
    shown.run(demo.run_env(&["apply", &saved], &one).expect(0));

    // On the host: the value, mode 0600; recorded by a keyed id, never by the
    // file's sha256, which could be checked against guessed values.
    let env = demo.on_host(ENV_FILE);
    assert_contains(&read_text(&env), &format!("TOKEN=\"{TOKEN_ONE}\""));
    assert_eq!(mode(&env), 0o600);
    let sha = sha256_hex(&std::fs::read(&env).unwrap());
    let id = demo.record(1)["files"][ENV_FILE]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("hmac-") && !id.contains(&sha), "{id}");

    // Changed: "(secret changed", with the keyed id only.
    let plan = shown.run(demo.run_env(&["plan"], &two).expect(0));
    assert_contains(plan_line(&plan.stdout, ENV_FILE), "(secret changed, hmac-");
    shown.run(demo.run_env(&["plan", "--json"], &two).expect(0));
    shown.run(demo.run_env(&["plan", "-o", &saved], &two).expect(0));
    shown.file(&saved);

    // A saved plan with another value than now: refused, naming no value.
    let stale = shown.run(demo.run_env(&["apply", &saved], &three).expect(1));
    assert_contains(&stale.stdout, "a secret changed since the plan was made");
    assert_contains(&read_text(&env), TOKEN_ONE);
    shown.run(demo.run_env(&["apply", &saved], &two).expect(0));
    assert_contains(&read_text(&env), &format!("TOKEN=\"{TOKEN_TWO}\""));
    assert_eq!(mode(&env), 0o600);

    // Changed by hand: drift on a secret, its content not shown.
    std::fs::write(&env, format!("TOKEN=\"{BY_HAND}\"\n")).unwrap();
    let plan = shown.run(
        demo.run_env(&["plan", "--detailed-exitcode"], &two)
            .expect(2),
    );
    let line = plan_line(&plan.stdout, ENV_FILE);
    assert!(
        line.contains("(secret changed") && line.contains("drift"),
        "{line}"
    );
    shown.run(demo.run_env(&["plan", "--json"], &two).expect(0));
    shown.run(demo.run_env(&["apply", "--yes"], &two).expect(0));
    assert_contains(&read_text(&env), TOKEN_TWO);
    assert_eq!(mode(&env), 0o600);

    // Rolled back from the store (no secret resolved): the old value.
    shown.run(
        demo.run(&["rollback", "demo", "--to", "1", "--yes"])
            .expect(0),
    );
    assert_contains(&read_text(&env), &format!("TOKEN=\"{TOKEN_ONE}\""));
    assert_eq!(mode(&env), 0o600);
    shown.run(demo.run(&["generations", "demo", "--json"]).expect(0));

    for text in &shown.0 {
        for value in [TOKEN_ONE, TOKEN_TWO, TOKEN_THREE, BY_HAND] {
            assert!(!text.contains(value), "{value} was shown:\n{text}");
        }
        assert!(
            !text.contains(&sha),
            "the plain sha256 of the secrets file was shown:\n{text}"
        );
    }
    // Only the store (in the 0700 state directory) keeps values; records,
    // logs and the lock holder do not.
    assert_eq!(mode(&demo.state()), 0o700);
    for rel in regular_files(&demo.state()) {
        if rel.starts_with("store/") {
            continue;
        }
        let text =
            String::from_utf8_lossy(&std::fs::read(demo.state().join(&rel)).unwrap()).into_owned();
        for value in [TOKEN_ONE, TOKEN_TWO, TOKEN_THREE, BY_HAND] {
            assert!(
                !text.contains(value),
                "{value} is in var/lib/provision/{rel}"
            );
        }
    }
}

#[test]
fn every_missing_secret_is_reported_at_once_and_other_hosts_go_on() {
    let demo = Demo::new();
    let lab = with_lab(&demo);
    // Three secrets: one resolves, one is unset, one's command fails after
    // printing a value on stdout and the value again on stderr.
    let api = r#"secret "API_KEY" from="env:DEMO_API_KEY""#;
    let cmd = r#"secret "VAULT" from="cmd:printf 'vault-%s' Zq81Lm; printf 'vault: not logged in (vault-%s)' Zq81Lm >&2; exit 3""#;
    demo.define("", &format!("{SECRET}\n        {api}\n        {cmd}"));
    let set = [("DEMO_API_KEY", "api-key-Hx3Jq8")];
    for args in [&["plan"][..], &["apply", "--yes"]] {
        let run = demo.run_env(args, &set).expect(4);
        let all = run.all();
        // Both failures, each with its place, name, source and reason.
        assert_contains(&all, "2 secrets could not be resolved");
        assert_contains(&all, "hosts/demo.kdl:");
        assert_contains(
            &all,
            "secret `TOKEN` of agent `scheduler` (env:DEMO_TOKEN): the environment variable DEMO_TOKEN is not set",
        );
        assert_contains(&all, "secret `VAULT` of agent `scheduler` (cmd:");
        assert_contains(
            &all,
            "the command exited with status 3; it said: vault: not logged in (",
        );
        // The host that needs no secret went on.
        assert_contains(&all, "lab");
        for value in ["api-key-Hx3Jq8", "vault-Zq81Lm"] {
            assert!(!all.contains(value), "{value} printed: {all}");
        }
    }
    assert_eq!(read_text(&lab.join("etc/motd")), "lab\n");
    assert!(!demo.root().exists(), "demo was touched");

    let run = demo.run_env(&["plan", "--json"], &set).expect(4);
    let v = json(&run);
    assert_eq!(v["ok"], false);
    assert_eq!(v["command"], "plan");
    let demo_entry = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "demo")
        .expect("demo is reported");
    assert_eq!(demo_entry["error"]["kind"], "secret");
    assert_contains(
        demo_entry["error"]["message"].as_str().unwrap(),
        "env:DEMO_TOKEN",
    );
    assert!(!run.all().contains("api-key-Hx3Jq8"), "{}", run.all());
    assert!(!run.all().contains("vault-Zq81Lm"), "{}", run.all());

    // `render --with-secrets` of the one host names them all too.
    let out = demo.path().join("out");
    let run = demo
        .run_env(
            &[
                "render",
                "demo",
                "--with-secrets",
                "--out",
                out.to_str().unwrap(),
            ],
            &set,
        )
        .expect(1);
    assert_contains(&run.stderr, "2 secrets could not be resolved");
    assert!(!run.all().contains("vault-Zq81Lm"), "{}", run.all());
}

fn listed(run: &Run) -> Vec<(u64, bool)> {
    run.stdout
        .lines()
        .filter_map(|l| {
            let n = l.split_whitespace().next()?.parse().ok()?;
            assert_contains(l, "  ok");
            Some((n, l.ends_with("(current)")))
        })
        .collect()
}

#[test]
fn generations_are_listed_and_rollback_switches_back_from_the_store() {
    let demo = Demo::new();
    let motd = |text: &str| format!(r#"file "/etc/motd" content="{text}\n""#);
    // 1: script v1 and a motd; 2: script v2, no motd; 3: v3, another motd.
    let v1 = demo.script("v1");
    demo.define(&motd("one"), "");
    demo.run(&["apply", "--yes"]).expect(0);
    let v2 = demo.script("v2");
    demo.define("", "");
    demo.run(&["apply", "--yes"]).expect(0);
    let v3 = demo.script("v3");
    demo.define(&motd("three"), "");
    demo.run(&["apply", "--yes"]).expect(0);
    let script = demo.on_host(SCRIPT);
    let motd_file = demo.on_host("/etc/motd");

    let list = demo.run(&["generations", "demo"]).expect(0);
    assert_eq!(
        listed(&list),
        [(1, false), (2, false), (3, true)],
        "{}",
        list.stdout
    );
    let v = json(&demo.run(&["generations", "demo", "--json"]).expect(0));
    let current: Vec<(u64, bool)> = v["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["generation"].as_u64().unwrap(), g["current"] == true))
        .collect();
    assert_eq!(current, [(1, false), (2, false), (3, true)]);

    // Without --yes and a terminal: refused.
    let before = footprint(&demo.root());
    let refused = demo.run(&["rollback", "demo"]).expect(1);
    assert_contains(&refused.stderr, "--yes");
    assert_unchanged(&before, &footprint(&demo.root()), "a refused rollback");

    // Back one: generation 2's files, its motd gone.
    let back = demo.run(&["rollback", "demo", "--yes"]).expect(0);
    assert_contains(&back.stdout, "demo is at generation 2.");
    assert!(
        !back.stdout.contains("upload"),
        "a rollback uploaded:\n{}",
        back.stdout
    );
    assert_eq!(demo.current(), "generations/2.json");
    assert!(std::fs::read(&script).unwrap() == v2);
    assert!(!motd_file.exists());

    // To 1: its motd back, from the store.
    demo.run(&["rollback", "demo", "--to", "1", "--yes"])
        .expect(0);
    assert_eq!(demo.current(), "generations/1.json");
    assert!(std::fs::read(&script).unwrap() == v1);
    assert_eq!(read_text(&motd_file), "one\n");
    let list = demo.run(&["generations", "demo"]).expect(0);
    assert_eq!(listed(&list), [(1, true), (2, false), (3, false)]);

    // Nowhere to go: clear errors, nothing touched.
    let before = footprint(&demo.root());
    let nine = demo
        .run(&["rollback", "demo", "--to", "9", "--yes"])
        .expect(1);
    assert_contains(
        &nine.stderr,
        "demo: it keeps no generation 9 (it keeps: 1, 2, 3)",
    );
    let first = demo.run(&["rollback", "demo", "--yes"]).expect(1);
    assert_contains(
        &first.stderr,
        "demo has no generation before its current one",
    );
    let same = demo
        .run(&["rollback", "demo", "--to", "1", "--yes"])
        .expect(0);
    assert_contains(&same.stdout, "demo is already at that generation.");
    assert_unchanged(
        &before,
        &footprint(&demo.root()),
        "rollbacks that had nowhere to go",
    );

    // The next apply numbers after the latest, not after the current.
    demo.run(&["apply", "--yes"]).expect(0);
    assert_eq!(demo.current(), "generations/4.json");
    assert!(std::fs::read(&script).unwrap() == v3);
    assert_eq!(read_text(&motd_file), "three\n");
}

#[test]
fn apply_keep_drops_old_generations_and_the_contents_only_they_used() {
    let demo = Demo::new();
    let versions: Vec<Vec<u8>> = (1..=4)
        .map(|n| {
            let bytes = demo.script(&format!("v{n}"));
            demo.run(&["apply", "--yes"]).expect(0);
            bytes
        })
        .collect();
    assert_eq!(demo.generations(), [1, 2, 3, 4]);
    let v5 = demo.script("v5");
    demo.run(&["apply", "--yes", "--keep", "2"]).expect(0);

    assert_eq!(demo.current(), "generations/5.json");
    assert_eq!(demo.generations(), [4, 5]);
    let left: BTreeSet<String> = std::fs::read_dir(demo.state().join("generations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let kept: BTreeSet<String> = [4, 5]
        .iter()
        .flat_map(|n| ["json", "files", "status"].map(|ext| format!("{n}.{ext}")))
        .collect();
    assert_eq!(left, kept);

    // The store holds exactly what generations 4 and 5 use.
    let used: BTreeSet<String> = [4, 5]
        .iter()
        .flat_map(|n| {
            let rec = demo.record(*n);
            let ids: Vec<String> = rec["files"]
                .as_object()
                .unwrap()
                .values()
                .map(|f| f["id"].as_str().unwrap().to_string())
                .collect();
            ids
        })
        .collect();
    assert_eq!(demo.store(), used);
    for (n, bytes) in versions.iter().enumerate() {
        let held = demo.store().contains(&sha256_hex(bytes));
        assert_eq!(held, n + 1 == 4, "store holding script v{}", n + 1);
    }
    assert!(demo.store().contains(&sha256_hex(&v5)));

    // What was dropped cannot be rolled back to; what was kept can.
    let gone = demo
        .run(&["rollback", "demo", "--to", "1", "--yes"])
        .expect(1);
    assert_contains(
        &gone.stderr,
        "demo: it keeps no generation 1 (it keeps: 4, 5)",
    );
    demo.run(&["rollback", "demo", "--yes"]).expect(0);
    assert!(std::fs::read(demo.on_host(SCRIPT)).unwrap() == versions[3]);
}

#[test]
fn a_rollback_keeps_its_generation_beyond_the_newest_ten() {
    // rollback keeps the newest 10 generations plus the one it switches to.
    let demo = Demo::new();
    let mut versions = Vec::new();
    for n in 1..=12 {
        versions.push(demo.script(&format!("v{n}")));
        demo.run(&["apply", "--yes", "--keep", "20"]).expect(0);
    }
    demo.run(&["rollback", "demo", "--to", "1", "--yes"])
        .expect(0);
    assert_eq!(demo.current(), "generations/1.json");
    let mut expected = vec![1];
    expected.extend(3..=12);
    assert_eq!(demo.generations(), expected);
    assert!(std::fs::read(demo.on_host(SCRIPT)).unwrap() == versions[0]);
    assert!(demo.store().contains(&sha256_hex(&versions[0])));
    assert!(!demo.store().contains(&sha256_hex(&versions[1])));
}

// ---------------------------------------------------------------------------
// 8. Selecting hosts.

/// A second local host, `lab`, tagged `lab`, with one file.
fn with_lab(demo: &Demo) -> PathBuf {
    demo.fleet.write(
        "hosts/lab.kdl",
        "host \"lab\" {\n    local \"lab/root\"\n    tags \"lab\"\n    file \"/etc/motd\" content=\"lab\\n\"\n}\n",
    );
    demo.path().join("lab/root")
}

#[test]
fn hosts_are_selected_by_name_and_tag() {
    let demo = Demo::new();
    let lab = with_lab(&demo);

    // Only the selected host is reached: the other's root is not created.
    assert_eq!(
        planned_hosts(&demo.run(&["plan", "--json", "@lab"]).expect(0)),
        ["lab"]
    );
    demo.run(&["apply", "--yes", "lab"]).expect(0);
    assert_eq!(read_text(&lab.join("etc/motd")), "lab\n");
    assert!(
        !demo.root().exists(),
        "demo was reached without being selected"
    );

    let text = demo.run(&["plan", "lab"]).expect(0);
    assert!(
        text.stdout.starts_with("lab generation 1"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("demo"), "{}", text.stdout);
    assert_eq!(
        planned_hosts(&demo.run(&["plan", "--json", "demo"]).expect(0)),
        ["demo"]
    );
    assert_eq!(
        planned_hosts(&demo.run(&["plan", "--json", "@demo"]).expect(0)),
        ["demo"]
    );
    assert_eq!(
        planned_hosts(&demo.run(&["plan", "--json", "@lab", "demo"]).expect(0)),
        ["demo", "lab"]
    );
    assert_eq!(
        planned_hosts(&demo.run(&["plan", "--json", "lab", "@lab"]).expect(0)),
        ["lab"]
    );
    assert_eq!(
        planned_hosts(&demo.run(&["plan", "--json"]).expect(0)),
        ["demo", "lab"]
    );
    assert_eq!(
        planned_hosts(&demo.run(&["plan", "--json", "--shard", "2/2"]).expect(0)),
        ["lab"]
    );
    // With --detailed-exitcode: demo has changes, lab has none.
    demo.run(&["plan", "--detailed-exitcode", "lab"]).expect(0);
    demo.run(&["plan", "--detailed-exitcode"]).expect(2);
}

#[test]
fn an_unknown_host_or_tag_is_an_error_with_a_suggestion() {
    let demo = Demo::new();
    let lab = with_lab(&demo);
    demo.run(&["apply", "--yes", "lab"]).expect(0);
    let before = footprint(&lab);

    for (args, message) in [
        (
            &["plan", "dmeo"][..],
            "no host `dmeo` in this repository; did you mean `demo`?",
        ),
        (
            &["apply", "--yes", "laab"],
            "no host `laab` in this repository; did you mean `lab`?",
        ),
        (&["apply", "--yes", "lab", "dmeo"], "did you mean `demo`?"),
        (&["generations", "lba"], "did you mean `lab`?"),
        (&["rollback", "lba", "--yes"], "did you mean `lab`?"),
        (&["plan", "@nosuch"], "no host has the tag `nosuch`"),
    ] {
        let run = demo.run(args).expect(1);
        assert_contains(&run.stderr, message);
    }
    assert_unchanged(&before, &footprint(&lab), "commands naming an unknown host");
    assert!(!demo.root().exists());
}

// ---------------------------------------------------------------------------
// Regressions: problems found once, kept from coming back.

#[test]
fn plan_on_a_local_host_announces_no_owner_change() {
    let demo = Demo::new();
    demo.run(&["apply", "--yes"]).expect(0);
    // AGENTS.md (owned by the agent's user in the definition) changes for
    // another reason: a new failure mode.
    demo.define(
        "",
        r#"failure-mode "disk full" "stop and alert" tool="disk""#,
    );
    let agents_md = "/var/lib/agents/scheduler/AGENTS.md";
    let owner = std::fs::metadata(demo.on_host(agents_md)).unwrap().uid();
    let plan = demo.run(&["plan"]).expect(0);
    let line = plan_line(&plan.stdout, agents_md).to_string();
    demo.run(&["apply", "--yes"]).expect(0);
    // Owners are not applied on a local host (switch.sh skips chown): the
    // file keeps its owner, so the plan should not promise another.
    assert_eq!(
        std::fs::metadata(demo.on_host(agents_md)).unwrap().uid(),
        owner
    );
    assert!(
        !line.contains("owner "),
        "the plan promised an owner change: {line}"
    );
}

#[test]
fn a_tampered_host_is_not_reported_as_unchanged() {
    let demo = Demo::new();
    demo.run(&["apply", "--yes"]).expect(0);
    let routes = demo.on_host("/etc/provision/alerts/routes");
    std::fs::remove_file(&routes).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &routes).unwrap();
    let plan = demo.run(&["plan", "--detailed-exitcode"]).expect(2);
    assert_contains(
        &plan.stdout,
        "tampering: /etc/provision/alerts/routes is a symlink",
    );
    assert!(
        !plan.stdout.contains("1 unchanged"),
        "a tampered host is reported unchanged:\n{}",
        plan.stdout
    );
}

/// Every apply records each host's outcome in `.provision/last-apply.json`;
/// `--retry-failed` plans again only the hosts that failed there, and says
/// which run the record came from. Without a record it says how to get one.
#[test]
fn retry_failed_takes_only_what_failed_in_the_last_apply() {
    let demo = Demo::new();
    let none = demo.run(&["apply", "--yes", "--retry-failed"]).expect(1);
    assert_contains(&none.stderr, "no apply was recorded in this repository");
    assert_contains(&none.stderr, "run `provision apply` first");
    assert!(!demo.on_host(SCRIPT).exists(), "a host was touched");

    // The secret cannot be resolved: the host fails, and the record says so.
    demo.define("", SECRET);
    demo.run(&["apply", "--yes"]).expect(1);
    let path = demo.path().join(".provision/last-apply.json");
    let record: Value = serde_json::from_str(&read_text(&path)).unwrap();
    assert_eq!(record["version"], 1, "{record:#}");
    assert_eq!(record["hosts"][0]["host"], "demo", "{record:#}");
    assert_eq!(record["hosts"][0]["result"], "failed", "{record:#}");
    assert_eq!(record["hosts"][0]["kind"], "secret", "{record:#}");
    assert!(record["who"].as_str().unwrap().contains('@'), "{record:#}");
    assert!(!demo.on_host(SCRIPT).exists());

    // Retried once the secret is there: planned again, applied, recorded.
    let token = [("DEMO_TOKEN", TOKEN_ONE)];
    let retry = demo
        .run_env(&["apply", "--yes", "--retry-failed"], &token)
        .expect(0);
    assert_contains(
        &retry.stderr,
        "Retrying 1 host that failed in the apply of ",
    );
    assert_contains(&retry.stdout, "Applied: 1 host switched");
    assert!(demo.on_host(SCRIPT).exists());
    let text = read_text(&path);
    assert!(!text.contains(TOKEN_ONE), "{text}");
    let record: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(record["hosts"][0]["result"], "switched", "{record:#}");

    // Nothing failed last time: nothing to retry, nothing touched.
    let again = demo
        .run_env(&["apply", "--yes", "--retry-failed"], &token)
        .expect(0);
    assert_contains(
        &again.stderr,
        "Nothing to retry: no selected host failed in the apply of ",
    );

    // A saved plan is applied as made: no retry of it.
    let both = demo
        .run(&["apply", "--retry-failed", "plan.json"])
        .expect(1);
    assert_contains(&both.stderr, "cannot apply a saved plan");
}

/// `--json` and `-v` say where each host's time went: connect and probe for
/// a plan; for a switch also its phases on the host, the rest of its round
/// trip, each once, in the order they began.
#[test]
fn plan_and_apply_report_the_time_of_each_phase() {
    let demo = Demo::new();
    demo.define(r#"file "/etc/motd" content="one\n""#, "");
    let phases = |v: &Value| -> Vec<String> {
        v["hosts"][0]["timings"]
            .as_array()
            .unwrap_or_else(|| panic!("no timings: {v}"))
            .iter()
            .map(|p| {
                assert!(p["ms"].is_u64(), "{p}");
                p["phase"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let plan = json(&demo.run(&["plan", "--json"]).expect(0));
    assert_eq!(phases(&plan), ["connect", "probe"]);

    let apply = json(&demo.run(&["apply", "--yes", "--json"]).expect(0));
    let got = phases(&apply);
    // A first switch stops and removes nothing; on a local host the
    // daemon-reload, hooks and verification are skipped, but still phases.
    let want = [
        "connect",
        "probe",
        "lock",
        "upload",
        "check",
        "job-start",
        "prepare",
        "rename",
        "record",
        "daemon-reload",
        "hooks",
        "units",
        "gc",
        "job-exit",
        "session",
        "verify",
    ];
    assert_eq!(got, want, "{apply}");

    demo.define(r#"file "/etc/motd" content="two\n""#, "");
    let verbose = demo.run(&["-v", "apply", "--yes"]).expect(0);
    let line = verbose
        .stderr
        .lines()
        .find(|l| l.starts_with("demo: took "))
        .unwrap_or_else(|| panic!("no timings line:\n{}", verbose.all()));
    for phase in ["connect", "probe", "upload", "prepare", "rename", "session"] {
        assert!(line.contains(&format!("{phase} ")), "{line}");
    }
    // Not without -v.
    let quiet = demo.run(&["apply", "--yes"]).expect(0);
    assert!(!quiet.all().contains(" took "), "{}", quiet.all());
}
