//! Bringing a fresh host into the fleet (`provision onboard`), the pure
//! half: what the host's first answer means ([`keyscan`]), what its facts
//! say ([`facts`]), and the `hosts/NAME.kdl` text that records it
//! ([`host_text`]), and the guarded sshd hardening ([`harden`]). The
//! effects are in `command/onboard.rs`.

pub mod facts;
pub mod harden;
pub mod host_text;
pub mod keyscan;

/// Whether `name` can be a host's name and the file name `hosts/NAME.kdl`:
/// letters, digits, `.`, `-` and `_`, starting with a letter or digit (so
/// it names no other directory and no hidden file).
pub fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `USER@ADDR` split into its login user and address; `None` when either
/// is missing or the address could not be an SSH host name.
pub fn split_destination(destination: &str) -> Option<(&str, &str)> {
    let (user, addr) = destination.rsplit_once('@')?;
    let user_ok = !user.is_empty()
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    let addr_ok = !addr.is_empty()
        && !addr.starts_with('-')
        && addr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    (user_ok && addr_ok).then_some((user, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_destinations() {
        assert!(valid_name("web-1"));
        assert!(valid_name("a.b_c"));
        for bad in ["", "../x", ".hidden", "a/b", "-x", "a b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(
            split_destination("root@10.0.0.2"),
            Some(("root", "10.0.0.2"))
        );
        assert_eq!(split_destination("deploy@::1"), Some(("deploy", "::1")));
        for bad in ["10.0.0.2", "@x", "root@", "-oProxy@x", "root@-x", "a@b c"] {
            assert_eq!(split_destination(bad), None, "{bad:?}");
        }
    }
}
