#!/usr/bin/env bash
# Install the host packages the end-to-end test harness needs (Debian/Ubuntu).
#
# Idempotent: when every package is already installed it only prints that and
# exits (no apt-get call, no root needed). Otherwise, as root, it runs
# `apt-get update` once and installs the missing packages, waiting up to 300 s
# for a dpkg lock held by another apt/dpkg process.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin

PACKAGES=(
    openssh-server
    openssh-client      # ssh, ssh-keygen
    systemd-container   # systemd-nspawn
    debootstrap         # builds the target rootfs
    debian-archive-keyring  # debootstrap verifies the archive with it
    zstd                # rootfs cache (.tar.zst)
    iproute2            # ip netns / veth
    curl
    util-linux          # flock, setsid, mountpoint
    shellcheck          # lints the POSIX sh programs run on hosts (tests/scripts.rs)
    dash                # the POSIX sh they are checked with
    age                 # the reference age tool: a file it encrypted is decrypted by the tests
    systemd             # systemd-analyze, systemd-sysusers, systemd-tmpfiles (offline checks of rendered files)
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [[ $status != "install ok installed" ]]; then
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    log "all ${#PACKAGES[@]} packages already installed, nothing to do"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    log "missing packages: ${missing[*]}; run this script as root"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)

log "missing packages: ${missing[*]}"
log "running apt-get update"
start=$(date +%s)
# `apt-get update` takes the lists lock; retry a few times (bounded) in case
# another apt process holds it.
ok=0
for attempt in 1 2 3 4 5; do
    if apt-get "${APT_OPTS[@]}" -q update; then
        ok=1
        break
    fi
    log "apt-get update failed (attempt $attempt/5), retrying in 10 s"
    sleep 10
done
if [[ $ok -ne 1 ]]; then
    log "apt-get update failed"
    exit 1
fi

log "installing: ${missing[*]}"
apt-get "${APT_OPTS[@]}" -q -y install --no-install-recommends "${missing[@]}"
log "installed ${#missing[@]} package(s) in $(( $(date +%s) - start )) s"
