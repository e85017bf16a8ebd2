//! Secrets: where they come from ([`SecretRef`]) and their values ([`Secret`]).
//!
//! A [`Secret`] prints as `«secret»` and has no `Serialize`, so it cannot
//! reach a plan, a diff, a log or JSON by accident. Resolving a reference to a
//! value is an effect and lives in `command::secrets`; this module is pure.

use std::fmt;

use serde::Serialize;

use crate::source::Span;

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "scheme", content = "ref", rename_all = "lowercase")]
pub enum SecretSource {
    /// `env:NAME`: an environment variable of the operator's process.
    Env(String),
    /// `file:PATH`: a file, relative to the repository root when not absolute.
    File(String),
    /// `cmd:COMMAND`: the standard output of a command (pass, op, vault).
    Cmd(String),
    /// `age:PATH`: an age-encrypted file in the repository.
    Age(String),
}

impl SecretSource {
    /// Parses `scheme:reference`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hint = "write `env:NAME`, `file:PATH`, `cmd:COMMAND` or `age:PATH`";
        let Some((scheme, rest)) = text.split_once(':') else {
            return Err(format!("`{text}` names no source; {hint}"));
        };
        if rest.trim().is_empty() {
            return Err(format!(
                "`{scheme}:` needs a reference after the colon; {hint}"
            ));
        }
        let rest = rest.to_string();
        match scheme {
            "env" => {
                if !is_env_name(&rest) {
                    return Err(format!("`{rest}` is not an environment variable name"));
                }
                Ok(Self::Env(rest))
            }
            "file" => Ok(Self::File(rest)),
            "cmd" => Ok(Self::Cmd(rest)),
            "age" => Ok(Self::Age(rest)),
            other => Err(format!("unknown secret scheme `{other}`; {hint}")),
        }
    }

    /// Scheme name.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Env(_) => "env",
            Self::File(_) => "file",
            Self::Cmd(_) => "cmd",
            Self::Age(_) => "age",
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Self::Env(r) | Self::File(r) | Self::Cmd(r) | Self::Age(r)) = self;
        write!(f, "{}:{r}", self.scheme())
    }
}

/// True for a portable environment variable name.
pub fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A named reference to a secret (`secret "MOG_TOKEN" from="age:secrets/mog.age"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRef {
    /// Name (the environment variable it becomes, or the channel setting it feeds).
    pub name: String,
    /// Where the value comes from.
    pub source: SecretSource,
    /// The node.
    #[serde(skip)]
    pub span: Span,
}

/// A secret value. Never printed, never serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value. Only the writers of secret-bearing files may call this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("«secret»")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("«secret»")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_print_back() {
        for s in [
            "env:TOKEN",
            "file:secrets/x",
            "cmd:pass show mog",
            "age:secrets/mog.age",
        ] {
            assert_eq!(SecretSource::parse(s).unwrap().to_string(), s);
        }
        assert!(
            SecretSource::parse("vault:x")
                .unwrap_err()
                .contains("unknown secret scheme `vault`")
        );
        assert!(SecretSource::parse("env:").is_err());
        assert!(SecretSource::parse("env:1X").is_err());
        assert!(SecretSource::parse("TOKEN").is_err());
    }

    #[test]
    fn a_secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "«secret» «secret»");
        assert_eq!(s.expose(), "hunter2");
    }
}
