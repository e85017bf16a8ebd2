//! `provision render HOST --out DIR`: writes every file of the host's desired
//! state under DIR at its absolute path, and prints the generation id last.
//!
//! With `--with-secrets` the files hold secret values, so every file is
//! written the way a secret must be: created new, with its final mode from
//! the first byte, in a directory reached without following any symlink
//! under DIR, then renamed over its path. A symlink planted in DIR (say
//! `DIR/etc -> /etc`, or `DIR/etc/app.env -> ~/.ssh/authorized_keys`) is
//! refused with its path named; nothing is written through it.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use super::Repo;
use crate::error::{Error, Exit};
use crate::report::Document;
use crate::ui::Style;

/// Runs `render`.
pub fn run(
    root: &Path,
    host: &str,
    out: Option<&Path>,
    with_secrets: bool,
    style: Style,
) -> Result<Exit, Error> {
    if out.is_none() && !style.json {
        return Err(Error::Usage(
            "render writes the files into --out DIR; pass --out, or --json for the manifest alone"
                .into(),
        ));
    }
    let mut repo = Repo::open(root)?;
    if repo.diags.has_errors() {
        return Err(super::report(&mut repo, style));
    }
    let h = repo.host(host)?;
    let secrets = if with_secrets {
        Some(super::secrets::resolve(root, h).map_err(|failures| {
            Error::Secrets(failures.iter().map(|f| f.describe(&repo.sources)).collect())
        })?)
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
    if let Some(out) = out {
        fs::create_dir_all(out).map_err(|e| Error::Write {
            path: out.to_path_buf(),
            message: e.to_string(),
        })?;
        for (path, f) in &state.files {
            write_under(out, path, &f.bytes, f.mode.0)?;
        }
    }
    let manifest = state.manifest();
    if style.json {
        let body = serde_json::json!({
            "host": manifest.host,
            "generation_id": manifest.generation,
            "files": manifest.files,
            "units": manifest.units,
        });
        crate::ui::json::print(style, &Document::new("render", true, body));
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

/// Writes `bytes` with `mode` at the absolute host path `path` under `out`.
///
/// Each directory between `out` and the file is checked (and created when
/// missing) without following symlinks; a symlink, or anything else that is
/// not a directory, is refused. The file is created new next to its path
/// (`create_new`, so never an existing file or a symlink's target), with
/// `mode` from the start, and renamed over the path: whatever was there
/// (an older render's file, a planted link) is replaced, never written
/// into. A symlink already at the path is refused all the same, since it
/// says someone meddled with DIR.
fn write_under(out: &Path, path: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let fail = |p: &Path, message: String| Error::Write {
        path: p.to_path_buf(),
        message,
    };
    let relative = Path::new(path.trim_start_matches('/'));
    let mut parts = Vec::new();
    for c in relative.components() {
        match c {
            Component::Normal(name) => parts.push(name),
            // The renderer makes only plain absolute paths; anything else
            // could leave DIR.
            _ => {
                return Err(fail(
                    &out.join(relative),
                    "not a plain path under the output directory".into(),
                ));
            }
        }
    }
    let Some((name, dirs)) = parts.split_last() else {
        return Err(fail(out, format!("{path:?} names no file")));
    };
    let mut dir = out.to_path_buf();
    for d in dirs {
        dir.push(d);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(fail(
                    &dir,
                    "it is a symlink; refusing to write through it".into(),
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(fail(&dir, "it is not a directory".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // `create`, not `create_all`: a name that appeared in the
                // meantime fails here instead of being followed.
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&dir)
                    .map_err(|e| fail(&dir, e.to_string()))?;
            }
            Err(e) => return Err(fail(&dir, e.to_string())),
        }
    }
    let dest = dir.join(name);
    match fs::symlink_metadata(&dest) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(fail(
                &dest,
                "it is a symlink; refusing to write through it".into(),
            ));
        }
        Ok(m) if !m.is_file() => return Err(fail(&dest, "it is not a regular file".into())),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(&dest, e.to_string())),
    }
    let (temp, mut file) = create_temp(&dir, name.to_string_lossy().as_ref(), mode)
        .map_err(|e| fail(&dest, format!("cannot create a file next to it: {e}")))?;
    let written = (|| {
        file.write_all(bytes)?;
        // The umask may have taken bits the file needs (group write, say);
        // set them on the open file, never through the path.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&temp, &dest)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(fail(&dest, e.to_string()));
    }
    Ok(())
}

/// A new file `.NAME.provision-N` in `dir`, created with `mode` (less the
/// umask), never an existing one.
fn create_temp(dir: &Path, name: &str, mode: u32) -> io::Result<(PathBuf, fs::File)> {
    let mut last = None;
    for n in 0..100 {
        let temp = dir.join(format!(".{name}.provision-{}-{n}", std::process::id()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free name")))
}
