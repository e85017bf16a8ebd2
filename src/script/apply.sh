# provision apply session: lock the host, check the plan is not stale, take
# the contents the store lacks, then hand the switch to a job that runs on its
# own (under systemd-run), so a dropped connection cannot stop it half-way.
#
# Set by the header: MODE (switch | resume), GEN, EXPECT_CURRENT,
# EXPECT_LATEST, WHO, LOCK_WAIT, SEGMENTS ("name:size ...").
# stdin: the segments in order (ops, checks, blobs, record.json,
# record.files, switch.sh, keep), then, when `blobs` lists any
# ("ID<TAB>SHA256<TAB>SIZE"), a tar archive of them, each a file named ID.
# stdout: "locked<TAB>holder", "stale<TAB>why", then the job's report.
# Exit: 0 switched, 1 failed, 75 locked, 76 stale.
set -u
R=${PROVISION_ROOT:-}
set_root "$R"
S="$R/var/lib/provision"
J="$S/switching"

# mark PHASE: PHASE starts now. The marks follow the switch's outcome and
# log ("phase<TAB>NAME<TAB>NANOSECONDS"), for the report's timings; the
# switch job adds its own to its log.
MARKS=
mark() { MARKS="${MARKS}phase$tab$1$tab$(date +%s%N)$nl"; }
mark lock

die() {
    printf '%s\n' "$*" >&2
    exit 1
}

# Contents (secrets among them) and records are for root only.
umask 077
mkdir -p "$S/store" "$S/generations" "$S/stat" && chmod 700 "$S" || die "cannot create $S"
exec 9>>"$S/lock" || die "cannot open $S/lock"
if ! flock -n 9; then
    if [ "$LOCK_WAIT" -gt 0 ] && flock -w "$LOCK_WAIT" 9; then
        :
    else
        printf 'locked\t%s\n' "$(cat "$S/lock.holder" 2>/dev/null || echo 'another process')"
        exit 75
    fi
fi
# An apply whose generation awaits its confirmation (its dead-man switch
# armed) is still in progress: with --lock-wait, wait for it too, without
# holding the lock, which its confirmation takes.
deadman_pending() {
    [ "${TAKEOVER:-}" != yes ] && deadman_waiting
}
waited=0
while [ "$waited" -lt "$LOCK_WAIT" ] && deadman_pending; do
    flock -u 9
    sleep 1
    waited=$((waited + 1))
    left=$((LOCK_WAIT - waited))
    [ "$left" -gt 0 ] || left=1
    if ! flock -w "$left" 9; then
        printf 'locked\t%s\n' "$(cat "$S/lock.holder" 2>/dev/null || echo 'another process')"
        exit 75
    fi
done

# What a run that died (a dropped connection, a kill) left half-written; we
# hold the lock, so nobody else is writing these.
mark upload

cleanup() {
    rm -f "$S"/store/.in.*
    rm -rf "$S/incoming" "$S/store/.incoming"
}
cleanup
# A reader of the input runs in the background (see take), so a signal
# reaches this shell while it waits: the trap stops the reader too.
READER=
trap 'cleanup; [ -z "$READER" ] || kill "$READER" 2>/dev/null; exit 1' HUP INT TERM PIPE
from=${SSH_CLIENT:-}
from=${from%% *}
printf '%s from %s since %s\n' "$WHO" "${from:-this machine}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$S/lock.holder"

# Runs the switch job and waits for it; prints its report. Each launch gets
# its own unit name (kept in the journal, for the probe and for resuming):
# a name systemd still has loaded from an earlier switch would be refused.
run_job() {
    if [ -n "${PROVISION_LOCAL:-}" ]; then
        sh "$J/switch.sh" "$R" >/dev/null 2>&1
    else
        unit=$(cat "$J/unit" 2>/dev/null) || unit=
        if [ -n "$unit" ] && systemctl is-active --quiet "$unit.service"; then
            : # still running from a run whose connection dropped: wait for it
        else
            unit="provision-switch-$(cat "$J/generation")-$(date +%s)-$$"
            printf '%s\n' "$unit" >"$J/unit"
            if ! systemd-run --unit="$unit" --service-type=exec --collect --quiet \
                --description="provision: switch to generation $(cat "$J/generation")" \
                sh "$J/switch.sh" ""; then
                # A first launch that did not start switched nothing: drop
                # its journal. A resumed one keeps it for the next try.
                [ "$MODE" = switch ] && rm -rf "$J"
                die "systemd-run could not start the switch job"
            fi
        fi
        # Bounded: 12000 x 50 ms = 10 minutes.
        i=0
        while [ -e "$J/ops" ] && [ $i -lt 12000 ]; do
            case $(systemctl is-active "$unit.service" 2>/dev/null) in
            active | activating | deactivating | reloading) ;;
            *) break ;;
            esac
            sleep 0.05
            i=$((i + 1))
        done
    fi
    mark end
    if [ -e "$J/ops" ]; then
        printf 'job\tunfinished\n'
        cat "$J/log" 2>/dev/null
        exit 1
    fi
    cat "$S/last-switch"
    printf '%s' "$MARKS"
    case $(head -n 1 "$S/last-switch") in ok*) exit 0 ;; *) exit 1 ;; esac
}

if [ "$MODE" = resume ]; then
    [ -e "$J/ops" ] || { printf 'stale\tno interrupted switch is pending\n'; exit 76; }
    run_job
fi

current=none
if [ -L "$S/current" ]; then
    current=$(readlink "$S/current")
    current=${current##*/}
    current=${current%.json}
fi
latest=none
for f in "$S"/generations/*.json; do
    [ -f "$f" ] || continue
    n=${f##*/}
    n=${n%.json}
    case $n in *[!0-9]* | '') continue ;; esac
    if [ "$latest" = none ] || [ "$n" -gt "$latest" ]; then latest=$n; fi
done
if [ -e "$J/ops" ]; then
    printf 'stale\tan interrupted switch to generation %s is pending\n' "$(cat "$J/generation")"
    exit 76
fi
if [ -d "$S/deadman" ] && [ "${TAKEOVER:-}" != yes ]; then
    if deadman_waiting; then
        printf 'locked\tthe current generation awaits its confirmation (a dead-man switch goes back to generation %s unless confirmed)\n' "$(cat "$S/deadman/generation")"
        exit 75
    fi
    rm -rf "$S/deadman" # its timer is gone (the host rebooted): nothing armed
fi
if [ "$current" != "$EXPECT_CURRENT" ] || [ "$latest" != "$EXPECT_LATEST" ]; then
    printf 'stale\tthe host is at generation %s (latest %s); the plan was made at %s (latest %s)\n' \
        "$current" "$latest" "$EXPECT_CURRENT" "$EXPECT_LATEST"
    exit 76
fi

I="$S/incoming"
rm -rf "$I" && mkdir -m 700 "$I" || die "cannot create $I"

# The input's watchdog. A link that drops silently (no FIN, no RST) or an
# operator's machine that stops answering leaves this session blocked on
# its input, holding the lock, for as long as TCP keeps the connection
# (hours), whatever sshd is set to. So the upload must keep moving: when
# no byte arrives for STALL seconds, the watchdog ends this session, whose
# trap stops the reader and removes the partial upload; the lock goes with
# the process (neither the reader nor the watchdog holds it).
STALL=${INPUT_STALL:-20}
input_bytes() {
    du -sbc "$I" "$S/store/.incoming" 2>/dev/null | tail -n 1 | cut -f 1
}
watchdog() {
    wd_last=-1
    wd_still=0
    wd_n=0
    # Bounded: a day of one-second ticks.
    while [ $wd_n -lt 86400 ]; do
        sleep 1
        wd_n=$((wd_n + 1))
        wd_now=$(input_bytes)
        # Only a read that waits counts: checking paths reads no input.
        if [ ! -e "$I.reading" ]; then
            wd_still=0
        elif [ "$wd_now" = "$wd_last" ]; then
            wd_still=$((wd_still + 1))
        else
            wd_still=0
            wd_last=$wd_now
        fi
        if [ $wd_still -ge "$STALL" ]; then
            # Said to the journal: the operator's connection is gone.
            logger -t provision "apply session of $WHO: no input for $STALL s, the connection is gone; ending it and releasing the lock" 2>/dev/null
            kill -TERM "$SESSION_PID"
            exit 0
        fi
    done
}
SESSION_PID=$$
watchdog </dev/null >/dev/null 2>&1 9>&- &
WATCHDOG=$!
trap 'kill "$WATCHDOG" 2>/dev/null; rm -f "$I.reading"' EXIT
# take SIZE FILE: the next SIZE bytes of the input into FILE.
exec 3<&0
take() {
    : >"$I.reading"
    head -c "$1" <&3 >"$2" 9>&- &
    READER=$!
    wait "$READER"
    take_status=$?
    READER=
    rm -f "$I.reading"
    return $take_status
}
for seg in $SEGMENTS; do
    name=${seg%%:*}
    size=${seg#*:}
    take "$size" "$I/$name" || { rm -rf "$I"; die "cannot write $I/$name"; }
    [ "$(wc -c <"$I/$name")" -eq "$size" ] || { rm -rf "$I"; die "the input ended early (segment $name)"; }
done

# Every path the switch touches must still be as the plan saw it (looked at
# as the probe does: no link followed, secrets by keyed id): checked before
# the upload, and again after it, right before the switch, so a change made
# while the contents arrived refuses the apply too.
check_paths() {
    while IFS="$tab" read -r expect path; do
        [ -n "$path" ] || continue
        case $expect in
        hmac-*)
            [ -n "${HMAC_I:-}" ] || hmac_init "$(cat "$S/key" 2>/dev/null)"
            observe "$path" k
            ;;
        *) observe "$path" - ;;
        esac
        if [ "$OBS" != "$expect" ]; then
            rm -rf "$I"
            rm -f "$S"/store/.in.*
            printf 'stale\t%s changed on the host since the plan was made%s\n' "$path" "$1"
            exit 76
        fi
    done <"$I/checks"
}
check_paths ""

# Contents the store lacks: one tar archive after the segments on stdin
# (fd 3), a file per content named by its id, unpacked by one process into
# a root-only directory of the store's filesystem, checked all at once
# against the table's sums, then moved into the store. (A process per
# content took seconds on a host that lacked a thousand.)
IN="$S/store/.incoming"
mkdir -m 700 "$IN" || die "cannot create $IN"
while IFS="$tab" read -r id sha _; do
    [ -n "$id" ] && printf '%s  %s\n' "$sha" "$id"
done <"$I/blobs" >"$I/sums"
if [ -s "$I/sums" ]; then
    : >"$I.reading"
    tar -x -f - -C "$IN" --no-same-owner --no-same-permissions <&3 9>&- &
    READER=$!
    wait "$READER" || die "cannot unpack the new contents into $IN"
    READER=
    rm -f "$I.reading"
    # A content cut short or missing fails its sum; one the table does not
    # name is counted.
    if ! bad=$(cd "$IN" && sha256sum --check --quiet --strict "$I/sums" 2>&1); then
        bad=${bad%%"$nl"*}
        die "a content arrived damaged or incomplete (${bad:-sha256sum failed})"
    fi
    set -- "$IN"/*
    [ $# -eq "$(wc -l <"$I/sums")" ] || die "the upload holds files the table does not name"
    sync -- "$@" || die "cannot sync the store"
    mv -f -t "$S/store" -- "$@" || die "cannot move the new contents into the store"
fi
rmdir "$IN"

kill "$WATCHDOG" 2>/dev/null
mark check
check_paths " (while its contents were uploaded)"

# The journal appears at once, by rename: from here on the switch completes
# even if this session dies.
printf '%s\n' "$GEN" >"$I/generation"
# A switch back after a failed verification takes the dead-man switch over:
# the switch disarms it once it has switched, and leaves it armed otherwise.
[ "${TAKEOVER:-}" != yes ] || : >"$I/takeover"
rm -f "$I/blobs" "$I/checks" "$S/last-switch"
rm -rf "$J.new"
mv "$I" "$J" || die "cannot create $J"
mark job-start
run_job
