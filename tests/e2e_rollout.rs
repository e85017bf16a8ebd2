//! Rollouts in waves on three real Debian targets (systemd-nspawn): a wave
//! whose verification fails stops the rollout, its hosts go back, and the
//! later waves are not attempted; every host ends in one reported outcome.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_rollout::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::Write as _;

use fleet::{Fleet, agent};

/// Host `name` on target `t`; its agent's auth check fails when `broken`.
fn define(f: &Fleet, name: &str, t: &nspawn::Target, broken: bool) {
    let mut body = agent("alpha", r#"restart "on-failure" delay="1s""#);
    if broken {
        body = body.replace("exit 0", r#"echo \"token expired\" >&2; exit 1"#);
    }
    f.host(name, &format!("root@{}", t.addr), 22, &t.host_key, &body);
}

fn current(t: &nspawn::Target) -> String {
    t.sh("readlink /var/lib/provision/current")
}

fn result_of(doc: &serde_json::Value, host: &str) -> String {
    doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("{host} is not reported: {doc:#}"))["outcome"]["result"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_failed_wave_stops_the_rollout_and_goes_back() {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_rollout::waves: {reason}");
        return;
    }
    let targets: Vec<nspawn::Target> = ["wa", "wb", "wc"]
        .iter()
        .map(|n| nspawn::Target::boot(n).unwrap_or_else(|e| panic!("boot: {e}")))
        .collect();
    let names = ["a", "b", "c"];
    let f = Fleet::new();
    f.agent_script("alpha", "v1");
    for (n, t) in names.iter().zip(&targets) {
        define(&f, n, t, false);
    }
    // A run holds at most --parallel connections: with 1, one host keeps
    // the connection it was planned over, the two others are closed and
    // connected again when their turn comes.
    let first = f
        .run(&["apply", "--yes", "--json", "--parallel", "1"])
        .expect(0);
    let doc: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    let reconnected: Vec<&str> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            assert_eq!(h["outcome"]["result"], "switched", "{doc:#}");
            h["timings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["phase"] == "reconnect")
        })
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(reconnected.len(), 2, "{doc:#}");
    // Hosts with nothing to do are not connected again.
    let again = f
        .run(&["apply", "--yes", "--json", "--parallel", "1"])
        .expect(0);
    assert!(!again.stdout.contains("\"reconnect\""), "{}", again.stdout);

    // Generation 2 everywhere; on b its auth check fails.
    f.agent_script("alpha", "v2");
    define(&f, "b", &targets[1], true);
    let run = f
        .run(&[
            "apply",
            "--yes",
            "--json",
            "--waves",
            "1,2,3",
            "--heartbeat-timeout",
            "30",
        ])
        .expect(3);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(result_of(&doc, "a"), "switched", "{doc:#}");
    assert_eq!(result_of(&doc, "b"), "verify-failed", "{doc:#}");
    assert_eq!(result_of(&doc, "c"), "not-attempted", "{doc:#}");
    assert_eq!(current(&targets[0]), "generations/2.json");
    assert_eq!(current(&targets[1]), "generations/1.json");
    assert_eq!(current(&targets[2]), "generations/1.json");
    assert!(t_has(&targets[2], "# v1"), "c was touched");

    // Now a and b in one wave: b fails again, so a goes back with it.
    f.agent_script("alpha", "v3");
    let run = f
        .run(&[
            "apply",
            "--yes",
            "--waves",
            "2",
            "--heartbeat-timeout",
            "30",
        ])
        .expect(3);
    let text = run.all();
    assert!(
        text.contains("a: switched to generation 3 and verified, then switched back to generation 2 with the rest of its wave"),
        "{text}"
    );
    assert!(
        text.contains("c: not attempted: wave 1 of 2 ended with 1 failed host"),
        "{text}"
    );
    assert!(text.contains("(1 not attempted)"), "{text}");
    assert_eq!(current(&targets[0]), "generations/2.json");
    assert!(t_has(&targets[0], "# v2"));
    assert_eq!(current(&targets[1]), "generations/1.json");
    assert_eq!(current(&targets[2]), "generations/1.json");

    // A budget that allows one failure lets the rollout go on past b.
    let run = f
        .run(&[
            "apply",
            "--yes",
            "--json",
            "--waves",
            "1,2,3",
            "--max-fail",
            "1",
            "--heartbeat-timeout",
            "30",
        ])
        .expect(3);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(result_of(&doc, "b"), "verify-failed", "{doc:#}");
    assert_eq!(result_of(&doc, "c"), "switched", "{doc:#}");
    assert!(t_has(&targets[2], "# v3"));
}

fn t_has(t: &nspawn::Target, marker: &str) -> bool {
    t.sh("cat /opt/agents/alpha/run.sh").contains(marker)
}

/// An `unreachable` route for a test subnet, removed when dropped: while a
/// test's link is down, nothing to that subnet follows the default route.
struct Unreachable(String);

impl Unreachable {
    fn add(net: &str) -> Self {
        let ok = std::process::Command::new("ip")
            .args(["route", "add", "unreachable", net, "metric", "4000"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot add an unreachable route for {net}");
        Unreachable(net.to_string())
    }
}

impl Drop for Unreachable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["route", "del", "unreachable", &self.0, "metric", "4000"])
            .status();
    }
}

/// A test's link taken down, brought back up when dropped.
struct LinkDown(String);

impl LinkDown {
    fn take(link: &str) -> Self {
        let ok = std::process::Command::new("ip")
            .args(["link", "set", link, "down"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot take {link} down");
        LinkDown(link.to_string())
    }
}

impl Drop for LinkDown {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "set", &self.0, "up"])
            .status();
    }
}

/// Host a of wave 1 cannot be reached (its link is down, behind an
/// `unreachable` route for its subnet): with `--max-fail 0` the rollout stops
/// before wave 2, with `--max-fail 1` it goes on; `--retry-failed` then
/// plans only a, and applies it once its link is back.
#[test]
fn an_unreachable_host_counts_against_the_budget_and_is_retried() {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED e2e_rollout::unreachable: {reason}"
        );
        return;
    }
    let targets: Vec<nspawn::Target> = ["ua", "ub"]
        .iter()
        .map(|n| nspawn::Target::boot(n).unwrap_or_else(|e| panic!("boot: {e}")))
        .collect();
    let f = Fleet::new();
    f.agent_script("alpha", "v1");
    define(&f, "a", &targets[0], false);
    define(&f, "b", &targets[1], false);

    let down = targets[0].idx();
    let route = Unreachable::add(&format!("10.213.{down}.0/24"));
    let link = LinkDown::take(&format!("pvh-{down}"));

    let started = std::time::Instant::now();
    let run = f
        .run(&["apply", "--yes", "--json", "--waves", "1,2"])
        .expect(1);
    eprintln!("max-fail 0, a unreachable: {:?}", started.elapsed());
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let a = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "a")
        .unwrap();
    assert_eq!(a["error"]["kind"], "unreachable", "{doc:#}");
    assert_eq!(result_of(&doc, "b"), "not-attempted", "{doc:#}");
    let b_state = targets[1].ssh("test -e /var/lib/provision/current");
    assert!(!b_state.status.success(), "b was switched");

    let run = f
        .run(&[
            "apply",
            "--yes",
            "--json",
            "--waves",
            "1,2",
            "--max-fail",
            "1",
        ])
        .expect(4);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(result_of(&doc, "b"), "switched", "{doc:#}");
    assert_eq!(current(&targets[1]), "generations/1.json");

    // Still down: the retry plans a only, and fails on it again.
    let retry = f.run(&["apply", "--yes", "--retry-failed"]).expect(1);
    let text = retry.all();
    assert!(
        text.contains("Retrying 1 host that failed in the apply of ") && text.contains(": a\n"),
        "{text}"
    );
    assert!(!text.contains("\nb"), "b was planned: {text}");

    drop(link);
    drop(route);
    let started = std::time::Instant::now();
    let retry = f
        .run(&["apply", "--yes", "--json", "--retry-failed"])
        .expect(0);
    eprintln!("retry of a, back: {:?}", started.elapsed());
    let doc: serde_json::Value = serde_json::from_str(&retry.stdout).unwrap();
    assert_eq!(doc["hosts"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(result_of(&doc, "a"), "switched", "{doc:#}");
    assert_eq!(current(&targets[0]), "generations/1.json");
    f.run(&["apply", "--yes", "--retry-failed"]).expect(0);
}
