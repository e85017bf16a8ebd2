//! The agent is not root: attacks by the agent's user on a real target
//! (systemd as PID 1, sshd), before and while provision's root work runs.
//! Each case plants something where root reads, writes or chowns in an
//! agent-writable place, or steers a root helper through its environment,
//! and asserts that nothing outside the declared files changed (checksums,
//! modes and owners of /etc, /root, /usr/local and provision's state), that
//! no root process ran an agent-written file, and that the output names the
//! path.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_attacks::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::Write;
use std::time::Duration;

use fleet::Fleet;

const WORKDIR: &str = "/var/lib/agents/alpha";

/// Runs `cmd` as the agent's user on the target.
fn as_agent(t: &nspawn::Target, cmd: &str) -> String {
    t.sh(&format!(
        "runuser -u agent -- sh -c {}",
        provision::script::sh_quote(cmd)
    ))
}

/// The agent (its home, so it owns the directory above its workdir, as
/// a real deployment's agent often does), with a look-alike tool directory
/// first in its PATH. `marker` changes AGENTS.md.
fn body(marker: &str) -> String {
    format!(
        r##"
    user "agent" home="/var/lib/agents"
    dir "/var/lib/agents" owner="agent" group="agent" mode=0o755
    agent "alpha" {{
        use "agent"
        exec "/opt/agents/alpha/run.sh"
        env "PATH" "/var/lib/agents/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        secret "TOKEN" from="file:secrets/token"
        auth "svc" check="/opt/agents/alpha/auth-check" {{
            rotate every="7d" run="/bin/true"
        }}
        heartbeat every="1m" grace="1m" alert="log"
        file "/opt/agents/alpha/run.sh" source="agents/alpha.sh" mode=0o755
        file "/opt/agents/alpha/auth-check" content="#!/bin/sh\nsleep 300 &\nexit 0\n" mode=0o755
        failure-mode "svc down" "{marker}" tool="svc"
    }}"##
    )
}

fn setup(test: &str) -> Option<(nspawn::Target, Fleet)> {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_attacks::{test}: {reason}");
        return None;
    }
    let t = nspawn::Target::boot(test).unwrap_or_else(|e| panic!("boot: {e}"));
    let f = Fleet::new();
    f.agent_script("alpha", "v1");
    f.write("secrets/token", "attack-token-value\n");
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        &t.host_key,
        &body("retry in a minute"),
    );
    let first = f.run(&["apply", "--yes"]);
    assert_eq!(first.code, 0, "{}", first.all());
    // Root's canaries, and the agent's look-alike tools: each writes a mark
    // named by the uid it ran as, then does nothing.
    t.sh("echo canary >/etc/canary && chmod 644 /etc/canary && \
         echo canary >/root/canary && chmod 600 /root/canary && \
         echo canary >/usr/local/bin/canary && echo canary >/var/lib/provision/canary && \
         rm -f /tmp/ran-as-*");
    as_agent(
        &t,
        "mkdir -p /var/lib/agents/bin && cd /var/lib/agents/bin && \
         for tool in sh date stat cat cp mv chmod chown mkdir rm sync sha256sum setpriv runuser systemctl systemd-run touch id flock dd base64 readlink mktemp logger curl sed; do \
           printf '#!/bin/sh\\n/usr/bin/touch /tmp/ran-as-$(/usr/bin/id -u)\\n' >$tool; chmod 755 $tool; done",
    );
    Some((t, f))
}

/// Checksums, modes and owners of everything outside the declared files in
/// the places an attack aims at.
fn footprint(t: &nspawn::Target) -> String {
    t.sh(
        "find /etc /root /usr/local /var/lib/provision -xdev \\( -type f -o -type l \\) \
           -not -path '/etc/systemd/system/*' -not -path '/etc/provision/*' \
           -not -path '/usr/local/lib/provision/*' -not -path '/var/lib/provision/generations/*' \
           -not -path '/var/lib/provision/store/*' -not -path '/var/lib/provision/quarantine/*' \
           -not -path '/var/lib/provision/rotation/*' -not -path '/var/lib/provision/alerts/*' \
           -not -name 'last-switch' -not -name 'current' -not -name 'lock*' -not -name 'key' -not -path '/var/lib/provision/stat/*' \
           -not -path '/etc/ld.so.cache' -not -path '/etc/mtab' \
           -printf '%p %U %G %m %l\\n' | sort; \
         find /etc /root /usr/local -xdev -type f -not -path '/etc/systemd/system/*' \
           -not -path '/etc/provision/*' -not -path '/usr/local/lib/provision/*' \
           -not -path '/etc/ld.so.cache' -exec sha256sum {} + | sort; \
         sha256sum /etc/canary /root/canary /usr/local/bin/canary /var/lib/provision/canary; \
         ls /etc/AGENTS.md /root/AGENTS.md 2>&1; true",
    )
}

/// Asserts that the footprint is still `before`; names `what` and the lines
/// that changed.
#[track_caller]
fn assert_unchanged(t: &nspawn::Target, before: &str, what: &str) {
    let after = footprint(t);
    let b: std::collections::BTreeSet<&str> = before.lines().collect();
    let a: std::collections::BTreeSet<&str> = after.lines().collect();
    let gone: Vec<_> = b.difference(&a).collect();
    let new: Vec<_> = a.difference(&b).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "{what}: gone: {gone:#?}\nnew: {new:#?}"
    );
}

fn no_root_ran_agent_files(t: &nspawn::Target) {
    assert_eq!(
        t.sh("ls /tmp/ran-as-0 2>/dev/null || true"),
        "",
        "a root process ran one of the agent's look-alike tools"
    );
}

/// Each planted object, put where AGENTS.md belongs before an apply that
/// rewrites it: quarantined, reported by plan and apply, the file written,
/// nothing else touched. Then a swapped directory component: that path alone
/// is refused.
#[test]
fn planted_objects_are_quarantined_and_nothing_else_changes() {
    let Some((t, f)) = setup("planted") else {
        return;
    };
    let md = format!("{WORKDIR}/AGENTS.md");
    let cases: [(&str, String); 5] = [
        ("symlink", format!("rm -f {md} && ln -s /etc/canary {md}")),
        ("symlink", format!("rm -f {md} && ln -s /root/canary {md}")),
        ("fifo", format!("rm -f {md} && mkfifo {md}")),
        (
            "directory",
            format!("rm -f {md} && mkdir {md} && ln -s /etc/shadow {md}/x"),
        ),
        // A hard link to a root file (a kernel without protected_hardlinks
        // lets the agent make one; root makes it here).
        ("hard link", format!("rm -f {md} && ln /etc/canary {md}")),
    ];
    let mut n = 0;
    for (i, (what, plant)) in cases.iter().enumerate() {
        n += 1;
        if *what == "hard link" {
            t.sh(plant);
        } else {
            as_agent(&t, plant);
        }
        let before = footprint(&t);
        f.host(
            "t",
            &format!("root@{}", t.addr),
            22,
            &t.host_key,
            &body(&format!("retry, take {i}")),
        );
        let plan = f.run(&["plan"]);
        assert!(
            plan.stdout.contains(&format!("tampering: {md}")),
            "case {i} ({what}): the plan does not name the planted path:\n{}",
            plan.all()
        );
        let apply = f.run(&["apply", "--yes", "--no-verify"]);
        assert_eq!(apply.code, 0, "case {i} ({what}):\n{}", apply.all());
        assert!(
            apply.all().contains(&md) && apply.all().contains("quarantine"),
            "case {i} ({what}): the apply does not report the quarantine:\n{}",
            apply.all()
        );
        assert_unchanged(
            &t,
            &before,
            &format!("case {i} ({what}) changed something outside the declared files"),
        );
        assert_eq!(
            t.sh(&format!("stat -c '%F %U %h' {md}")),
            "regular file agent 1",
            "case {i} ({what})"
        );
        assert!(
            t.sh(&format!("cat {md}"))
                .contains(&format!("retry, take {i}"))
        );
        let q = t.sh("cat /var/lib/provision/quarantine/log");
        assert!(q.contains(&md) && q.contains(what), "case {i}: {q}");
        assert_eq!(t.sh("stat -c %a /var/lib/provision/quarantine"), "700");
        no_root_ran_agent_files(&t);
    }

    // A swapped directory component: the agent moves its workdir away and
    // puts a link to /etc in its place. That path alone is refused.
    n += 1;
    as_agent(
        &t,
        &format!("mv {WORKDIR} {WORKDIR}.real && ln -s /etc {WORKDIR}"),
    );
    let before = footprint(&t);
    let current = t.sh("readlink /var/lib/provision/current");
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        &t.host_key,
        &body("after the swap"),
    );
    let apply = f.run(&["apply", "--yes", "--no-verify"]);
    assert_ne!(apply.code, 0, "{}", apply.all());
    assert!(
        apply.all().contains(&md),
        "the refusal does not name the path:\n{}",
        apply.all()
    );
    assert_unchanged(&t, &before, "the swapped component redirected a write");
    assert!(t.sh("ls /etc/AGENTS.md 2>/dev/null || true").is_empty());
    // The rest of the host switched: a new generation is current.
    assert_ne!(current, t.sh("readlink /var/lib/provision/current"));
    no_root_ran_agent_files(&t);

    // No plain hash of a secret file leaves the host: the env file's sha256
    // appears nowhere in the plan.
    n += 1;
    let sha = t.sh("sha256sum /etc/provision/agents/alpha.env | cut -d' ' -f1");
    assert_eq!(sha.len(), 64, "the agent's env file is missing");
    let plan = f.run(&["plan", "--json"]);
    let all = plan.all();
    let leaks: Vec<&str> = all.lines().filter(|l| l.contains(&sha)).collect();
    assert!(
        leaks.is_empty(),
        "the plain hash of a secret file left the host: {leaks:?}"
    );
    eprintln!("e2e_attacks::planted: {n} cases");
}

/// Root's helpers with an agent that plants links and FIFOs in its own state
/// directory and puts look-alike tools first in its PATH: the rotation, the
/// heartbeat checker and verify follow nothing, block on nothing and run
/// nothing of the agent's as root; an auth check leaves no process behind.
#[test]
fn root_helpers_follow_nothing_the_agent_planted() {
    let Some((t, f)) = setup("helpers") else {
        return;
    };
    let state = "/var/lib/provision-agents/alpha";
    let mut n = 0;
    as_agent(
        &t,
        &format!(
            "ln -sf /etc/canary {state}/rotated-svc; rm -f {state}/heartbeat; mkfifo {state}/heartbeat"
        ),
    );
    let before = footprint(&t);
    // The rotation, as its timer would start it.
    n += 1;
    let rot = t.ssh_timeout(
        "systemctl start agent-alpha-rotate-svc.service; systemctl show -p Result --value agent-alpha-rotate-svc.service",
        Duration::from_secs(60),
    );
    assert!(rot.status.success(), "the rotation hung or failed: {rot:?}");
    assert_eq!(
        t.sh("cat /var/lib/provision/rotation/alpha-svc | tr -d '0-9'"),
        "",
        "the rotation keeps its own stamp"
    );
    // The heartbeat checker, against a FIFO: it must finish.
    n += 1;
    let hb = t.ssh_timeout(
        "systemctl start agent-alpha-heartbeat.service; echo $?",
        Duration::from_secs(60),
    );
    assert!(hb.status.success(), "the heartbeat check hung: {hb:?}");
    // verify (the auth check runs as the agent, in a unit of its own).
    n += 1;
    let v = f.run(&["verify", "--heartbeat-timeout", "5"]);
    assert!(
        !v.all().contains("/etc/canary"),
        "verify followed the agent's link:\n{}",
        v.all()
    );
    assert_unchanged(
        &t,
        &before,
        "a root helper changed something outside the declared files",
    );
    no_root_ran_agent_files(&t);
    // The auth check started `sleep 300 &`: its unit is gone, and so is it.
    n += 1;
    // (The agent's own start ran the check too: that one lives in the
    // agent's unit, as it should.)
    assert_eq!(
        t.sh(
            "for p in $(pgrep -u agent -f 'sleep 300'); do grep '^0::' /proc/$p/cgroup; done | grep -v '/agent-alpha.service$' || true"
        ),
        "",
        "a process started by verify's auth check outlived it: {}",
        t.sh("ps -eo pid,ppid,user,cmd; for p in $(pgrep -f 'sleep 300'); do echo $p; cat /proc/$p/cgroup; done")
    );
    // status reads nothing of the agent's by name either.
    n += 1;
    let s = t.ssh_timeout("true", Duration::from_secs(5));
    assert!(s.status.success());
    let st = f.run(&["status"]);
    assert!(!st.all().contains("canary"), "{}", st.all());
    eprintln!("e2e_attacks::helpers: {n} cases");
}

/// The agent swaps AGENTS.md between a link to a root file, a FIFO and a
/// regular file as fast as it can while an apply rewrites it: the apply ends
/// with the file written or that path refused, never a write elsewhere.
#[test]
fn a_racing_agent_cannot_redirect_the_switch() {
    let Some((t, f)) = setup("racing") else {
        return;
    };
    let md = format!("{WORKDIR}/AGENTS.md");
    for round in 0..3 {
        let before = footprint(&t);
        // Bounded: 20000 swaps, or 60 s, whichever comes first.
        let racer = t.sh(&format!(
            "runuser -u agent -- sh -c 'i=0; end=$(($(date +%s) + 60)); \
             while [ $i -lt 20000 ] && [ $(date +%s) -lt $end ]; do \
               ln -sfn /etc/canary {md}.l; mv -fT {md}.l {md}; \
               rm -f {md}.f; mkfifo {md}.f 2>/dev/null; mv -fT {md}.f {md}; \
               echo x >{md}.r; mv -fT {md}.r {md}; i=$((i + 1)); done' \
             >/dev/null 2>&1 & echo $!"
        ));
        f.host(
            "t",
            &format!("root@{}", t.addr),
            22,
            &t.host_key,
            &body(&format!("race round {round}")),
        );
        let apply = f.run(&["apply", "--yes", "--no-verify"]);
        t.sh(&format!("kill {racer} 2>/dev/null; sleep 0.2; true"));
        assert!(
            apply.code == 0 || apply.all().contains(&md),
            "round {round}: a failed apply does not name the path:\n{}",
            apply.all()
        );
        assert_unchanged(
            &t,
            &before,
            &format!("round {round}: the race redirected a write"),
        );
        no_root_ran_agent_files(&t);
        // Put a plain file back for the next round.
        as_agent(
            &t,
            &format!("rm -rf {md} {md}.l {md}.f {md}.r; echo x >{md}"),
        );
    }
}

/// The agent renames the staging directories provision makes in its
/// workdir, within the workdir and into a subdirectory of its own, as fast
/// as it can while an apply rewrites AGENTS.md: the kernel refuses the
/// move to another parent (the staging directory is root's, 0700), and a
/// rename in place ends as a refusal of that one path, never as a write
/// elsewhere.
#[test]
fn an_agent_cannot_move_the_staging_directory_away() {
    let Some((t, f)) = setup("stagemv") else {
        return;
    };
    as_agent(&t, &format!("mkdir -p {WORKDIR}/sub"));
    // What the switch relies on, shown directly: a root 0700 directory in
    // the workdir cannot be moved to another parent by the agent.
    t.sh(&format!("mkdir -m 700 {WORKDIR}/.provision-stage.probe"));
    assert_eq!(
        as_agent(
            &t,
            &format!(
                "mv -T {WORKDIR}/.provision-stage.probe {WORKDIR}/sub/moved 2>/dev/null && echo moved || echo refused"
            )
        ),
        "refused"
    );
    t.sh(&format!("rmdir {WORKDIR}/.provision-stage.probe"));
    for round in 0..3 {
        let before = footprint(&t);
        // Bounded: 20000 tries, or 60 s, whichever comes first.
        let racer = t.sh(&format!(
            "runuser -u agent -- sh -c 'i=0; end=$(($(date +%s) + 60)); \
             while [ $i -lt 20000 ] && [ $(date +%s) -lt $end ]; do \
               for d in {WORKDIR}/.provision-stage.*; do \
                 [ -d \"$d\" ] || continue; \
                 mv -T \"$d\" {WORKDIR}/sub/moved 2>/dev/null && echo moved >>{WORKDIR}/sub/log; \
                 [ $((i % 2)) -eq 0 ] && mv -T \"$d\" \"$d.x\" 2>/dev/null; \
               done; i=$((i + 1)); done' >/dev/null 2>&1 & echo $!"
        ));
        f.host(
            "t",
            &format!("root@{}", t.addr),
            22,
            &t.host_key,
            &body(&format!("stage round {round}")),
        );
        let apply = f.run(&["apply", "--yes", "--no-verify"]);
        t.sh(&format!("kill {racer} 2>/dev/null; sleep 0.2; true"));
        let md = format!("{WORKDIR}/AGENTS.md");
        assert!(
            apply.code == 0 || apply.all().contains(&md),
            "round {round}: a failed apply does not name the path:\n{}",
            apply.all()
        );
        assert_eq!(
            t.sh(&format!(
                "cat {WORKDIR}/sub/log 2>/dev/null; ls -A {WORKDIR}/sub"
            )),
            "",
            "round {round}: a staging directory left the workdir"
        );
        assert_unchanged(
            &t,
            &before,
            &format!("round {round}: a write went elsewhere"),
        );
        no_root_ran_agent_files(&t);
        // What a refused round left behind, for the next.
        t.sh(&format!("rm -rf {WORKDIR}/.provision-stage.*.x"));
    }
    // The last apply, without a racer, writes the file.
    f.run(&["apply", "--yes", "--no-verify"]).expect(0);
    assert!(
        t.sh(&format!("cat {WORKDIR}/AGENTS.md"))
            .contains("stage round 2"),
        "the last round's AGENTS.md is not in place"
    );
}

/// The probe's record vouches for a file in the agent's workdir only while
/// the file is the one it read: a same-size edit with the mtime put back is
/// drift (ctime moved), and a link put in its place afterwards is reported as
/// a link: the root-only file it points at is never read into the plan.
#[test]
fn the_probe_record_vouches_for_nothing_the_agent_changed() {
    let Some((t, f)) = setup("record") else {
        return;
    };
    let md = format!("{WORKDIR}/AGENTS.md");
    t.sh("echo root-only-text-42 >/root/private && chmod 600 /root/private");
    // Recorded once its ctime is 2 whole seconds old: wait past the 3 s.
    std::thread::sleep(Duration::from_millis(3200));
    let plan = f.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let record = t.sh("cat /var/lib/provision/stat/record");
    assert!(
        record.lines().any(|l| l.ends_with(&format!("\t{md}"))),
        "the workdir's AGENTS.md is not recorded:\n{record}"
    );

    // Same size, one byte changed, mtime put back to the nanosecond.
    as_agent(
        &t,
        &format!(
            "m=$(stat -c %y {md}) && sed -i '1s/^./X/' {md} && touch -d \"$m\" {md} && \
             [ \"$(stat -c %y {md})\" = \"$m\" ]"
        ),
    );
    let plan = f.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(
        plan.stdout
            .lines()
            .any(|l| l.contains(&md) && l.contains("drift")),
        "the edit is not drift:\n{}",
        plan.stdout
    );

    // Put back by an apply, recorded again, then swapped for a link to a
    // root-only file.
    let apply = f.run(&["apply", "--yes", "--no-verify"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(f.run(&["plan", "--detailed-exitcode"]).code, 0);
    as_agent(
        &t,
        &format!("ln -sfn /root/private {md}.l && mv -fT {md}.l {md}"),
    );
    let plan = f.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(
        plan.stdout
            .lines()
            .any(|l| l.contains(&md) && l.contains("symlink")),
        "the link is not reported:\n{}",
        plan.stdout
    );
    assert!(
        !plan.all().contains("root-only-text-42"),
        "the plan shows a root-only file:\n{}",
        plan.all()
    );
}
