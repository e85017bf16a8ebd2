#!/usr/bin/env bash
# Build (or restore from cache) the shared, read-only Debian rootfs that every
# test target boots from (as the lower layer of a per-target overlayfs).
#
#   rootfs.sh ensure   make sure $STATE/rootfs is current (build or restore)
#   rootfs.sh key      print the cache key of the current script/suite/packages
#   rootfs.sh mirror-check  say whether a mirror for the suite is configured
#
# STATE is ${PROVISION_TARGET_STATE:-/var/tmp/provision-targets}.
#
# Cache: the key is a sha256 over this script, the suite and the package list
# (plus the optional $PROVISION_TARGET_CACHE_SALT, e.g. `date +%G-%V` for a
# weekly rebuild). `$STATE/rootfs-<key>.tar.zst` is kept; when it exists it is
# restored (~2 s) instead of running debootstrap (~1 min). Editing this script
# changes the key and therefore rebuilds automatically.
#
# The mirror is read at run time from the host's apt sources (one-line and
# deb822 format) or from $PROVISION_TARGET_MIRROR; it is never written to a
# file (the rootfs gets an empty sources.list and no apt lists).
#
# Concurrent runs are serialised with flock on $STATE/.lock.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin

STATE=${PROVISION_TARGET_STATE:-/var/tmp/provision-targets}
SUITE=${PROVISION_TARGET_SUITE:-bookworm}
PACKAGES=(systemd-sysv dbus libpam-systemd openssh-server iproute2 procps curl ca-certificates sudo)
LOCK_TIMEOUT=${PROVISION_TARGET_LOCK_TIMEOUT:-1200}

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
ROOTFS=$STATE/rootfs
BUILD=$STATE/rootfs.build
OLD=$STATE/rootfs.old
KEYFILE=$STATE/rootfs.key
IDENTITY=$STATE/id_ed25519

log() { printf 'rootfs: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

cache_key() {
    {
        cat "$SCRIPT"
        printf 'suite=%s\n' "$SUITE"
        printf 'packages=%s\n' "${PACKAGES[*]}"
        printf 'salt=%s\n' "${PROVISION_TARGET_CACHE_SALT:-}"
    } | sha256sum | cut -c1-16
}

# Print the archive URI for $SUITE found in the host's apt sources.
find_mirror() {
    if [[ -n ${PROVISION_TARGET_MIRROR:-} ]]; then
        printf '%s\n' "$PROVISION_TARGET_MIRROR"
        return 0
    fi
    local f uri=""
    local oneline=() deb822=()
    local etc=${PROVISION_APT_ETC:-/etc/apt}  # overridable for testing the parser
    [[ -f $etc/sources.list ]] && oneline+=("$etc/sources.list")
    for f in "$etc"/sources.list.d/*.list; do [[ -f $f ]] && oneline+=("$f"); done
    for f in "$etc"/sources.list.d/*.sources; do [[ -f $f ]] && deb822+=("$f"); done

    if [[ ${#oneline[@]} -gt 0 ]]; then
        # deb [opt=val ...] URI SUITE COMPONENT...
        uri=$(awk -v want="$SUITE" '
            { sub(/#.*/, "") }
            $1 != "deb" { next }
            {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == want) { print $i; exit }
            }' "${oneline[@]}")
    fi
    if [[ -z $uri && ${#deb822[@]} -gt 0 ]]; then
        # Stanzas separated by blank lines; Types/URIs/Suites/Enabled fields.
        local file
        for file in "${deb822[@]}"; do
            uri=$(awk -v want="$SUITE" '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && enabled != "no" &&
                        (" " suites " ") ~ (" " want " ") && uris != "") {
                        split(uris, u, " "); print u[1]; found = 1; exit
                    }
                    types = ""; uris = ""; suites = ""; enabled = ""; field = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[ \t]/ {  # continuation line
                    line = $0; gsub(/^[ \t]+|[ \t]+$/, "", line)
                    if (field == "uris") uris = uris " " line
                    if (field == "suites") suites = suites " " line
                    if (field == "types") types = types " " line
                    next
                }
                {
                    name = tolower($0); sub(/:.*/, "", name)
                    value = $0; sub(/^[^:]*:[ \t]*/, "", value); sub(/[ \t]+$/, "", value)
                    gsub(/[ \t]+/, " ", value)
                    field = name
                    if (name == "types") types = value
                    else if (name == "uris") uris = value
                    else if (name == "suites") suites = value
                    else if (name == "enabled") enabled = tolower(value)
                }
                END { if (!found) flush() }' "$file")
            [[ -n $uri ]] && break
        done
    fi
    [[ -n $uri ]] || return 1
    printf '%s\n' "$uri"
}

# True when a mounted overlayfs uses $ROOTFS as its lower layer.
rootfs_in_use() {
    grep -q "lowerdir=${ROOTFS}[,:]" /proc/mounts 2>/dev/null
}

ensure_identity() {
    if [[ ! -s $IDENTITY || ! -s $IDENTITY.pub ]]; then
        rm -f "$IDENTITY" "$IDENTITY.pub"
        ssh-keygen -q -t ed25519 -N '' -C provision-test-harness -f "$IDENTITY"
        log "generated ssh key pair $IDENTITY"
    fi
    chmod 600 "$IDENTITY"
}

install_authorized_key() {
    local root=$1
    install -d -m 700 "$root/root/.ssh"
    if ! cmp -s "$IDENTITY.pub" "$root/root/.ssh/authorized_keys"; then
        install -m 600 "$IDENTITY.pub" "$root/root/.ssh/authorized_keys"
    fi
}

# Everything the targets need beyond the plain debootstrap.
configure_rootfs() {
    local r=$1

    # Each target gets its own machine id (systemd generates one at boot).
    : >"$r/etc/machine-id"
    ln -sfn /etc/machine-id "$r/var/lib/dbus/machine-id"
    # debootstrap copies these from the host; nspawn --hostname sets the name.
    rm -f "$r/etc/hostname"
    printf '# test targets have no DNS\n' >"$r/etc/resolv.conf"

    # No mirror anywhere in the image: empty sources, no downloaded lists.
    printf '# emptied by the provision test harness\n' >"$r/etc/apt/sources.list"
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb
    rm -f "$r/var/log/bootstrap.log"
    install -d "$r/var/lib/apt/lists/partial"

    # sshd: root by key only; host keys are generated per target at boot.
    rm -f "$r"/etc/ssh/ssh_host_*
    cat >"$r/etc/ssh/sshd_config.d/50-provision-test.conf" <<'CONF'
# provision test harness
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
CONF
    install -d "$r/etc/systemd/system/multi-user.target.wants"
    ln -sfn /lib/systemd/system/ssh.service "$r/etc/systemd/system/multi-user.target.wants/ssh.service"
    ln -sfn /lib/systemd/system/ssh.service "$r/etc/systemd/system/sshd.service"

    # No background jobs competing with the tests (apt-daily, e2scrub, ...).
    rm -f "$r"/etc/systemd/system/timers.target.wants/*.timer
    rm -f "$r/etc/systemd/system/multi-user.target.wants/e2scrub_reap.service"

    # The per-user manager started by pam_systemd sometimes hangs on halt
    # shortly after the last logout; cap it so stop stays ~2 s.
    install -d "$r/etc/systemd/system/user@.service.d"
    cat >"$r/etc/systemd/system/user@.service.d/50-provision-test.conf" <<'CONF'
[Service]
TimeoutStopSec=3s
CONF

    # Keep the journal in memory: smaller upper layers, faster stop.
    install -d "$r/etc/systemd/journald.conf.d"
    cat >"$r/etc/systemd/journald.conf.d/50-provision-test.conf" <<'CONF'
[Journal]
Storage=volatile
RuntimeMaxUse=16M
CONF

    install -d -m 700 "$r/root/.ssh"
    rm -f "$r/root/.ssh/authorized_keys"
}

save_cache() {
    local src=$1 cache=$2 t0
    t0=$(now)
    tar -C "$src" --numeric-owner --xattrs --xattrs-include='*' --acls -cf - . |
        zstd -q -T0 -3 -o "$cache.tmp" -f
    mv -f "$cache.tmp" "$cache"
    log "saved cache $(basename "$cache") ($(du -h "$cache" | cut -f1)) in $(since "$t0") s"
}

restore_cache() {
    local cache=$1 dst=$2
    rm -rf --one-file-system "$dst"
    install -d -m 755 "$dst"
    zstd -q -dc "$cache" |
        tar -C "$dst" --numeric-owner --xattrs --xattrs-include='*' --acls -xpf -
}

debootstrap_rootfs() {
    local dst=$1 mirror
    mirror=$(find_mirror) ||
        die "no apt source for suite '$SUITE' in /etc/apt/sources.list{,.d/*.list,.d/*.sources}; set PROVISION_TARGET_MIRROR"
    command -v debootstrap >/dev/null || die "debootstrap is not installed (run install-deps.sh)"
    rm -rf --one-file-system "$dst"
    install -d "$STATE/debcache"
    local include
    include=$(IFS=,; printf '%s' "${PACKAGES[*]}")
    log "running debootstrap --variant=minbase $SUITE (takes about a minute)"
    # Own --cache-dir: a concurrent apt on the host may clean /var/cache/apt.
    if ! debootstrap --variant=minbase --include="$include" \
        --cache-dir="$STATE/debcache" "$SUITE" "$dst" "$mirror" >&2; then
        if [[ -f $dst/debootstrap/debootstrap.log ]]; then
            tail -n 30 "$dst/debootstrap/debootstrap.log" >&2
        fi
        die "debootstrap failed"
    fi
}

cmd_ensure() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    install -d -m 755 "$STATE"
    exec 9>>"$STATE/.lock"
    flock -w "$LOCK_TIMEOUT" 9 || die "timed out after ${LOCK_TIMEOUT} s waiting for $STATE/.lock"

    local key cache t0
    key=$(cache_key)
    cache=$STATE/rootfs-$key.tar.zst
    ensure_identity

    if [[ -d $ROOTFS && -x $ROOTFS/lib/systemd/systemd && $(cat "$KEYFILE" 2>/dev/null) == "$key" ]]; then
        install_authorized_key "$ROOTFS"
        log "rootfs is up to date (key $key)"
        return 0
    fi

    if [[ -d $ROOTFS ]] && rootfs_in_use; then
        die "rootfs must be rebuilt (key $key) but running targets use it; run 'target.sh cleanup-all' first"
    fi

    t0=$(now)
    local restored=0
    if [[ -f $cache ]]; then
        if restore_cache "$cache" "$BUILD" && [[ -x $BUILD/lib/systemd/systemd ]]; then
            restored=1
            log "restored rootfs from $(basename "$cache") in $(since "$t0") s"
        else
            log "cache $(basename "$cache") is unusable, rebuilding"
            rm -f "$cache"
        fi
    fi
    if [[ $restored -eq 0 ]]; then
        debootstrap_rootfs "$BUILD"
        configure_rootfs "$BUILD"
        log "built rootfs in $(since "$t0") s"
        save_cache "$BUILD" "$cache"
        local old
        for old in "$STATE"/rootfs-*.tar.zst; do
            [[ -f $old && $old != "$cache" ]] && rm -f "$old" && log "removed stale cache $(basename "$old")"
        done
    fi
    install_authorized_key "$BUILD"

    rm -f "$KEYFILE"
    if [[ -d $ROOTFS ]]; then
        rm -rf --one-file-system "$OLD"
        mv "$ROOTFS" "$OLD"
    fi
    mv "$BUILD" "$ROOTFS"
    rm -rf --one-file-system "$OLD"
    printf '%s\n' "$key" >"$KEYFILE"
    log "rootfs ready at $ROOTFS (key $key, $(since "$t0") s)"
}

case ${1:-} in
    ensure) cmd_ensure ;;
    key) cache_key ;;
    mirror-check)
        # Diagnostics only: says whether a mirror was found (does not print it).
        if find_mirror >/dev/null; then echo "mirror found for $SUITE"; else echo "no mirror for $SUITE"; exit 1; fi
        ;;
    *)
        echo "usage: $0 ensure|key|mirror-check" >&2
        exit 2
        ;;
esac
