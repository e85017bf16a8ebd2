PATH=/usr/sbin:/usr/bin:/sbin:/bin
# Confirms generation GEN (set by the header; empty: whichever is current,
# to disarm before a switch back) to the host's dead-man switch.
R=${PROVISION_ROOT:-}
S="$R/var/lib/provision"
GEN=${GEN:-}
if ! { exec 9>>"$S/lock" && flock -w 30 9; }; then
    echo "cannot take the host's lock to confirm the generation"
    exit 1
fi
current=$(readlink "$S/current" 2>/dev/null) || current=
current=${current##*/}
current=${current%.json}
if [ ! -d "$S/deadman" ]; then
    # Another run verified and confirmed it first.
    if [ -n "$GEN" ] && [ "$GEN" = "$current" ] && [ "$(cat "$S/confirmed" 2>/dev/null)" = "$GEN" ]; then
        echo "confirmed (already, by another run)"
        exit 0
    fi
    echo "the confirmation came too late: the dead-man switch had already switched back ($(head -n 1 "$S/last-switch" 2>/dev/null))"
    exit 1
fi
systemctl stop provision-deadman.timer provision-deadman-retry.timer >/dev/null 2>&1
rm -rf "$S/deadman"
[ -n "$GEN" ] && [ "$GEN" = "$current" ] && printf '%s\n' "$GEN" >"$S/confirmed"
echo confirmed
