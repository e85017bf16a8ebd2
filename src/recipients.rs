//! Who can decrypt the repository's age files: `secrets/recipients`, one
//! recipient per line (a native age key `age1…`, or an SSH public key
//! `ssh-ed25519 …` / `ssh-rsa …` as in `authorized_keys`), named by the
//! `# name` comment line right above it (or an SSH key's own comment). The
//! format is age's own recipients file, so `age -R secrets/recipients`
//! reads it too; and `secrets/recipients.lock`, what each age
//! file was last encrypted to, so a rekey rewrites only the files whose
//! recipients changed. Pure: parsing and the fingerprint.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest as _, Sha256};

/// The recipients file, relative to the repository.
pub const RECIPIENTS: &str = "secrets/recipients";
/// The lock file, relative to the repository.
pub const LOCK: &str = "secrets/recipients.lock";

/// One recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The key, as written (an age or SSH public key, without its comment).
    pub key: String,
    /// Who it is: the `# name` line above it, an SSH key's own comment, or
    /// the key's start.
    pub name: String,
    /// Its line, from 1.
    pub line: usize,
    /// Which kind of key.
    pub kind: KeyKind,
}

/// The kinds of recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A native age X25519 key (`age1…`).
    Age,
    /// An SSH key (`ssh-ed25519`, `ssh-rsa`).
    Ssh,
}

/// A line of the recipients file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientError {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for RecipientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{RECIPIENTS}:{}:{}: {}",
            self.line, self.column, self.message
        )
    }
}

/// The parsed recipients file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    /// In file order.
    pub list: Vec<Recipient>,
}

impl Recipients {
    /// Parses the recipients file; every bad line is an error.
    pub fn parse(text: &str) -> Result<Recipients, Vec<RecipientError>> {
        let mut list = Vec::new();
        let mut errors = Vec::new();
        // The comment line right above a key names it.
        let mut above: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let indent = raw.len() - raw.trim_start().len();
            let body = raw.trim();
            if body.is_empty() {
                above = None;
                continue;
            }
            if let Some(comment) = body.strip_prefix('#') {
                above = Some(comment.trim().to_string()).filter(|c| !c.is_empty());
                continue;
            }
            if body.starts_with("age1") && body.contains('#') {
                errors.push(RecipientError {
                    line,
                    column: indent + body.find('#').unwrap_or(0) + 1,
                    message: "a comment after an age key; put the name on the line above (`# alice`), as age's own recipients files do".into(),
                });
                above = None;
                continue;
            }
            match parse_key(body) {
                Ok((key, kind, own_comment)) => {
                    let name = above
                        .take()
                        .or(own_comment)
                        .unwrap_or_else(|| key.chars().take(16).collect::<String>() + "…");
                    list.push(Recipient {
                        key,
                        name,
                        line,
                        kind,
                    });
                }
                Err(message) => {
                    above = None;
                    errors.push(RecipientError {
                        line,
                        column: indent + 1,
                        message,
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(Recipients { list })
        } else {
            Err(errors)
        }
    }

    /// A short hash of the set of keys (order and comments aside): equal
    /// for two files exactly when they name the same recipients.
    pub fn fingerprint(&self) -> String {
        let mut keys: Vec<&str> = self.list.iter().map(|r| r.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut h = Sha256::new();
        for k in keys {
            h.update(k.as_bytes());
            h.update(b"\n");
        }
        hex::encode(&h.finalize()[..8])
    }

    /// The names, for "who can decrypt it".
    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|r| r.name.as_str()).collect()
    }
}

/// Checks one key, returning it normalised (`TYPE BASE64` for SSH), its
/// kind, and an SSH key's own comment.
fn parse_key(text: &str) -> Result<(String, KeyKind, Option<String>), String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        [key] if key.starts_with("age1") => key
            .parse::<age::x25519::Recipient>()
            .map(|_| (key.to_string(), KeyKind::Age, None))
            .map_err(|e| format!("`{}` is not an age public key ({e}); copy it whole, as `age-keygen -y` prints it", short(key))),
        [kind, b64, rest @ ..] if kind.starts_with("ssh-") => {
            let key = format!("{kind} {b64}");
            match key.parse::<age::ssh::Recipient>() {
                Ok(_) => {
                    let own = (!rest.is_empty()).then(|| rest.join(" "));
                    Ok((key, KeyKind::Ssh, own))
                }
                Err(e) => Err(format!(
                    "`{}` is not a usable SSH public key: {}",
                    short(&key),
                    ssh_error(&e)
                )),
            }
        }
        _ => Err(format!(
            "`{}` is not a recipient; write an age public key (`age1…`) or an SSH public key (`ssh-ed25519 AAAA… name`), one per line",
            short(text)
        )),
    }
}

fn ssh_error(e: &age::ssh::ParseRecipientKeyError) -> String {
    use age::ssh::ParseRecipientKeyError as E;
    match e {
        E::Ignore => "it is not a key age can encrypt to".into(),
        E::Invalid(why) => format!("{why}; copy the whole `.pub` line"),
        E::RsaModulusTooLarge => "its RSA modulus is larger than age supports".into(),
        E::RsaModulusTooSmall => "its RSA key is shorter than 2048 bits; use an ed25519 key".into(),
        E::Unsupported(kind) => {
            format!("age cannot encrypt to `{kind}` keys; use ssh-ed25519, ssh-rsa or an age key")
        }
        _ => "it is not a key age can encrypt to".into(),
    }
}

/// The start of a long value, for messages.
fn short(text: &str) -> String {
    if text.chars().count() > 24 {
        text.chars().take(24).collect::<String>() + "…"
    } else {
        text.to_string()
    }
}

/// The lock file: each age file (repository-relative path) with the
/// fingerprint of the recipients it was last encrypted to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    /// Path -> fingerprint.
    pub files: BTreeMap<String, String>,
}

impl Lock {
    /// Parses the lock file; lines that do not parse are ignored (the file
    /// is then treated as encrypted to unknown recipients, and rekeyed).
    pub fn parse(text: &str) -> Lock {
        let files = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let (path, print) = l.trim().rsplit_once(' ')?;
                Some((path.trim().to_string(), print.to_string()))
            })
            .collect();
        Lock { files }
    }

    /// The file's text, deterministic.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# provision: the recipients each age file was last encrypted to (a hash of\n# the keys in secrets/recipients). Written by `provision secrets edit` and\n# `provision secrets rekey`; commit it with the files.\n",
        );
        for (path, print) in &self.files {
            out.push_str(&format!("{path} {print}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn recipients_parse_with_names_and_errors_name_line_and_column() {
        let text = format!(
            "# the team\n\n# alice\n{AGE}\n\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN ci@github\n{AGE}\n"
        );
        let r = Recipients::parse(&text).unwrap();
        assert_eq!(r.names(), ["alice", "ci@github", "age1ql3z7hjy54pw…"]);
        assert_eq!(r.list[1].line, 6);
        assert_eq!(r.list[1].kind, KeyKind::Ssh);

        let bad = Recipients::parse(&format!("{AGE}\n  age1nope\nssh-dss AAAA x\n{AGE} # bob\n"))
            .unwrap_err();
        assert_eq!(bad.len(), 3);
        assert_eq!((bad[0].line, bad[0].column), (2, 3));
        assert!(
            bad[0].message.contains("not an age public key"),
            "{}",
            bad[0]
        );
        assert!(bad[0].to_string().starts_with("secrets/recipients:2:3: "));
        assert_eq!(bad[1].line, 3);
        assert_eq!((bad[2].line, bad[2].column), (4, 64));
        assert!(bad[2].message.contains("put the name on the line above"));
    }

    #[test]
    fn the_fingerprint_is_the_set_of_keys() {
        let a = Recipients::parse(&format!("# alice\n{AGE}\n")).unwrap();
        let b = Recipients::parse(&format!("# x\n{AGE}\n# someone else\n{AGE}\n")).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = Recipients::parse(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN\n",
        )
        .unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn the_lock_round_trips() {
        let mut lock = Lock::default();
        lock.files.insert("secrets/b.age".into(), "00ff".into());
        lock.files.insert("secrets/a b.age".into(), "11ee".into());
        assert_eq!(Lock::parse(&lock.render()), lock);
    }
}
