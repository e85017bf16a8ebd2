//! What a failed install of the missing packages means, from apt's own
//! words, and what the operator does about it.

/// The operator's error for an install of `packages` on host `name` that
/// failed with apt's `output`, after waiting up to `wait_secs` for the
/// dpkg lock.
pub fn failure(name: &str, packages: &[&str], wait_secs: u64, output: &str) -> String {
    let list = packages.join(" ");
    let said = output.trim();
    if output.contains("Could not get lock") || output.contains("Unable to acquire the dpkg") {
        // apt names the holder: `… It is held by process 7 (perl)...`.
        let holder = output
            .lines()
            .filter_map(|l| l.split_once("It is held by ").map(|(_, h)| h))
            .next_back()
            .map(|h| format!(", held by {}", h.trim().trim_end_matches('.')))
            .unwrap_or_default();
        return format!(
            "{name}: the dpkg lock stayed taken for {wait_secs} s{holder}, so {list} was not \
             installed: something else is installing (cloud-init, unattended-upgrades); wait \
             for it to finish, or pass a longer --install-wait SECS, and run onboard again"
        );
    }
    let unknown: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            output.contains(&format!("Unable to locate package {p}"))
                || output.contains(&format!("Package '{p}' has no installation candidate"))
                || output.contains(&format!("Package {p} is not available"))
        })
        .collect();
    if !unknown.is_empty() {
        return format!(
            "{name}: apt cannot install {}: no apt source of the host offers it. Check \
             /etc/apt/sources.list and /etc/apt/sources.list.d/ on the host (and that \
             `apt-get update` reaches them), or install it by hand, then run onboard again:\n{said}",
            unknown.join(" ")
        );
    }
    format!(
        "{name}: installing {list} failed; log in and run `apt-get install {list}` to see why, \
         then run onboard again:\n{said}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_says_what_to_do() {
        // As apt 2.6 says it with -q.
        let lock = "Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7 (perl)...\n\
                    E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n";
        let e = failure("web", &["curl"], 5, lock);
        assert!(e.contains("stayed taken for 5 s"), "{e}");
        assert!(e.contains("5 s, held by process 7 (perl), so curl"), "{e}");
        // With -qq apt does not name the holder.
        let quiet = "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend)\n";
        assert!(failure("web", &["curl"], 5, quiet).contains("5 s, so curl"));
        assert!(e.contains("--install-wait"), "{e}");

        let missing = "E: Unable to locate package curl\n";
        let e = failure("web", &["util-linux", "curl"], 5, missing);
        assert!(e.contains("apt cannot install curl:"), "{e}");
        assert!(e.contains("/etc/apt/sources.list"), "{e}");

        let other = "E: Sub-process /usr/bin/dpkg returned an error code (1)\n";
        let e = failure("web", &["curl"], 5, other);
        assert!(
            e.contains("`apt-get install curl`") && e.contains("code (1)"),
            "{e}"
        );
    }
}
