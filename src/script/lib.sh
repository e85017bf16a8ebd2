# provision's host library: the prologue of every program provision runs on a
# host, and the primitives they share for touching files in directories that
# someone other than root may write.
#
# The threat: a non-root user (an agent) may create, replace, rename and race
# anything in the directories it can write, at any moment. So nothing here
# opens, writes, chmods or chowns by a name in such a directory: it changes
# into the directory after checking every component from /, re-checks where it
# landed with getcwd, stages new files in a root-only directory of its own
# inside it, and renames onto exactly the target name.

# A fixed, root-owned PATH and a clean slate: nothing a non-root user can
# write steers what runs here.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
unset ENV BASH_ENV CDPATH LD_PRELOAD LD_LIBRARY_PATH 2>/dev/null
IFS=' 	
'
nl='
'
tab='	'
# On a real host the trusted owner is root; a `local` host (a directory of the
# operator's) belongs to whoever runs provision.
# One `id` for both: "uid=0(root) gid=0(root) …".
ME=$(id)
MEUID=${ME#uid=}
MEUID=${MEUID%%[!0-9]*}
case $ME in
"uid=$MEUID("*)
    ME=${ME#*\(}
    ME=${ME%%\)*}
    ;;
*) ME=$MEUID ;;
esac
# set_root ROOT: the host's root ("" on a real host, a directory for a
# `local` one), as RP, its physical path.
set_root() {
    RP=
    if [ -n "$1" ]; then
        RP=$(cd -P -- "$1/" && pwd -P) || RP=$1
        [ "$RP" = / ] && RP=
    fi
}
RP=

# writable_by MODE: sets WB to who may write, of `u`, `g` and `o`, for a
# mode such as 755 or 2770 (a variable, not output: a subshell per
# directory component adds up).
writable_by() {
    wb_o=$((0$1 % 8)) wb_g=$((0$1 / 8 % 8)) wb_u=$((0$1 / 64 % 8))
    WB=
    [ $((wb_u & 2)) -eq 0 ] || WB="${WB}u"
    [ $((wb_g & 2)) -eq 0 ] || WB="${WB}g"
    [ $((wb_o & 2)) -eq 0 ] || WB="${WB}o"
}

# last_value LIST KEY: sets VALUE to what follows "KEY<TAB>" on the last
# line of LIST (lines separated by newlines) that starts with it; empty when
# none does. Linear in LIST: dash's ${var#*pattern} and ${var##*pattern} are
# quadratic in the length of var, which made a switch of 1,200 files in 300
# directories take minutes.
last_value() {
    VALUE=
    lv_ifs=$IFS lv_noglob=
    case $- in *f*) lv_noglob=yes ;; esac
    set -f
    IFS=$nl
    for lv_line in $1; do
        case $lv_line in "$2$tab"*) VALUE=${lv_line#"$2$tab"} ;; esac
    done
    IFS=$lv_ifs
    [ -n "$lv_noglob" ] || set +f
}

# safe_dir DIR OWNER GROUP [create]
# Checks every component of DIR (a host path) from the host's root: each must
# be a real directory, not a symlink, writable by nobody but root and
# OWNER:GROUP (whose file goes there; `*` allows any, to only look). With `create`, missing components are
# made (root's, 0755); without, a missing one fails with why=missing. Then
# changes into DIR and checks with getcwd that it is DIR itself, so a
# component swapped for a symlink meanwhile is caught. Sets:
#   why      the reason, on failure
#   TRUSTED  yes when only root can write any component (nobody can race)
# The component check is remembered per DIR, OWNER and GROUP: what passed it
# can be changed afterwards only by root or OWNER, and only within their own
# reach, which the getcwd check bounds.
SAFE_SEEN=$nl
SAFE_LAST=
SAFE_LAST_TRUSTED=
safe_dir() {
    sd_dir=$1 sd_o=$2 sd_g=$3 sd_create=${4:-}
    why=
    case $sd_dir in
    /*) ;;
    *)
        why="$sd_dir is not an absolute path"
        return 1
        ;;
    esac
    # Files of one directory come one after the other: the last answer is
    # usually the one asked for again.
    sd_key="$sd_dir$tab$sd_o$tab$sd_g"
    if [ "$sd_key" = "$SAFE_LAST" ]; then
        TRUSTED=$SAFE_LAST_TRUSTED
    else
        case $SAFE_SEEN in
        *"$nl$sd_key$tab"*)
            last_value "$SAFE_SEEN" "$sd_key"
            TRUSTED=$VALUE
            ;;
        *)
            safe_walk || return 1
            SAFE_SEEN="$SAFE_SEEN$sd_key$tab$TRUSTED$nl"
            ;;
        esac
        SAFE_LAST=$sd_key SAFE_LAST_TRUSTED=$TRUSTED
    fi
    enter_dir "$sd_dir"
}

# enter_dir DIR: changes into DIR (a host path) and checks with getcwd that
# it is DIR itself, no link on the way: a component swapped for a symlink is
# caught. The components' owners are safe_dir's business.
enter_dir() {
    if ! cd -P -- "$RP$1" 2>/dev/null; then
        why="cannot enter $1"
        return 1
    fi
    # cd -P sets PWD from getcwd: where we are, with no link in the way.
    if [ "$PWD" != "$RP$1" ] && ! { [ "$1" = / ] && [ "$PWD" = "${RP:-/}" ]; }; then
        why="$1 changed while it was checked (it leads to $PWD)"
        cd /
        return 1
    fi
}

# dir_name PATH: sets DIR (its directory, / at the top) and NAME.
dir_name() {
    DIR=${1%/*}
    [ -n "$DIR" ] || DIR=/
    NAME=${1##*/}
}

# here: sets HERE, the device:inode of the current directory, for stage_dir.
here() {
    HERE=$(stat -c %d:%i .) || {
        why="cannot look at $PWD"
        return 1
    }
}

safe_walk() {
    TRUSTED=yes
    sw_p=
    sw_rest=${sd_dir#/}
    set --
    while [ -n "$sw_rest" ]; do
        sw_c=${sw_rest%%/*}
        case $sw_rest in */*) sw_rest=${sw_rest#*/} ;; *) sw_rest= ;; esac
        [ -n "$sw_c" ] || continue
        sw_p="$sw_p/$sw_c"
        if [ ! -e "$RP$sw_p" ] && [ ! -L "$RP$sw_p" ]; then
            if [ "$sd_create" != create ]; then
                why=missing
                return 1
            fi
            # mkdir refuses a name that exists, a symlink planted in the
            # meantime among them; the check below then refuses it.
            (umask 022 && mkdir -- "$RP$sw_p") 2>/dev/null
        fi
        set -- "$@" "$RP$sw_p"
    done
    [ $# -gt 0 ] || return 0
    sw_out=$(stat -c '%F/%U/%G/%a' -- "$@" 2>&1) || {
        why="cannot look at the directories of $sd_dir: $sw_out"
        return 1
    }
    for sw_p in "$@"; do
        sw_line=${sw_out%%"$nl"*}
        sw_out=${sw_out#*"$nl"}
        sw_p=${sw_p#"$RP"}
        sw_type=${sw_line%%/*}
        sw_line=${sw_line#*/}
        sw_u=${sw_line%%/*}
        sw_line=${sw_line#*/}
        sw_gr=${sw_line%%/*}
        sw_mode=${sw_line#*/}
        if [ "$sw_type" != directory ]; then
            why="$sw_p is a $sw_type, not a directory: provision does not follow it"
            return 1
        fi
        writable_by "$sw_mode"
        sw_w=$WB
        case $sw_w in *o*)
            why="$sw_p is writable by every user: provision does not write under it"
            return 1
            ;;
        esac
        case $sw_w in *u*)
            if [ "$sw_u" != "$ME" ]; then
                TRUSTED=no
                if [ "$sw_u" != "$sd_o" ] && [ "$sd_o" != '*' ]; then
                    why="$sw_p belongs to $sw_u, who could redirect what is written under it (the file is $sd_o's)"
                    return 1
                fi
            fi
            ;;
        esac
        case $sw_w in *g*)
            if [ "$sw_gr" != root ] && [ "$sw_gr" != "$ME" ]; then
                TRUSTED=no
                if [ "$sw_gr" != "$sd_g" ] && [ "$sd_g" != '*' ]; then
                    why="$sw_p is writable by the group $sw_gr, which could redirect what is written under it (the file is $sd_o:$sd_g's)"
                    return 1
                fi
            fi
            ;;
        esac
    done
}

# stage_dir NAME: inside the current directory (entered by safe_dir, then
# `here`), changes into the root-only staging directory NAME and
# checks it is ours: made by root, mode 0700, its parent the directory
# entered. Nobody else can write into it, nor move it elsewhere (moving a
# directory to another parent needs write access to it).
stage_dir() {
    if ! cd -- "$1" 2>/dev/null; then
        why="cannot enter the staging directory $1"
        return 1
    fi
    # One stat for both: "UID:MODE DEV:INODE" of `.`, then of `..`.
    sd_st=$(stat -c '%u:%a %d:%i' -- . ..) || sd_st=
    sd_dot=${sd_st%%"$nl"*}
    sd_up=${sd_st#*"$nl"}
    if [ "${sd_dot% *}" != "$MEUID:700" ] || [ "$sd_st" = "$sd_dot" ] || [ "${sd_up#* }" != "$HERE" ]; then
        cd /
        why="the staging directory $1 was replaced"
        return 1
    fi
}

# classify NAME: what NAME (in the current directory) is, without following
# it. Sets KIND (`missing`, `regular` for a regular file, `other`) and, for
# `other`, WHAT: a symlink and its target, a FIFO, a directory... (on one
# line: a target the agent named may hold tabs or newlines).
classify() {
    WHAT=
    if [ -L "./$1" ]; then
        KIND=other
        WHAT="symlink to $(readlink -n -- "./$1" | tr '\t\n\r' '   ')"
    elif [ ! -e "./$1" ]; then
        KIND=missing
    elif [ ! -f "./$1" ]; then
        KIND=other
        WHAT=$(stat -c %F -- "./$1" 2>/dev/null) || WHAT='not a regular file'
    else
        KIND=regular
    fi
}

# links NAME: the number of hard links of NAME (in the current directory).
links() {
    stat -c %h -- "./$1" 2>/dev/null
}

# planted NAME OWNER: what NAME (in the current directory) is, when it is
# anything but a regular file with one link owned by root or OWNER: a
# symlink, a FIFO, a directory, a hard link to another file, a file of
# another owner. Prints nothing for a plain file or a missing name.
planted() {
    classify "$1"
    case $KIND in
    other) printf '%s' "$WHAT" ;;
    regular)
        pl=$(stat -c '%h/%U' -- "./$1" 2>/dev/null) || return 0
        if [ "${pl%%/*}" != 1 ]; then
            printf 'hard link (%s links)' "${pl%%/*}"
        elif [ "${pl#*/}" != "$ME" ] && [ "${pl#*/}" != "$2" ]; then
            printf 'file of %s' "${pl#*/}"
        fi
        ;;
    esac
}

# read_nofollow NAME: the content of NAME (in the current directory) on
# stdout, refusing a symlink (O_NOFOLLOW) and never blocking on a FIFO.
read_nofollow() {
    dd if="$1" iflag=nofollow,nonblock status=none
}

# observe PATH KEYED: sets OBS to what PATH is, named as the probe names it:
# `-` (missing), `other` (anything but a regular file reached without a
# link: a symlink, a FIFO, a directory, a path through a link, a hard link
# in a directory someone else can write), or its content id: the sha256, or
# with KEYED `k` the keyed `hmac-` id (hmac_init first).
observe() {
    dir_name "$1"
    if ! safe_dir "$DIR" '*' '*'; then
        if [ "$why" = missing ]; then OBS=-; else OBS=other; fi
        cd /
        return
    fi
    classify "$NAME"
    if [ "$KIND" = other ]; then
        OBS=other
    elif [ "$KIND" = missing ]; then
        OBS=-
    elif [ "$TRUSTED" = no ] && [ "$(links "$NAME")" != 1 ]; then
        OBS=other
    else
        OBS=$(read_nofollow "./$NAME" | sha256sum) || OBS=unreadable
        OBS=${OBS%% *}
        [ "$2" != k ] || OBS="hmac-$(hmac_hex "$OBS")"
    fi
    cd /
}

# HMAC-SHA256 in sh, for the keyed ids of files that hold secrets: the host
# never sends their plain hash. hmac_init KEYHEX sets the padded keys (the
# key is 32 bytes, so a block needs zeros only); hmac_hex TEXT prints the hex
# HMAC of TEXT. Octal escapes are computed without a fork per byte.
hmac_init() {
    hk=$1 HMAC_I='' HMAC_O='' hn=0
    while [ $hn -lt 64 ]; do
        if [ -n "$hk" ]; then
            hb=$((0x${hk%"${hk#??}"}))
            hk=${hk#??}
        else
            hb=0
        fi
        hi=$((hb ^ 54)) ho=$((hb ^ 92))
        HMAC_I="$HMAC_I\\$((hi / 64))$((hi / 8 % 8))$((hi % 8))"
        HMAC_O="$HMAC_O\\$((ho / 64))$((ho / 8 % 8))$((ho % 8))"
        hn=$((hn + 1))
    done
}
hmac_hex() {
    # shellcheck disable=SC2059 # the formats are octal escapes made above
    hh=$({
        printf "$HMAC_I"
        printf '%s' "$1"
    } | sha256sum)
    hh=${hh%% *}
    he=
    while [ -n "$hh" ]; do
        hb=$((0x${hh%"${hh#??}"}))
        hh=${hh#??}
        he="$he\\$((hb / 64))$((hb / 8 % 8))$((hb % 8))"
    done
    # shellcheck disable=SC2059
    hh=$({
        printf "$HMAC_O"
        printf "$he"
    } | sha256sum)
    printf '%s' "${hh%% *}"
}

# deadman_waiting: a generation awaits its confirmation on this host: the
# dead-man switch's state is in $S and one of its timers runs (its first
# one, or the retry of a switch back that could not switch). A local host
# has none.
deadman_waiting() {
    [ -d "$S/deadman" ] && [ -z "${PROVISION_LOCAL:-}" ] &&
        { systemctl is-active --quiet provision-deadman.timer || systemctl is-active --quiet provision-deadman-retry.timer; }
}
