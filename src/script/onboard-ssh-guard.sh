# onboard-ssh-guard: settles the hardening onboard-harden.sh armed. ACTION
# (header line) is `confirm`, sent over a fresh login that the hardened
# sshd accepted: it records the step harden-ssh and stops the guard; or
# `undo`, sent over the login made before the change when the fresh one
# failed: it puts the old configuration back now instead of waiting for the
# guard. Both take the lock the guard's own restore takes, so whichever
# comes first decides and the other learns it. The last line says how it
# ended: `confirmed` or `restored` (a confirmation that comes after the old
# configuration was put back exits non-zero). Run as root.

O=/var/lib/provision/onboard
G=/var/lib/provision/onboard/ssh-guard

fail() {
    printf '%s\n' "$*" >&2
    exit 1
}
[ -d "$O" ] || fail "$O is missing: onboard-harden.sh did not run here"
exec 9>"$O/.ssh-guard.lock"
flock -w 30 9 || fail "another onboard is changing sshd's configuration on this host"

stop_guard() {
    systemctl stop provision-ssh-guard.timer >/dev/null 2>&1
    systemctl reset-failed provision-ssh-guard.service provision-ssh-guard.timer >/dev/null 2>&1
}

case $ACTION in
confirm)
    if [ ! -d "$G" ]; then
        if [ -f "$O/harden-ssh" ]; then
            echo confirmed
            exit 0
        fi
        echo restored
        fail "the guard already put the old sshd configuration back: no confirmation arrived in time"
    fi
    date -u +%Y-%m-%dT%H:%M:%SZ >"$O/.harden-ssh.tmp" && mv -f "$O/.harden-ssh.tmp" "$O/harden-ssh" ||
        fail "cannot record the confirmation"
    rm -rf "$G"
    stop_guard
    echo confirmed
    ;;
undo)
    if [ -d "$G" ]; then
        sh "$G/restore.sh" || fail "cannot put the old sshd configuration back; the guard tries again when it fires"
    fi
    stop_guard
    if [ -f "$O/harden-ssh" ]; then
        echo confirmed
    else
        echo restored
    fi
    ;;
*) fail "$ACTION is not confirm or undo" ;;
esac
