#!/usr/bin/env bash
# Boot, reach and stop disposable test targets: Debian with systemd as PID 1
# and sshd, run by systemd-nspawn on a per-target overlayfs over the shared
# read-only rootfs (built by rootfs.sh), in its own network namespace.
#
#   target.sh boot NAME IDX       start a target (returns at once; see wait)
#   target.sh wait NAME [TIMEOUT] wait for ssh + `is-system-running` (default 60 s)
#   target.sh ssh NAME [CMD...]   run a command on the target as root
#   target.sh addr NAME           print the target's address   ($NET.IDX.2)
#   target.sh host-addr NAME      print the host-side address  ($NET.IDX.1)
#   target.sh hostkey NAME        print the target's ssh_host_ed25519_key.pub
#   target.sh powercycle NAME     kill the container's PID 1 (a power loss), boot it again
#   target.sh stop NAME [--keep]  stop and clean up (idempotent); --keep keeps the upper layer
#   target.sh list                list recorded targets
#   target.sh cleanup-all         stop every target recorded under $STATE/targets
#
# Network: netns pv-NAME; veth pvh-IDX (host, $NET.IDX.1/24) <-> eth0 in the
# netns ($NET.IDX.2/24, default route via .1). NET defaults to 10.213
# ($PROVISION_TARGET_NET). Only PIDs recorded by this script (the nspawn PID)
# or found in the target's own netns are ever signalled.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin

STATE=${PROVISION_TARGET_STATE:-/var/tmp/provision-targets}
NET=${PROVISION_TARGET_NET:-10.213}
TARGETS=$STATE/targets
ROOTFS=$STATE/rootfs
IDENTITY=$STATE/id_ed25519
PROPAGATE=/run/systemd/nspawn/propagate
LOCK_TIMEOUT=${PROVISION_TARGET_LOCK_TIMEOUT:-1200}
STOP_TIMEOUT=${PROVISION_TARGET_STOP_TIMEOUT:-15}
SSH_OPTS=(
    -F /dev/null
    -i "$IDENTITY"
    -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null
    -o BatchMode=yes
    -o ConnectTimeout=5
    -o LogLevel=ERROR
    -o ServerAliveInterval=5
    -o ServerAliveCountMax=3
)

log() { printf 'target: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }
is_before() { awk -v d="$1" -v n="$(now)" 'BEGIN { exit !(n < d) }'; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

check_name() {
    [[ ${1:-} =~ ^[a-z0-9][a-z0-9-]{0,31}$ ]] ||
        die "invalid target name '${1:-}' (use [a-z0-9-], at most 32 characters)"
}

check_idx() {
    [[ ${1:-} =~ ^[1-9][0-9]{0,2}$ && $1 -le 254 ]] || die "invalid IDX '${1:-}' (1..254)"
}

target_dir() { printf '%s/%s' "$TARGETS" "$1"; }
netns_of() { printf 'pv-%s' "$1"; }

idx_of() {
    local f
    f=$(target_dir "$1")/idx
    [[ -s $f ]] || die "unknown target '$1' (no $f)"
    cat "$f"
}

# The recorded nspawn PID if that process is still our nspawn for NAME.
live_pid() {
    local name=$1 pid cmd
    pid=$(cat "$(target_dir "$name")/pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *systemd-nspawn* && $cmd == *" --machine=$name "* ]] || return 1
    printf '%s\n' "$pid"
}

console_tail() {
    local f
    f=$(target_dir "$1")/console.log
    [[ -f $f ]] || return 0
    log "last lines of $f:"
    tail -n "${2:-30}" "$f" | sed 's/^/    /' >&2
}

# ---------------------------------------------------------------- boot

BOOTING=
boot_cleanup() {
    local rc=$?
    if [[ $rc -ne 0 && -n $BOOTING ]]; then
        log "boot of $BOOTING failed, cleaning up"
        console_tail "$BOOTING" 20
        do_stop "$BOOTING" "" >/dev/null 2>&1 || true
    fi
}

cmd_boot() {
    need_root
    local name=${1:-} idx=${2:-}
    check_name "$name"
    check_idx "$idx"
    command -v systemd-nspawn >/dev/null || die "systemd-nspawn not installed (install-deps.sh)"

    local t ns host_if
    t=$(target_dir "$name")
    ns=$(netns_of "$name")
    host_if=pvh-$idx

    install -d -m 755 "$TARGETS"
    # Hold the rootfs lock (shared) until the overlay is mounted, so rootfs.sh
    # cannot swap the lower layer underneath us; it refuses to replace a
    # rootfs that mounted overlays use.
    exec 9>>"$STATE/.lock"
    flock -s -w "$LOCK_TIMEOUT" 9 || die "timed out waiting for $STATE/.lock"
    [[ -x $ROOTFS/lib/systemd/systemd ]] || die "no rootfs at $ROOTFS; run rootfs.sh ensure"
    [[ -s $IDENTITY ]] || die "no ssh key at $IDENTITY; run rootfs.sh ensure"

    # Serialise the "is it free?" checks and the creation of the network.
    exec 8>>"$STATE/.boot.lock"
    flock -w 60 8 || die "timed out waiting for $STATE/.boot.lock"

    if [[ -e $t ]]; then
        if live_pid "$name" >/dev/null; then
            die "target $name is already running"
        fi
        log "removing leftovers of a previous $name"
        do_stop "$name" "" >/dev/null
    fi
    if [[ -e /sys/class/net/$host_if ]]; then
        die "IDX $idx is in use (interface $host_if exists)"
    fi
    local f
    for f in "$TARGETS"/*/idx; do
        [[ -f $f ]] || continue
        if [[ $(cat "$f") == "$idx" ]]; then
            die "IDX $idx is in use by target $(basename "$(dirname "$f")")"
        fi
    done
    if [[ -n $(ip -4 route show to exact "$NET.$idx.0/24" 2>/dev/null) ]]; then
        die "IDX $idx is in use (a route to $NET.$idx.0/24 exists)"
    fi
    if [[ -e /run/netns/$ns ]]; then
        if [[ -n $(ip netns pids "$ns" 2>/dev/null) ]]; then
            die "network namespace $ns exists and has processes"
        fi
        ip netns delete "$ns"
    fi

    BOOTING=$name
    trap boot_cleanup EXIT
    install -d -m 700 "$t"
    install -d "$t/upper" "$t/work" "$t/root"
    printf '%s\n' "$idx" >"$t/idx"
    now >"$t/boot_time"

    mount -t overlay overlay \
        -o "lowerdir=$ROOTFS,upperdir=$t/upper,workdir=$t/work" "$t/root"
    exec 9>&-

    # Distinct host key per target, written into the upper layer before boot.
    install -d -m 755 "$t/root/etc/ssh"
    ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$t/root/etc/ssh/ssh_host_ed25519_key"

    ip netns add "$ns"
    ip link add "$host_if" type veth peer name eth0 netns "$ns"
    ip addr add "$NET.$idx.1/24" dev "$host_if"
    ip link set "$host_if" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$NET.$idx.2/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$NET.$idx.1"

    launch "$name"
    BOOTING=
    trap - EXIT
    log "booted $name (IDX $idx, $NET.$idx.2, nspawn PID $(cat "$t/pid"))"
}

# launch NAME: starts systemd-nspawn on the target's mounted root, in its
# network namespace; records its PID.
launch() {
    local name=$1 t ns
    t=$(target_dir "$name")
    ns=$(netns_of "$name")
    # Detached: own session, no inherited fds except the console log.
    # --register=no --keep-unit: the host has no systemd/machined to talk to.
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=${PROVISION_NSPAWN_UNIFIED_HIERARCHY:-1} \
        setsid systemd-nspawn --boot \
        --directory="$t/root" --machine="$name" --hostname="$name" \
        --register=no --keep-unit \
        --network-namespace-path="/run/netns/$ns" \
        --console=read-only --link-journal=no --resolv-conf=off --timezone=off \
        </dev/null >>"$t/console.log" 2>&1 8>&- 9>&- &
    printf '%s\n' "$!" >"$t/pid"
    # Catch immediate failures (bad flags, broken rootfs).
    sleep 0.2
    live_pid "$name" >/dev/null || die "systemd-nspawn exited right away"
}

# ---------------------------------------------------------------- powercycle

# powercycle NAME: a power loss and a boot. The container's PID 1 is killed
# (SIGKILL: nothing inside gets to shut down, flush or finish), then the same
# root (its upper layer as the crash left it) boots again.
cmd_powercycle() {
    need_root
    local name=${1:-} t pid init
    check_name "$name"
    t=$(target_dir "$name")
    pid=$(live_pid "$name") || die "target $name is not running"
    init=$(pgrep -P "$pid" | head -n 1) || true
    [[ $init =~ ^[0-9]+$ ]] || die "target $name has no PID 1 under nspawn PID $pid"
    kill -KILL "$init"
    wait_gone "$pid" 300 "$name" || die "$name: nspawn did not exit within 30 s of its PID 1's death"
    now >"$t/boot_time"
    launch "$name"
    log "power-cycled $name (nspawn PID $(cat "$t/pid"))"
}

# ---------------------------------------------------------------- wait

cmd_wait() {
    local name=${1:-} timeout=${2:-60}
    check_name "$name"
    [[ $timeout =~ ^[0-9]+$ ]] || die "invalid timeout '$timeout'"
    local t start deadline booted t_ssh state remaining addr
    t=$(target_dir "$name")
    addr=$(addr_of "$name")
    start=$(now)
    booted=$(cat "$t/boot_time" 2>/dev/null || echo "$start")
    deadline=$(awk -v s="$start" -v t="$timeout" 'BEGIN { printf "%.3f", s + t }')

    while :; do
        if ! live_pid "$name" >/dev/null; then
            console_tail "$name"
            die "$name: systemd-nspawn is not running"
        fi
        if timeout 10 ssh "${SSH_OPTS[@]}" "root@$addr" true 2>/dev/null; then
            break
        fi
        if ! is_before "$deadline"; then
            console_tail "$name"
            die "$name: no ssh login within $timeout s"
        fi
        sleep 0.2
    done
    t_ssh=$(elapsed "$booted")

    remaining=$(awk -v d="$deadline" -v n="$(now)" 'BEGIN { r = int(d - n + 0.999); print (r < 1 ? 1 : r) }')
    state=$(timeout "$remaining" ssh "${SSH_OPTS[@]}" "root@$addr" \
        systemctl is-system-running --wait 2>/dev/null) || true
    case $state in
        running | degraded) ;;
        *)
            console_tail "$name"
            timeout 10 ssh "${SSH_OPTS[@]}" "root@$addr" systemctl --failed --no-pager >&2 2>/dev/null || true
            die "$name: system state is '${state:-unknown}' after $(elapsed "$start") s"
            ;;
    esac
    printf '%s: ssh after %s s, %s after %s s (since boot)\n' "$name" "$t_ssh" "$state" "$(elapsed "$booted")"
}

addr_of() { printf '%s.%s.2' "$NET" "$(idx_of "$1")"; }

# ---------------------------------------------------------------- stop

# Wait (bounded, in tenths of a second) until PID is gone.
wait_gone() {
    local pid=$1 tenths=$2 name=$3 i
    for ((i = 0; i < tenths; i++)); do
        live_pid "$name" >/dev/null || return 0
        sleep 0.1
    done
    ! live_pid "$name" >/dev/null
}

netns_pids() { ip netns pids "$1" 2>/dev/null || true; }

do_stop() {
    local name=$1 keep=$2
    local t ns start pid idx i
    t=$(target_dir "$name")
    ns=$(netns_of "$name")
    start=$(now)

    if [[ ! -e $t && ! -e /run/netns/$ns && ! -e $PROPAGATE/$name ]]; then
        log "$name is not running"
        return 0
    fi

    if pid=$(live_pid "$name"); then
        # nspawn turns SIGTERM into a clean halt of the container.
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" $((STOP_TIMEOUT * 10)) "$name"; then
            log "$name: no halt after $STOP_TIMEOUT s, sending SIGTERM again"
            kill -TERM "$pid" 2>/dev/null || true
            if ! wait_gone "$pid" 50 "$name"; then
                log "$name: killing nspawn PID $pid"
                kill -KILL "$pid" 2>/dev/null || true
                wait_gone "$pid" 50 "$name" || log "$name: nspawn PID $pid survived SIGKILL"
            fi
        fi
    fi

    # Anything still alive in the target's network namespace (killing the
    # container's PID 1 also ends the rest of its PID namespace).
    if [[ -e /run/netns/$ns ]]; then
        local pids
        for ((i = 0; i < 50; i++)); do
            pids=$(netns_pids "$ns")
            [[ -z $pids ]] && break
            [[ $i -eq 0 ]] && log "$name: killing leftover PIDs in $ns: ${pids//$'\n'/ }"
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 0.1
        done
        pids=$(netns_pids "$ns")
        [[ -z $pids ]] || log "$name: PIDs still in $ns: ${pids//$'\n'/ }"
    fi

    if mountpoint -q "$t/root" 2>/dev/null; then
        for ((i = 0; i < 25; i++)); do
            umount "$t/root" 2>/dev/null && break
            sleep 0.2
        done
        if mountpoint -q "$t/root"; then
            log "$name: overlay busy, detaching it (umount -l)"
            umount -l "$t/root"
        fi
    fi

    if [[ -s $t/idx ]]; then
        idx=$(cat "$t/idx")
        if [[ $idx =~ ^[0-9]+$ && -e /sys/class/net/pvh-$idx ]]; then
            ip link delete "pvh-$idx" || true
        fi
    fi
    if [[ -e /run/netns/$ns ]]; then
        ip netns delete "$ns" || log "$name: could not delete netns $ns"
    fi
    # nspawn cannot remove it itself because /run is not a tmpfs here.
    if [[ -d $PROPAGATE/$name ]] && ! mountpoint -q "$PROPAGATE/$name"; then
        rm -rf --one-file-system "${PROPAGATE:?}/$name"
    fi

    if [[ -n $keep ]]; then
        rm -f "$t/pid"
        log "stopped $name in $(elapsed "$start") s (kept $t)"
    else
        mountpoint -q "$t/root" 2>/dev/null && die "$name: $t/root is still mounted"
        rm -rf --one-file-system "$t"
        log "stopped $name in $(elapsed "$start") s"
    fi
}

cmd_stop() {
    need_root
    local name=${1:-} keep=
    check_name "$name"
    case ${2:-} in
        "") ;;
        --keep) keep=1 ;;
        *) die "unknown option '$2'" ;;
    esac
    do_stop "$name" "$keep"
}

cmd_cleanup_all() {
    need_root
    local d n=0 rc=0
    for d in "$TARGETS"/*/; do
        [[ -d $d ]] || continue
        n=$((n + 1))
        do_stop "$(basename "$d")" "" || rc=1
    done
    # IDX reservations of test processes that died (nspawn.rs holds an flock
    # on its file while it uses the IDX; unlocked files are stale).
    local f
    for f in "$STATE"/idx/*; do
        [[ -f $f ]] || continue
        flock -n "$f" rm -f "$f" 2>/dev/null || true
    done
    log "cleanup-all: $n target(s) handled"
    return $rc
}

cmd_list() {
    local d name state
    for d in "$TARGETS"/*/; do
        [[ -d $d ]] || continue
        name=$(basename "$d")
        if live_pid "$name" >/dev/null; then state=running; else state=stopped; fi
        printf '%s\t%s\t%s\n' "$name" "$(addr_of "$name" 2>/dev/null || echo '?')" "$state"
    done
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
    boot) cmd_boot "$@" ;;
    powercycle) cmd_powercycle "$@" ;;
    wait) cmd_wait "$@" ;;
    stop) cmd_stop "$@" ;;
    ssh)
        [[ $# -ge 1 ]] || die "usage: target.sh ssh NAME [CMD...]"
        check_name "$1"
        name=$1
        shift
        exec ssh "${SSH_OPTS[@]}" "root@$(addr_of "$name")" "$@"
        ;;
    addr)
        check_name "${1:-}"
        addr_of "$1"
        echo
        ;;
    host-addr)
        check_name "${1:-}"
        printf '%s.%s.1\n' "$NET" "$(idx_of "$1")"
        ;;
    hostkey)
        check_name "${1:-}"
        key=$(target_dir "$1")/upper/etc/ssh/ssh_host_ed25519_key.pub
        [[ -s $key ]] || die "no host key for target '$1' ($key)"
        cat "$key"
        ;;
    list) cmd_list ;;
    cleanup-all) cmd_cleanup_all ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
