//! `provision init [DIR]`: starts a fleet repository: `hosts/` with a
//! commented example host and agent (a local host, so it applies with no
//! server), `modules/` with the `agent` and `host` modules and the agent
//! template `hello` (which `onboard --agent hello` uses too), the example
//! agent's script and a `.gitignore`. It passes `check` as written. On a
//! directory that already holds a fleet it changes nothing and says so.

use std::path::{Path, PathBuf};

use crate::error::{Error, Exit};
use crate::report::Document;
use crate::ui::Style;

/// The files of a new fleet, by path (a file's mode: executable or not).
const FILES: &[(&str, &str, bool)] = &[
    (
        "hosts/example.kdl",
        include_str!("../../scaffold/hosts/example.kdl"),
        false,
    ),
    (
        "modules/agent/module.kdl",
        include_str!("../../modules/agent/module.kdl"),
        false,
    ),
    (
        "modules/host/module.kdl",
        include_str!("../../scaffold/modules/host/module.kdl"),
        false,
    ),
    (
        "modules/hello/module.kdl",
        include_str!("../../scaffold/modules/hello/module.kdl"),
        false,
    ),
    (
        "agents/hello/run.sh",
        include_str!("../../scaffold/agents/hello/run.sh"),
        true,
    ),
    (
        ".gitignore",
        include_str!("../../scaffold/gitignore"),
        false,
    ),
];

/// Runs `init`.
pub fn run(dir: &Path, style: Style) -> Result<Exit, Error> {
    let fail = |path: &Path, e: std::io::Error| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // A fleet is there already: nothing is touched.
    let existing: Vec<&str> = ["hosts", "modules"]
        .into_iter()
        .filter(|d| dir.join(d).exists())
        .collect();
    if !existing.is_empty() {
        let message = format!(
            "{} already holds a fleet ({} exist{}); nothing changed",
            dir.display(),
            existing
                .iter()
                .map(|d| format!("{d}/"))
                .collect::<Vec<_>>()
                .join(" and "),
            if existing.len() == 1 { "s" } else { "" }
        );
        report(style, dir, &[], &message);
        return Ok(Exit::Ok);
    }
    let mut written = Vec::new();
    for (rel, text, executable) in FILES {
        let path = dir.join(rel);
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| fail(&path, e))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| fail(&path, e))?;
        }
        written.push(PathBuf::from(rel));
    }
    let message = format!(
        "Started a fleet in {}. Next: `provision -C {0} check`, then `provision -C {0} apply example --yes` (a local host, no server); to point it at a VPS, see the README's \"Your first VPS\".",
        dir.display()
    );
    report(style, dir, &written, &message);
    Ok(Exit::Ok)
}

fn report(style: Style, dir: &Path, written: &[PathBuf], message: &str) {
    if style.json {
        let body = serde_json::json!({
            "dir": dir.display().to_string(),
            "written": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "message": message,
        });
        crate::ui::json::print(style, &Document::new("init", true, body));
    } else {
        for p in written {
            println!("  + {}", p.display());
        }
        println!("{message}");
    }
}
