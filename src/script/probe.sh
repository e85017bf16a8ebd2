# provision probe: a read-only look at one host, in one round trip.
#
# stdin: one line per desired path, "FLAG<TAB>SHA256<TAB>PATH" (no field is
# empty: tabs are IFS white space, so empty fields would collapse), FLAG `t` for a
# text file whose old content may be shown in a diff, `s` for one that must
# never leave the host (secrets). The paths of the current generation are
# looked at too.
# stdout: tab-separated records, read by `observed::parse_probe`.
# Paths go through printf, never echo: dash's echo reads backslashes.
# It writes nothing, except the host's fingerprint key on first contact.
set -u
R=${PROVISION_ROOT:-}
S="$R/var/lib/provision"
tab=$(printf '\t')
echo "probe${tab}1"
echo "now${tab}$(date +%s)"

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

# Free space where the store lives, and the size of the journal's filesystem.
d="$S"
[ -d "$d" ] || d="$R/"
df -Pk "$d" 2>/dev/null | { read -r _ && read -r _ _ _ avail _ && echo "disk${tab}$((avail * 1024))"; }
j="$R/var/log/journal"
[ -d "$j" ] || j="$R/var/log"
[ -d "$j" ] || j="$R/"
df -Pk "$j" 2>/dev/null | { read -r _ && read -r _ size _ avail _ && echo "journalfs${tab}$((size * 1024))${tab}$((avail * 1024))"; }

list=$(cat)
if [ -n "$current" ] && [ -f "$S/generations/$current.files" ]; then
    # id mode owner group secret path -> "s<TAB><TAB>path"
    old=$(while IFS="$tab" read -r _ _ _ _ _ path; do printf 's\t-\t%s\n' "$path"; done <"$S/generations/$current.files")
    list="$list
$old"
fi

# Classify every path; hash and stat the regular files in one call each.
set --
while IFS="$tab" read -r flag sha path; do
    [ -n "$path" ] || continue
    if [ "$sha" != - ] && [ -f "$S/store/$sha" ]; then
        printf 'stored\t%s\n' "$sha"
    fi
    p="$R$path"
    if [ -L "$p" ]; then
        printf 'other\tsymlink\t%s\n' "$path"
    elif [ -f "$p" ]; then
        set -- "$@" "$p"
    elif [ -e "$p" ]; then
        printf 'other\tnot a regular file\t%s\n' "$path"
    else
        printf 'missing\t%s\n' "$path"
    fi
done <<LIST
$list
LIST
[ $# -gt 0 ] || exit 0
hashes=$(sha256sum -- "$@") || exit 0
stats=$(stat --printf '%a\t%U\t%G\t%s\n' -- "$@") || exit 0
while IFS="$tab" read -r flag sha path; do
    [ -n "$path" ] || continue
    p="$R$path"
    if [ -L "$p" ] || [ ! -f "$p" ]; then continue; fi
    IFS= read -r h <&3
    IFS="$tab" read -r mode owner group size <&4
    h=${h#\\}
    h=${h%% *}
    printf 'file\t%s\t%s\t%s\t%s\t%s\n' "$h" "$mode" "$owner" "$group" "$path"
    if [ "$flag" = t ] && [ "$h" != "$sha" ] && [ "$size" -le 262144 ]; then
        printf 'content\t%s\n' "$path"
        base64 <"$p"
        echo "end"
    fi
done 3<<HASHES 4<<STATS <<LIST
$hashes
HASHES
$stats
STATS
$list
LIST
