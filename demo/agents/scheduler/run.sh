#!/bin/sh
# A stand-in agent: beats, reads its checkpoint, sleeps.
set -eu
while :; do
    touch "$PROVISION_HEARTBEAT"
    [ -f WORKSTATE.md ] || printf '# WORKSTATE\n\nnothing in progress\n' > WORKSTATE.md
    sleep 60
done
