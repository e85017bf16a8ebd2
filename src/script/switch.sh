# provision switch job: runs detached on the host and moves it from one
# generation to the next, or leaves it where it was.
#
# $1 is the root ("" on a real host). Reads switching/ops (tab-separated):
#   write ID MODE OWNER GROUP PATH   new content of PATH, from store/ID
#   early PATH COMMAND               run COMMAND on PATH's new content before
#                                    any file is switched (users, directories)
#   stop UNIT | remove PATH | record N | reload | run COMMAND |
#   enable UNIT | restart UNIT      in order, after every file is prepared
# Phase 1 prepares every file next to its target, so any failure (a full
# disk, a missing user) leaves the host as it was. Phase 2 renames them into
# place, records the generation and activates. Run again after an
# interruption, it does the same thing over: every step is idempotent.
# Writes the outcome to last-switch: "ok N", "failed N: why" (switched,
# activation failed) or "aborted N: why" (nothing switched).
set -u
R=$1
S="$R/var/lib/provision"
J="$S/switching"
tab=$(printf '\t')
gen=$(cat "$J/generation")
local=${PROVISION_LOCAL:-}
exec >>"$J/log" 2>&1

tmpname() {
    printf '%s/.provision-new.%s' "${1%/*}" "${1##*/}"
}

finish() {
    {
        printf '%s\n' "$1"
        cat "$J/log"
    } >"$S/last-switch.new"
    mv -f "$S/last-switch.new" "$S/last-switch"
    rm -rf "$J"
    exit "$2"
}

abort() {
    printf 'error: %s\n' "$*"
    while IFS="$tab" read -r op _ _ _ _ path; do
        [ "$op" = write ] && rm -f "$(tmpname "$R$path")"
    done <"$J/ops"
    finish "aborted $gen: $*" 2
}

# Phase 1: prepare.
set --
while IFS="$tab" read -r op a b c d e; do
    case $op in
    write)
        p="$R$e"
        t=$(tmpname "$p")
        [ -f "$S/store/$a" ] || abort "the content of $e ($a) is missing from the store"
        mkdir -p "${p%/*}" || abort "cannot create the directory of $e"
        cp "$S/store/$a" "$t" || abort "cannot write $e"
        chmod "$b" "$t" || abort "cannot set the mode of $e"
        if [ -z "$local" ]; then
            chown "$c:$d" "$t" || abort "cannot give $e to $c:$d"
        fi
        set -- "$@" "$t"
        ;;
    early)
        [ -n "$local" ] && continue
        p="$R$a"
        t=$(tmpname "$p")
        [ -f "$t" ] || t=$p
        # shellcheck disable=SC2086 # the command is a word list by design
        $b "$t" || abort "'$b' failed on the new $a"
        ;;
    esac
done <"$J/ops"
if [ $# -gt 0 ]; then
    sync -- "$@" || abort "cannot sync the new files"
fi
printf 'prepared\n'

# Phase 2: switch and activate. Failures are reported, not undone: the files
# are in place and recorded; verification decides what happens next.
failed=
fail() {
    printf 'error: %s\n' "$*"
    failed="${failed}${failed:+; }$*"
}
systemd() {
    if [ -n "$local" ]; then
        printf 'skipped on a local host: systemctl %s\n' "$*"
    else
        systemctl "$@" || fail "systemctl $* failed"
    fi
}
while IFS="$tab" read -r op a b c d e; do
    case $op in
    write)
        p="$R$e"
        mv -f "$(tmpname "$p")" "$p" || fail "cannot rename the new $e into place"
        ;;
    stop) systemd disable --now "$a" ;;
    remove) rm -f "$R$a" || fail "cannot remove $a" ;;
    record)
        if [ -f "$J/record.json" ]; then
            cp "$J/record.json" "$S/generations/.new.json" &&
                cp "$J/record.files" "$S/generations/$a.files" &&
                mv -f "$S/generations/.new.json" "$S/generations/$a.json" ||
                fail "cannot record generation $a"
        fi
        ln -sfn "generations/$a.json" "$S/current.new" &&
            mv -Tf "$S/current.new" "$S/current" || fail "cannot switch current to generation $a"
        ;;
    reload) systemd daemon-reload ;;
    run)
        if [ -n "$local" ]; then
            printf 'skipped on a local host: %s\n' "$a"
        else
            sh -c "$a" || fail "'$a' failed"
        fi
        ;;
    enable)
        # A unit that hit its start limit refuses to start until reset.
        [ -n "$local" ] || systemctl reset-failed "$a" 2>/dev/null
        systemd enable --now "$a"
        ;;
    restart)
        [ -n "$local" ] || systemctl reset-failed "$a" 2>/dev/null
        systemd restart "$a"
        ;;
    esac
done <"$J/ops"

# Keep the newest generations (and the current one); drop contents no kept
# generation refers to.
keep=$(cat "$J/keep" 2>/dev/null || echo 10)
n=0
for f in $(for g in "$S"/generations/*.json; do g=${g##*/}; g=${g%.json}; case $g in *[!0-9]* | "") ;; *) echo "$g" ;; esac; done | sort -rn); do
    n=$((n + 1))
    if [ $n -gt "$keep" ] && [ "$f" != "$gen" ]; then
        rm -f "$S/generations/$f.json" "$S/generations/$f.files" "$S/generations/$f.status"
    fi
done
used=$(cat "$S"/generations/*.files 2>/dev/null | cut -f1 | sort -u)
for f in "$S"/store/*; do
    [ -f "$f" ] || continue
    case "$used" in *"${f##*/}"*) ;; *) rm -f "$f" ;; esac
done

if [ -n "$failed" ]; then
    printf 'failed: %s\n' "$failed" >"$S/generations/$gen.status"
    finish "failed $gen: $failed" 1
fi
printf 'ok\n' >"$S/generations/$gen.status"
finish "ok $gen" 0
