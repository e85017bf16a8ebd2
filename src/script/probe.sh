# provision probe: a read-only look at one host, in one round trip.
#
# stdin: one line per desired path, "FLAG<TAB>SHA256<TAB>PATH" (no field is
# empty: tabs are IFS white space, so empty fields would collapse), FLAG `t`
# for a file whose old content may be shown in a diff, `k` for one that holds
# secrets: its content never leaves the host, and its id is keyed (HMAC). The
# paths of the current generation are looked at too.
# stdout: tab-separated records, read by `observed::parse_probe`.
# Paths go through printf, never echo: dash's echo reads backslashes.
# It writes nothing but the host's fingerprint key on first contact and its
# record of the files it read (stat/record, below).
set -u
R=${PROVISION_ROOT:-}
set_root "$R"
S="$R/var/lib/provision"
echo "probe${tab}1"
# Also the clock the stat record is judged against (below).
now=$(date +%s)
echo "now${tab}$now"

# The key that makes secret fingerprints unguessable offline: random, 0600,
# created once.
if [ ! -s "$S/key" ]; then
    (mkdir -p "$S" && chmod 700 "$S" && umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$S/key.tmp" && mv -f "$S/key.tmp" "$S/key") ||
        echo "warning${tab}cannot create $S/key"
fi
[ -s "$S/key" ] && echo "key${tab}$(cat "$S/key")"

current=
if [ -L "$S/current" ]; then
    current=$(readlink "$S/current")
    current=${current##*/}
    current=${current%.json}
    echo "current${tab}$current"
    if [ -f "$S/generations/$current.json" ]; then
        printf 'record\t'
        cat "$S/generations/$current.json"
        echo
    fi
    [ -f "$S/generations/$current.status" ] && echo "status${tab}$(head -n 1 "$S/generations/$current.status")"
fi
latest=
for f in "$S"/generations/*.json; do
    [ -f "$f" ] || continue
    n=${f##*/}
    n=${n%.json}
    case $n in *[!0-9]*|'') continue ;; esac
    if [ -z "$latest" ] || [ "$n" -gt "$latest" ]; then latest=$n; fi
done
[ -n "$latest" ] && echo "latest${tab}$latest"

if [ -f "$S/switching/ops" ]; then
    gen=$(cat "$S/switching/generation" 2>/dev/null)
    state=stopped
    unit=$(cat "$S/switching/unit" 2>/dev/null) || unit=
    if [ -z "${PROVISION_LOCAL:-}" ] && [ -n "$unit" ] && systemctl is-active --quiet "$unit.service" 2>/dev/null; then
        state=running
    fi
    echo "switching${tab}$gen${tab}$state"
fi

# A generation that awaits its confirmation: the dead-man switch goes back
# to this one unless it comes. `since`: when the switch began, before it
# restarted anything.
if deadman_waiting; then
    back=$(cat "$S/deadman/generation" 2>/dev/null)
    armed=$(cat "$S/deadman/since" 2>/dev/null) || armed=
    case $armed in '' | *[!0-9]*) armed=0 ;; esac
    case $back in '' | *[!0-9]*) ;; *) echo "unconfirmed${tab}$back${tab}$armed" ;; esac
fi

# Free space where the store lives, and the size of the journal's filesystem.
d="$S"
[ -d "$d" ] || d="$R/"
df -Pk "$d" 2>/dev/null | { read -r _ && read -r _ _ _ avail _ && echo "disk${tab}$((avail * 1024))"; }
j="$R/var/log/journal"
[ -d "$j" ] || j="$R/var/log"
[ -d "$j" ] || j="$R/"
df -Pk "$j" 2>/dev/null | { read -r _ && read -r _ size _ avail _ && echo "journalfs${tab}$((size * 1024))${tab}$((avail * 1024))"; }

# The paths: the desired ones, then the current generation's. A path that
# holds a secret in either is keyed: only its HMAC under the host's key
# leaves the host, never its plain hash nor its content.
#   id mode owner group secret path -> "k|n<TAB>-<TAB>path"
list=$(cat)
old=
if [ -n "$current" ] && [ -f "$S/generations/$current.files" ]; then
    old=$(while IFS="$tab" read -r _ _ _ _ secret path; do
        if [ "$secret" = s ]; then printf 'k\t-\t%s\n' "$path"; else printf 'n\t-\t%s\n' "$path"; fi
    done <"$S/generations/$current.files")
fi
# Each path once, in the order given (desired first), keyed when either
# list keys it. One awk: string lookups in sh grow with the square of the
# number of paths.
paths=$(awk -F "$tab" '$3 != "" {
    if (!($3 in flag)) { order[++n] = $3; flag[$3] = $1; sha[$3] = $2 }
    else if ($1 == "k") flag[$3] = "k"
} END { for (i = 1; i <= n; i++) printf "%s\t%s\t%s\n", flag[order[i]], sha[order[i]], order[i] }' <<LIST
$list
$old
LIST
)
case "$nl$paths" in *"${nl}k$tab"*) hmac_init "$(cat "$S/key" 2>/dev/null)" ;; esac

# report PATH FLAG SHA: one regular file in a directory someone else may
# write, read in the current directory (entered by safe_dir) without
# following a link or blocking on a FIFO.
report() {
    st=$(stat -c '%a	%U	%G	%s' -- "./$NAME") || return
    h=$(read_nofollow "./$NAME" | sha256sum) || return
    h=${h%% *}
    [ "$2" = k ] && h="hmac-$(hmac_hex "$h")"
    printf 'file\t%s\t%s\t%s\n' "$h" "${st%"$tab"*}" "$1"
    if [ "$2" = t ] && [ "$h" != "$3" ] && [ "${st##*"$tab"}" -le 262144 ]; then
        printf 'content\t%s\n' "$1"
        read_nofollow "./$NAME" | base64
        echo "end"
    fi
}

# Classify every path. Regular files in directories only root can write are
# hashed and stat'ed in one call each (nobody can swap them); the others one
# by one, without following links.
batch=
while IFS="$tab" read -r flag sha path; do
    [ -n "$path" ] || continue
    if [ "$sha" != - ] && [ -f "$S/store/$sha" ]; then
        printf 'stored\t%s\n' "$sha"
    fi
    dir_name "$path"
    if ! safe_dir "$DIR" '*' '*'; then
        if [ "$why" = missing ]; then
            printf 'missing\t%s\n' "$path"
        else
            printf 'unsafe\t%s\t%s\n' "$why" "$path"
        fi
        cd /
        continue
    fi
    classify "$NAME"
    if [ "$KIND" = other ]; then
        printf 'other\t%s\t%s\n' "$WHAT" "$path"
    elif [ "$KIND" = missing ]; then
        printf 'missing\t%s\n' "$path"
    elif [ "$TRUSTED" = yes ]; then
        batch="$batch$flag$tab$sha$tab$path$nl"
    elif [ "$(links "$NAME")" != 1 ]; then
        printf 'other\thard link (%s links)\t%s\n' "$(links "$NAME")" "$path"
    else
        report "$path" "$flag" "$sha"
    fi
    cd /
done <<LIST
$paths
LIST

set --
while IFS="$tab" read -r flag sha path; do
    [ -n "$path" ] && set -- "$@" "$RP$path"
done <<BATCH
$batch
BATCH
[ $# -gt 0 ] || exit 0

# The record of what each of these files was when it was last read
# (root-only, like the rest of $S): device, inode, size, mtime and ctime to
# the nanosecond -> its id. A file whose five still match keeps its id
# without being read or keyed again: any write or metadata change sets
# ctime to the present, and nobody but root (by setting the clock) can set
# it back. A file whose ctime is not 2 whole seconds behind the clock
# (changed in the last 2 to 3 s) is not recorded: a second write in the same
# clock tick would leave every value equal.
REC="$S/stat/record"
stats=$(stat --printf '%a\t%U\t%G\t%s\t%d:%i:%s:%.9Y:%.9Z\n' -- "$@") || exit 0
# One line per file, in batch order: FLAG SHA PATH MODE OWNER GROUP SIZE
# STAMP ID, ID `-` when the record does not vouch for it.
joined=$(
    {
        [ -f "$REC" ] && [ ! -L "$REC" ] && cat -- "$REC"
        echo "@batch"
        printf '%s' "$batch"
        echo "@stats"
        printf '%s\n' "$stats"
    } | awk -F "$tab" -v OFS="$tab" '
        # Three parts: the record (STAMP ID PATH), the batch (FLAG SHA
        # PATH), the stats (MODE OWNER GROUP SIZE STAMP), in the same order
        # as the batch. No line of theirs starts with @.
        $0 == "@batch" { part = 1; next }
        $0 == "@stats" { part = 2; next }
        $0 == "" { next }
        part == 0 { stamp[$3] = $1; id[$3] = $2; next }
        part == 1 { n++; flag[n] = $1; sha[n] = $2; path[n] = $3; next }
        part == 2 {
            m++
            p = path[m]
            got = "-"
            # A keyed file needs a keyed id, a plain one a plain id.
            if ((p in stamp) && stamp[p] == $5 && ((flag[m] == "k") == (id[p] ~ /^hmac-/))) got = id[p]
            print flag[m], sha[m], p, $1, $2, $3, $4, $5, got
        }')
# The files the record does not vouch for, read in one call.
set --
while IFS="$tab" read -r _ _ path _ _ _ _ _ got; do
    [ "$got" = - ] && set -- "$@" "$RP$path"
done <<JOINED
$joined
JOINED
hashes=
if [ $# -gt 0 ]; then
    hashes=$(sha256sum -- "$@") || exit 0
fi
# Written aside and renamed; where it cannot be written, nothing is kept.
umask 077
new="$REC.new.$$"
keep=/dev/null
# The directory is made by apply: a plan of a host never applied keeps none.
if [ -d "$S/stat" ] && [ ! -L "$S/stat" ] && true 2>/dev/null >"$new"; then
    keep=$new
fi
while IFS="$tab" read -r flag sha path mode owner group size stamp got; do
    [ -n "$path" ] || continue
    h=$got
    if [ "$h" = - ]; then
        IFS= read -r h <&3
        h=${h#\\}
        h=${h%% *}
        [ "$flag" = k ] && h="hmac-$(hmac_hex "$h")"
    fi
    printf 'file\t%s\t%s\t%s\t%s\t%s\n' "$h" "$mode" "$owner" "$group" "$path"
    ctime=${stamp##*:}
    [ "${ctime%.*}" -lt $((now - 2)) ] && printf '%s\t%s\t%s\n' "$stamp" "$h" "$path" >&5
    if [ "$flag" = t ] && [ "$h" != "$sha" ] && [ "$size" -le 262144 ]; then
        printf 'content\t%s\n' "$path"
        base64 <"$RP$path"
        echo "end"
    fi
done 3<<HASHES 5>"$keep" <<JOINED
$hashes
HASHES
$joined
JOINED
[ "$keep" = /dev/null ] || mv -f -- "$new" "$REC" 2>/dev/null || rm -f -- "$new"
