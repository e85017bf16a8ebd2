//! age-encrypted files in the repository, on the operator's machine: the
//! operator's identities (loaded once per run, a passphrase asked once, on
//! a terminal only), decryption, and encryption to the repository's
//! recipients. The plaintext lives only in memory and in [`Secret`]s.
//!
//! Identities, the first that exists: `--identity FILE` or
//! `PROVISION_AGE_IDENTITY`; else every one of `~/.config/age/keys.txt`,
//! `~/.ssh/id_ed25519` and `~/.ssh/id_rsa` that exists, tried in that order.
//! A file may hold native age keys (`AGE-SECRET-KEY-1…`, as `age-keygen`
//! writes them) or one OpenSSH private key (ed25519 or RSA), encrypted or not.

use std::io::{BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use age::secrecy::SecretString;
use age_core::format::{FileKey, Stanza};

use crate::recipients::Recipients;
use crate::secret::Secret;

/// The largest age file provision reads (a secret, not a disk image).
const MAX_FILE: u64 = 16 << 20;

/// The first line of a binary age file.
const MAGIC: &[u8] = b"age-encryption.org/v1";
/// The first line of an armored one.
const ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// Whether `bytes` start like an age file (binary or armored).
pub fn looks_like_age(bytes: &[u8]) -> bool {
    let trimmed = bytes.trim_ascii_start();
    trimmed.starts_with(MAGIC) || trimmed.starts_with(ARMOR)
}

/// The operator's identities, loaded on first use, once per run.
pub struct Keys {
    explicit: Option<PathBuf>,
    home: Option<PathBuf>,
    loaded: OnceLock<Result<Loaded, String>>,
}

struct Loaded {
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// Where they came from, for messages.
    files: Vec<PathBuf>,
    /// Why a passphrase-protected key could not be unlocked, once tried.
    unlock: Arc<Mutex<Option<String>>>,
}

impl Keys {
    /// The identities of `--identity` (or `PROVISION_AGE_IDENTITY`, which
    /// the command line reads), else the usual locations under `home`.
    pub fn new(explicit: Option<PathBuf>, home: Option<PathBuf>) -> Keys {
        Keys {
            explicit,
            home,
            loaded: OnceLock::new(),
        }
    }

    /// The identity files that would be tried, in order.
    pub fn candidates(&self) -> Vec<PathBuf> {
        if let Some(p) = &self.explicit {
            return vec![p.clone()];
        }
        let Some(home) = &self.home else {
            return Vec::new();
        };
        [".config/age/keys.txt", ".ssh/id_ed25519", ".ssh/id_rsa"]
            .iter()
            .map(|p| home.join(p))
            .filter(|p| p.exists())
            .collect()
    }

    fn load(&self) -> Result<&Loaded, String> {
        self.loaded
            .get_or_init(|| {
                let files = self.candidates();
                if files.is_empty() {
                    return Err(match &self.explicit {
                        Some(p) => format!("the identity {} does not exist", p.display()),
                        None => "no age identity: pass --identity FILE, set PROVISION_AGE_IDENTITY, or create ~/.config/age/keys.txt (age-keygen -o ~/.config/age/keys.txt)".into(),
                    });
                }
                let unlock = Arc::new(Mutex::new(None));
                let mut identities = Vec::new();
                for f in &files {
                    identities.extend(read_identity(f, &unlock)?);
                }
                Ok(Loaded {
                    identities,
                    files,
                    unlock,
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Decrypts the age file at `path` (`shown` is its name in messages).
    pub fn decrypt(&self, path: &Path, shown: &str) -> Result<Secret, String> {
        let bytes = read_bounded(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let plain = self.decrypt_bytes(&bytes, shown)?;
        let text = String::from_utf8(plain)
            .map_err(|_| format!("{shown} decrypts to bytes that are not UTF-8 text"))?;
        Ok(Secret::new(text.strip_suffix('\n').unwrap_or(&text)))
    }

    /// Decrypts age bytes (binary or armored).
    pub fn decrypt_bytes(&self, bytes: &[u8], shown: &str) -> Result<Vec<u8>, String> {
        if !looks_like_age(bytes) {
            return Err(format!(
                "{shown} is not an age file (it does not start with `age-encryption.org/v1` or an armor line); encrypt it with `provision secrets edit {shown}`"
            ));
        }
        let loaded = self.load()?;
        let reader = age::armor::ArmoredReader::new(bytes);
        let decryptor = age::Decryptor::new(reader).map_err(|e| bad_file(shown, &e))?;
        if decryptor.is_scrypt() {
            return Err(format!(
                "{shown} is encrypted with a passphrase, not to recipients; re-encrypt it to secrets/recipients with `provision secrets edit {shown}`"
            ));
        }
        let ids = loaded
            .identities
            .iter()
            .map(|i| i.as_ref() as &dyn age::Identity);
        let mut out = Vec::new();
        match decryptor.decrypt(ids) {
            Ok(mut r) => r
                .read_to_end(&mut out)
                .map(|_| out)
                .map_err(|e| format!("{shown} is damaged or truncated: {e}")),
            Err(age::DecryptError::NoMatchingKeys) => Err(format!(
                "{shown} is not encrypted to your identity ({}); ask someone who can decrypt it to add your public key to secrets/recipients and run `provision secrets rekey`",
                loaded
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(age::DecryptError::KeyDecryptionFailed) => Err(format!(
                "cannot decrypt {shown}: {}",
                loaded
                    .unlock
                    .lock()
                    .expect("unlock lock")
                    .clone()
                    .unwrap_or_else(|| "the identity's key could not be unlocked".into())
            )),
            Err(e) => Err(bad_file(shown, &e)),
        }
    }
}

fn bad_file(shown: &str, e: &age::DecryptError) -> String {
    format!("{shown} is not a valid age file ({e}); restore it from version control")
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads one identity file: native age keys, or an OpenSSH private key.
fn read_identity(
    path: &Path,
    unlock: &Arc<Mutex<Option<String>>>,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, String> {
    let shown = path.display().to_string();
    let bytes = read_bounded(path).map_err(|e| format!("cannot read the identity {shown}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----")
        || text.contains("-----BEGIN RSA PRIVATE KEY-----")
    {
        let identity =
            age::ssh::Identity::from_buffer(BufReader::new(&bytes[..]), Some(shown.clone()))
                .map_err(|e| {
                    format!("the identity {shown} is not an SSH private key age can use: {e}")
                })?;
        return match identity {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(identity)]),
            age::ssh::Identity::Encrypted(key) => Ok(vec![Box::new(LockedSsh {
                key,
                shown,
                unlocked: Mutex::new(None),
                why: unlock.clone(),
            })]),
            age::ssh::Identity::Unsupported(_) => Err(format!(
                "the identity {shown} is in a format age cannot use (an encrypted PEM key, or an unusual cipher); convert it with `ssh-keygen -p -o -f {shown}`"
            )),
        };
    }
    let file = age::IdentityFile::from_buffer(BufReader::new(&bytes[..]))
        .map_err(|e| format!("the identity {shown} is not an age identity file: {e}"))?;
    let ids = file
        .into_identities()
        .map_err(|e| format!("the identity {shown} cannot be used: {e}"))?;
    if ids.is_empty() {
        return Err(format!("the identity {shown} holds no key"));
    }
    Ok(ids)
}

/// A passphrase-protected SSH key, unlocked the first time a file has a
/// stanza of its kind: its passphrase is asked once, on the terminal, and
/// never where there is none to ask on (CI).
struct LockedSsh {
    key: age::ssh::EncryptedKey,
    shown: String,
    /// Once asked: the unlocked key, or why not.
    unlocked: Mutex<Option<Result<age::ssh::Identity, String>>>,
    /// Where why not is told to [`Keys`].
    why: Arc<Mutex<Option<String>>>,
}

impl age::Identity for LockedSsh {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        if !stanza.tag.starts_with("ssh-") {
            return None;
        }
        let mut unlocked = self.unlocked.lock().expect("identity lock");
        let state = unlocked.get_or_insert_with(|| {
            let passphrase = ask_passphrase(&self.shown)?;
            self.key
                .decrypt(passphrase)
                .map(age::ssh::Identity::Unencrypted)
                .map_err(|_| format!("the passphrase for {} is wrong", self.shown))
        });
        match state {
            Ok(identity) => identity.unwrap_stanza(stanza),
            Err(why) => {
                *self.why.lock().expect("unlock lock") = Some(why.clone());
                Some(Err(age::DecryptError::KeyDecryptionFailed))
            }
        }
    }
}

/// Asks for a passphrase on the terminal; refuses in CI or without one.
fn ask_passphrase(shown: &str) -> Result<SecretString, String> {
    let no_terminal = || {
        format!(
            "the identity {shown} is protected by a passphrase and there is no terminal to ask it on; in CI give an unprotected identity with --identity or PROVISION_AGE_IDENTITY"
        )
    };
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        return Err(no_terminal());
    }
    rpassword::prompt_password(format!("Passphrase for {shown}: "))
        .map(SecretString::from)
        .map_err(|_| no_terminal())
}

/// Encrypts `plain` to every recipient, armored (text, so it diffs and
/// merges as a whole in version control).
pub fn encrypt(recipients: &Recipients, plain: &[u8]) -> Result<Vec<u8>, String> {
    let mut boxed: Vec<Box<dyn age::Recipient>> = Vec::new();
    for r in &recipients.list {
        match r.kind {
            crate::recipients::KeyKind::Age => boxed.push(Box::new(
                r.key
                    .parse::<age::x25519::Recipient>()
                    .map_err(|e| format!("recipient on line {}: {e}", r.line))?,
            )),
            crate::recipients::KeyKind::Ssh => {
                boxed.push(Box::new(r.key.parse::<age::ssh::Recipient>().map_err(
                    |_| format!("recipient on line {} is not a usable SSH key", r.line),
                )?))
            }
        }
    }
    if boxed.is_empty() {
        return Err(format!(
            "{} lists no recipient; add your age or SSH public key to it",
            crate::recipients::RECIPIENTS
        ));
    }
    let encryptor = age::Encryptor::with_recipients(boxed.iter().map(|r| r.as_ref()))
        .map_err(|e| format!("cannot encrypt: {e}"))?;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| e.to_string())?;
    let mut w = encryptor.wrap_output(armor).map_err(|e| e.to_string())?;
    w.write_all(plain).map_err(|e| e.to_string())?;
    w.finish()
        .and_then(|armor| armor.finish())
        .map_err(|e| e.to_string())?;
    Ok(out)
}
