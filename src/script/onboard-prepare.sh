# onboard-prepare: installs the Debian packages a fresh host lacks (their
# names on the header line, PACKAGES=…), after waiting, bounded, for
# cloud-init to finish its first boot and for the dpkg lock. Progress lines
# go to stderr; the last line on stdout says how it ended.

say() { printf '%s\n' "$*" >&2; }

if command -v cloud-init >/dev/null 2>&1; then
    say "waiting for cloud-init to finish (at most ${WAIT}s)"
    # cloud-init status --wait never gives up by itself.
    timeout "$WAIT" cloud-init status --wait >/dev/null 2>&1 || say "cloud-init did not finish; going on"
fi
[ -n "$PACKAGES" ] || {
    echo "installed"
    exit 0
}
say "installing $PACKAGES (waiting up to ${WAIT}s for the dpkg lock)"
# apt writes to a root-only log, not to the connection: when the operator's
# connection is cut mid-install, a write to the closed pipe would kill apt
# half-way through dpkg; this way the install finishes on the host and the
# next onboard finds the packages there.
mkdir -p /var/lib/provision && chmod 700 /var/lib/provision || exit 1
log=/var/lib/provision/onboard-install.log
: >"$log"
export DEBIAN_FRONTEND=noninteractive
# A dpkg run cut earlier (power loss, a killed apt) is finished first, or
# apt refuses to install anything.
if [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ]; then
    timeout "$((WAIT * 4))" dpkg --configure -a >>"$log" 2>&1 || say "dpkg --configure -a failed"
fi
# shellcheck disable=SC2086 # PACKAGES is a list of package names.
if timeout "$((WAIT * 4))" apt-get -o DPkg::Lock::Timeout="$WAIT" -q update >>"$log" 2>&1 &&
    timeout "$((WAIT * 4))" apt-get -o DPkg::Lock::Timeout="$WAIT" -q -y --no-install-recommends install $PACKAGES >>"$log" 2>&1; then
    echo "installed"
else
    # What apt said, for the operator's error (its repeated "Waiting for
    # cache lock" lines once).
    tr '\r' '\n' <"$log" | uniq | tail -n 20 >&2
    echo "failed"
    exit 1
fi
