//! OpenSSH public key lines: parsing, and the fingerprint `ssh-keygen -lf`
//! prints. Pure: the transport pins keys with it, `onboard` compares them.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// A line that is not an OpenSSH public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an OpenSSH public key line ({reason}): {line:?}")]
pub struct InvalidPublicKey {
    /// The start of the offending line.
    pub line: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed `type base64 [comment]` public key line.
pub(crate) struct PublicKey {
    /// The key type as written, e.g. `ssh-ed25519`.
    pub key_type: String,
    /// The base64 text of the key blob, as written.
    pub base64: String,
    /// The decoded key blob.
    pub blob: Vec<u8>,
}

impl PublicKey {
    /// Parses `ssh-ed25519 AAAA... [comment]` and checks that the blob names the same key type
    /// as the first field, which catches keys pasted incompletely or with the wrong type.
    pub(crate) fn parse(line: &str) -> Result<Self, InvalidPublicKey> {
        let invalid = |reason: &str| InvalidPublicKey {
            line: line.chars().take(80).collect(),
            reason: reason.to_owned(),
        };
        let mut fields = line.split_whitespace();
        let key_type = fields.next().ok_or_else(|| invalid("it is empty"))?;
        let encoded = fields
            .next()
            .ok_or_else(|| invalid("the base64 key after the key type is missing"))?;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| invalid(&format!("the key is not valid base64: {e}")))?;
        // The blob starts with the key type as an SSH string: a big-endian u32 length, then
        // the bytes.
        let embedded = blob
            .get(..4)
            .map(|len| u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
            .and_then(|len| blob.get(4..4usize.checked_add(len)?))
            .ok_or_else(|| invalid("the key blob is truncated"))?;
        if embedded != key_type.as_bytes() {
            return Err(invalid(&format!(
                "the key type says {key_type:?} but the key is {:?}",
                String::from_utf8_lossy(embedded)
            )));
        }
        Ok(PublicKey {
            key_type: key_type.to_owned(),
            base64: encoded.to_owned(),
            blob,
        })
    }

    /// The OpenSSH fingerprint: `SHA256:` and the unpadded base64 of the blob's SHA-256.
    pub(crate) fn fingerprint(&self) -> String {
        let digest = Sha256::digest(&self.blob);
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_slice())
        )
    }
}

/// The OpenSSH-style fingerprint of a public key line (`ssh-ed25519 AAAA... [comment]`):
/// `SHA256:` followed by the unpadded base64 of the SHA-256 of the key blob, the same text
/// `ssh-keygen -lf` prints.
pub fn fingerprint(public_key_line: &str) -> Result<String, InvalidPublicKey> {
    Ok(PublicKey::parse(public_key_line)?.fingerprint())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real keys, and the fingerprints `ssh-keygen -lf` printed for them.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8+J7XH4Ja6bY2nh35Id6I9YrwU0oMuYUSqNaff57rs test@example";
    const ED25519_FP: &str = "SHA256:ZI4WjU65dw+o2evmNznkqPOF5O/BYhWCbt28LWZp3Kg";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOLjukJIJ1IGuJDsJb/Uhmf2Zg8m94iHNod125BAdkKmMRSotDxcYu1dJJpZhQBu+PilvuMrouOZmrYyy3cmmIU=";
    const ECDSA_FP: &str = "SHA256:MuUayl4tWvAKa0fp3vGEMOWbpqM/KZ00/Qf9UE3VLFQ";

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        assert_eq!(fingerprint(ED25519).unwrap(), ED25519_FP);
        assert_eq!(fingerprint(ECDSA).unwrap(), ECDSA_FP);
        // The comment and extra blanks do not matter.
        let bare = ED25519
            .trim_end_matches(" test@example")
            .replace(' ', "   ");
        assert_eq!(fingerprint(&format!("  {bare}\n")).unwrap(), ED25519_FP);
    }

    #[test]
    fn fingerprint_rejects_bad_lines() {
        assert!(fingerprint("").is_err());
        assert!(fingerprint("ssh-ed25519").is_err());
        assert!(fingerprint("ssh-ed25519 !!!notbase64").is_err());
        // Right base64, wrong declared type.
        let wrong_type = ED25519.replacen("ssh-ed25519", "ssh-rsa", 1);
        let err = fingerprint(&wrong_type).unwrap_err();
        assert!(err.reason.contains("ssh-ed25519"), "{err}");
        // Truncated blob.
        assert!(fingerprint("ssh-ed25519 AAAAC3Nza").is_err());
    }
}
