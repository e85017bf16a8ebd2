# provision verify: are the agents healthy? One round trip, bounded by the
# longest heartbeat timeout. Read-only (a temporary file under /tmp aside).
#
# Set by the header: SINCE (epoch seconds when the apply began, or `now`)
# and SETTLE (`yes`: confirming a generation an earlier run switched, where
# an agent whose process is older than SINCE was not restarted by it and is
# judged as by a standalone check).
# stdin, tab-separated (no empty field; `-` for none):
#   agent NAME UNIT USER WORKDIR ENVFILE AUTHCHECK HEARTBEAT TIMEOUT MAXAGE STABLE PROBE
#   timer UNIT
#   journald DROPIN
#   expiry AGENT AUTH WARN_SECS at|run EPOCH|COMMAND
# stdout: "now<TAB>EPOCH", then "check<TAB>KIND<TAB>SUBJECT<TAB>ok|fail<TAB>DETAIL"
# lines; a failed auth check is followed by "output<TAB>SUBJECT", its output
# in base64, and "end". Each expiry is answered with
# "expiry<TAB>AGENT/AUTH<TAB>WARN_SECS<TAB>EPOCH" or "…<TAB>unknown: WHY",
# which provision judges.
set -u
now=$(date +%s)
AFTER_APPLY=yes
if [ "$SINCE" = now ]; then
    SINCE=$now
    AFTER_APPLY=no
fi
SETTLE=${SETTLE:-no}
input=$(cat)
# A verification holds the host's verifying lock, shared, while it runs: a
# run that would confirm a generation another run switched (SETTLE) takes it
# alone, so it never confirms under a live verification of that run, and
# waits for one up to LOCK_WAIT seconds (then says `busy`, and nothing else).
R=${PROVISION_ROOT:-}
S="$R/var/lib/provision"
V="$S/verifying"
if [ "$SETTLE" = yes ]; then
    if ! { exec 8>>"$V" && flock -x -w "${LOCK_WAIT:-0}" 8; } 2>/dev/null; then
        printf 'busy\n'
        exit 0
    fi
else
    { exec 8>>"$V" && flock -s -n 8; } 2>/dev/null || :
fi
printf 'now\t%s\n' "$now"
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT

check() {
    printf 'check\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"
}

# A standalone check of a host whose generation awaits its confirmation:
# healthy or not, it will be undone unless an apply confirms it.
if [ "$AFTER_APPLY" = no ] && deadman_waiting; then
    cur=$(readlink "$S/current" 2>/dev/null) || cur=
    cur=${cur##*/}
    check generation current fail "generation ${cur%.json} is not confirmed yet: the dead-man switch goes back to generation $(cat "$S/deadman/generation" 2>/dev/null) unless it is (\`provision apply\` verifies and confirms it)"
fi

# The value of property $2 in `systemctl show` output $1.
prop() {
    printf '%s\n' "$1" | sed -n "s/^$2=//p"
}

restarts_before=
while IFS="$tab" read -r kind name unit _; do
    [ "$kind" = agent ] || continue
    n=$(systemctl show -p NRestarts --value "$unit" 2>/dev/null) || n=unknown
    restarts_before="$restarts_before$name=$n;"
done <<INPUT
$input
INPUT

# Auth checks, as the agent's user with the agent's secrets and unit
# environment, in a transient unit of their own (the agent's run-as): nothing
# the check starts outlives it, and nothing of root's environment, nor the
# agent's PATH, ever steers a root process here.
while IFS="$tab" read -r kind name unit user workdir envfile auth _; do
    [ "$kind" = agent ] || continue
    [ "$auth" = - ] && continue
    run_as="/usr/local/lib/provision/agents/$name/run-as"
    if [ ! -x "$run_as" ]; then
        check auth "$name" fail "cannot run the auth check: $run_as is missing (apply this generation first)"
        continue
    fi
    if "$run_as" "$auth" </dev/null >"$tmp" 2>&1; then
        check auth "$name" ok "passed as $user"
    else
        check auth "$name" fail "the auth check failed as $user (status $?)"
        printf 'output\t%s\n' "$name"
        head -c 4096 "$tmp" | base64
        echo end
    fi
done <<INPUT
$input
INPUT

# Expiries, learned afresh by the host's expiry check (an expires command
# runs as the agent through run-as; its answer is cut and read there as a
# date or a Unix time only). Its reason for not learning one is its own
# text, never the agent's.
expiry_check=/usr/local/lib/provision/expiry-check
while IFS="$tab" read -r kind name auth warn how source; do
    [ "$kind" = expiry ] || continue
    if [ ! -x "$expiry_check" ]; then
        value="unknown: $expiry_check is missing (apply this generation first)"
    elif value=$("$expiry_check" --learn "$name" "$auth" "$warn" "$how" "$source" </dev/null 2>"$tmp"); then
        :
    else
        value="unknown: $(head -n 1 "$tmp" | head -c 200 | tr -d '\t\r')"
    fi
    printf 'expiry\t%s/%s\t%s\t%s\n' "$name" "$auth" "$warn" "$value"
done <<INPUT
$input
INPUT

# Heartbeats. After an apply, an agent it (re)started shows it is up with a
# readiness beat: its file touched after the new process started (to the
# microsecond: the old process may have beaten in the same second), or its
# probe passing, within its own timeout. Otherwise (a standalone verify) the
# last beat passes when it is younger than every + grace (MAXAGE), however
# long the cadence, and a stale one is waited for like a readiness beat.
# Polled once a second; bounded by the largest timeout, since every pass
# drops the agents that passed or timed out.

# us_of_file FILE: its mtime in microseconds since the epoch, or nothing.
us_of_file() {
    t=$(stat -c %.6Y "$1" 2>/dev/null) || return 0
    case $t in
    *.??????) printf '%s%s\n' "${t%.*}" "${t#*.}" ;;
    *[!0-9]* | '') ;;
    *) printf '%s000000\n' "$t" ;;
    esac
}
# us_of_start UNIT: when its main process started, in microseconds since the
# epoch (0 when it has not).
us_of_start() {
    t=$(systemctl show --timestamp=us+utc -p ExecMainStartTimestamp --value "$1" 2>/dev/null)
    t=${t#* }
    t=$(date -u -d "$t" +%s%6N 2>/dev/null) || t=0
    case $t in '' | *[!0-9]*) t=0 ;; esac
    printf '%s\n' "$t"
}

# heartbeat_verdict AFTER_APPLY BEAT FLOOR SINCE MAXAGE (microseconds, but
# MAXAGE in seconds; BEAT empty when never written): `ready` for a beat
# after FLOOR (the new process's start, or the check's), `fresh` for a
# standalone check's beat younger than MAXAGE, else `wait`.
heartbeat_verdict() {
    if [ -n "$2" ] && [ "$2" -gt "$3" ]; then
        echo ready
    elif [ "$1" = no ] && [ -n "$2" ] && [ "$5" -gt 0 ] && [ $((($4 - $2) / 1000000)) -le "$5" ]; then
        echo fresh
    else
        echo wait
    fi
}

pending=$(printf '%s\n' "$input" | grep "^agent$tab" || true)
start=$(date +%s)
# A standalone check starts now, to the microsecond: a beat earlier in
# this second is a beat from before the check.
if [ "$AFTER_APPLY" = no ]; then
    since_us=$(date +%s%6N)
    case $since_us in '' | *[!0-9]*) since_us=$((SINCE * 1000000)) ;; esac
else
    since_us=$((SINCE * 1000000))
fi
# When this check began, to the microsecond: the reference of an agent
# judged as by a standalone check.
check_us=$(date +%s%6N)
case $check_us in '' | *[!0-9]*) check_us=$(($(date +%s) * 1000000)) ;; esac
while [ -n "$pending" ]; do
    still=
    elapsed=$(($(date +%s) - start))
    while IFS="$tab" read -r kind name unit user workdir envfile auth hb timeout maxage stable probe; do
        [ -n "$name" ] || continue
        m=
        floor=$since_us
        ref=$since_us
        mode=$AFTER_APPLY
        fresh=yes
        if [ "$AFTER_APPLY" = yes ]; then
            ms=$(us_of_start "$unit")
            if [ "$ms" -ge "$since_us" ]; then
                floor=$ms
            elif [ "$SETTLE" = yes ]; then
                # Not restarted by the generation being confirmed.
                mode=no
                ref=$check_us
                floor=$check_us
            else
                fresh=no
            fi
        fi
        if [ "$fresh" = no ]; then
            : # the new process has not started yet
        elif [ "$probe" != - ]; then
            if "/usr/local/lib/provision/agents/$name/run-as" "$probe" </dev/null >/dev/null 2>&1; then
                check heartbeat "$name" ok "the probe passed"
                continue
            fi
        else
            m=$(us_of_file "$hb")
            case $(heartbeat_verdict "$mode" "$m" "$floor" "$ref" "$maxage") in
            ready)
                check heartbeat "$name" ok "beat $(((m - ref) / 1000000)) s after the start"
                continue
                ;;
            fresh)
                check heartbeat "$name" ok "beat $(((ref - m) / 1000000)) s ago (fresh for $maxage s: every + grace)"
                continue
                ;;
            esac
        fi
        # A unit that failed for good (its start limit hit) will not beat:
        # no use waiting out the timeout.
        if systemctl is-failed --quiet "$unit" 2>/dev/null; then
            check heartbeat "$name" fail "no heartbeat: the unit failed"
            continue
        fi
        if [ "$elapsed" -ge "$timeout" ]; then
            if [ "$probe" != - ]; then
                check heartbeat "$name" fail "the probe did not pass within $timeout s"
            elif [ -n "$m" ] && [ "$mode" = yes ]; then
                check heartbeat "$name" fail "no readiness beat within $timeout s of the start (the last is from $(((ref - m) / 1000000)) s before the apply)"
            elif [ -n "$m" ]; then
                check heartbeat "$name" fail "no heartbeat within $timeout s (the last is $(((ref - m) / 1000000)) s old, more than every + grace, $maxage s)"
            else
                check heartbeat "$name" fail "no heartbeat within $timeout s ($hb was never written)"
            fi
            continue
        fi
        still="$still$kind$tab$name$tab$unit$tab$user$tab$workdir$tab$envfile$tab$auth$tab$hb$tab$timeout$tab$maxage$tab$stable$tab$probe
"
    done <<PENDING
$pending
PENDING
    pending=$still
    if [ -n "$pending" ]; then sleep 1; fi
done

# Stability: after an apply, a unit it (re)started must have been up for
# STABLE seconds (its restart count then checked unchanged): one that
# crashes a few seconds after its start is caught. Bounded by the largest
# window, waited once for all.
if [ "$AFTER_APPLY" = yes ]; then
    wait_until=0
    while IFS="$tab" read -r kind name unit _ _ _ _ _ _ _ stable _; do
        [ "$kind" = agent ] || continue
        ms=$(us_of_start "$unit")
        [ "$ms" -gt 0 ] || continue
        case $stable in '' | *[!0-9]*) stable=0 ;; esac
        end=$((ms / 1000000 + stable))
        [ "$end" -gt "$wait_until" ] && wait_until=$end
    done <<INPUT
$input
INPUT
    left=$((wait_until - $(date +%s)))
    [ "$left" -le 0 ] || sleep "$left"
fi

# Units: running, and not restarted during the check.
while IFS="$tab" read -r kind name unit _; do
    [ "$kind" = agent ] || continue
    if ! s=$(systemctl show -p ActiveState -p SubState -p NRestarts -p Result "$unit" 2>&1); then
        check unit "$unit" fail "systemctl show failed: $s"
        continue
    fi
    active=$(prop "$s" ActiveState)
    sub=$(prop "$s" SubState)
    n=$(prop "$s" NRestarts)
    before=${restarts_before#*"$name="}
    before=${before%%;*}
    if [ "$active" != active ] || [ "$sub" != running ]; then
        check unit "$unit" fail "$active ($sub, result $(prop "$s" Result), $n restarts)"
    elif [ "$n" != "$before" ]; then
        check unit "$unit" fail "restart loop: $before -> $n restarts during the check"
    else
        check unit "$unit" ok "active (running)"
    fi
done <<INPUT
$input
INPUT

while IFS="$tab" read -r kind unit _; do
    case $kind in
    timer)
        s=$(systemctl show -p LoadState -p ActiveState -p NextElapseUSecRealtime -p NextElapseUSecMonotonic "$unit" 2>&1)
        next=$(prop "$s" NextElapseUSecRealtime)
        # A monotonic timer's next elapse is a time since boot; list-timers
        # gives it as a date, like a calendar timer's.
        if [ -z "$next" ] && [ -n "$(prop "$s" NextElapseUSecMonotonic)" ]; then
            next=$(LC_ALL=C systemctl list-timers --all --no-legend --no-pager "$unit" 2>/dev/null |
                awk 'NR == 1 && $1 != "-" && $1 != "n/a" { print $1, $2, $3, $4 }')
        fi
        if [ "$(prop "$s" LoadState)" != loaded ] || [ "$(prop "$s" ActiveState)" != active ]; then
            check timer "$unit" fail "$(prop "$s" LoadState), $(prop "$s" ActiveState)"
        elif [ -z "$next" ] || [ "$next" = 0 ] || [ "$next" = infinity ]; then
            check timer "$unit" fail "active but not scheduled"
        else
            check timer "$unit" ok "next $next"
        fi
        ;;
    journald)
        m=$(stat -c %Y "$unit" 2>/dev/null) || m=
        started=$(systemctl show -p ExecMainStartTimestamp --value systemd-journald 2>/dev/null)
        s=$(date -d "$started" +%s 2>/dev/null) || s=
        if [ -z "$m" ]; then
            check journald "$unit" fail "the drop-in is missing"
        elif [ -z "$s" ]; then
            check journald "$unit" fail "cannot tell when journald started (${started:-never})"
        elif [ "$s" -lt "$m" ]; then
            check journald "$unit" fail "journald was not restarted since its drop-in changed"
        else
            check journald "$unit" ok "in effect since journald started"
        fi
        ;;
    esac
done <<INPUT
$input
INPUT
