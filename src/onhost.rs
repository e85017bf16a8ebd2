//! The host's layout: every directory, file and unit name provision puts on
//! a host or looks for there, named once. Rendering, planning, the checklist
//! and the requests to the host programs build their paths from here.
//!
//! The host programs (`src/script/*.sh`) and the templates are sh and unit
//! text, so they spell the same names themselves; the tests below check that
//! the programs still do. Pure: names only.

// systemd's directories, and the configuration files provision adds there.

/// Where unit files live. A change under it needs `systemctl daemon-reload`.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// The unit file of `unit` (a full name, `agent-x.service`).
pub fn unit_path(unit: &str) -> String {
    format!("{UNIT_DIR}/{unit}")
}

/// Whether `path` is inside [`UNIT_DIR`] (not the directory itself, nor a
/// sibling such as `/etc/systemd/system.conf`).
pub fn in_unit_dir(path: &str) -> bool {
    path.strip_prefix(UNIT_DIR)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The journald drop-in with the host's journal caps.
pub const JOURNALD_DROPIN: &str = "/etc/systemd/journald.conf.d/50-provision.conf";
/// The sysusers.d configuration of the host's users.
pub const SYSUSERS_CONF: &str = "/etc/sysusers.d/provision.conf";
/// The tmpfiles.d configuration of the host's directories.
pub const TMPFILES_CONF: &str = "/etc/tmpfiles.d/provision.conf";

// provision's own state: root's alone; no declared path may go under it.

/// provision's state on the host: generations, store, lock, the switch in
/// progress, the dead-man switch.
pub const STATE_DIR: &str = "/var/lib/provision";
/// The recorded generations: `N.json`, `N.files`, `N.status`.
pub const GENERATIONS_DIR: &str = "/var/lib/provision/generations";
/// The contents of every kept generation, by content id.
pub const STORE_DIR: &str = "/var/lib/provision/store";
/// The switch in progress: its operations, segments and log; gone once the
/// switch finished.
pub const SWITCHING_DIR: &str = "/var/lib/provision/switching";
/// The armed dead-man switch: what it switches back with; gone once
/// confirmed or switched back.
pub const DEADMAN_DIR: &str = "/var/lib/provision/deadman";
/// Where the switch moves what was planted where a managed file belongs.
pub const QUARANTINE: &str = "/var/lib/provision/quarantine";
/// The host's lock (`flock`), held by a session, a switch and a confirmation.
pub const LOCK: &str = "/var/lib/provision/lock";
/// Held shared by every verification while it runs, and alone by one that
/// would confirm a generation another run switched.
pub const VERIFYING: &str = "/var/lib/provision/verifying";
/// The generation last confirmed, so a run that confirms it again learns
/// it was confirmed, not reverted.
pub const CONFIRMED: &str = "/var/lib/provision/confirmed";
/// Symlink to the current generation's record.
pub const CURRENT: &str = "/var/lib/provision/current";
/// How the last switch ended (`ok N`, `failed N: why`, `aborted N: why`).
pub const LAST_SWITCH: &str = "/var/lib/provision/last-switch";
/// The host's fingerprint key, for the keyed ids of secret files.
pub const KEY: &str = "/var/lib/provision/key";
/// When each token rotation last ran (`AGENT-AUTH`).
pub const ROTATION_DIR: &str = "/var/lib/provision/rotation";
/// What each credential's expiry was last learned as, and the incident it
/// is in (`AGENT.AUTH`: verdict, expiry, when checked).
pub const EXPIRY_DIR: &str = "/var/lib/provision/expiry";
/// When each unit last alerted through each channel (`UNIT.CHANNEL`).
pub const ALERT_STATE_DIR: &str = "/var/lib/provision/alerts";

// provision's configuration.

/// provision's configuration: agents' secrets files and alert channels.
pub const CONFIG_DIR: &str = "/etc/provision";
/// The agents' secrets files.
pub const AGENTS_CONFIG_DIR: &str = "/etc/provision/agents";
/// The alert channels and their routes.
pub const ALERTS_CONFIG_DIR: &str = "/etc/provision/alerts";
/// Which units alert through which channels.
pub const ALERT_ROUTES: &str = "/etc/provision/alerts/routes";

/// The secrets file of `agent` (its unit's `EnvironmentFile=`).
pub fn agent_env_file(agent: &str) -> String {
    format!("{AGENTS_CONFIG_DIR}/{agent}.env")
}

/// The settings of alert channel `channel`.
pub fn alert_channel_file(channel: &str) -> String {
    format!("{ALERTS_CONFIG_DIR}/{channel}.conf")
}

// provision's scripts.

/// Where provision puts its own scripts on the host.
pub const LIB_DIR: &str = "/usr/local/lib/provision";
/// Sends an alert through a unit's channels (`provision-alert@.service`).
pub const ALERT_SCRIPT: &str = "/usr/local/lib/provision/alert";

/// The program that settles an interrupted switch and an unconfirmed
/// generation at boot.
pub const BOOT_SCRIPT: &str = "/usr/local/lib/provision/boot";

/// Its unit, ordered before the agents.
pub const BOOT_UNIT: &str = "provision-boot.service";
/// Checks an agent's heartbeat (its heartbeat unit runs it).
pub const HEARTBEAT_CHECK: &str = "/usr/local/lib/provision/heartbeat-check";

/// Learns and judges a credential's expiry (its expiry units run it;
/// rotation and verify call it too).
pub const EXPIRY_CHECK: &str = "/usr/local/lib/provision/expiry-check";

/// How root's helpers run a command as `agent`, in a unit of its own.
pub fn run_as(agent: &str) -> String {
    format!("{LIB_DIR}/agents/{agent}/run-as")
}

/// The auth check of `agent`.
pub fn auth_check(agent: &str) -> String {
    format!("{LIB_DIR}/agents/{agent}/auth-check")
}

/// The script that rotates credential `auth` of `agent`.
pub fn rotate_script(agent: &str, auth: &str) -> String {
    format!("{LIB_DIR}/agents/{agent}/rotate-{auth}")
}

// The agents' state and files.

/// Where the agents' provision-owned state lives.
pub const AGENT_STATE_ROOT: &str = "/var/lib/provision-agents";

/// Where `agent`'s provision-owned state lives (heartbeat, rotation stamps).
pub fn agent_state_dir(agent: &str) -> String {
    format!("{AGENT_STATE_ROOT}/{agent}")
}

/// The file `agent` touches to send a heartbeat.
pub fn heartbeat_file(agent: &str) -> String {
    format!("{}/heartbeat", agent_state_dir(agent))
}

/// The AGENTS.md provision writes into an agent's working directory.
pub fn agents_md(workdir: &str) -> String {
    format!("{workdir}/AGENTS.md")
}

/// The file an agent keeps its working state in (named in its environment).
pub fn workstate_md(workdir: &str) -> String {
    format!("{workdir}/WORKSTATE.md")
}

// Unit names.

/// The alert unit template: `provision-alert@UNIT.service` alerts for UNIT.
pub const ALERT_UNIT: &str = "provision-alert@.service";
/// The armed dead-man switch's timer (a transient unit).
pub const DEADMAN_TIMER: &str = "provision-deadman.timer";
/// The timer that retries a dead-man switch's switch back.
pub const DEADMAN_RETRY_TIMER: &str = "provision-deadman-retry.timer";

/// The unit of `agent`.
pub fn agent_unit(agent: &str) -> String {
    format!("agent-{agent}.service")
}

/// The name after `agent-` of an `agent-NAME.service` unit: the agent's name
/// for an agent's unit, `x-heartbeat` for agent x's heartbeat check (which
/// names no agent).
pub fn agent_of_unit(unit: &str) -> Option<&str> {
    unit.strip_prefix("agent-")?.strip_suffix(".service")
}

/// The name of `agent`'s heartbeat check units, without `.service` or
/// `.timer`.
pub fn heartbeat_stem(agent: &str) -> String {
    format!("agent-{agent}-heartbeat")
}

/// The name of the units that rotate credential `auth` of `agent`, without
/// `.service` or `.timer`.
pub fn rotate_stem(agent: &str, auth: &str) -> String {
    format!("agent-{agent}-rotate-{auth}")
}

/// The name of the units that check when credential `auth` of `agent`
/// expires, without `.service` or `.timer`.
pub fn expiry_stem(agent: &str, auth: &str) -> String {
    format!("agent-{agent}-expiry-{auth}")
}

/// The expiry state of credential `auth` of `agent`. `.` is in no name, so
/// no two credentials share one.
pub fn expiry_state(agent: &str, auth: &str) -> String {
    format!("{EXPIRY_DIR}/{agent}.{auth}")
}

/// The service of a unit name stem.
pub fn service(stem: &str) -> String {
    format!("{stem}.service")
}

/// The timer of a unit name stem.
pub fn timer(stem: &str) -> String {
    format!("{stem}.timer")
}

// `onboard --harden-ssh`.

/// sshd's main configuration, which must include the drop-ins early.
pub const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
/// The drop-in that turns password and keyboard-interactive login off and
/// closes or narrows root login. Named to sort first in sshd_config.d:
/// sshd keeps the first value of a keyword.
pub const SSH_HARDEN_DROPIN: &str = "/etc/ssh/sshd_config.d/00-provision-harden.conf";
/// The hardening waiting for its confirmation: the old drop-in (if any)
/// and the program that puts it back; gone once confirmed or restored.
pub const SSH_GUARD_DIR: &str = "/var/lib/provision/onboard/ssh-guard";
/// The guard's timer (a transient unit), which restores the old sshd
/// configuration unless a fresh login confirms the new one.
pub const SSH_GUARD_TIMER: &str = "provision-ssh-guard.timer";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::PROGRAMS;

    #[test]
    fn unit_dir_holds_unit_files_only() {
        assert!(in_unit_dir("/etc/systemd/system/a.service"));
        assert!(in_unit_dir(&unit_path("x.timer")));
        assert!(!in_unit_dir("/etc/systemd/system"));
        assert!(!in_unit_dir("/etc/systemd/system.conf"));
        assert!(!in_unit_dir(JOURNALD_DROPIN));
    }

    #[test]
    fn unit_names() {
        assert_eq!(agent_unit("mail"), "agent-mail.service");
        assert_eq!(agent_of_unit(&agent_unit("mail")), Some("mail"));
        assert_eq!(agent_of_unit("agent-mail.timer"), None);
        assert_eq!(agent_of_unit("provision-alert@.service"), None);
        assert_eq!(timer(&heartbeat_stem("a")), "agent-a-heartbeat.timer");
        assert_eq!(
            service(&rotate_stem("a", "gh")),
            "agent-a-rotate-gh.service"
        );
        assert_eq!(timer(&expiry_stem("a", "gh")), "agent-a-expiry-gh.timer");
        assert_eq!(expiry_state("a", "gh"), "/var/lib/provision/expiry/a.gh");
    }

    /// provision's state is one directory, which the host programs name as
    /// `S="$R/var/lib/provision"` and its parts as `$S/PART`.
    #[test]
    fn the_host_programs_name_the_state_as_here() {
        let parts = [
            GENERATIONS_DIR,
            STORE_DIR,
            SWITCHING_DIR,
            DEADMAN_DIR,
            QUARANTINE,
            LOCK,
            VERIFYING,
            CONFIRMED,
            CURRENT,
            LAST_SWITCH,
            KEY,
        ];
        let all: String = PROGRAMS.iter().map(|(_, p)| *p).collect();
        let state = format!("S=\"$R{STATE_DIR}\"\n");
        for (name, program) in PROGRAMS {
            if program.contains("\nS=") {
                assert!(
                    program.contains(&state),
                    "{name} has another state directory"
                );
            }
        }
        for part in parts {
            let rel = part
                .strip_prefix(STATE_DIR)
                .and_then(|p| p.strip_prefix('/'))
                .unwrap_or_else(|| panic!("{part} is not in {STATE_DIR}"));
            assert!(
                all.contains(&format!("$S/{rel}")),
                "no program names {part}"
            );
        }
        for dir in [ROTATION_DIR, ALERT_STATE_DIR, EXPIRY_DIR] {
            assert!(dir.starts_with(&format!("{STATE_DIR}/")));
            assert!(all.contains(&dir[1..]), "no program names {dir}");
        }
    }

    #[test]
    fn the_host_programs_name_scripts_and_units_as_here() {
        let all: String = PROGRAMS.iter().map(|(_, p)| *p).collect();
        assert!(all.contains(&run_as("$name")));
        assert!(all.contains(ALERT_SCRIPT));
        assert!(all.contains(DEADMAN_TIMER));
        assert!(all.contains(DEADMAN_RETRY_TIMER));
        assert!(all.contains(EXPIRY_CHECK));
        for path in [ALERT_SCRIPT, HEARTBEAT_CHECK, EXPIRY_CHECK, &run_as("a")] {
            assert!(path.starts_with(&format!("{LIB_DIR}/")));
        }
        for path in [AGENTS_CONFIG_DIR, ALERTS_CONFIG_DIR, ALERT_ROUTES] {
            assert!(path.starts_with(&format!("{CONFIG_DIR}/")));
        }
    }

    #[test]
    fn the_hardening_programs_name_its_files_as_here() {
        let all: String = PROGRAMS.iter().map(|(_, p)| *p).collect();
        for name in [
            SSHD_CONFIG,
            SSH_HARDEN_DROPIN,
            SSH_GUARD_DIR,
            SSH_GUARD_TIMER,
        ] {
            assert!(all.contains(name), "no program names {name}");
        }
        assert!(SSH_GUARD_DIR.starts_with(&format!("{STATE_DIR}/")));
    }
}
