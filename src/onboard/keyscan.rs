//! The host's first answer: the ed25519 key in `ssh-keyscan`'s output, and
//! whether it is the one the operator expects.

use crate::host_key::fingerprint;

/// The host's ed25519 key, as the pinned `host-key` is written
/// (`ssh-ed25519 AAAA…`), and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedKey {
    /// `ssh-ed25519 AAAA…`, without ssh-keyscan's host name or a comment.
    pub line: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// The first valid ed25519 key in ssh-keyscan's output (`HOST ssh-ed25519
/// AAAA…` lines; `#` lines are its comments); `None` when there is none.
pub fn parse(output: &str) -> Option<ScannedKey> {
    output
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let (_host, kind, key) = (f.next()?, f.next()?, f.next()?);
            if kind != "ssh-ed25519" {
                return None;
            }
            let line = format!("{kind} {key}");
            let fingerprint = fingerprint(&line).ok()?;
            Some(ScannedKey { line, fingerprint })
        })
}

/// Whether an expected fingerprint (as the operator pasted it, with or
/// without `SHA256:`, trailing `=` padding tolerated) is `actual`.
pub fn matches(expected: &str, actual: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim();
        s.strip_prefix("SHA256:")
            .unwrap_or(s)
            .trim_end_matches('=')
            .to_string()
    };
    norm(expected) == norm(actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIC8+J7XH4Ja6bY2nh35Id6I9YrwU0oMuYUSqNaff57rs";
    // What `ssh-keygen -lf` printed for this key.
    const FP: &str = "SHA256:ZI4WjU65dw+o2evmNznkqPOF5O/BYhWCbt28LWZp3Kg";

    #[test]
    fn picks_the_ed25519_key() {
        let out = format!(
            "# 10.0.0.2:22 SSH-2.0-OpenSSH_9.2p1\n10.0.0.2 ssh-rsa AAAAB3Nz\n10.0.0.2 ssh-ed25519 {KEY}\n"
        );
        let k = parse(&out).unwrap();
        assert_eq!(k.line, format!("ssh-ed25519 {KEY}"));
        assert_eq!(k.fingerprint, FP);
        assert_eq!(parse("# only a banner\n"), None);
        assert_eq!(parse("h ssh-ed25519 AAAAbroken\n"), None);
    }

    #[test]
    fn expected_fingerprints_compare_as_pasted() {
        assert!(matches(FP, FP));
        assert!(matches(&FP[7..], FP));
        assert!(matches(&format!(" {FP}= "), FP));
        assert!(!matches("SHA256:ZI4WjU65dw", FP));
    }
}
