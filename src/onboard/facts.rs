//! What a fresh host is, from `script/onboard-facts.sh`'s `key=value`
//! lines: typed facts, what makes a host unusable (with the fix), and the
//! packages it lacks.

use std::collections::BTreeSet;

use serde::Serialize;

/// Free space under /var/lib below which a host is refused: the store keeps
/// every generation's contents, and apt needs room too.
pub const MIN_FREE_KIB: u64 = 200 * 1024;

/// Clock skew (seconds) past which the operator is warned: heartbeats and
/// the dead-man switch are timed on the host, and plans carry the
/// operator's time.
pub const MAX_SKEW_SECS: i64 = 60;

/// The host's facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// `ID` of /etc/os-release (`debian`, `ubuntu`).
    pub os_id: String,
    /// `VERSION_ID` (`12`, `24.04`).
    pub os_version: String,
    /// `ID_LIKE`, split.
    pub os_like: Vec<String>,
    /// systemd's version, when systemctl answers.
    pub systemd: Option<u32>,
    /// The name of PID 1 (`systemd` on a usable host).
    pub pid1: String,
    /// The filesystem type of /sys/fs/cgroup (`cgroup2fs` for cgroup v2).
    pub cgroup_fs: String,
    /// Free KiB under /var/lib.
    pub var_lib_free_kib: Option<u64>,
    /// MemAvailable, KiB.
    pub mem_available_kib: Option<u64>,
    /// The filesystem type the journal is on.
    pub journal_fs: String,
    /// The programs found on PATH, of those the script looks for.
    pub tools: BTreeSet<String>,
    /// The uid scripts run as (0 through root or sudo).
    pub uid: Option<u32>,
    /// The host's clock, seconds since the epoch.
    pub epoch: Option<i64>,
    /// The steps an earlier onboard finished on this host.
    pub done: BTreeSet<String>,
}

/// Parses the facts script's output. Unknown keys are ignored (a newer
/// script may say more); a fact that does not parse stays unknown.
pub fn parse(output: &str) -> Facts {
    let mut f = Facts::default();
    for line in output.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key {
            "os_id" => f.os_id = value.to_string(),
            "os_version" => f.os_version = value.to_string(),
            "os_like" => f.os_like = value.split_whitespace().map(str::to_string).collect(),
            "systemd" => f.systemd = value.parse().ok(),
            "pid1" => f.pid1 = value.to_string(),
            "cgroup_fs" => f.cgroup_fs = value.to_string(),
            "var_lib_free_kib" => f.var_lib_free_kib = value.parse().ok(),
            "mem_available_kib" => f.mem_available_kib = value.parse().ok(),
            "journal_fs" => f.journal_fs = value.to_string(),
            "tools" => f.tools = value.split_whitespace().map(str::to_string).collect(),
            "uid" => f.uid = value.parse().ok(),
            "epoch" => f.epoch = value.parse().ok(),
            "steps_done" => f.done = value.split_whitespace().map(str::to_string).collect(),
            _ => {}
        }
    }
    f
}

/// Why a host cannot join the fleet, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// What is wrong.
    pub problem: String,
    /// The fix.
    pub fix: &'static str,
}

impl Facts {
    /// Debian, Ubuntu, or a distribution like them (apt, dpkg, their paths).
    pub fn debian_like(&self) -> bool {
        let like = |s: &str| matches!(s, "debian" | "ubuntu");
        like(&self.os_id) || self.os_like.iter().any(|s| like(s))
    }

    /// `has(tool)`: the tool is on the host's PATH.
    pub fn has(&self, tool: &str) -> bool {
        self.tools.contains(tool)
    }

    /// Everything that makes the host unusable; empty when it can join.
    pub fn unusable(&self) -> Vec<Unusable> {
        let mut out = Vec::new();
        let mut no = |problem: String, fix: &'static str| out.push(Unusable { problem, fix });
        if !self.debian_like() {
            let os = if self.os_id.is_empty() {
                "an unknown system (no /etc/os-release)".to_string()
            } else {
                format!("{} {}", self.os_id, self.os_version)
            };
            no(
                format!("the host runs {os}, not Debian or Ubuntu"),
                "use a Debian (12 or later) or Ubuntu (22.04 or later) image",
            );
        }
        if self.pid1 != "systemd" || self.systemd.is_none() {
            no(
                format!("systemd is not running as PID 1 (PID 1 is {:?})", self.pid1),
                "use an image that boots systemd (not a plain container)",
            );
        }
        if self.cgroup_fs != "cgroup2fs" {
            no(
                format!("/sys/fs/cgroup is {:?}, not cgroup v2", self.cgroup_fs),
                "boot with the unified cgroup hierarchy (systemd.unified_cgroup_hierarchy=1), or use a newer image",
            );
        }
        match self.var_lib_free_kib {
            Some(kib) if kib >= MIN_FREE_KIB => {}
            free => no(
                format!(
                    "only {} free under /var/lib, under {} MiB",
                    free.map_or("an unknown amount".into(), |k| format!("{} MiB", k / 1024)),
                    MIN_FREE_KIB / 1024
                ),
                "free some space, or grow the disk",
            ),
        }
        if self.uid != Some(0) {
            no(
                "scripts do not run as root".into(),
                "log in as root, or as a user with passwordless sudo",
            );
        }
        for tool in ["sh", "stat", "sha256sum", "mktemp"] {
            if !self.has(tool) {
                no(
                    format!("{tool} is missing"),
                    "install coreutils (every Debian-like image has it)",
                );
            }
        }
        if !self.has("apt-get") && !self.missing_packages().is_empty() {
            no(
                "apt-get is missing, so the missing tools cannot be installed".into(),
                "use a Debian or Ubuntu image with apt",
            );
        }
        out
    }

    /// The Debian packages to install for the tools provision needs on the
    /// host: util-linux (flock, setsid) and curl (alerts).
    pub fn missing_packages(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.has("flock") || !self.has("setsid") {
            out.push("util-linux");
        }
        if !self.has("curl") {
            out.push("curl");
        }
        out
    }

    /// The host's clock minus the operator's (`now`), when the host told.
    pub fn skew(&self, now: i64) -> Option<i64> {
        self.epoch.map(|e| e - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "os_id=debian\nos_version=12\nos_like=\nsystemd=252\npid1=systemd\n\
        cgroup_fs=cgroup2fs\nvar_lib_free_kib=10485760\nmem_available_kib=1903212\n\
        journal_fs=ext2/ext3\ntools=sh stat sha256sum mktemp flock setsid curl apt-get\n\
        uid=0\nepoch=1764600000\nsteps_done=prepared deploy-user-deploy\nfuture=ignored\n";

    #[test]
    fn parses_a_debian_host() {
        let f = parse(DEBIAN);
        assert_eq!(f.os_id, "debian");
        assert_eq!(f.systemd, Some(252));
        assert_eq!(f.var_lib_free_kib, Some(10_485_760));
        assert_eq!(f.journal_fs, "ext2/ext3");
        assert!(f.has("flock") && !f.has("visudo"));
        assert_eq!(f.skew(1_764_600_005), Some(-5));
        assert!(f.done.contains("deploy-user-deploy"));
        assert!(f.unusable().is_empty(), "{:?}", f.unusable());
        assert!(f.missing_packages().is_empty());
    }

    #[test]
    fn ubuntu_derivatives_are_debian_like() {
        let f = parse("os_id=pop\nos_like=ubuntu debian\n");
        assert!(f.debian_like());
        assert!(!parse("os_id=fedora\nos_like=rhel centos\n").debian_like());
    }

    #[test]
    fn each_unusable_host_is_named_with_its_fix() {
        let with = |from: &str, to: &str| parse(&DEBIAN.replace(from, to)).unusable();
        let one = |from: &str, to: &str, says: &str| {
            let u = with(from, to);
            assert_eq!(u.len(), 1, "{u:?}");
            assert!(u[0].problem.contains(says), "{u:?}");
            assert!(!u[0].fix.is_empty());
        };
        one("os_id=debian", "os_id=alpine", "alpine 12, not Debian");
        one("pid1=systemd", "pid1=sh", "PID 1");
        one("cgroup_fs=cgroup2fs", "cgroup_fs=tmpfs", "cgroup v2");
        one(
            "var_lib_free_kib=10485760",
            "var_lib_free_kib=1024",
            "1 MiB free",
        );
        one("uid=0", "uid=1000", "root");
        // OS, systemd, cgroups, space, root, four tools, apt-get.
        assert_eq!(parse("").unusable().len(), 10);
    }

    #[test]
    fn missing_tools_become_packages() {
        let f = parse(&DEBIAN.replace(" flock", "").replace(" curl", ""));
        assert_eq!(f.missing_packages(), ["util-linux", "curl"]);
        let no_apt = parse(&DEBIAN.replace(" curl apt-get", ""));
        assert!(no_apt.unusable()[0].problem.contains("apt-get"));
    }
}
