# provision verify --test-alert: a test alert through every channel the
# header names (`set -- CHANNEL...`), answering one check line per channel.
set -u
for ch in "$@"; do
    if out=$(/usr/local/lib/provision/alert --test --channel "$ch" provision-test "test alert from provision verify --test-alert" 2>&1); then
        printf 'check	alert	%s	ok	sent
' "$ch"
    else
        printf 'check	alert	%s	fail	%s
' "$ch" "$(printf '%s' "$out" | tr '
	' '  ')"
    fi
done
