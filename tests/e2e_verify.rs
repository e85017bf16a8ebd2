//! Verification on real Debian targets (systemd-nspawn): a healthy agent
//! passes; an agent whose auth check fails fails verification with the
//! check's output (secrets redacted), its alert reaches a webhook receiver
//! run here, and the host is switched back and re-verified; a crash-looping
//! agent is caught; a credential near its expiry alerts once through its
//! expiry timer, and an expired one fails verify.
//!
//! Needs root and the harness (`tests/harness/`); otherwise prints
//! `SKIPPED e2e_verify::NAME: <reason>`.

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/nspawn.rs"]
mod nspawn;
#[path = "common/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fleet::{Fleet, agent};

fn setup(test: &str) -> Option<(nspawn::Target, Fleet)> {
    if let Err(reason) = nspawn::available() {
        let _ = writeln!(std::io::stderr(), "SKIPPED e2e_verify::{test}: {reason}");
        return None;
    }
    let t = nspawn::Target::boot(test).unwrap_or_else(|e| panic!("boot: {e}"));
    let f = Fleet::new();
    f.agent_script("alpha", "v1");
    Some((t, f))
}

/// A webhook receiver on the host side of the target's link: every request
/// body it gets is sent on the channel. Stops after `life`.
fn webhook(t: &nspawn::Target, life: Duration) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind((t.host_addr.as_str(), 0)).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + life;
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read the headers and the body (Content-Length).
                    loop {
                        let n = stream.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf);
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    (url, rx)
}

/// A host whose alerts go to `url`, holding `body`.
fn host_with_webhook(f: &Fleet, t: &nspawn::Target, url: &str, body: &str) {
    let text = format!(
        r#"host "t" {{
    ssh "root@{}" identity="/var/tmp/provision-targets/id_ed25519"
    host-key "{}"
    journald max-use="50M" keep-free="100M" retention="3d"
    alert "log" webhook="{url}" insecure=#true
{body}
}}
"#,
        t.addr, t.host_key
    );
    f.write("hosts/t.kdl", &text);
}

#[test]
fn a_healthy_agent_verifies() {
    let Some((t, f)) = setup("vok") else {
        return;
    };
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        &t.host_key,
        &agent("alpha", ""),
    );
    let run = f.run(&["apply", "--yes"]).expect(0);
    for line in [
        "ok   auth      alpha",
        "ok   heartbeat alpha",
        "ok   unit      agent-alpha.service",
        "ok   timer     agent-alpha-heartbeat.timer",
        "ok   timer     agent-alpha-rotate-svc.timer",
        "ok   journald",
        "ok   ssh",
    ] {
        assert!(
            run.stdout.contains(line),
            "{line:?} missing:\n{}",
            run.stdout
        );
    }
    // Both timers' next runs are dates (the heartbeat timer is monotonic:
    // its raw next elapse would be a time since boot).
    for timer in [
        "agent-alpha-heartbeat.timer",
        "agent-alpha-rotate-svc.timer",
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains(&format!("timer     {timer}")))
            .unwrap_or_else(|| panic!("no line for {timer}:\n{}", run.stdout));
        let next = line.split("next ").nth(1).unwrap_or_default();
        let date = next.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            date.len() == 10 && date.starts_with("20") && date.as_bytes()[4] == b'-',
            "{line}"
        );
    }
    let again = f.run(&["verify", "--heartbeat-timeout", "20"]).expect(0);
    assert!(again.stdout.contains("1 host healthy"), "{}", again.stdout);
    let json = f.run(&["verify", "--json"]).expect(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["ok"], true);

    // Status: the table, then drift made by hand shows up.
    let status = f.run(&["status"]).expect(0);
    assert!(
        status.stdout.contains("active/running"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("svc: never, next at the timer") || status.stdout.contains("svc: "),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("All healthy."), "{}", status.stdout);
    t.sh("echo '# by hand' >> /opt/agents/alpha/run.sh");
    let json = f.run(&["status", "--json"]).expect(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let host = &v["hosts"][0]["status"];
    assert_eq!(host["generation"], 1);
    assert_eq!(host["drift"][0], "/opt/agents/alpha/run.sh");
    assert_eq!(host["agents"][0]["state"], "active/running");
    assert!(host["agents"][0]["heartbeat_age_secs"].as_u64().unwrap() < 60);
}

#[test]
fn a_failing_auth_check_fails_verify_alerts_and_is_rolled_back() {
    let Some((t, f)) = setup("vauth") else {
        return;
    };
    let (url, alerts) = webhook(&t, Duration::from_secs(150));
    let good = agent(
        "alpha",
        r#"secret "TOKEN" from="env:ALPHA_TOKEN"
        restart "on-failure" delay="1s""#,
    );
    host_with_webhook(&f, &t, &url, &good);
    let run = |args: &[&str]| {
        let mut cmd = f.command(args);
        cmd.env("ALPHA_TOKEN", "tok-secret-7a1b");
        fleet::Run::from(fleet::run_bounded(&mut cmd, Duration::from_secs(150)))
    };
    run(&["apply", "--yes"]).expect(0);

    // The auth check now fails, printing the token.
    let bad = good.replace("exit 0", r#"echo \"token $TOKEN has expired\" >&2; exit 1"#);
    host_with_webhook(&f, &t, &url, &bad);
    // Long enough for the start limit (5 failed starts, 1 s apart) to end in
    // the failed state, which stops the wait at once and sends the alert.
    let out = run(&["apply", "--yes", "--heartbeat-timeout", "60"]).expect(3);
    let text = out.all();
    assert!(text.contains("generation 2 failed verification"), "{text}");
    assert!(text.contains("FAIL auth      alpha"), "{text}");
    assert!(text.contains("token [redacted] has expired"), "{text}");
    assert!(
        !text.contains("tok-secret-7a1b"),
        "the secret leaked:\n{text}"
    );
    assert!(text.contains("switched back to generation 1"), "{text}");
    assert!(
        t.sh("cat /var/lib/provision/generations/2.status")
            .starts_with("rolled back at 20"),
        "{}",
        t.sh("cat /var/lib/provision/generations/2.status")
    );
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
    assert_eq!(t.sh("systemctl is-active agent-alpha.service"), "active");

    // The failed starts ended in the failed state, whose alert reached us.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match alerts.recv_timeout(left) {
            Ok(body) => {
                let hit = body.contains("agent-alpha") && body.contains(r#""host":"t""#);
                got.push(body);
                if hit {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let arrived = got
        .iter()
        .any(|b| b.contains("agent-alpha.service failed") && b.contains(r#""host":"t""#));
    assert!(
        arrived,
        "no alert for agent-alpha arrived: {got:#?}\n{}\n{}",
        text,
        t.sh("journalctl --no-pager -n 60 -u 'provision-alert@*' -u agent-alpha.service || true")
    );
    assert!(got.iter().all(|b| !b.contains("tok-secret-7a1b")));
}

#[test]
fn a_crash_looping_agent_is_caught() {
    let Some((t, f)) = setup("vloop") else {
        return;
    };
    f.write("agents/alpha.sh", "#!/bin/sh\necho starting; exit 3\n");
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        &t.host_key,
        // Its own verification timeout, instead of --heartbeat-timeout.
        &agent("alpha", r#"restart "on-failure" delay="1s""#).replace(
            r#"heartbeat every="1m""#,
            r#"heartbeat verify-timeout="4s" every="1m""#,
        ),
    );
    let out = f.run(&["apply", "--yes"]).expect(3);
    let text = out.all();
    assert!(
        text.contains("FAIL heartbeat alpha: no heartbeat within 4 s"),
        "{text}"
    );
    assert!(
        text.contains("FAIL unit      agent-alpha.service"),
        "{text}"
    );
    // Nothing to switch back to: the first generation stays, loudly.
    assert!(text.contains("kept generation 1"), "{text}");
    let verify = f.run(&["verify", "--heartbeat-timeout", "3"]).expect(3);
    assert!(verify.stdout.contains("1 failing"), "{}", verify.stdout);
    let status = f.run(&["status"]).expect(3);
    assert!(
        status.stdout.contains("t/alpha: the unit is"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("never sent a heartbeat"),
        "{}",
        status.stdout
    );
}

#[test]
fn test_alerts_reach_webhook_telegram_and_command_channels() {
    let Some((t, f)) = setup("valert") else {
        return;
    };
    let (url, got) = webhook(&t, Duration::from_secs(120));
    let api = url.trim_end_matches("/hook").to_string();
    let channels = format!(
        r#"    alert "tg" telegram-chat="-100777" bot-token="env:TG_TOKEN" api="{api}" insecure=#true
    alert "cmd" command="echo \"$ALERT_KIND $ALERT_MESSAGE\" >> /tmp/alerts.log"
    alert "vault" webhook="env:HOOK_URL" insecure=#true"#
    );
    host_with_webhook(&f, &t, &url, &format!("{channels}\n{}", agent("alpha", "")));
    let run = |args: &[&str]| {
        let mut cmd = f.command(args);
        cmd.env("TG_TOKEN", "123456:tg-token-5e6f");
        cmd.env("HOOK_URL", format!("{api}/hook-from-a-secret-9c1d"));
        fleet::Run::from(fleet::run_bounded(&mut cmd, Duration::from_secs(120)))
    };
    let applied = run(&["apply", "--yes"]).expect(0);
    let out = run(&["verify", "--test-alert", "--heartbeat-timeout", "20"]).expect(0);
    for ch in ["log", "tg", "cmd", "vault"] {
        assert!(
            out.stdout.contains(&format!("ok   alert     {ch}: sent")),
            "{ch}:\n{}",
            out.stdout
        );
    }
    for secret in ["tg-token-5e6f", "hook-from-a-secret-9c1d"] {
        assert!(!out.all().contains(secret), "{}", out.all());
        assert!(!applied.all().contains(secret), "{}", applied.all());
    }
    let bodies: Vec<String> = (0..3)
        .filter_map(|_| got.recv_timeout(Duration::from_secs(20)).ok())
        .collect();
    let hook = bodies
        .iter()
        .find(|b| b.starts_with("POST /hook"))
        .expect("the webhook got nothing");
    assert!(
        hook.contains(r#""kind":"test""#) && hook.contains(r#""host":"t""#),
        "{hook}"
    );
    // The URL that came from the operator's environment was the one used.
    assert!(
        bodies
            .iter()
            .any(|b| b.starts_with("POST /hook-from-a-secret-9c1d")),
        "{bodies:#?}"
    );
    let tg = bodies
        .iter()
        .find(|b| b.starts_with("POST /bot123456:tg-token-5e6f/sendMessage"))
        .unwrap_or_else(|| panic!("telegram got nothing: {bodies:#?}"));
    assert!(tg.contains("chat_id=-100777"), "{tg}");
    assert!(
        tg.contains("test%20alert") || tg.contains("test+alert"),
        "{tg}"
    );
    assert!(
        t.sh("cat /tmp/alerts.log")
            .contains("test test alert from provision")
    );
}

#[test]
fn a_stale_heartbeat_alerts_once_through_the_installed_checker() {
    let Some((t, f)) = setup("vbeat") else {
        return;
    };
    let (url, got) = webhook(&t, Duration::from_secs(120));
    // Beats once, then never again.
    f.write(
        "agents/alpha.sh",
        "#!/bin/sh\ntouch \"$PROVISION_HEARTBEAT\"\nexec sleep infinity\n",
    );
    host_with_webhook(&f, &t, &url, &agent("alpha", ""));
    f.run(&["apply", "--yes"]).expect(0);
    // Ten minutes without a beat (every 1m + grace 1m): the checker alerts.
    t.sh(
        "touch -d '-10 min' /var/lib/provision-agents/alpha/heartbeat; \
         systemctl start agent-alpha-heartbeat.service || true",
    );
    let body = got
        .recv_timeout(Duration::from_secs(30))
        .expect("no alert for the stale heartbeat");
    assert!(
        body.contains("agent-alpha") && body.contains("heartbeat"),
        "{body}"
    );
    assert!(
        body.contains(r#""host":"t""#) && body.contains(r#""kind":"alert""#),
        "{body}"
    );
    // One alert per incident: a second check within the reminder interval
    // sends nothing.
    let second = t.sh("systemctl start agent-alpha-heartbeat.service || true; \
         journalctl -u agent-alpha-heartbeat.service --no-pager -n 20");
    assert!(second.contains("already alerted"), "{second}");
    assert!(got.recv_timeout(Duration::from_secs(3)).is_err());
}

/// An agent with a field cadence (every 30 minutes) that beats once when
/// ready: the apply verifies it by its readiness beat in seconds, and a
/// standalone verify passes at once on its last beat; a beat older than
/// every + grace fails it.
#[test]
fn a_thirty_minute_agent_verifies_at_once() {
    let Some((t, f)) = setup("v30m") else {
        return;
    };
    f.write(
        "agents/alpha.sh",
        "#!/bin/sh\nsleep 2\ntouch \"$PROVISION_HEARTBEAT\"\nwhile :; do sleep 1800; touch \"$PROVISION_HEARTBEAT\"; done\n",
    );
    f.host(
        "t",
        &format!("root@{}", t.addr),
        22,
        &t.host_key,
        &agent("alpha", "").replace(
            r#"heartbeat every="1m" grace="1m""#,
            r#"heartbeat every="30m" grace="6m""#,
        ),
    );
    let started = Instant::now();
    let applied = f.run(&["apply", "--yes"]).expect(0);
    assert!(
        applied.stdout.contains("ok   heartbeat alpha: beat "),
        "{}",
        applied.stdout
    );
    eprintln!(
        "a 30-minute agent applied and verified in {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let verified = f.run(&["verify"]).expect(0);
    assert!(
        verified.stdout.contains("ok   heartbeat alpha: beat ")
            && verified
                .stdout
                .contains("s ago (fresh for 2160 s: every + grace)"),
        "{}",
        verified.stdout
    );
    // The default wait is 120 s: passing at once means it did not wait.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    eprintln!("a standalone verify of it took {:?}", started.elapsed());
    // A beat older than every + grace is not fresh.
    t.sh("touch -d '-40 min' /var/lib/provision-agents/alpha/heartbeat");
    let stale = f.run(&["verify", "--heartbeat-timeout", "3"]).expect(3);
    assert!(
        stale
            .stdout
            .contains("FAIL heartbeat alpha: no heartbeat within 3 s (the last is ")
            && stale
                .stdout
                .contains("s old, more than every + grace, 2160 s)"),
        "{}",
        stale.stdout
    );
}

/// A unit that beats at once, then crashes a few seconds after its start:
/// the stability window catches it, the apply fails verification, and the
/// host is switched back.
#[test]
fn a_unit_that_crashes_after_its_start_is_switched_back() {
    let Some((t, f)) = setup("vcrash") else {
        return;
    };
    let body = agent("alpha", r#"restart "on-failure" delay="1s""#);
    f.host("t", &format!("root@{}", t.addr), 22, &t.host_key, &body);
    f.run(&["apply", "--yes"]).expect(0);
    f.write(
        "agents/alpha.sh",
        "#!/bin/sh\n# v2\ntouch \"$PROVISION_HEARTBEAT\"\nsleep 4\nexit 1\n",
    );
    let out = f.run(&["apply", "--yes"]).expect(3);
    let text = out.all();
    assert!(text.contains("ok   heartbeat alpha"), "{text}");
    assert!(
        text.contains("FAIL unit      agent-alpha.service"),
        "{text}"
    );
    assert!(text.contains("switched back to generation 1"), "{text}");
    assert_eq!(
        t.sh("readlink /var/lib/provision/current"),
        "generations/1.json"
    );
}

/// The expiry radar: a credential 3 days from its expiry (warning 7 days
/// ahead), learned by a command run as the agent, passes verify with a
/// warning; its expiry timer alerts once, a second run in the same state
/// does not; status shows the days left. Once expired, verify fails naming
/// it and its date, and the timer alerts again (a new incident).
#[test]
fn an_expiry_inside_its_warning_alerts_once_and_an_expired_one_fails_verify() {
    let Some((t, f)) = setup("vexpiry") else {
        return;
    };
    let (url, got) = webhook(&t, Duration::from_secs(240));
    let now: u64 = t.sh("date +%s").trim().parse().unwrap();
    let soon = t.sh(&format!(
        "date -u -d @{} +%Y-%m-%dT%H:%M:%SZ",
        now + 3 * 86_400 + 3600
    ));
    // The command runs as the agent, reading a file in its working
    // directory; its renewal writes a new date there.
    let body = agent(
        "alpha",
        r#"auth "mail" check="true" expires="cat /var/lib/agents/alpha/expiry" warn-before="7d" {
            rotate every="7d" run="rm -f /var/lib/agents/alpha/expiry; echo 2099-01-01 > /var/lib/agents/alpha/expiry"
        }"#,
    );
    host_with_webhook(&f, &t, &url, &body);
    // Renewed a moment ago, so its hourly timer does not renew it under
    // the test; the test renews it by hand at the end.
    t.sh(&format!(
        "mkdir -p /var/lib/agents/alpha /var/lib/provision/rotation && echo {soon} > /var/lib/agents/alpha/expiry && \
         echo {now} > /var/lib/provision/rotation/alpha-mail"
    ));
    let applied = f.run(&["apply", "--yes"]).expect(0);
    assert!(
        applied
            .stdout
            .contains("ok   timer     agent-alpha-expiry-mail.timer"),
        "{}",
        applied.stdout
    );
    // Inside its warning: verify passes, saying so.
    let verified = f.run(&["verify", "--heartbeat-timeout", "20"]).expect(0);
    assert!(
        verified.stdout.contains(&format!(
            "ok   expiry    alpha/mail: credential `mail` expires at {soon}, in 3 days: inside its 7 days warning, renew it"
        )),
        "{}",
        verified.stdout
    );

    let unit = "agent-alpha-expiry-mail.service";
    // Expiry alerts that reached the receiver within `wait`.
    let expiry_alerts = |wait: Duration| -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match got.recv_timeout(left) {
                Ok(b) if b.contains(unit) => out.push(b),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        out
    };
    t.sh(&format!("systemctl start {unit} || true"));
    let first = expiry_alerts(Duration::from_secs(10));
    assert_eq!(
        first.len(),
        1,
        "{first:#?}\n{}",
        t.sh(&format!("journalctl -u {unit} --no-pager -n 20"))
    );
    assert!(
        first[0].contains(r#""kind":"alert""#)
            && first[0].contains(&format!(
                "agent alpha: credential 'mail' expires at {soon}, in 3 days, inside its 7 days warning: renew it"
            )),
        "{}",
        first[0]
    );
    // The same state again: no second alert.
    let second = t.sh(&format!(
        "systemctl start {unit} || true; journalctl -u {unit} --no-pager -n 20"
    ));
    assert!(second.contains("already alerted"), "{second}");
    assert!(expiry_alerts(Duration::from_secs(3)).is_empty());

    let status = f.run(&["status"]).expect(0);
    assert!(
        status.stdout.contains("mail: 3 days left"),
        "{}",
        status.stdout
    );
    let json = f.run(&["status", "--json"]).expect(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let e = v["hosts"][0]["status"]["agents"][0]["expiries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["auth"] == "mail")
        .unwrap_or_else(|| panic!("{}", json.stdout))
        .clone();
    assert_eq!(e["verdict"], "warn", "{e}");
    assert_eq!(e["expires_at"], soon.as_str(), "{e}");
    let left = e["expires_in_secs"].as_i64().unwrap();
    assert!((3 * 86_400..=3 * 86_400 + 3600).contains(&left), "{e}");
    assert!(e["checked_age_secs"].as_u64().unwrap() < 120, "{e}");

    // Expired: verify fails, naming the credential and its date.
    t.sh("echo 2026-01-02 > /var/lib/agents/alpha/expiry");
    let failed = f.run(&["verify", "--heartbeat-timeout", "20"]).expect(3);
    assert!(
        failed.stdout.contains(
            "FAIL expiry    alpha/mail: credential `mail` expired at 2026-01-02T00:00:00Z"
        ),
        "{}",
        failed.stdout
    );
    // And the timer alerts again: a new incident.
    t.sh(&format!("systemctl start {unit} || true"));
    let expired = expiry_alerts(Duration::from_secs(10));
    assert_eq!(expired.len(), 1, "{expired:#?}");
    assert!(
        expired[0].contains("credential 'mail' expired at 2026-01-02T00:00:00Z"),
        "{}",
        expired[0]
    );
    let status = f.run(&["status"]).expect(3);
    assert!(
        status
            .stdout
            .contains("t/alpha: credential `mail` expired at 2026-01-02T00:00:00Z: renew it"),
        "{}",
        status.stdout
    );

    // A command that prints no date is reported as such, never as ok.
    t.sh("echo 'next tuesday' > /var/lib/agents/alpha/expiry");
    let unknown = f.run(&["verify", "--heartbeat-timeout", "20"]).expect(3);
    assert!(
        unknown.stdout.contains(
            "FAIL expiry    alpha/mail: cannot learn when credential `mail` expires: the expires command printed no date or Unix time"
        ),
        "{}",
        unknown.stdout
    );

    // A renewal records how it ended and the new expiry.
    let rotated = t.sh("/usr/local/lib/provision/agents/alpha/rotate-mail --force");
    assert!(
        rotated.contains("credential 'mail' of agent alpha expires at 2099-01-01T00:00:00Z"),
        "{rotated}"
    );
    assert_eq!(
        t.sh("cat /var/lib/provision/rotation/alpha-mail.result"),
        "ok"
    );
    assert!(
        t.sh("cat /var/lib/provision/expiry/alpha.mail")
            .starts_with("ok 4070908800 "),
        "{}",
        t.sh("cat /var/lib/provision/expiry/alpha.mail")
    );
    let json = f.run(&["status", "--json"]).expect(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let agent = &v["hosts"][0]["status"]["agents"][0];
    let rotation = agent["rotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["auth"] == "mail")
        .unwrap_or_else(|| panic!("{}", json.stdout));
    assert_eq!(rotation["last_result"], "ok", "{rotation}");
    let e = agent["expiries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["auth"] == "mail")
        .unwrap();
    assert_eq!(e["verdict"], "ok", "{e}");
    assert_eq!(e["expires_at"], "2099-01-01T00:00:00Z", "{e}");
}
