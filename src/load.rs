//! Reads the operator's repository: `hosts/*.kdl`, `modules/**` and the files
//! that `file source=`/`template=` name. The only reader of the operator's
//! files; everything after it works on text.

use std::fs;
use std::path::{Path, PathBuf};

use crate::render::Assets;
use crate::source::{Source, SourceKind, SourceSet};

/// A file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {message}")]
pub struct LoadError {
    /// The path.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

fn err(path: &Path, e: impl std::fmt::Display) -> LoadError {
    LoadError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads `hosts/*.kdl`, `modules/*.kdl`, `modules/NAME/module.kdl` and
/// `modules/NAME/templates/*.tera` under `root`.
pub fn load(root: &Path) -> Result<SourceSet, LoadError> {
    let hosts = root.join("hosts");
    if !hosts.is_dir() {
        return Err(err(
            &hosts,
            "no hosts/ directory here; run in the repository that holds hosts/ and modules/, or pass -C DIR",
        ));
    }
    let mut files = Vec::new();
    for path in list(&hosts)? {
        if path.extension().is_some_and(|e| e == "kdl") && path.is_file() {
            files.push(read(root, &path, SourceKind::Host)?);
        }
    }
    let modules = root.join("modules");
    if modules.is_dir() {
        for path in list(&modules)? {
            if path.is_file() && path.extension().is_some_and(|e| e == "kdl") {
                files.push(read(root, &path, SourceKind::Module)?);
            } else if path.is_dir() {
                let module = path.join("module.kdl");
                if module.is_file() {
                    files.push(read(root, &module, SourceKind::Module)?);
                }
                let templates = path.join("templates");
                if templates.is_dir() {
                    for t in list(&templates)? {
                        if t.is_file() && t.extension().is_some_and(|e| e == "tera") {
                            files.push(read(root, &t, SourceKind::Template)?);
                        }
                    }
                }
            }
        }
    }
    Ok(SourceSet::new(files))
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| err(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| err(dir, e)))
        .collect::<Result<_, _>>()?;
    out.sort();
    Ok(out)
}

fn read(root: &Path, path: &Path, kind: SourceKind) -> Result<Source, LoadError> {
    let text = fs::read_to_string(path).map_err(|e| err(path, e))?;
    Ok(Source {
        path: relative(root, path),
        kind,
        text,
    })
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads the repository files named by `file source=`/`template=`. Missing
/// files are left out: `render` reports them at the KDL that names them.
pub fn assets<'a>(root: &Path, paths: impl IntoIterator<Item = &'a String>) -> Assets {
    let mut out = Assets::new();
    for p in paths {
        if let Ok(bytes) = fs::read(root.join(p)) {
            out.insert(p.clone(), bytes);
        }
    }
    out
}
