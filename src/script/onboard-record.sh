# onboard-record: notes that onboard finished step STEP (header line) on
# this host, in a root-only directory, so that an interrupted onboard
# continues where it stopped (onboard-facts.sh lists them).

D=/var/lib/provision/onboard
case $STEP in
'' | *[!a-z0-9_-]*)
    echo "$STEP is not a step name" >&2
    exit 1
    ;;
esac
mkdir -p "$D" && chmod 700 /var/lib/provision "$D" || exit 1
date -u +%Y-%m-%dT%H:%M:%SZ >"$D/.$STEP.tmp" && mv -f "$D/.$STEP.tmp" "$D/$STEP"
