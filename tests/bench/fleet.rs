//! Benchmark (not a test): load, check and render a generated fleet of 1,000
//! hosts with 10 agents each, in a release build, the way `provision check`
//! does (rendering every host on every core). Prints the median of several
//! runs and the process's peak memory next to the goals: under 1.5 s for
//! check and render together, under 200 MiB.
//!
//! `cargo bench --bench fleet` (HOSTS=… AGENTS=… RUNS=… to change the size).

use std::path::Path;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn generate(root: &Path, hosts: usize, agents: usize) {
    std::fs::create_dir_all(root.join("hosts")).unwrap();
    std::fs::create_dir_all(root.join("modules")).unwrap();
    std::fs::write(
        root.join("modules/agent.kdl"),
        "user \"agent\"\nrestart \"on-failure\" delay=\"10s\"\nkill-mode \"control-group\"\nfailure-mode \"disk full\" \"stop and alert\"\n",
    )
    .unwrap();
    std::fs::write(root.join("modules/ops.kdl"), "journald max-use=\"2G\" keep-free=\"500M\" retention=\"1week\"\nalert \"ops\" webhook=\"https://alerts.example.com/x\"\n").unwrap();
    for h in 0..hosts {
        let mut text = format!(
            "host \"h{h:03}\" {{\n    ssh \"deploy@10.0.{}.{}\" sudo=#true\n    use \"ops\"\n",
            h / 250,
            h % 250 + 1
        );
        for a in 0..agents {
            text.push_str(&format!(
                "    agent \"agent-{a}\" {{\n        use \"agent\"\n        exec \"/opt/agents/a{a}/run --host h{h:03}\"\n        secret \"TOKEN\" from=\"env:TOKEN_{a}\"\n        auth \"api\" check=\"/opt/agents/a{a}/check\" {{\n            rotate every=\"30d\" run=\"/opt/agents/a{a}/rotate\" notify=\"ops\"\n        }}\n        heartbeat every=\"15m\" grace=\"5m\" active-hours=\"07:00-19:00\" alert=\"ops\"\n        failure-mode \"api 429\" \"wait and retry once\" tool=\"api\"\n    }}\n"
            ));
        }
        text.push_str("}\n");
        std::fs::write(root.join(format!("hosts/h{h:03}.kdl")), text).unwrap();
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (hosts, agents, runs) = (env("HOSTS", 1000), env("AGENTS", 10), env("RUNS", 7));
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), hosts, agents);
    if std::env::var_os("PHASES").is_some() {
        phases(dir.path());
    }
    let (mut check_ms, mut render_ms, mut files) = (Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let t = Instant::now();
        let sources = provision::load::load(dir.path()).unwrap();
        let (fleet, mut diags) = provision::compile(&sources);
        let templates = provision::render::Templates::new(&sources, &mut diags);
        assert!(!diags.has_errors(), "generated fleet has errors");
        assert_eq!(fleet.hosts.len(), hosts);
        check_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let assets = Default::default();
        let (counts, render_diags) =
            provision::render::each_host(&fleet.hosts, &templates, &assets, |_, state| {
                std::hint::black_box(state.generation_id());
                state.files.len()
            });
        diags.extend(render_diags);
        files = counts.iter().sum();
        render_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(!diags.has_errors());
    }
    let (c, r) = (median(check_ms), median(render_ms));
    println!(
        "fleet: {hosts} hosts x {agents} agents, {files} files rendered, median of {runs} runs"
    );
    println!("  load + check       {c:8.1} ms");
    println!("  render all hosts   {r:8.1} ms");
    println!("  total              {:8.1} ms   (goal < 1500 ms)", c + r);
    println!(
        "  peak memory        {:8.1} MiB  (goal < 200 MiB)",
        peak_rss_mib()
    );
}

#[allow(dead_code)]
fn phases(root: &Path) {
    let t = Instant::now();
    let sources = provision::load::load(root).unwrap();
    eprintln!("load {:?}", t.elapsed());
    let t = Instant::now();
    let mut diags = provision::diagnostic::Diagnostics::default();
    let docs = provision::syntax::parse(&sources, &mut diags);
    eprintln!("parse {:?}", t.elapsed());
    let t = Instant::now();
    let fleet = provision::resolve::resolve(&sources, &docs, &mut diags);
    eprintln!("resolve {:?}", t.elapsed());
    let t = Instant::now();
    provision::lint::lint(&fleet, &mut diags);
    eprintln!("lint {:?}", t.elapsed());
    let t = Instant::now();
    let _ = provision::render::Templates::new(&sources, &mut diags);
    eprintln!("templates {:?}", t.elapsed());
}
