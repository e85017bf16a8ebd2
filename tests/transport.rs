//! Integration tests of `provision::transport` against a real sshd on 127.0.0.1.
//!
//! Each test starts its own server (see `common/sshd.rs`). Where sshd cannot run, the tests
//! say so on stderr (`SKIPPED transport: <reason>`) and pass.

#[path = "common/sshd.rs"]
mod sshd;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use provision::transport::{
    LocalTransport, Login, SshTarget, SshTransport, Transport, TransportError, fingerprint,
};
use sha2::{Digest as _, Sha256};
use sshd::Sshd;

/// Generous bound for anything that should take well under a second on loopback.
const BOUND: Duration = Duration::from_secs(20);

/// Starts a test sshd, or explains on stderr why this test is skipped.
fn start_sshd() -> Option<Sshd> {
    if let Err(reason) = Sshd::available() {
        eprintln!("SKIPPED transport: {reason}");
        return None;
    }
    Some(Sshd::start().unwrap_or_else(|e| panic!("{e}")))
}

/// A target for the test sshd with its host key pinned and its client key.
fn target(sshd: &Sshd) -> SshTarget {
    SshTarget {
        destination: sshd.destination(),
        port: Some(sshd.port),
        host_key: Some(sshd.host_key_pub.clone()),
        identity: Some(sshd.identity.clone()),
        accept_new: false,
        connect_timeout: Duration::from_secs(5),
        config_file: None,
        login: Login::Detect,
    }
}

async fn connect(sshd: &Sshd) -> Transport {
    let transport = tokio::time::timeout(BOUND, SshTransport::connect("web1", &target(sshd)))
        .await
        .expect("connect hung")
        .unwrap_or_else(|e| panic!("connect failed: {e}\nsshd log:\n{}", sshd.log()));
    Transport::Ssh(transport)
}

async fn run(t: &Transport, script: &str, stdin: &[u8]) -> provision::transport::ExecOutput {
    tokio::time::timeout(BOUND, t.run(script, stdin))
        .await
        .expect("run hung")
        .unwrap_or_else(|e| panic!("run failed: {e}"))
}

async fn connect_error(target: &SshTarget) -> TransportError {
    match tokio::time::timeout(BOUND, SshTransport::connect("web1", target))
        .await
        .expect("connect hung")
    {
        Ok(_) => panic!("connected, but should have failed"),
        Err(e) => e,
    }
}

fn quote(path: &Path) -> String {
    shlex::try_quote(path.to_str().unwrap())
        .unwrap()
        .into_owned()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic bytes that don't compress or repeat: a simple xorshift stream.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The ssh master processes (`ssh ... -M ... -p PORT`) talking to the server on `port`.
fn masters_for(port: u16) -> usize {
    let port = port.to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| {
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.first() == Some(&&b"ssh"[..])
                && args.contains(&&b"-M"[..])
                && args
                    .windows(2)
                    .any(|w| w[0] == b"-p" && w[1] == port.as_bytes())
        })
        .count()
}

async fn wait_for_masters(port: u16, expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = masters_for(port);
        if n == expected || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_scripts_and_reports_status_and_output() {
    let Some(sshd) = start_sshd() else { return };
    let t = connect(&sshd).await;
    assert_eq!(t.host(), "web1");

    let out = run(&t, "echo hello; echo oops >&2; exit 3", b"").await;
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.stderr, b"oops\n");
    assert!(!out.success());

    // 255 is also what ssh itself exits with on failure; here it must be the script's status.
    assert_eq!(run(&t, "exit 255", b"").await.status, 255);

    // The openssh crate turns 127 into an error; the transport must report it as a status.
    let out = run(&t, "echo before; no-such-command-xyz", b"").await;
    assert_eq!(out.status, 127);
    assert_eq!(out.stdout, b"before\n");
    assert!(out.stderr_lossy().contains("not found"), "{out:?}");

    // A script killed by a signal reports 128 + signal, and the connection stays usable.
    assert_eq!(run(&t, "kill -9 $$", b"").await.status, 137);

    // Root, an empty PROVISION_ROOT, and the script's quoting intact through the login shell.
    let script = "printf '%s|' \"$(id -u)\" \"[$PROVISION_ROOT]\" \"${PROVISION_LOCAL-unset}\" \
                  'it'\\''s' \"a\\\\b\" '$HOME'\ncat <<'EOF'\n$not expanded \"x\"\nEOF";
    let out = run(&t, script, b"").await;
    assert_eq!(
        out.stdout_lossy(),
        "0|[]|unset|it's|a\\b|$HOME|$not expanded \"x\"\n",
        "{out:?}"
    );
    t.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_upload_is_byte_identical() {
    let Some(sshd) = start_sshd() else { return };
    let t = connect(&sshd).await;
    let data = noise(1024 * 1024);

    let started = Instant::now();
    let out = run(&t, "sha256sum | cut -d' ' -f1", &data).await;
    eprintln!(
        "timing: 1 MiB upload + remote sha256sum: {:?}",
        started.elapsed()
    );
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(out.stdout_lossy().trim(), sha256_hex(&data));

    // Input and output flowing at the same time must not deadlock, and both stay intact.
    let out = run(&t, "cat; echo done >&2", &data).await;
    assert_eq!(out.status, 0);
    assert!(out.stdout == data, "echoed bytes differ");
    assert_eq!(out.stderr, b"done\n");

    // A script that ignores its input is not an error.
    let out = run(&t, "echo ignored", &data).await;
    assert_eq!((out.status, out.stdout.as_slice()), (0, &b"ignored\n"[..]));
    t.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_runs_share_one_connection() {
    let Some(sshd) = start_sshd() else { return };
    let t = Arc::new(connect(&sshd).await);
    let dir = tempfile::tempdir().unwrap();
    let d = quote(dir.path());

    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let t = Arc::clone(&t);
            // Each script counts the scripts running at the same time (the directory is on
            // this machine, where the sshd also runs).
            let script = format!(
                "touch {d}/run.{i}; n=$(ls {d} | grep -c '^run\\.'); sleep 0.3; rm {d}/run.{i}; \
                 echo \"{i} $n\""
            );
            tokio::spawn(async move { t.run(&script, b"").await })
        })
        .collect();
    let mut most = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let out = tokio::time::timeout(BOUND, task)
            .await
            .expect("run hung")
            .unwrap()
            .unwrap_or_else(|e| panic!("run {i} failed: {e}"));
        assert_eq!(out.status, 0, "{out:?}");
        let text = out.stdout_lossy();
        let (id, n) = text.trim().split_once(' ').unwrap();
        assert_eq!(id, i.to_string());
        most = most.max(n.parse::<usize>().unwrap());
    }
    eprintln!(
        "timing: 20 runs of `sleep 0.3`, at most {most} at once: {:?}",
        started.elapsed()
    );
    assert!(most <= 8, "{most} commands ran at once; the limit is 8");
    assert!(most >= 2, "commands did not run concurrently");
    assert_eq!(masters_for(sshd.port), 1, "expected one master connection");

    Arc::into_inner(t).unwrap().close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pinned_host_key_connects() {
    let Some(sshd) = start_sshd() else { return };
    let started = Instant::now();
    let t = connect(&sshd).await;
    let connected = started.elapsed();

    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(run(&t, "true", b"").await.status, 0);
    }
    let round_trip = started.elapsed() / 50;
    eprintln!(
        "timing: connect (master + root check): {connected:?}, round trip of `true`: {round_trip:?}"
    );
    t.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_pinned_host_key_is_refused_and_nothing_runs() {
    let Some(sshd) = start_sshd() else { return };
    let keys = tempfile::tempdir().unwrap();
    let (_, wrong_key) = sshd::generate_key(keys.path(), "other_host").unwrap();
    let marker = keys.path().join("ran");

    let mut target = target(&sshd);
    target.host_key = Some(wrong_key.clone());
    let err = match tokio::time::timeout(BOUND, SshTransport::connect("web1", &target))
        .await
        .expect("connect hung")
    {
        Ok(t) => {
            // Show what would have happened: the marker would exist.
            let _ = t.run(&format!("touch {}", quote(&marker)), b"").await;
            panic!("connected despite a wrong pinned key");
        }
        Err(e) => e,
    };

    let expected = fingerprint(&wrong_key).unwrap();
    let actual = fingerprint(&sshd.host_key_pub).unwrap();
    match &err {
        TransportError::HostKeyMismatch {
            host,
            expected: e,
            actual: a,
        } => {
            assert_eq!(host, "web1");
            assert_eq!(e, &expected);
            assert_eq!(a.as_deref(), Some(actual.as_str()));
        }
        other => panic!("expected HostKeyMismatch, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&expected) && message.contains(&actual),
        "{message}"
    );
    assert!(message.starts_with("web1: "), "{message}");
    assert!(!marker.exists());
    // Ssh checks the host key before authenticating, so no session ever existed.
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn pin_of_another_key_type_is_a_mismatch() {
    let Some(sshd) = start_sshd() else { return };
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("ecdsa");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let ecdsa = std::fs::read_to_string(keys.path().join("ecdsa.pub")).unwrap();

    let mut target = target(&sshd);
    target.host_key = Some(ecdsa.clone());
    match connect_error(&target).await {
        // The host has no ECDSA key, so ssh cannot show one: the transport asks the host
        // (ssh-keyscan) for the key it does have.
        TransportError::HostKeyMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, fingerprint(&ecdsa).unwrap());
            assert_eq!(actual, Some(fingerprint(&sshd.host_key_pub).unwrap()));
        }
        other => panic!("expected HostKeyMismatch, got {other:?}"),
    }
    assert!(!sshd.log().contains("Accepted publickey"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_key_is_refused_without_a_pin() {
    let Some(sshd) = start_sshd() else { return };
    let mut target = target(&sshd);
    // The user's own known_hosts does not know this fresh key, and strict checking (the
    // default) neither asks nor writes anything.
    target.host_key = None;
    match connect_error(&target).await {
        TransportError::UnknownHostKey { host, actual } => {
            assert_eq!(host, "web1");
            assert_eq!(actual, Some(fingerprint(&sshd.host_key_pub).unwrap()));
        }
        other => panic!("expected UnknownHostKey, got {other:?}"),
    }
    assert!(!sshd.log().contains("Accepted publickey"));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_identity_is_an_auth_error() {
    let Some(sshd) = start_sshd() else { return };
    let keys = tempfile::tempdir().unwrap();
    let (wrong, _) = sshd::generate_key(keys.path(), "stranger").unwrap();
    let mut target = target(&sshd);
    target.identity = Some(wrong);
    match connect_error(&target).await {
        TransportError::Auth { host, message } => {
            assert_eq!(host, "web1");
            assert!(message.contains("Permission denied"), "{message}");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_is_unreachable() {
    let Some(sshd) = start_sshd() else { return };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut target = target(&sshd);
    target.port = Some(closed);
    match connect_error(&target).await {
        TransportError::Unreachable { host, message } => {
            assert_eq!(host, "web1");
            assert!(message.contains("Connection refused"), "{message}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn host_going_away_mid_command_is_lost() {
    let Some(mut sshd) = start_sshd() else { return };
    let t = connect(&sshd).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");

    let script = format!("touch {}; sleep 30; echo finished", quote(&marker));
    let run = t.run(&script, b"");
    let stop = async {
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sshd.stop();
    };
    let started = Instant::now();
    let (result, ()) = tokio::time::timeout(BOUND, async { tokio::join!(run, stop) })
        .await
        .expect("a command on a dropped connection hung");
    eprintln!(
        "timing: dropped connection noticed after {:?}",
        started.elapsed()
    );
    match result {
        Err(TransportError::Lost { host, .. }) => assert_eq!(host, "web1"),
        other => panic!("expected Lost, got {other:?}"),
    }

    // Later commands fail the same way, at once.
    match tokio::time::timeout(BOUND, t.run("true", b"")).await {
        Ok(Err(TransportError::Lost { .. })) => {}
        other => panic!("expected Lost, got {other:?}"),
    }
    t.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn close_and_drop_leave_no_master() {
    let Some(sshd) = start_sshd() else { return };

    let t = connect(&sshd).await;
    assert_eq!(wait_for_masters(sshd.port, 1).await, 1);
    t.close().await;
    assert_eq!(
        wait_for_masters(sshd.port, 0).await,
        0,
        "close left a master"
    );

    let t = connect(&sshd).await;
    assert_eq!(wait_for_masters(sshd.port, 1).await, 1);
    drop(t);
    assert_eq!(
        wait_for_masters(sshd.port, 0).await,
        0,
        "drop left a master"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fingerprint_matches_ssh_keygen() {
    let Some(sshd) = start_sshd() else { return };
    let listed = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(sshd.dir.path().join("host_ed25519.pub"))
        .output()
        .unwrap();
    assert!(listed.status.success());
    // "256 SHA256:... comment (ED25519)"
    let listed = String::from_utf8(listed.stdout).unwrap();
    let expected = listed.split_whitespace().nth(1).unwrap();
    assert_eq!(fingerprint(&sshd.host_key_pub).unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn local_transport_runs_the_same_script_under_its_root() {
    // The same script a real host would get: it writes under "$PROVISION_ROOT".
    let script = "set -e; mkdir -p \"$PROVISION_ROOT/etc/app\"; cat > \"$PROVISION_ROOT/etc/app/app.conf\"; \
                  echo \"root=[$PROVISION_ROOT] local=[${PROVISION_LOCAL-unset}]\"";
    let root = tempfile::tempdir().unwrap();
    let t = Transport::Local(LocalTransport::new("web1", root.path().to_path_buf()));
    assert_eq!(t.host(), "web1");

    let out = run(&t, script, b"port = 8080\n").await;
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(
        out.stdout_lossy(),
        format!("root=[{}] local=[1]\n", root.path().display())
    );
    assert_eq!(
        std::fs::read(root.path().join("etc/app/app.conf")).unwrap(),
        b"port = 8080\n"
    );

    // Status, stderr and signals are reported as over SSH.
    let out = run(&t, "echo oops >&2; exit 255", b"").await;
    assert_eq!((out.status, out.stderr.as_slice()), (255, &b"oops\n"[..]));
    assert_eq!(run(&t, "kill -9 $$", b"").await.status, 137);
    let data = noise(1024 * 1024);
    assert_eq!(run(&t, "cat", &data).await.stdout, data);
    t.close().await;

    // Over SSH the same variables say "real host": an empty root and no PROVISION_LOCAL.
    let Some(sshd) = start_sshd() else { return };
    let t = connect(&sshd).await;
    let out = run(
        &t,
        "echo \"root=[$PROVISION_ROOT] local=[${PROVISION_LOCAL-unset}]\"",
        b"",
    )
    .await;
    assert_eq!(out.stdout_lossy(), "root=[] local=[unset]\n");
    t.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_transport_refuses_symlinked_directories_before_running() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("passwd");
    std::fs::write(&victim, "root:x:0:0\n").unwrap();
    let marker = outside.path().join("ran");
    let script = format!(
        "touch {}; echo pwned > \"$PROVISION_ROOT/etc/passwd\"",
        quote(&marker)
    );
    let t = Transport::Local(LocalTransport::new("web1", root.path().to_path_buf()));

    // Files and relative links to files (the store's `current`) are fine.
    let store = root.path().join("var/lib/provision");
    std::fs::create_dir_all(store.join("generations")).unwrap();
    std::fs::write(store.join("generations/1.json"), "{}").unwrap();
    std::os::unix::fs::symlink("generations/1.json", store.join("current")).unwrap();
    assert_eq!(run(&t, "true", b"").await.status, 0);

    let cases: [(&str, &Path); 3] = [
        // demo/root/etc -> /etc, and the same one level down.
        ("etc", outside.path()),
        ("var/lib/agents", outside.path()),
        // A dangling link out of the root: a directory may appear there.
        ("opt", Path::new("/nonexistent-provision-test/dir")),
    ];
    for (at, to) in cases {
        let link = root.path().join(at);
        std::os::unix::fs::symlink(to, &link).unwrap();
        let err = match tokio::time::timeout(BOUND, t.run(&script, b"")).await {
            Ok(Err(e)) => e.to_string(),
            other => panic!("{at}: expected a refusal, got {other:?}"),
        };
        assert!(
            err.starts_with("web1: ")
                && err.contains(&format!(
                    "{} is a symlink to {}",
                    link.display(),
                    to.display()
                )),
            "{err}"
        );
        assert!(!marker.exists(), "{at}: the script ran");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
        std::fs::remove_file(&link).unwrap();
    }

    // A relative link to a directory inside the root is a path component too.
    std::fs::create_dir(root.path().join("real-etc")).unwrap();
    std::os::unix::fs::symlink("real-etc", root.path().join("etc")).unwrap();
    let err = t.run("true", b"").await.unwrap_err().to_string();
    assert!(err.contains("a directory on the way"), "{err}");
    std::fs::remove_file(root.path().join("etc")).unwrap();
    assert_eq!(run(&t, "true", b"").await.status, 0);
}

/// A final host reached through a jump host, each its own sshd on loopback, and the ssh
/// configuration that says so (the user's own, in a real setup: `ProxyJump` there, the jump
/// host's key in the user's known_hosts).
struct Jumped {
    jump: Sshd,
    last: Sshd,
    dir: tempfile::TempDir,
}

impl Jumped {
    fn start() -> Option<Jumped> {
        let jump = start_sshd()?;
        let last = start_sshd()?;
        let dir = tempfile::tempdir().unwrap();
        let jumped = Jumped { jump, last, dir };
        jumped.trust_jump_key(&jumped.jump.host_key_pub.clone());
        let d = jumped.dir.path().display();
        std::fs::write(
            jumped.config(),
            format!(
                "Host final.test\n\
                 \x20   HostName 127.0.0.1\n\
                 \x20   Port {last}\n\
                 \x20   ProxyJump jump.test\n\
                 Host jump.test\n\
                 \x20   HostName 127.0.0.1\n\
                 \x20   Port {jump}\n\
                 \x20   User root\n\
                 \x20   IdentityFile {identity}\n\
                 \x20   IdentitiesOnly yes\n\
                 \x20   UserKnownHostsFile {d}/jump_known_hosts\n\
                 \x20   GlobalKnownHostsFile /dev/null\n\
                 \x20   StrictHostKeyChecking yes\n\
                 \x20   BatchMode yes\n",
                last = jumped.last.port,
                jump = jumped.jump.port,
                identity = jumped.jump.identity.display(),
            ),
        )
        .unwrap();
        Some(jumped)
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// What the user's known_hosts says about the jump host.
    fn trust_jump_key(&self, key: &str) {
        std::fs::write(
            self.dir.path().join("jump_known_hosts"),
            format!("[127.0.0.1]:{} {key}\n", self.jump.port),
        )
        .unwrap();
    }

    /// The final host by its configured name, its key pinned.
    fn target(&self) -> SshTarget {
        SshTarget {
            destination: "root@final.test".into(),
            port: None,
            host_key: Some(self.last.host_key_pub.clone()),
            identity: Some(self.last.identity.clone()),
            accept_new: false,
            connect_timeout: Duration::from_secs(5),
            config_file: Some(self.config()),
            login: Login::Detect,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pinned_host_key_holds_through_a_jump_host() {
    let Some(j) = Jumped::start() else { return };

    // The pin is the final host's; the jump host is checked by the user's known_hosts.
    let t = match tokio::time::timeout(BOUND, SshTransport::connect("web1", &j.target()))
        .await
        .expect("connect hung")
    {
        Ok(t) => Transport::Ssh(t),
        Err(e) => panic!(
            "connect through the jump host failed: {e}\njump sshd:\n{}\nfinal sshd:\n{}",
            j.jump.log(),
            j.last.log()
        ),
    };
    let out = run(&t, "echo \"through $SSH_CONNECTION\"", b"").await;
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stdout_lossy().starts_with("through 127.0.0.1"),
        "{out:?}"
    );
    t.close().await;
    // The connection went through the jump host: its ssh logged in there.
    assert!(
        j.jump.log().contains("Accepted publickey for root"),
        "{}",
        j.jump.log()
    );

    // A wrong pin through the same jump host is refused, and nothing logs in.
    let keys = tempfile::tempdir().unwrap();
    let (_, wrong_key) = sshd::generate_key(keys.path(), "not_the_host").unwrap();
    let mut target = j.target();
    target.host_key = Some(wrong_key.clone());
    let accepted = j.last.log().matches("Accepted publickey").count();
    match connect_error(&target).await {
        TransportError::HostKeyMismatch {
            host,
            expected,
            actual,
        } => {
            assert_eq!(host, "web1");
            assert_eq!(expected, fingerprint(&wrong_key).unwrap());
            assert_eq!(actual, Some(fingerprint(&j.last.host_key_pub).unwrap()));
        }
        other => panic!("expected HostKeyMismatch, got {other:?}"),
    }
    assert_eq!(
        j.last.log().matches("Accepted publickey").count(),
        accepted,
        "{}",
        j.last.log()
    );

    // The jump host's own key still matters: one the user's known_hosts does not have is
    // refused (the pin of the final host does not vouch for it).
    j.trust_jump_key(&wrong_key);
    match connect_error(&j.target()).await {
        TransportError::Unreachable { host, .. } => assert_eq!(host, "web1"),
        other => panic!("expected the jump host to be refused, got {other:?}"),
    }
    assert_eq!(j.last.log().matches("Accepted publickey").count(), accepted);
}
