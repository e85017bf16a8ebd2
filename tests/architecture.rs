//! The pure core does no I/O: no filesystem, process, environment, clock,
//! network or async runtime, and does not reach into the effects.

const PURE: &[&str] = &[
    "src/source.rs",
    "src/diagnostic.rs",
    "src/syntax.rs",
    "src/syntax/fast.rs",
    "src/resolve/mod.rs",
    "src/resolve/accounts.rs",
    "src/resolve/agent.rs",
    "src/resolve/alert.rs",
    "src/resolve/auth.rs",
    "src/resolve/files.rs",
    "src/resolve/heartbeat.rs",
    "src/resolve/host.rs",
    "src/resolve/references.rs",
    "src/resolve/runbook.rs",
    "src/resolve/schema.rs",
    "src/resolve/splice.rs",
    "src/resolve/unit.rs",
    "src/lint.rs",
    "src/secret.rs",
    "src/recipients.rs",
    "src/desired.rs",
    "src/model/mod.rs",
    "src/model/values.rs",
    "src/render/mod.rs",
    "src/render/views.rs",
    "src/record.rs",
    "src/content_id.rs",
    "src/observed.rs",
    "src/onhost.rs",
    "src/host_key.rs",
    "src/onboard/mod.rs",
    "src/onboard/facts.rs",
    "src/onboard/harden.rs",
    "src/onboard/host_text.rs",
    "src/onboard/keyscan.rs",
    "src/plan.rs",
    "src/script.rs",
    "src/ustar.rs",
    "src/parallel.rs",
    "src/verify.rs",
    "src/status.rs",
    "src/date.rs",
    "src/expiry.rs",
    "src/problem.rs",
    "src/saved_plan.rs",
    "src/last_apply.rs",
    "src/finding.rs",
    "src/deploy/decide.rs",
];

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::process",
    "std::env",
    "std::net",
    "std::time",
    "SystemTime",
    "Instant",
    "tokio",
    "openssh",
    "crate::load",
    "crate::transport",
    "crate::command",
    "crate::ui",
    "println!",
    "eprintln!",
];

#[test]
fn the_pure_core_does_no_io() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in PURE {
        let text = std::fs::read_to_string(format!("{root}/{file}"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for bad in FORBIDDEN {
            assert!(
                !text.contains(bad),
                "{file} uses {bad}: the pure core may not do I/O"
            );
        }
    }
}
