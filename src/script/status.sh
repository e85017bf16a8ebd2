# provision status: the state of each agent, for `provision status`.
# Read-only.
#
# stdin, tab-separated: "agent NAME UNIT HEARTBEAT STATEDIR AUTHS" (AUTHS:
# comma-separated names of rotated auths, or `-`).
# stdout: "now<TAB>EPOCH", then per agent
#   "agent NAME LOAD ACTIVE SUB RESTARTS SINCE HEARTBEAT LASTALERT"
#   "rotation NAME AUTH LAST"
# with epoch seconds, `-` for never.
set -u
R=${PROVISION_ROOT:-}
printf 'now\t%s\n' "$(date +%s)"

prop() {
    printf '%s\n' "$1" | sed -n "s/^$2=//p"
}

while IFS="$tab" read -r kind name unit hb _ auths; do
    [ "$kind" = agent ] || continue
    if [ -n "${PROVISION_LOCAL:-}" ]; then
        # A local host is a directory: no unit runs there.
        s="LoadState=local"
    else
        s=$(systemctl show --timestamp=unix -p LoadState -p ActiveState -p SubState \
            -p NRestarts -p ActiveEnterTimestamp "$unit" 2>/dev/null) || s=
    fi
    since=$(prop "$s" ActiveEnterTimestamp)
    since=${since#@}
    beat=$(stat -c %Y "$R$hb" 2>/dev/null) || beat=-
    alert=-
    for f in "$R"/var/lib/provision/alerts/"$unit".*; do
        [ -f "$f" ] || continue
        m=$(stat -c %Y "$f")
        if [ "$alert" = - ] || [ "$m" -gt "$alert" ]; then alert=$m; fi
    done
    printf 'agent\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" \
        "$(prop "$s" LoadState)" "$(prop "$s" ActiveState)" "$(prop "$s" SubState)" \
        "$(prop "$s" NRestarts)" "${since:--}" "$beat" "$alert"
    [ "$auths" = - ] && continue
    old_ifs=$IFS
    IFS=,
    for a in $auths; do
        # Root's stamp, in a root-only directory (never a file the agent
        # could replace with a FIFO or a link).
        last=$(cat "$R/var/lib/provision/rotation/$name-$a" 2>/dev/null) || last=-
        printf 'rotation\t%s\t%s\t%s\n' "$name" "$a" "${last:--}"
    done
    IFS=$old_ifs
done
