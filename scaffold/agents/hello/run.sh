#!/bin/sh
# An example agent: beats once when ready, then every minute, and keeps its
# checkpoint file.
set -eu
while :; do
    touch "$PROVISION_HEARTBEAT"
    [ -f WORKSTATE.md ] || printf '# WORKSTATE\n\nnothing in progress\n' >WORKSTATE.md
    sleep 60
done
