# provision switch job: runs detached on the host and moves it from one
# generation to the next, or leaves it where it was.
#
# $1 is the root ("" on a real host). Reads switching/ops (tab-separated):
#   write ID MODE OWNER GROUP PATH   new content of PATH, from store/ID
#   early PATH COMMAND               run COMMAND on PATH's new content before
#                                    any file is switched (users, directories)
#   stop UNIT | remove PATH | record N | reload | run COMMAND |
#   enable UNIT | restart UNIT      in order, after every file is prepared
# Phase 1 prepares every file in a root-only staging directory inside the
# directory it goes to, so any failure (a full disk, a missing user) leaves
# the host as it was. Nothing is opened, chmodded or chowned by a name that
# a non-root user could redirect (see lib.sh). Phase 2 renames them into
# place, records the generation and activates. Run again after an
# interruption, it does the same thing over: every step is idempotent.
# Writes the outcome to last-switch: "ok N", "failed N: why" (switched,
# activation failed) or "aborted N: why" (nothing switched).
set -u
# Directories made for new files are world-readable, as their files say.
umask 022
R=$1
set_root "$R"
S="$R/var/lib/provision"
J="$S/switching"
gen=$(cat "$J/generation")
local=${PROVISION_LOCAL:-}
# The generation the host comes from: kept by the garbage collection, so a
# dead-man switch (or a rollback) can go back to it without an upload.
previous=$(readlink "$S/current" 2>/dev/null) || previous=
previous=${previous##*/}
previous=${previous%.json}
exec >>"$J/log" 2>&1

# mark PHASE: PHASE starts now, in the log (see apply.sh), for the report's
# timings; the apply that started this job prints them with its outcome.
mark() { printf 'phase\t%s\t%s\n' "$1" "$(date +%s%N)"; }

# New files are staged in a root-only directory made (by mktemp) inside the
# directory they go to, so the final rename stays on one filesystem and
# lands on exactly the target name; "DIR<TAB>NAME" lines in the journal say
# which, so a resumed job finds them.
stages=$nl
[ -f "$J/stages" ] && stages="$nl$(cat "$J/stages")$nl"
# find_stage DIR: sets STAGE to DIR's staging directory (the last made).
# The files of a directory come one after the other, so the last answer is
# usually the next one.
fs_dir=''
fs_stage=''
find_stage() {
    if [ "$1" != "$fs_dir" ]; then
        last_value "$stages" "$1"
        fs_dir=$1 fs_stage=$VALUE
    fi
    STAGE=$fs_stage
}
# each_stage COMMAND: runs COMMAND NAME inside each staging directory's
# parent, entered without following a symlink.
each_stage() {
    printf '%s' "$stages" | while IFS="$tab" read -r es_dir es_name; do
        [ -n "$es_name" ] || continue
        if enter_dir "$es_dir"; then
            "$1" "$es_name"
        fi
        cd /
    done
}
drop_stage() { rm -rf -- "./$1"; }
tidy_stage() { rmdir -- "./$1" 2>/dev/null; }


finish() {
    mark job-exit
    each_stage tidy_stage
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
    each_stage drop_stage
    finish "aborted $gen: $*" 2
}

# new_stage PATH: makes a staging directory in the current directory (that
# of PATH), and records it in the journal.
new_stage() {
    STAGE=$(mktemp -d .provision-stage.XXXXXX) || abort "cannot make a staging directory in $DIR for $1"
    STAGE=${STAGE#./}
    stages="$stages$DIR$tab$STAGE$nl"
    fs_dir=$DIR fs_stage=$STAGE
    printf '%s\t%s\n' "$DIR" "$STAGE" >>"$J/stages"
}

# Phase 1: prepare. Nothing outside the staging directories changes.
mark prepare
refused=$nl
while IFS="$tab" read -r op a b c d e; do
    case $op in
    write)
        dir_name "$e"
        [ -f "$S/store/$a" ] || abort "the content of $e ($a) is missing from the store"
        # A directory on the way that is a link, or that someone else could
        # redirect, refuses this path alone: the other files still switch,
        # and the activation reports it as failed.
        if ! safe_dir "$DIR" "$c" "$d" create; then
            refused="$refused$e$nl"
            printf 'refused\t%s\t%s\n' "$e" "$why"
            cd /
            continue
        fi
        find_stage "$DIR"
        if [ "$TRUSTED" = yes ]; then
            # Only root can write DIR and the directories above it: nobody
            # but root can have made, moved or replaced its staging
            # directory, so it is made or entered without the checks below.
            [ -n "$STAGE" ] || new_stage "$e"
            cd -- "$STAGE" || abort "cannot enter the staging directory of $DIR"
        else
            if ! here; then
                refused="$refused$e$nl"
                printf 'refused\t%s\t%s\n' "$e" "$why"
                cd /
                continue
            fi
            if [ -z "$STAGE" ] || ! stage_dir "$STAGE"; then
                # Entered again (stage_dir leaves for / when it refuses).
                { safe_dir "$DIR" "$c" "$d" && here; } || abort "cannot write $e: $why"
                new_stage "$e"
                stage_dir "$STAGE" || abort "cannot write $e: $why"
            fi
        fi
        # One process per file: install copies, then gives the file its owner
        # and then its mode (so a set-id bit survives), inside the root-only
        # staging directory.
        if [ -z "$local" ]; then
            install -m "$b" -o "$c" -g "$d" -- "$S/store/$a" "./$NAME" || abort "cannot write $e as $c:$d, mode $b"
        else
            install -m "$b" -- "$S/store/$a" "./$NAME" || abort "cannot write $e with mode $b"
        fi
        cd /
        ;;
    early)
        [ -n "$local" ] && continue
        # Hooks read only root's directories (sysusers.d, tmpfiles.d).
        dir_name "$a"
        find_stage "$DIR"
        t="$RP$DIR/$STAGE/$NAME"
        [ -n "$STAGE" ] && [ -f "$t" ] || t=$RP$a
        # shellcheck disable=SC2086 # the command is a word list by design
        $b "$t" || abort "'$b' failed on the new $a"
        ;;
    esac
done <"$J/ops"
sync_stage() {
    set --
    for f in ./* ./.[!.]* ./..?*; do
        [ -f "$f" ] && set -- "$@" "$f"
    done
    [ $# -eq 0 ] || sync -- "$@"
}
sync_stages() {
    printf '%s' "$stages" | while IFS="$tab" read -r es_dir es_name; do
        [ -n "$es_name" ] || continue
        (
            enter_dir "$es_dir" && here &&
                stage_dir "$es_name" && sync_stage
        ) || exit 1
    done
}
sync_stages || abort "cannot sync the new files"
printf 'prepared\n'

# quarantine PATH WHAT: moves what was planted at ../NAME (the managed
# file's name, seen from its staging directory) into the root-only
# quarantine, or, on another filesystem, into the staging directory, which
# then stays. Says so in the log, which the apply reports.
qn=0
quarantine() {
    q="$S/quarantine"
    mkdir -p "$q" && chmod 700 "$q" || return 1
    qn=$((qn + 1))
    if [ "$(stat -c %d -- "../$NAME")" = "$(stat -c %d "$q")" ]; then
        dest="$q/$gen.$$.$qn.$NAME"
        mv -T -- "../$NAME" "$dest" || return 1
        shown=${dest#"$R"}
    else
        dest="./.quarantined.$qn.$NAME"
        mv -T -- "../$NAME" "$dest" || return 1
        shown="$DIR/$STAGE/${dest#./}"
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$gen" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" "$shown" >>"$q/log"
    printf 'tampering\t%s\t%s\t%s\n' "$1" "$2" "$shown"
}

# Phase 2: switch and activate. Failures are reported, not undone: the files
# are in place and recorded; verification decides what happens next.
failed=
enable=
restart=
fail() {
    printf 'error: %s\n' "$*"
    failed="${failed}${failed:+; }$*"
}
# At boot (provision-boot.service) units are started, not waited for: the
# agents are ordered after the unit that runs this.
block=
[ -n "${PROVISION_BOOT:-}" ] && block=--no-block
systemd() {
    if [ -n "$local" ]; then
        printf 'skipped on a local host: systemctl %s\n' "$*"
    else
        # shellcheck disable=SC2086 # empty or one flag
        systemctl $block "$@" || fail "systemctl $* failed"
    fi
}
last_op=
while IFS="$tab" read -r op a b c d e; do
    # A mark where the operations change kind: they come in runs.
    if [ "$op" != "$last_op" ]; then
        case $op in
        write) mark rename ;;
        reload) mark daemon-reload ;;
        run) mark hooks ;;
        stop | remove | record) mark "$op" ;;
        esac
        last_op=$op
    fi
    case $op in
    write)
        case $refused in *"$nl$e$nl"*)
            fail "refused to write $e (see above)"
            continue
            ;;
        esac
        dir_name "$e"
        find_stage "$DIR"
        if [ -z "$STAGE" ] || ! safe_dir "$DIR" "$c" "$d"; then
            fail "cannot put $e in place: ${why:-it was not staged}"
            cd /
            continue
        fi
        if [ "$TRUSTED" = yes ]; then
            # Only root can write DIR and the directories above it: nobody
            # can have moved the staging directory or planted anything but
            # root. A link or a directory at the name is still set aside.
            if ! cd -- "$STAGE" 2>/dev/null; then
                fail "cannot put $e in place: it was not staged"
            elif [ -e "./$NAME" ]; then
                classify "../$NAME"
                if [ "$KIND" = other ] && ! quarantine "$e" "$WHAT"; then
                    fail "cannot move aside the $WHAT at $e"
                elif ! mv -fT -- "./$NAME" "../$NAME"; then
                    fail "cannot rename the new $e into place"
                fi
            fi
            cd /
            continue
        fi
        if ! here || ! stage_dir "$STAGE"; then
            fail "cannot put $e in place: ${why:-it was not staged}"
            cd /
            continue
        fi
        # Done already, by a run that was interrupted.
        if [ ! -e "./$NAME" ]; then
            cd /
            continue
        fi
        what=$(planted "../$NAME" "$c")
        # A user who can write the directory may rename the staging
        # directory, but only within it: moving a directory to another
        # parent needs write permission on the directory itself (its `..`),
        # and the staging directory is root's, 0700. So `..` stays DIR; it
        # is checked right before and after the rename all the same.
        if [ "$(stat -c %d:%i ..)" != "$HERE" ]; then
            fail "refused to write $e: its staging directory was moved (tampering)"
        elif [ -n "$what" ] && ! quarantine "$e" "$what"; then
            fail "cannot move aside the $what at $e"
        elif ! mv -fT -- "./$NAME" "../$NAME"; then
            fail "cannot rename the new $e into place"
        elif [ "$(stat -c %d:%i ..)" != "$HERE" ]; then
            fail "the new $e went into a moved staging directory's parent, not $DIR (tampering)"
        fi
        cd /
        ;;
    stop) systemd disable --now "$a" ;;
    remove)
        dir_name "$a"
        if enter_dir "$DIR"; then
            if [ -L "./$NAME" ] || [ -f "./$NAME" ]; then
                rm -f -- "./$NAME" || fail "cannot remove $a"
            elif [ -e "./$NAME" ]; then
                printf 'left %s alone: it is a %s, not the file provision wrote\n' "$a" "$(stat -c %F -- "./$NAME")"
            fi
        fi
        cd /
        ;;
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
        # Read without following a link; kept only when it is the content
        # recorded (a racing user could have swapped it meanwhile).
        while IFS="$tab" read -r id _ _ _ _ path; do
            [ -f "$S/store/$id" ] && continue
            dir_name "$path"
            t="$S/store/.in.$id"
            if enter_dir "$DIR" &&
                [ -f "./$NAME" ] && [ ! -L "./$NAME" ] && read_nofollow "./$NAME" >"$t"; then
                got=$(sha256sum <"$t")
                got=${got%% *}
                case $id in
                hmac-*)
                    [ -n "${HMAC_I:-}" ] || hmac_init "$(cat "$S/key" 2>/dev/null)"
                    got="hmac-$(hmac_hex "$got")"
                    ;;
                esac
                if [ "$got" = "$id" ]; then
                    chmod 600 "$t" && mv -f "$t" "$S/store/$id" ||
                        fail "cannot keep the content of $path in the store"
                else
                    printf 'note: %s changed while it was recorded: not kept in the store\n' "$path"
                fi
            fi
            rm -f "$t"
            cd /
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
mark units
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
mark gc
keep=$(cat "$J/keep" 2>/dev/null || echo 10)
n=0
for f in $(for g in "$S"/generations/*.json; do g=${g##*/}; g=${g%.json}; case $g in *[!0-9]* | "") ;; *) echo "$g" ;; esac; done | sort -rn); do
    n=$((n + 1))
    if [ $n -gt "$keep" ] && [ "$f" != "$gen" ] && [ "$f" != "$previous" ]; then
        rm -f "$S/generations/$f.json" "$S/generations/$f.files" "$S/generations/$f.status"
    fi
done
# Content ids are hex (or hmac-hex): safe as names and as words.
(
    cd "$S/store" || exit 0
    cat ../generations/*.files 2>/dev/null | cut -f1 | sort -u >../store.used
    ls | sort | comm -23 - ../store.used | xargs -r rm -f --
    rm -f ../store.used
)

# This switch went back in place of the dead-man switch: it has switched,
# so the dead-man switch has nothing left to do.
if [ -f "$J/takeover" ] && [ -z "$local" ]; then
    systemctl stop provision-deadman.timer provision-deadman-retry.timer >/dev/null 2>&1
    rm -rf "$S/deadman"
    [ -n "$previous" ] && [ "$previous" != "$gen" ] &&
        printf 'rolled back at %s: verification failed; switched back to generation %s\n' \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$gen" >"$S/generations/$previous.status"
    printf 'dead-man switch disarmed: switched back to generation %s\n' "$gen"
fi

# Dead-man switch: unless a confirmation (from a new SSH connection, once
# verification passed) stops it, a timer switches back to the previous
# generation. A change that cuts the operator off undoes itself. It stays
# armed until the switch back has switched: one that could not (aborted)
# is tried again every minute, for an hour.
if [ -f "$J/deadman.ops" ] && [ -n "$previous" ] && [ -z "$local" ]; then
    D="$S/deadman"
    rm -rf "$D" && mkdir -m 700 "$D" &&
        cp "$J/deadman.ops" "$D/ops" && cp "$J/switch.sh" "$D/switch.sh" &&
        printf '%s\n' "$previous" >"$D/generation" && cp "$J/keep" "$D/keep" &&
        stat -c %Y "$J/generation" >"$D/since" &&
        cat >"$D/fire.sh" <<FIRE || fail "cannot prepare the dead-man switch"
# No confirmation arrived: switch back to generation $previous.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
S="$S"
[ -d "\$S/deadman" ] || exit 0
# retry: the switch back did not switch; try again in a minute, for an hour.
retry() {
    n=\$(cat "\$S/deadman/tries" 2>/dev/null || echo 0)
    echo \$((n + 1)) >"\$S/deadman/tries"
    if [ "\$n" -ge 60 ]; then
        systemctl stop provision-deadman-retry.timer >/dev/null 2>&1
    elif ! systemctl is-active --quiet provision-deadman-retry.timer; then
        systemctl reset-failed provision-deadman-retry.service provision-deadman-retry.timer >/dev/null 2>&1
        systemd-run --quiet --unit=provision-deadman-retry --on-unit-active=60s --on-active=60s \\
            --timer-property=AccuracySec=1s \\
            --description="provision: switch back to generation $previous (retry)" \\
            flock -w 600 "\$S/lock" sh "\$S/deadman/fire.sh"
    fi
    exit 1
}
# An interrupted switch (its job was killed) is finished first, as the next
# apply would; the switch back then goes from wherever it left the host.
if [ -e "\$S/switching/ops" ]; then
    sh "\$S/switching/switch.sh" ""
    [ -e "\$S/switching/ops" ] && retry
fi
rm -rf "\$S/switching"
cp -R "\$S/deadman" "\$S/switching.new" && mv "\$S/switching.new" "\$S/switching" || retry
printf 'no confirmation of generation %s arrived in time: switching back to %s\n' "$gen" "$previous" >"\$S/switching/log"
sh "\$S/switching/switch.sh" ""
case \$(head -n 1 "\$S/last-switch" 2>/dev/null) in
ok* | failed*)
    printf 'reverted at %s: no confirmation arrived; the dead-man switch went back to generation %s\n' \
        "\$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$previous" >"\$S/generations/$gen.status"
    rm -rf "\$S/deadman"
    systemctl stop provision-deadman-retry.timer >/dev/null 2>&1
    ;;
*) retry ;;
esac
FIRE
    secs=$(cat "$J/deadman.secs" 2>/dev/null || echo 60)
    systemctl stop provision-deadman.timer provision-deadman-retry.timer >/dev/null 2>&1
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
