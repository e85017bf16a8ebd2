//! `provision render HOST --out DIR`: writes every file of the host's desired
//! state under DIR at its absolute path, and prints the generation id last.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::Repo;
use crate::error::{Error, Exit};
use crate::ui::Style;

/// Runs `render`.
pub fn run(
    root: &Path,
    host: &str,
    out: &Path,
    with_secrets: bool,
    style: Style,
) -> Result<Exit, Error> {
    let mut repo = Repo::open(root)?;
    if repo.diags.has_errors() {
        return Err(super::report(&mut repo, style));
    }
    let h = repo.host(host)?;
    let secrets = if with_secrets {
        Some(super::secrets::resolve(root, h)?)
    } else {
        None
    };
    let mut diags = crate::diagnostic::Diagnostics::default();
    let state = crate::render::render(
        h,
        &repo.templates,
        &repo.assets,
        secrets.as_ref(),
        &mut diags,
    );
    repo.diags.extend(diags);
    if repo.diags.has_errors() {
        return Err(super::report(&mut repo, style));
    }
    for (path, f) in &state.files {
        let dest = out.join(path.trim_start_matches('/'));
        let fail = |e: std::io::Error| Error::Write {
            path: dest.clone(),
            message: e.to_string(),
        };
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(fail)?;
        }
        fs::write(&dest, &f.bytes).map_err(fail)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(f.mode.0)).map_err(fail)?;
    }
    let manifest = state.manifest();
    if style.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&manifest).expect("a manifest serialises")
        );
    } else {
        for e in &manifest.files {
            let note = if e.secret {
                if with_secrets {
                    "  (secret)"
                } else {
                    "  (secret: references only)"
                }
            } else {
                ""
            };
            println!(
                "{} {:>8}:{:<8} {}{}",
                e.mode, e.owner, e.group, e.path, note
            );
        }
        println!("{}", manifest.generation);
    }
    Ok(Exit::Ok)
}
