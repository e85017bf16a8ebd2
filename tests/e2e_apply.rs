//! `plan` and `apply` against real Debian targets (systemd as PID 1, sshd),
//! one fresh systemd-nspawn target per test: units really run, restart only
//! when their own inputs change, stop when dropped; a second apply writes
//! nothing; drift is shown and put back; rollback works from the store.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_apply::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::Write;

use fleet::{Fleet, agent};

/// Boots a target and writes a repository whose host `t` holds `body`.
fn setup(test: &str, body: &str) -> Option<(nspawn::Target, Fleet)> {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_apply::{test}: {reason}");
        return None;
    }
    let t = nspawn::Target::boot(test).unwrap_or_else(|e| panic!("boot: {e}"));
    let f = Fleet::new();
    for name in ["alpha", "beta"] {
        f.agent_script(name, "v1");
    }
    f.host("t", &format!("root@{}", t.addr), 22, &t.host_key, body);
    Some((t, f))
}

/// Inode, mtime and ctime of everything provision manages or keeps, but the
/// probe's record of the files it read (`/var/lib/provision/stat`), which
/// every plan may rewrite.
fn footprint(t: &nspawn::Target) -> String {
    t.sh(
        "find /etc/systemd/system /etc/provision /etc/sysusers.d /etc/tmpfiles.d \
         /etc/systemd/journald.conf.d /usr/local/lib/provision /opt/agents /var/lib/provision \
         /var/lib/agents -xdev -path /var/lib/provision/stat -prune -o -printf '%p %i %T@ %C@\\n' \
         2>/dev/null | sort",
    )
}

fn invocation(t: &nspawn::Target, unit: &str) -> String {
    t.sh(&format!("systemctl show -p InvocationID --value {unit}"))
}

#[test]
fn apply_runs_units_and_a_second_apply_writes_nothing() {
    let body = agent("alpha", "") + &agent("beta", "");
    let Some((t, f)) = setup("noop", &body) else {
        return;
    };
    let first = f.run(&["apply", "--yes"]).expect(0);
    assert!(
        first.stdout.contains("Plan: ") && first.stdout.contains("1 host switched"),
        "{}",
        first.all()
    );
    assert_eq!(
        t.sh(
            "systemctl is-active agent-alpha.service agent-beta.service \
             agent-alpha-heartbeat.timer agent-beta-rotate-svc.timer"
        ),
        "active\nactive\nactive\nactive"
    );
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
    assert_eq!(t.sh("cat /var/lib/provision/generations/1.status"), "ok");
    assert_eq!(t.sh("stat -c %U /var/lib/agents/alpha/AGENTS.md"), "agent");

    let before = footprint(&t);
    let units = [
        invocation(&t, "agent-alpha.service"),
        invocation(&t, "agent-beta.service"),
    ];
    let again = f.run(&["apply", "--yes"]).expect(0);
    assert!(
        again.stdout.contains("No changes: nothing was written."),
        "{}",
        again.all()
    );
    assert_eq!(footprint(&t), before, "a no-op apply touched the host");
    assert_eq!(
        [
            invocation(&t, "agent-alpha.service"),
            invocation(&t, "agent-beta.service"),
        ],
        units,
        "a no-op apply restarted a unit"
    );
    f.run(&["plan", "--detailed-exitcode"]).expect(0);
    let json = f.run(&["plan", "--json"]).expect(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["changes"], false);
    assert_eq!(v["hosts"][0]["plan"]["current"], 1);
}

#[test]
fn changes_restart_only_their_units_and_dropped_agents_are_removed() {
    let body = agent("alpha", r#"secret "TOKEN" from="env:ALPHA_TOKEN""#) + &agent("beta", "");
    let Some((t, f)) = setup("restart", &body) else {
        return;
    };
    let with_token = |token: &str, args: &[&str]| {
        let mut cmd = f.command(args);
        cmd.env("ALPHA_TOKEN", token);
        fleet::Run::from(fleet::run_bounded(
            &mut cmd,
            std::time::Duration::from_secs(120),
        ))
    };
    with_token("tok-one-4f1c", &["apply", "--yes"]).expect(0);
    let alpha = invocation(&t, "agent-alpha.service");
    let beta = invocation(&t, "agent-beta.service");

    // A changed script restarts its agent only, and the plan shows the diff.
    f.agent_script("alpha", "v2");
    let plan = with_token("tok-one-4f1c", &["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout.contains("~ /opt/agents/alpha/run.sh"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("-# v1") && plan.stdout.contains("+# v2"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("restart agent-alpha.service"),
        "{}",
        plan.stdout
    );
    with_token("tok-one-4f1c", &["apply", "--yes"]).expect(0);
    let alpha2 = invocation(&t, "agent-alpha.service");
    assert_ne!(alpha2, alpha, "alpha kept running its old script");
    assert_eq!(
        invocation(&t, "agent-beta.service"),
        beta,
        "beta restarted for nothing"
    );

    // A changed secret: shown only as changed, restarts only its agent.
    let plan = with_token("tok-two-9d2e", &["plan"]).expect(0);
    assert!(
        plan.stdout.contains("(secret changed, hmac-"),
        "{}",
        plan.stdout
    );
    let json = with_token("tok-two-9d2e", &["plan", "--json"]).expect(0);
    for out in [&plan.stdout, &plan.stderr, &json.stdout] {
        assert!(
            !out.contains("tok-two") && !out.contains("tok-one"),
            "a secret leaked:\n{out}"
        );
    }
    let applied = with_token("tok-two-9d2e", &["apply", "--yes"]).expect(0);
    assert!(!applied.all().contains("tok-two"), "{}", applied.all());
    assert_ne!(invocation(&t, "agent-alpha.service"), alpha2);
    assert_eq!(invocation(&t, "agent-beta.service"), beta);
    assert_eq!(
        t.sh("stat -c %a /etc/provision/agents/alpha.env; grep -c tok-two-9d2e /etc/provision/agents/alpha.env"
        ),
        "600\n1"
    );

    // beta dropped from the definition: stopped, disabled, its files gone.
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        &t.host_key,
        &agent("alpha", r#"secret "TOKEN" from="env:ALPHA_TOKEN""#),
    );
    let plan = with_token("tok-two-9d2e", &["plan"]).expect(0);
    assert!(
        plan.stdout
            .contains("- /etc/systemd/system/agent-beta.service"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("stop agent-beta.service"),
        "{}",
        plan.stdout
    );
    with_token("tok-two-9d2e", &["apply", "--yes"]).expect(0);
    assert_eq!(
        t.ssh("systemctl is-active agent-beta.service").stdout,
        b"inactive\n"
    );
    assert_eq!(
        t.sh("ls /etc/systemd/system/agent-beta.service /opt/agents/beta/run.sh 2>&1 | grep -c 'No such file'"
        ),
        "2"
    );
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");

    // Generations, and rollback from the store.
    let gens = f.run(&["generations", "t"]).expect(0);
    assert!(gens.stdout.contains("(current)"), "{}", gens.stdout);
    assert_eq!(gens.stdout.lines().count(), 1 + 4, "{}", gens.stdout);
    let back = f.run(&["rollback", "t", "--yes"]).expect(0);
    assert!(back.stdout.contains("rollback to 3"), "{}", back.stdout);
    assert!(
        !back.stdout.contains("upload"),
        "a rollback uploaded: {}",
        back.stdout
    );
    assert_eq!(t.sh("systemctl is-active agent-beta.service"), "active");
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/3.json"
    );
    f.run(&["rollback", "t", "--to", "1", "--yes"]).expect(0);
    assert!(t.sh("cat /opt/agents/alpha/run.sh").contains("# v1"));
    assert_eq!(
        t.sh("grep -c tok-one-4f1c /etc/provision/agents/alpha.env"),
        "1"
    );
}

#[test]
fn drift_is_shown_and_put_back() {
    let Some((t, f)) = setup("drift", &agent("alpha", "")) else {
        return;
    };
    f.run(&["apply", "--yes"]).expect(0);
    t.sh("echo '# by hand' >> /opt/agents/alpha/run.sh; chmod 0700 /usr/local/lib/provision/alert");
    let plan = f.run(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("drift"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("+# by hand") || plan.stdout.contains("-# by hand"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("mode 0700 -> 0755"), "{}", plan.stdout);
    f.run(&["apply", "--yes"]).expect(0);
    assert!(!t.sh("cat /opt/agents/alpha/run.sh").contains("by hand"));
    assert_eq!(t.sh("stat -c %a /usr/local/lib/provision/alert"), "755");
    f.run(&["plan", "--detailed-exitcode"]).expect(0);
}
