# onboard-facts: what `provision onboard` needs to know about a fresh host
# before it changes anything, in one round trip. Read-only. One `key=value`
# line per fact; a fact the host cannot tell is left empty, and the Rust
# side (src/onboard/facts.rs) decides what is missing.

fact() {
    # Values are one line each: a newline would start a forged fact.
    printf '%s=%s\n' "$1" "$(printf '%s' "$2" | tr '\n\t' '  ')"
}

# /etc/os-release is a shell fragment of assignments, but sourcing it would
# run whatever it holds; read the three fields as text.
os_field() {
    [ -r /etc/os-release ] || return 0
    sed -n "s/^$1=//p" /etc/os-release | head -n 1 | sed 's/^["'\'']//; s/["'\'']$//'
}
fact os_id "$(os_field ID)"
fact os_version "$(os_field VERSION_ID)"
fact os_like "$(os_field ID_LIKE)"

# systemd's version is the second word of `systemctl --version`.
sd=
if command -v systemctl >/dev/null 2>&1; then
    sd=$(systemctl --version 2>/dev/null | head -n 1 | cut -d ' ' -f 2)
fi
fact systemd "$sd"
fact pid1 "$(cat /proc/1/comm 2>/dev/null)"
fact cgroup_fs "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"

# Free space (KiB) where the store and generations go: /var/lib, or the
# nearest existing directory above it.
fact var_lib_free_kib "$(df -Pk /var/lib 2>/dev/null | awk 'NR == 2 { print $4 }')"
fact mem_available_kib "$(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo 2>/dev/null)"
journal=/var/log/journal
[ -d "$journal" ] || journal=/var/log
fact journal_fs "$(stat -fc %T "$journal" 2>/dev/null)"

tools=
for t in sh stat sha256sum mktemp flock setsid curl apt-get visudo useradd cloud-init; do
    command -v "$t" >/dev/null 2>&1 && tools="$tools $t"
done
fact tools "${tools# }"
fact uid "$(id -u)"
# The steps an earlier onboard finished (onboard-record.sh), so an
# interrupted run continues where it stopped.
done_steps=
for step in /var/lib/provision/onboard/*; do
    [ -f "$step" ] && done_steps="$done_steps ${step##*/}"
done
fact steps_done "${done_steps# }"
fact epoch "$(date +%s)"
