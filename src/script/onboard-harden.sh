# onboard-harden: puts the sshd drop-in CONF (header line) in place as
# /etc/ssh/sshd_config.d/00-provision-harden.conf, checks it with `sshd -t`
# and that `sshd -T` then shows password and keyboard-interactive login off
# and PermitRootLogin ROOT, arms the guard (a transient timer that puts the
# old configuration back in SECS seconds unless onboard-ssh-guard.sh
# confirms it first), and reloads sshd. Run as root.
#
# Progress notes go to stdout as `note: …`; the last line says how it ended:
# `armed SECS`, or `unchanged` when a confirmed earlier run put the same
# drop-in in place. On any failure before the reload the old configuration
# is back and sshd was not reloaded.

O=/var/lib/provision/onboard
G=/var/lib/provision/onboard/ssh-guard
DROP=/etc/ssh/sshd_config.d/00-provision-harden.conf
CONFIG=/etc/ssh/sshd_config

fail() {
    printf '%s\n' "$*" >&2
    exit 1
}
note() { printf 'note: %s\n' "$*"; }

[ -x /usr/sbin/sshd ] || fail "there is no /usr/sbin/sshd on this host (is openssh-server installed?)"
command -v systemd-run >/dev/null 2>&1 || fail "systemd-run is missing: the guard needs it"
mkdir -p "$O" && chmod 700 /var/lib/provision "$O" || fail "cannot make $O"
[ -d /etc/ssh/sshd_config.d ] && [ ! -L /etc/ssh/sshd_config.d ] &&
    [ "$(stat -c %u /etc/ssh/sshd_config.d)" = 0 ] ||
    fail "/etc/ssh/sshd_config.d is not a directory of root's"
[ -L "$DROP" ] && fail "$DROP is a symbolic link"

# One hardening, confirmation or restore at a time (onboard-ssh-guard.sh and
# the guard's own restore take the same lock).
exec 9>"$O/.ssh-guard.lock"
flock -w 30 9 || fail "another onboard is changing sshd's configuration on this host"

# sshd reads the drop-ins only through this Include, and keeps the first
# value of a keyword: without it, or with the keywords set above it, the
# drop-in would change nothing.
include=$(awk '
    /^[[:space:]]*(#|$)/ { next }
    tolower($1) == "include" && $2 == "/etc/ssh/sshd_config.d/*.conf" {
        print (late == "" ? "yes" : late); found = 1; exit
    }
    late == "" && tolower($1) ~ /^(passwordauthentication|kbdinteractiveauthentication|challengeresponseauthentication|permitrootlogin|match)$/ {
        late = "late " NR " " $1
    }
    END { if (!found) print "missing" }' "$CONFIG")
case $include in
yes) ;;
late*)
    # shellcheck disable=SC2086 # three words: late, line number, keyword.
    set -- $include
    fail "$CONFIG sets $3 on line $2, before its \`Include /etc/ssh/sshd_config.d/*.conf\`, and sshd keeps the first value it reads: move the Include line to the top of $CONFIG and run onboard again"
    ;;
*) fail "$CONFIG does not read /etc/ssh/sshd_config.d: add \`Include /etc/ssh/sshd_config.d/*.conf\` as its first line and run onboard again" ;;
esac

# The program that puts the old configuration back: run by the guard's
# timer (with the lock), by onboard-ssh-guard.sh on an undo (with the lock),
# and below (holding it). `noreload`: sshd was not reloaded yet, so only the
# file goes back.
restore_program() {
    cat <<'RESTORE'
# No fresh login confirmed the hardened sshd configuration: put the old one
# back. Written by provision onboard.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
O=/var/lib/provision/onboard
G=/var/lib/provision/onboard/ssh-guard
DROP=/etc/ssh/sshd_config.d/00-provision-harden.conf
[ -d "$G" ] || exit 0
if [ -f "$G/previous" ]; then
    cp "$G/previous" /etc/ssh/sshd_config.d/.provision-harden.restore &&
        chmod 644 /etc/ssh/sshd_config.d/.provision-harden.restore &&
        mv -f /etc/ssh/sshd_config.d/.provision-harden.restore "$DROP" || exit 1
else
    rm -f "$DROP" || exit 1
fi
if [ "$1" != noreload ]; then
    for u in ssh.service sshd.service; do
        if systemctl is-active --quiet "$u"; then
            systemctl reload "$u"
            break
        fi
    done
    date -u +%Y-%m-%dT%H:%M:%SZ >"$O/.harden-ssh-reverted.tmp" &&
        mv -f "$O/.harden-ssh-reverted.tmp" "$O/harden-ssh-reverted"
fi
rm -rf "$G"
RESTORE
}

stop_guard() {
    systemctl stop provision-ssh-guard.timer >/dev/null 2>&1
    systemctl reset-failed provision-ssh-guard.service provision-ssh-guard.timer >/dev/null 2>&1
}

# An earlier hardening that nobody confirmed, whose guard has not fired yet
# (the operator was cut off): put its old configuration back first.
if [ -d "$G" ]; then
    note "an earlier hardening was never confirmed: putting the configuration before it back first"
    stop_guard
    sh "$G/restore.sh" || fail "cannot put back the configuration before the earlier hardening"
fi
if [ -f "$O/harden-ssh-reverted" ]; then
    note "an earlier hardening was undone by its guard (no fresh login confirmed it): trying again"
fi

new=$(mktemp /etc/ssh/sshd_config.d/.provision-harden.XXXXXX) || fail "cannot write in /etc/ssh/sshd_config.d"
printf '%s' "$CONF" >"$new" && chmod 644 "$new" || {
    rm -f "$new"
    fail "cannot write the drop-in"
}
if [ -f "$O/harden-ssh" ] && [ -f "$DROP" ] && cmp -s "$new" "$DROP"; then
    rm -f "$new"
    echo unchanged
    exit 0
fi

# Keep what the drop-in was, for the guard.
rm -rf "$G" && mkdir -m 700 "$G" || fail "cannot make $G"
if [ -f "$DROP" ]; then
    cp "$DROP" "$G/previous" || fail "cannot keep the old $DROP"
fi
restore_program >"$G/restore.sh" || fail "cannot write the guard's program"
mv -f "$new" "$DROP" || {
    rm -f "$new"
    rm -rf "$G"
    fail "cannot move the drop-in to $DROP"
}

# Checked before sshd sees it: a refused configuration goes back at once.
if ! out=$(/usr/sbin/sshd -t 2>&1); then
    sh "$G/restore.sh" noreload
    if before=$(/usr/sbin/sshd -t 2>&1); then
        fail "sshd -t refuses the configuration with the hardening drop-in: $out"
    fi
    fail "sshd -t refuses this host's sshd configuration, before any change: $before"
fi
# sshd keeps the first value: a drop-in sorting before this one, or a line
# above the Include, may still win. What sshd will use is what counts.
effective=$(/usr/sbin/sshd -T 2>&1) || {
    sh "$G/restore.sh" noreload
    fail "sshd -T fails: $effective"
}
value() { printf '%s\n' "$effective" | awk -v k="$1" 'tolower($1) == k { print $2; exit }'; }
wrong=
for kv in passwordauthentication=no kbdinteractiveauthentication=no "permitrootlogin=$ROOT"; do
    k=${kv%%=*} want=${kv#*=} got=$(value "${kv%%=*}")
    # sshd -T spells prohibit-password by its old name.
    [ "$got" = without-password ] && got=prohibit-password
    [ "$got" = "$want" ] || wrong="$wrong $k=${got:-unset}"
done
if [ -n "$wrong" ]; then
    sh "$G/restore.sh" noreload
    fail "with the drop-in, sshd -T still shows${wrong}: an earlier line of $CONFIG or a drop-in that sorts before ${DROP##*/} sets it, and sshd keeps the first value; remove that setting and run onboard again"
fi

# From here the drop-in is the one to confirm; the records of earlier runs
# no longer describe it.
rm -f "$O/harden-ssh" "$O/harden-ssh-reverted"
stop_guard
if ! systemd-run --quiet --unit=provision-ssh-guard --on-active="${SECS}s" \
    --timer-property=AccuracySec=1s --timer-property=RemainAfterElapse=no \
    --description="provision: put the old sshd configuration back unless a fresh login confirms the hardened one" \
    flock -w 60 "$O/.ssh-guard.lock" sh "$G/restore.sh"; then
    sh "$G/restore.sh" noreload
    fail "cannot arm the guard (systemd-run failed): nothing was changed"
fi

reloaded=
for u in ssh.service sshd.service; do
    if systemctl is-active --quiet "$u"; then
        out=$(systemctl reload "$u" 2>&1) || {
            stop_guard
            sh "$G/restore.sh" noreload
            fail "systemctl reload $u failed, so sshd kept its old configuration: $out"
        }
        reloaded=$u
        break
    fi
done
# A socket-activated sshd (ssh.socket) starts anew for each connection and
# reads the new configuration then.
[ -n "$reloaded" ] || note "no running ssh.service to reload: new connections read the new configuration"
echo "armed $SECS"
