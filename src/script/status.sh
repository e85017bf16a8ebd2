# provision status: the state of each agent, for `provision status`.
# Read-only.
#
# stdin, tab-separated: "agent NAME UNIT HEARTBEAT STATEDIR AUTHS" (AUTHS:
# comma-separated names of rotated auths, or `-`), and "expiry NAME AUTH"
# for each credential whose expiry the host learns by a command.
# stdout: "now<TAB>EPOCH", then per agent
#   "agent NAME LOAD ACTIVE SUB RESTARTS SINCE HEARTBEAT LASTALERT"
#   "rotation NAME AUTH LAST RESULT"
#   "expiry NAME AUTH VERDICT EXPIRY CHECKED"
# with epoch seconds, `-` for never.
set -u
R=${PROVISION_ROOT:-}
printf 'now\t%s\n' "$(date +%s)"

prop() {
    printf '%s\n' "$1" | sed -n "s/^$2=//p"
}

# field TEXT: one field of an answer line: its first line, at most 200
# bytes, no tabs, `-` when empty.
field() {
    f=$(printf '%s\n' "$1" | head -n 1 | head -c 200 | tr -d '\t\r')
    printf '%s\n' "${f:--}"
}

while IFS="$tab" read -r kind name unit hb _ auths; do
    if [ "$kind" = expiry ]; then
        # The expiry check's record, root's in a root-only directory:
        # "VERDICT EXPIRY CHECKED".
        v=- e=- c=-
        f="$R/var/lib/provision/expiry/$name.$unit"
        if [ -f "$f" ] && [ ! -L "$f" ]; then
            read -r v e c _ <"$f" || :
        fi
        printf 'expiry\t%s\t%s\t%s\t%s\t%s\n' "$name" "$unit" "$(field "${v:-}")" "$(field "${e:-}")" "$(field "${c:-}")"
        continue
    fi
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
        result=$(cat "$R/var/lib/provision/rotation/$name-$a.result" 2>/dev/null) || result=
        printf 'rotation\t%s\t%s\t%s\t%s\n' "$name" "$a" "${last:--}" "$(field "$result")"
    done
    IFS=$old_ifs
done
