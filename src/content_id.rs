//! Content ids: the name of a file's content in plans, reports, records and
//! the host's store.
//!
//! A plain id is the hex sha256 of the bytes. A file holding secrets is named
//! by a keyed id instead, `hmac-` and the hex HMAC-SHA256 of its plain id
//! under the host's key, so that nothing shown or recorded can be checked
//! against guessed values offline. Both kinds travel as text (JSON, the
//! host's tables); this type is that text with its kind known, so code asks
//! [`ContentId::is_keyed`] instead of looking at the prefix.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What starts a keyed id.
const KEYED_PREFIX: &str = "hmac-";

/// Hex digits of a sha256 or an HMAC-SHA256.
const HEX_LEN: usize = 64;

/// A file's content id, plain or keyed.
///
/// Serialised as its text, exactly as ids were written before they had a
/// type: records on hosts and saved plans read back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentId(String);

/// Text that is not a content id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a content id (64 hex digits, or `hmac-` and 64 hex digits)")]
pub struct ContentIdError(pub String);

impl ContentId {
    /// The plain id of `bytes`: their hex sha256.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// The keyed id of a secret file whose plain id is `plain`: `hmac-` and
    /// the hex HMAC-SHA256 of that id's text under `key`.
    pub fn keyed(key: &[u8], plain: &ContentId) -> Self {
        debug_assert!(!plain.is_keyed(), "a keyed id is made from a plain one");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(plain.0.as_bytes());
        Self(format!(
            "{KEYED_PREFIX}{}",
            hex::encode(mac.finalize().into_bytes())
        ))
    }

    /// Reads an id from text another program wrote (the host's answers):
    /// 64 hex digits, or `hmac-` and 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, ContentIdError> {
        let hex = text.strip_prefix(KEYED_PREFIX).unwrap_or(text);
        if hex.len() == HEX_LEN && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(text.to_string()))
        } else {
            Err(ContentIdError(text.to_string()))
        }
    }

    /// An id from any text, for tests that name contents by short labels.
    #[cfg(test)]
    pub(crate) fn unchecked(text: &str) -> Self {
        Self(text.to_string())
    }

    /// Keyed (a secret file's id), not a plain sha256.
    pub fn is_keyed(&self) -> bool {
        self.0.starts_with(KEYED_PREFIX)
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first characters of the id, enough to tell two keyed ids apart
    /// without showing all of one: the prefix and 16 hex digits.
    pub fn fingerprint(&self) -> &str {
        match self.0.char_indices().nth(KEYED_PREFIX.len() + 16) {
            Some((end, _)) => &self.0[..end],
            None => &self.0,
        }
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_are_the_sha256() {
        let id = ContentId::of(b"x");
        assert_eq!(id.as_str(), crate::desired::sha256_hex(b"x"));
        assert!(!id.is_keyed());
        assert_eq!(ContentId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn keyed_ids_depend_on_the_key_and_hide_the_hash() {
        let plain = ContentId::of(b"TOKEN=hunter2\n");
        let a = ContentId::keyed(b"key-a", &plain);
        assert!(a.is_keyed() && a.as_str().len() == 5 + 64);
        assert_ne!(a, ContentId::keyed(b"key-b", &plain));
        assert_eq!(a, ContentId::keyed(b"key-a", &plain));
        assert!(!a.as_str().contains(plain.as_str()));
        assert_eq!(ContentId::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(a.fingerprint(), &a.as_str()[..21]);
    }

    #[test]
    fn parse_refuses_what_is_not_an_id() {
        let hex = "a".repeat(64);
        for bad in [
            String::new(),
            "abc".into(),
            "a".repeat(63),
            "a".repeat(65),
            format!("{}g", "a".repeat(63)),
            format!("hmac-{}", "a".repeat(63)),
            format!("hmac-hmac-{hex}"),
            format!("sha-{hex}"),
            format!("{hex} "),
            "hmac-".into(),
        ] {
            assert_eq!(ContentId::parse(&bad), Err(ContentIdError(bad.clone())));
        }
        assert!(ContentId::parse(&hex).is_ok());
        assert!(ContentId::parse(&format!("hmac-{hex}")).unwrap().is_keyed());
    }

    #[test]
    fn serialises_as_its_text() {
        let id = ContentId::of(b"x");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<ContentId>(&json).unwrap(), id);
    }
}
