//! `provision secrets check|edit|rekey`: the repository's secrets, and the
//! age files among them, encrypted to `secrets/recipients`.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use super::Repo;
use super::secrets::{self, Resolver};
use crate::error::{Error, Exit};
use crate::recipients::{self, Lock, Recipients};
use crate::report::Document;
use crate::secret::SecretSource;
use crate::source::line_col;
use crate::ui::Style;

/// The recipients file, parsed; a file that does not parse is an error with
/// every bad line.
fn read_recipients(root: &Path) -> Result<Recipients, Error> {
    let path = root.join(recipients::RECIPIENTS);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Usage(match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "{} does not exist; create it with one public key per line (`age-keygen -y ~/.config/age/keys.txt`, or an `ssh-ed25519 …` line), then try again",
                recipients::RECIPIENTS
            ),
            _ => format!("cannot read {}: {e}", recipients::RECIPIENTS),
        })
    })?;
    Recipients::parse(&text).map_err(|errors| {
        Error::Usage(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

fn read_lock(root: &Path) -> Lock {
    std::fs::read_to_string(root.join(recipients::LOCK))
        .map(|t| Lock::parse(&t))
        .unwrap_or_default()
}

/// Writes `bytes` to `path` atomically (a temporary file beside it, then a
/// rename), so a file is never half-written.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let tmp = staged(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

fn staged(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.provision-{}", std::process::id()))
}

/// Every age file of the repository: those the fleet names, those the lock
/// lists, and the `*.age` files under `secrets/`.
fn age_files(root: &Path, repo: Option<&Repo>, lock: &Lock) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = lock.files.keys().cloned().collect();
    if let Some(repo) = repo {
        for h in &repo.fleet.hosts {
            for u in secrets::uses(h) {
                if let SecretSource::Age(p) = &u.secret.source {
                    out.insert(p.clone());
                }
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(root.join("secrets")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".age") && !name.starts_with('.') {
                out.insert(format!("secrets/{name}"));
            }
        }
    }
    out.retain(|p| root.join(p).exists());
    out
}

/// `provision secrets edit FILE`.
pub fn edit(root: &Path, file: &Path, style: Style) -> Result<Exit, Error> {
    let rel = relative(root, file)?;
    let path = root.join(&rel);
    let recipients = read_recipients(root)?;
    let keys = secrets::keys();
    let before = if path.exists() {
        let bytes =
            std::fs::read(&path).map_err(|e| Error::Usage(format!("cannot read {rel}: {e}")))?;
        Some((
            bytes.clone(),
            keys.decrypt_bytes(&bytes, &rel).map_err(Error::Usage)?,
        ))
    } else {
        None
    };
    let plain = Plaintext::create(&rel, before.as_ref().map_or(&[][..], |(_, p)| p))?;
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.is_empty())
        .or_else(|| std::env::var("EDITOR").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| "vi".into());
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&plain.path)
        .status()
        .map_err(|e| Error::Usage(format!("cannot run the editor `{editor}`: {e}")))?;
    if !status.success() {
        return Err(Error::Usage(format!(
            "the editor `{editor}` exited with {status}; {rel} was left as it was (the plaintext was removed)"
        )));
    }
    let edited = std::fs::read(&plain.path)
        .map_err(|e| Error::Usage(format!("cannot read back the edited file: {e}")))?;
    drop(plain);
    let mut lock = read_lock(root);
    let print = recipients.fingerprint();
    if let Some((_, old)) = &before
        && *old == edited
        && lock.files.get(&rel) == Some(&print)
    {
        edited_doc(style, &rel, false, &recipients);
        say(style, &format!("{rel}: unchanged"));
        return Ok(Exit::Ok);
    }
    let bytes = crate::age_file::encrypt(&recipients, &edited).map_err(Error::Usage)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::Write {
            path: parent.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    write_atomic(&path, &bytes)?;
    lock.files.insert(rel.clone(), print);
    write_atomic(&root.join(recipients::LOCK), lock.render().as_bytes())?;
    edited_doc(style, &rel, true, &recipients);
    say(
        style,
        &format!(
            "{rel}: encrypted to {} ({})",
            count(recipients.list.len(), "recipient"),
            recipients.names().join(", ")
        ),
    );
    Ok(Exit::Ok)
}

/// `secrets edit --json`: the file, whether it was written, and to whom.
fn edited_doc(style: Style, rel: &str, changed: bool, recipients: &Recipients) {
    if style.json {
        let body = serde_json::json!({
            "file": rel,
            "changed": changed,
            "recipients": recipients.names(),
        });
        crate::ui::json::print(style, &Document::new("secrets", true, body));
    }
}

fn say(style: Style, text: &str) {
    if !style.json {
        println!("{text}");
    }
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The path relative to the repository, refusing one outside it.
fn relative(root: &Path, file: &Path) -> Result<String, Error> {
    let rel = if file.is_absolute() {
        let root = root
            .canonicalize()
            .map_err(|e| Error::Usage(format!("{}: {e}", root.display())))?;
        let dir = file
            .parent()
            .and_then(|d| d.canonicalize().ok())
            .ok_or_else(|| Error::Usage(format!("{}: no such directory", file.display())))?;
        dir.strip_prefix(&root)
            .map_err(|_| {
                Error::Usage(format!(
                    "{} is outside the repository; secrets live in it (e.g. secrets/x.age)",
                    file.display()
                ))
            })?
            .join(file.file_name().unwrap_or_default())
    } else {
        file.to_path_buf()
    };
    let text = rel.to_string_lossy().into_owned();
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Error::Usage(format!(
            "{text}: give a path inside the repository, without `..`"
        )));
    }
    Ok(text)
}

/// The decrypted text while it is edited: a 0600 file in a 0700 directory
/// of its own, removed when dropped (also when the editor fails).
struct Plaintext {
    dir: PathBuf,
    path: PathBuf,
}

impl Plaintext {
    fn create(rel: &str, bytes: &[u8]) -> Result<Plaintext, Error> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let name = Path::new(rel)
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".age").to_string())
            .unwrap_or_else(|| "secret".into());
        for attempt in 0..100u32 {
            let dir = base.join(format!("provision-edit-{}-{attempt}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    let path = dir.join(&name);
                    let plain = Plaintext { dir, path };
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&plain.path)
                        .map_err(|e| {
                            Error::Usage(format!("cannot create the plaintext file: {e}"))
                        })?;
                    f.write_all(bytes).map_err(|e| {
                        Error::Usage(format!("cannot write the plaintext file: {e}"))
                    })?;
                    return Ok(plain);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::Usage(format!(
                        "cannot create a private directory in {}: {e}",
                        base.display()
                    )));
                }
            }
        }
        Err(Error::Usage(format!(
            "cannot create a private directory in {}",
            base.display()
        )))
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        // Overwrite before removing: an editor may leave the inode cached,
        // but no plaintext stays in a file provision made.
        if let Ok(len) = std::fs::metadata(&self.path).map(|m| m.len()) {
            let _ = std::fs::write(&self.path, vec![0u8; len as usize]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `provision secrets rekey`.
pub fn rekey(root: &Path, style: Style) -> Result<Exit, Error> {
    let recipients = read_recipients(root)?;
    let repo = Repo::open(root).ok();
    let mut lock = read_lock(root);
    let print = recipients.fingerprint();
    let files = age_files(root, repo.as_ref(), &lock);
    let stale: Vec<&String> = files
        .iter()
        .filter(|f| lock.files.get(*f) != Some(&print))
        .collect();
    let keys = secrets::keys();
    // Every file first: if one cannot be decrypted, none is written.
    let mut plain = Vec::new();
    let mut failed = Vec::new();
    for f in &stale {
        match std::fs::read(root.join(f))
            .map_err(|e| format!("cannot read {f}: {e}"))
            .and_then(|b| keys.decrypt_bytes(&b, f))
        {
            Ok(p) => plain.push(((*f).clone(), p)),
            Err(e) => failed.push(e),
        }
    }
    if !failed.is_empty() {
        return Err(Error::Usage(format!(
            "nothing was rekeyed: {} of {} could not be decrypted:\n  {}",
            failed.len(),
            count(stale.len(), "file"),
            failed.join("\n  ")
        )));
    }
    let mut encrypted = Vec::new();
    for (f, p) in &plain {
        let bytes = crate::age_file::encrypt(&recipients, p).map_err(Error::Usage)?;
        encrypted.push((f.clone(), bytes));
    }
    // Stage every file, then rename them all.
    let mut staged_files = Vec::new();
    for (f, bytes) in &encrypted {
        let path = root.join(f);
        let tmp = staged(&path);
        if let Err(e) = std::fs::write(&tmp, bytes) {
            for (t, _) in &staged_files {
                let _ = std::fs::remove_file(t);
            }
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Write {
                path: tmp,
                message: format!("{e}; nothing was rekeyed"),
            });
        }
        staged_files.push((tmp, path));
    }
    for (tmp, path) in &staged_files {
        std::fs::rename(tmp, path).map_err(|e| Error::Write {
            path: path.clone(),
            message: e.to_string(),
        })?;
    }
    for f in &files {
        lock.files.insert(f.clone(), print.clone());
    }
    lock.files.retain(|f, _| files.contains(f));
    write_atomic(&root.join(recipients::LOCK), lock.render().as_bytes())?;
    let rekeyed: Vec<&str> = plain.iter().map(|(f, _)| f.as_str()).collect();
    if style.json {
        let body = serde_json::json!({
            "rekeyed": rekeyed,
            "unchanged": files.iter().filter(|f| !rekeyed.contains(&f.as_str())).collect::<Vec<_>>(),
            "recipients": recipients.names(),
        });
        crate::ui::json::print(style, &Document::new("secrets", true, body));
    } else {
        for f in &rekeyed {
            println!("{f}: encrypted to {}", recipients.names().join(", "));
        }
        println!(
            "Rekeyed {}, {} already encrypted to {}.",
            count(rekeyed.len(), "file"),
            files.len() - rekeyed.len(),
            recipients::RECIPIENTS
        );
    }
    Ok(Exit::Ok)
}

/// One secret in `secrets check`.
#[derive(Serialize)]
struct Listed {
    host: String,
    owner: String,
    name: String,
    source: String,
    file: String,
    line: usize,
    column: usize,
    resolves: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// For `age:`: who it is encrypted to (when the lock says so).
    #[serde(skip_serializing_if = "Option::is_none")]
    decryptable_by: Option<Vec<String>>,
}

/// `provision secrets check`.
pub fn check(root: &Path, style: Style) -> Result<Exit, Error> {
    let repo = Repo::checked(root, style)?;
    let recipients = read_recipients(root).ok();
    let lock = read_lock(root);
    let mut resolver = Resolver::new(root, secrets::keys());
    let mut listed = Vec::new();
    for h in &repo.fleet.hosts {
        for u in secrets::uses(h) {
            let src = repo.sources.get(u.secret.span.source);
            let (line, column) = line_col(&src.text, u.secret.span.offset);
            let result = resolver.value(&u.secret.source);
            let decryptable_by = match &u.secret.source {
                SecretSource::Age(p) => Some(match (&recipients, lock.files.get(p)) {
                    (Some(r), Some(print)) if *print == r.fingerprint() => {
                        r.names().iter().map(|n| n.to_string()).collect()
                    }
                    _ => Vec::new(),
                }),
                _ => None,
            };
            listed.push(Listed {
                host: h.name.clone(),
                owner: u.owner.to_string(),
                name: u.secret.name.clone(),
                source: u.secret.source.to_string(),
                file: src.path.clone(),
                line,
                column,
                resolves: result.is_ok(),
                error: result.err(),
                decryptable_by,
            });
        }
    }
    let ok = listed.iter().all(|l| l.resolves);
    if style.json {
        let body = serde_json::json!({ "secrets": listed });
        crate::ui::json::print(style, &Document::new("secrets", ok, body));
    } else {
        for l in &listed {
            let tag = if l.resolves {
                style.paint("32", "ok  ")
            } else {
                style.paint("1;31", "FAIL")
            };
            println!(
                "{tag} {} {} {} ({}) at {}:{}:{}",
                l.host, l.owner, l.name, l.source, l.file, l.line, l.column
            );
            if let Some(e) = &l.error {
                println!("       {e}");
            }
            match &l.decryptable_by {
                Some(names) if !names.is_empty() => {
                    println!("       decryptable by: {}", names.join(", "))
                }
                Some(_) => println!(
                    "       not known to be encrypted to {}: run `provision secrets rekey`",
                    recipients::RECIPIENTS
                ),
                None => {}
            }
        }
        let failed = listed.iter().filter(|l| !l.resolves).count();
        let summary = format!(
            "{}: {} resolve{}, {failed} do{} not.",
            count(listed.len(), "secret"),
            listed.len() - failed,
            if listed.len() - failed == 1 { "s" } else { "" },
            if failed == 1 { "es" } else { "" }
        );
        println!(
            "{}",
            style.paint(if ok { "1;32" } else { "1;31" }, &summary)
        );
    }
    Ok(if ok { Exit::Ok } else { Exit::Error })
}
