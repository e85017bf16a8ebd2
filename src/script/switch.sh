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
# Directories made for new files are world-readable, as their files say.
umask 022
R=$1
S="$R/var/lib/provision"
J="$S/switching"
tab=$(printf '\t')
gen=$(cat "$J/generation")
local=${PROVISION_LOCAL:-}
# The generation the host comes from: kept by the garbage collection, so a
# dead-man switch (or a rollback) can go back to it without an upload.
previous=$(readlink "$S/current" 2>/dev/null) || previous=
previous=${previous##*/}
previous=${previous%.json}
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
enable=
restart=
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
        # The store keeps every content of the generation, so it can be
        # switched back to without an upload; files that were already in
        # place when first recorded were never uploaded: keep them now.
        while IFS="$tab" read -r id _ _ _ _ path; do
            [ -f "$S/store/$id" ] && continue
            { cp "$R$path" "$S/store/.in.$id" && chmod 600 "$S/store/.in.$id" &&
                mv -f "$S/store/.in.$id" "$S/store/$id"; } ||
                fail "cannot keep the content of $path in the store"
        done <"$S/generations/$a.files"
        ;;
    reload) systemd daemon-reload ;;
    run)
        if [ -n "$local" ]; then
            printf 'skipped on a local host: %s\n' "$a"
        else
            sh -c "$a" || fail "'$a' failed"
        fi
        ;;
    # Units are enabled, started and restarted together at the end: one
    # systemctl call each (every `enable` reloads the manager).
    enable) enable="$enable $a" ;;
    restart) restart="$restart $a" ;;
    esac
done <"$J/ops"
# shellcheck disable=SC2086 # unit names: no blanks, no globs
if [ -n "$enable$restart" ]; then
    # A unit that hit its start limit refuses to start until reset.
    [ -n "$local" ] || systemctl reset-failed $enable $restart 2>/dev/null
    if [ -n "$enable" ]; then
        systemd enable $enable
        systemd start $enable
    fi
    [ -z "$restart" ] || systemd restart $restart
fi

# Keep the newest generations (and the current one); drop contents no kept
# generation refers to.
keep=$(cat "$J/keep" 2>/dev/null || echo 10)
n=0
for f in $(for g in "$S"/generations/*.json; do g=${g##*/}; g=${g%.json}; case $g in *[!0-9]* | "") ;; *) echo "$g" ;; esac; done | sort -rn); do
    n=$((n + 1))
    if [ $n -gt "$keep" ] && [ "$f" != "$gen" ] && [ "$f" != "$previous" ]; then
        rm -f "$S/generations/$f.json" "$S/generations/$f.files" "$S/generations/$f.status"
    fi
done
used=$(cat "$S"/generations/*.files 2>/dev/null | cut -f1 | sort -u)
for f in "$S"/store/*; do
    [ -f "$f" ] || continue
    case "$used" in *"${f##*/}"*) ;; *) rm -f "$f" ;; esac
done

# Dead-man switch: unless a confirmation (from a new SSH connection, once
# verification passed) stops it, a timer switches back to the previous
# generation. A change that cuts the operator off undoes itself.
if [ -f "$J/deadman.ops" ] && [ -n "$previous" ] && [ -z "$local" ]; then
    D="$S/deadman"
    rm -rf "$D" && mkdir -m 700 "$D" &&
        cp "$J/deadman.ops" "$D/ops" && cp "$J/switch.sh" "$D/switch.sh" &&
        printf '%s\n' "$previous" >"$D/generation" && cp "$J/keep" "$D/keep" &&
        cat >"$D/fire.sh" <<FIRE || fail "cannot prepare the dead-man switch"
# No confirmation arrived: switch back to generation $previous.
S="$S"
[ -d "\$S/deadman" ] || exit 0
[ -e "\$S/switching/ops" ] && exit 1
rm -rf "\$S/switching"
mv "\$S/deadman" "\$S/switching" || exit 1
printf 'no confirmation of generation %s arrived in time: switching back to %s\n' "$gen" "$previous" >"\$S/switching/log"
exec sh "\$S/switching/switch.sh" ""
FIRE
    secs=$(cat "$J/deadman.secs" 2>/dev/null || echo 60)
    systemctl stop provision-deadman.timer >/dev/null 2>&1
    systemctl reset-failed provision-deadman.service provision-deadman.timer >/dev/null 2>&1
    systemd-run --quiet --unit=provision-deadman --on-active="${secs}s" \
        --timer-property=AccuracySec=1s --timer-property=RemainAfterElapse=no \
        --description="provision: switch back to generation $previous unless confirmed" \
        flock -w 600 "$S/lock" sh "$D/fire.sh" ||
        fail "cannot arm the dead-man switch"
    printf 'dead-man switch armed: back to generation %s in %s s unless confirmed\n' "$previous" "$secs"
fi

if [ -n "$failed" ]; then
    printf 'failed: %s\n' "$failed" >"$S/generations/$gen.status"
    finish "failed $gen: $failed" 1
fi
printf 'ok\n' >"$S/generations/$gen.status"
finish "ok $gen" 0
