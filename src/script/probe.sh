# provision probe: a read-only look at one host, in one round trip.
#
# stdin: one line per desired path, "FLAG<TAB>SHA256<TAB>PATH" (no field is
# empty: tabs are IFS white space, so empty fields would collapse), FLAG `t`
# for a file whose old content may be shown in a diff, `k` for one that holds
# secrets: its content never leaves the host, and its id is keyed (HMAC). The
# paths of the current generation are looked at too.
# stdout: tab-separated records, read by `observed::parse_probe`.
# Paths go through printf, never echo: dash's echo reads backslashes.
# It writes nothing but the host's fingerprint key on first contact and its
# record of the files it read (stat/record, below).
set -u
R=${PROVISION_ROOT:-}
set_root "$R"
S="$R/var/lib/provision"
echo "probe${tab}1"
# Also the clock the stat record is judged against (below).
now=$(date +%s)
echo "now${tab}$now"

# The key that makes secret fingerprints unguessable offline: random, 0600,
# created once.
if [ ! -s "$S/key" ]; then
    (mkdir -p "$S" && chmod 700 "$S" && umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$S/key.tmp" && mv -f "$S/key.tmp" "$S/key") ||
        echo "warning${tab}cannot create $S/key"
fi
[ -s "$S/key" ] && echo "key${tab}$(cat "$S/key")"

current=
if [ -L "$S/current" ]; then
    current=$(readlink "$S/current")
    current=${current##*/}
    current=${current%.json}
    echo "current${tab}$current"
    if [ -f "$S/generations/$current.json" ]; then
        printf 'record\t'
        cat "$S/generations/$current.json"
        echo
    fi
    [ -f "$S/generations/$current.status" ] && echo "status${tab}$(head -n 1 "$S/generations/$current.status")"
fi
latest=
for f in "$S"/generations/*.json; do
    [ -f "$f" ] || continue
    n=${f##*/}
    n=${n%.json}
    case $n in *[!0-9]*|'') continue ;; esac
    if [ -z "$latest" ] || [ "$n" -gt "$latest" ]; then latest=$n; fi
done
[ -n "$latest" ] && echo "latest${tab}$latest"

if [ -f "$S/switching/ops" ]; then
    gen=$(cat "$S/switching/generation" 2>/dev/null)
    state=stopped
    unit=$(cat "$S/switching/unit" 2>/dev/null) || unit=
    if [ -z "${PROVISION_LOCAL:-}" ] && [ -n "$unit" ] && systemctl is-active --quiet "$unit.service" 2>/dev/null; then
        state=running
    fi
    echo "switching${tab}$gen${tab}$state"
fi

# A generation that awaits its confirmation: the dead-man switch goes back
# to this one unless it comes. `since`: when the switch began, before it
# restarted anything.
if deadman_waiting; then
    back=$(cat "$S/deadman/generation" 2>/dev/null)
    armed=$(cat "$S/deadman/since" 2>/dev/null) || armed=
    case $armed in '' | *[!0-9]*) armed=0 ;; esac
    case $back in '' | *[!0-9]*) ;; *) echo "unconfirmed${tab}$back${tab}$armed" ;; esac
fi

# Free space where the store lives, and the size of the journal's filesystem
# (one df for both).
d="$S"
[ -d "$d" ] || d="$R/"
j="$R/var/log/journal"
[ -d "$j" ] || j="$R/var/log"
[ -d "$j" ] || j="$R/"
df -Pk "$d" "$j" 2>/dev/null | {
    read -r _ &&
        read -r _ _ _ avail _ && echo "disk${tab}$((avail * 1024))" &&
        read -r _ size _ avail _ && echo "journalfs${tab}$((size * 1024))${tab}$((avail * 1024))"
}

# The paths: the desired ones, then the current generation's, each once, in
# the order given (desired first), keyed when either list keys it: only the
# HMAC under the host's key of a path that holds a secret in either leaves
# the host, never its plain hash nor its content. Every step below is one
# process for all paths (awk, stat, sha256sum): a host's size costs no
# process per file or directory, only the files whose record (below) no
# longer vouches for them are read, and a file in a directory someone else
# may write is read one by one, carefully.
#   FLAG SHA PATH, FLAG `t`, `k`, or `n` for an old path that is not secret
old=/dev/null
if [ -n "$current" ] && [ -f "$S/generations/$current.files" ]; then
    old="$S/generations/$current.files"
fi
paths=$(
    {
        cat
        echo "@old"
        cat -- "$old"
    } | awk -F "$tab" -v OFS="$tab" '
        $0 == "@old" { part = 1; next }
        # The old list: ID MODE OWNER GROUP SECRET PATH.
        part == 1 { f = ($5 == "s") ? "k" : "n"; s = "-"; p = $6 }
        part == 0 { f = $1; s = $2; p = $3 }
        p == "" { next }
        !(p in flag) { order[++n] = p; flag[p] = f; sha[p] = s; next }
        f == "k" { flag[p] = "k" }
        END { for (i = 1; i <= n; i++) print flag[order[i]], sha[order[i]], order[i] }'
)
case "$nl$paths" in *"${nl}k$tab"*) hmac_init "$(cat "$S/key" 2>/dev/null)" ;; esac

# The record of what each file was when it was last read (root-only, like
# the rest of $S): device, inode, size, mtime and ctime to the nanosecond ->
# its id. A file whose five still match keeps its id without being read or
# keyed again: any write or metadata change sets ctime to the present, and
# nobody but root (by setting the clock) can set it back. A file whose ctime
# is not 2 whole seconds behind the clock (changed in the last 2 to 3 s) is
# not recorded: a second write in the same clock tick would leave every
# value equal. The stamp of a file in a directory someone else may write is
# taken inside that directory, entered carefully, before it is read: a swap
# made after it changes the ctime of the file that was there, so that stamp
# never matches again.
REC="$S/stat/record"
STAMP="%d:%i:%s:%.9Y:%.9Z"
# The store, as a host path ($S is under the root as given, not resolved).
STORE=/var/lib/provision/store/

# One stat, without following links, of every path, every component of
# their directories and every store entry they name: TYPE UID GID MODE
# LINKS STAMP SIZE NAME. What does not exist is not listed. Owners are
# numbers here (stat looking up each name reads the user database once per
# file) and named below, each once.
looked=$(printf '%s\n' "$paths" | awk -F "$tab" -v rp="$RP" -v store="$STORE" '
    $3 == "" { next }
    {
        print rp $3
        if ($2 != "-") print rp store $2
        d = $3
        while (sub(/\/[^\/]*$/, "", d) && d != "" && !(d in seen)) { seen[d]; print rp d }
    }' | xargs -r -d "$nl" stat -c "%F$tab%u$tab%g$tab%a$tab%h$tab$STAMP$tab%s$tab%n" -- 2>/dev/null)

# Each path, judged from that: one line each, in order.
#   missing PATH | unsafe WHY PATH | other WHAT PATH | stored SHA: final
#   careful FLAG SHA PATH: in a directory someone else may write; read below
#   batch FLAG SHA PATH MODE OWNER GROUP SIZE STAMP ID TRUSTED: ID `-` when
#     the record does not vouch for it (then it is read); TRUSTED `yes` when
#     only root can write its directories (only then is it read by name)
judged=$(
    {
        [ -f "$REC" ] && [ ! -L "$REC" ] && cat -- "$REC"
        echo "@looked"
        printf '%s\n' "$looked"
        echo "@paths"
        printf '%s\n' "$paths"
    } | awk -F "$tab" -v OFS="$tab" -v rp="$RP" -v store="$STORE" -v me="$ME" '
        # No line of the record, stat or paths starts with @.
        $0 == "@looked" { part = 1; next }
        $0 == "@paths" { part = 2; name_owners(); next }
        $0 == "" { next }
        part == 0 { rstamp[$3] = $1; rid[$3] = $2; next }
        part == 1 {
            p = $8
            if (substr(p, 1, length(rp)) == rp) p = substr(p, length(rp) + 1)
            type[p] = $1; uid[p] = $2; gid[p] = $3; mode[p] = $4
            links[p] = $5; stamp[p] = $6; size[p] = $7
            uids[$2]; gids[$3]
            next
        }
        # Every owner and group seen, named as stat would (UNKNOWN when
        # there is no name): from /etc/passwd and /etc/group, and by one
        # getent each for ids they lack (another user database). The ids
        # are numbers.
        function name_owners() {
            named("/etc/passwd", "passwd", uids, user)
            named("/etc/group", "group", gids, grp)
        }
        function named(file, db, ids, into,   line, f, id, list) {
            while ((getline line <file) > 0) {
                split(line, f, ":")
                if ((f[3] in ids) && !(f[3] in into)) into[f[3]] = f[1]
            }
            close(file)
            list = ""
            for (id in ids) if (!(id in into)) list = list " " id
            if (list == "") return
            db = "getent " db list
            while ((db | getline line) > 0) {
                split(line, f, ":")
                into[f[3]] = f[1]
            }
            close(db)
        }
        function owner(p) { return (uid[p] in user) ? user[uid[p]] : "UNKNOWN" }
        function group(p) { return (gid[p] in grp) ? grp[gid[p]] : "UNKNOWN" }
        function writable(digit) { return digit ~ /[2367]/ }
        # The verdict on directory D, as safe_dir (lib.sh) gives it with
        # OWNER and GROUP `*`: yes (only root can write any component), no
        # (someone else can), missing, or why it is refused.
        function verdict(d,   n, c, i, p, v, m) {
            if (d in seen) return seen[d]
            n = split(d, c, "/")
            p = ""
            v = "yes"
            for (i = 2; i <= n; i++) {
                if (c[i] == "") continue
                p = p "/" c[i]
                if (!(p in type)) { v = "missing"; break }
                if (type[p] != "directory") {
                    v = "why:" p " is a " type[p] ", not a directory: provision does not follow it"
                    break
                }
                m = "00" mode[p]
                if (writable(substr(m, length(m), 1))) {
                    v = "why:" p " is writable by every user: provision does not write under it"
                    break
                }
                if (writable(substr(m, length(m) - 2, 1)) && owner(p) != me) v = "no"
                if (writable(substr(m, length(m) - 1, 1)) && group(p) != "root" && group(p) != me) v = "no"
            }
            seen[d] = v
            return v
        }
        {
            f = $1; s = $2; p = $3
            if (s != "-" && type[store s] ~ /^regular/) print "stored", s
            d = p
            sub(/\/[^\/]*$/, "", d)
            if (d == "") d = "/"
            v = verdict(d)
            if (v == "missing") { print "missing", p; next }
            if (v ~ /^why:/) { print "unsafe", substr(v, 5), p; next }
            got = "-"
            # A keyed file needs a keyed id, a plain one a plain id.
            if ((p in rstamp) && rstamp[p] == stamp[p] && ((f == "k") == (rid[p] ~ /^hmac-/))) got = rid[p]
            if (v == "no") {
                # Read by name only when nothing needs reading: its content
                # is sent for a diff when it differs.
                if (got != "-" && (f != "t" || got == s || size[p] > 262144)) {
                    print "batch", f, s, p, mode[p], owner(p), group(p), size[p], stamp[p], got, "no"
                } else print "careful", f, s, p
                next
            }
            if (!(p in type)) print "missing", p
            else if (type[p] == "symbolic link") print "careful", f, s, p
            else if (type[p] !~ /^regular/) print "other", type[p], p
            else print "batch", f, s, p, mode[p], owner(p), group(p), size[p], stamp[p], got, "yes"
        }'
)

# The batch files the record does not vouch for (their ID, the last field
# but one, is `-`), read in one call, in order.
case "$judged$nl" in
*"$tab-${tab}yes$nl"* | *"$tab-${tab}no$nl"*)
    hashes=$(printf '%s\n' "$judged" | awk -F "$tab" -v rp="$RP" '$1 == "batch" && $10 == "-" { print rp $4 }' |
        xargs -r -d "$nl" sha256sum --) || {
        # Only root writes these files: one that went away meanwhile was
        # changed by another run as root.
        echo "a file changed while it was read (another run as root?); plan again" >&2
        exit 1
    }
    ;;
*) hashes= ;;
esac
# Their ids: the plain hash, or `key:HASH` for a secret, which the shell
# keys below.
[ -z "$hashes" ] || judged=$(
    {
        printf '%s\n' "$hashes"
        echo "@judged"
        printf '%s\n' "$judged"
    } | awk -F "$tab" -v OFS="$tab" '
        $0 == "@judged" { part = 1; next }
        part == 0 {
            if ($0 == "") next
            # sha256sum marks a name with a backslash or newline with a
            # leading backslash.
            h = $0; sub(/^\\/, "", h); sub(/ .*/, "", h)
            hash[++n] = h
            next
        }
        $1 == "batch" && $10 == "-" { $10 = ($2 == "k") ? "key:" hash[++i] : hash[++i] }
        { print }'
)

# The new record is written aside and renamed; where it cannot be written,
# nothing is kept. The directory is made by apply: a plan of a host never
# applied keeps none.
umask 077
new="$REC.new.$$"
keep=/dev/null
if [ -d "$S/stat" ] && [ ! -L "$S/stat" ] && true 2>/dev/null >"$new"; then
    keep=$new
fi

# What needs no shell is printed (and recorded) by awk: the shell reads its
# input a byte at a time. Left for the shell, on awk's stderr (captured
# here, while its stdout goes out): the careful reads, secrets to key, and
# contents to send.
exec 4>&1
for_shell=$(printf '%s\n' "$judged" | awk -F "$tab" -v OFS="$tab" -v now="$now" -v rec="$keep" '
    $0 == "" { next }
    $1 == "careful" || ($1 == "batch" && ($10 ~ /^key:/ || ($11 == "yes" && $2 == "t" && $10 != $3 && $8 <= 262144))) {
        print >"/dev/stderr"
        next
    }
    $1 != "batch" { print; next }
    {
        print "file", $10, $5, $6, $7, $4
        ctime = $9; sub(/.*:/, "", ctime); sub(/\..*/, "", ctime)
        if (ctime + 0 < now - 2) print $9, $10, $4 >rec
    }' 2>&1 >&4)
exec 4>&-

# remember STAMP ID PATH: into the new record, once its ctime is old enough.
remember() {
    r_ctime=${1##*:}
    [ "${r_ctime%.*}" -lt $((now - 2)) ] && printf '%s\t%s\t%s\n' "$1" "$2" "$3" >&5
}

# careful PATH FLAG SHA: one file in a directory someone else may write,
# read in that directory (entered and checked with getcwd) without following
# a link or blocking on a FIFO.
careful() {
    dir_name "$1"
    if ! enter_dir "$DIR"; then
        printf 'unsafe\t%s\t%s\n' "$why" "$1"
        cd /
        return
    fi
    classify "$NAME"
    if [ "$KIND" = other ]; then
        printf 'other\t%s\t%s\n' "$WHAT" "$1"
    elif [ "$KIND" = missing ]; then
        printf 'missing\t%s\n' "$1"
    elif st=$(stat -c "%a$tab%U$tab%G$tab%s$tab%h$tab$STAMP" -- "./$NAME"); then
        c_mode=${st%%"$tab"*} st=${st#*"$tab"}
        c_owner=${st%%"$tab"*} st=${st#*"$tab"}
        c_group=${st%%"$tab"*} st=${st#*"$tab"}
        c_size=${st%%"$tab"*} st=${st#*"$tab"}
        c_links=${st%%"$tab"*} c_stamp=${st#*"$tab"}
        if [ "$c_links" != 1 ]; then
            printf 'other\thard link (%s links)\t%s\n' "$c_links" "$1"
        elif h=$(read_nofollow "./$NAME" | sha256sum); then
            h=${h%% *}
            [ "$2" = k ] && h="hmac-$(hmac_hex "$h")"
            printf 'file\t%s\t%s\t%s\t%s\t%s\n' "$h" "$c_mode" "$c_owner" "$c_group" "$1"
            remember "$c_stamp" "$h" "$1"
            if [ "$2" = t ] && [ "$h" != "$3" ] && [ "$c_size" -le 262144 ]; then
                printf 'content\t%s\n' "$1"
                read_nofollow "./$NAME" | base64
                echo "end"
            fi
        fi
    fi
    cd /
}

while IFS="$tab" read -r kind flag sha path mode owner group size stamp id trusted; do
    case $kind in
    careful) careful "$path" "$flag" "$sha" ;;
    batch)
        case $id in key:*) id="hmac-$(hmac_hex "${id#key:}")" ;; esac
        printf 'file\t%s\t%s\t%s\t%s\t%s\n' "$id" "$mode" "$owner" "$group" "$path"
        remember "$stamp" "$id" "$path"
        if [ "$trusted" = yes ] && [ "$flag" = t ] && [ "$id" != "$sha" ] && [ "$size" -le 262144 ]; then
            printf 'content\t%s\n' "$path"
            base64 <"$RP$path"
            echo "end"
        fi
        ;;
    esac
done 5>>"$keep" <<SHELL
$for_shell
SHELL
[ "$keep" = /dev/null ] || mv -f -- "$new" "$REC" 2>/dev/null || rm -f -- "$new"
