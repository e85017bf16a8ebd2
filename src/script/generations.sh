# provision generations: every generation the host keeps, with how its
# activation ended. Read-only.
# stdout: "current<TAB>N", "unconfirmed" when the current generation awaits
# its confirmation, then "gen<TAB>N<TAB>STATUS<TAB>RECORD-JSON" lines.
set -u
R=${PROVISION_ROOT:-}
S="$R/var/lib/provision"
tab=$(printf '\t')
if [ -L "$S/current" ]; then
    c=$(readlink "$S/current")
    c=${c##*/}
    echo "current${tab}${c%.json}"
fi
if deadman_waiting; then
    echo "unconfirmed"
fi
for f in "$S"/generations/*.json; do
    [ -f "$f" ] || continue
    n=${f##*/}
    n=${n%.json}
    case $n in *[!0-9]* | '') continue ;; esac
    status=$(head -n 1 "$S/generations/$n.status" 2>/dev/null) || status=
    printf 'gen\t%s\t%s\t' "$n" "${status:-unfinished}"
    cat "$f"
    echo
done
