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
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # PACKAGES is a list of package names.
if timeout "$((WAIT * 4))" apt-get -o DPkg::Lock::Timeout="$WAIT" -qq update >&2 &&
    timeout "$((WAIT * 4))" apt-get -o DPkg::Lock::Timeout="$WAIT" -qq -y --no-install-recommends install $PACKAGES >&2; then
    echo "installed"
else
    echo "failed"
    exit 1
fi
