# provision plan|status --alert CHANNEL: sends each finding of a scheduled
# run through CHANNEL with the host's own alert program, once.
#
# Parameters (`set --` in the header): CHANNEL SCOPE HOST... (SCOPE: plan or
# status; HOST: the run's selected hosts, as their state names spell them).
# stdin, tab-separated: "NAME DIGEST MESSAGE" per finding; NAME is
# SCOPE.HOST.KEY in [A-Za-z0-9._-].
# stdout: "sent NAME", "already NAME" (sent before, digest unchanged),
# "failed NAME WHY", "cleared NAME" (a finding of SCOPE about a selected host
# that is gone: forgotten, so it alerts again when it comes back).
# State: /var/lib/provision/alerts/findings/NAME holds the digest sent;
# root-only, like the rest of /var/lib/provision.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
set -u
umask 077
channel=$1
scope=$2
shift 2
dir=/var/lib/provision/alerts/findings
mkdir -p "$dir" || exit 1
if [ -L "$dir" ] || [ "$(stat -c %u "$dir")" != 0 ]; then
    echo "$dir is not root's own directory" >&2
    exit 1
fi
seen=' '
while IFS='	' read -r name digest message; do
    case "$name" in
        '' | *[!A-Za-z0-9._-]* | .*) continue ;;
    esac
    seen="$seen$name "
    if [ -f "$dir/$name" ] && [ "$(cat "$dir/$name")" = "$digest" ]; then
        printf 'already\t%s\n' "$name"
        continue
    fi
    if out=$(/usr/local/lib/provision/alert --notice --channel "$channel" "provision-$scope" "$message" 2>&1 </dev/null); then
        printf '%s\n' "$digest" >"$dir/.new.$name" && mv -f "$dir/.new.$name" "$dir/$name"
        printf 'sent\t%s\n' "$name"
    else
        printf 'failed\t%s\t%s\n' "$name" "$(printf '%s' "$out" | tr '\n\t' '  ' | cut -c1-300)"
    fi
done
for host in "$@"; do
    for f in "$dir/$scope.$host".*; do
        [ -f "$f" ] || continue
        name=${f##*/}
        case "$seen" in *" $name "*) continue ;; esac
        rm -f "$f" && printf 'cleared\t%s\n' "$name"
    done
done
