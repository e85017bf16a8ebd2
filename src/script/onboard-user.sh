# onboard-user: creates the deploy user NAME (header line, DEPLOY_USER=…) with the
# operator's public key (stdin) as its only authorized key, and gives it
# passwordless sudo through /etc/sudoers.d/provision-NAME, written to a
# temporary file, checked with visudo and only then moved into place.
# Run as root. Running it again changes nothing that is already right.

fail() {
    printf '%s\n' "$*" >&2
    exit 1
}
case $DEPLOY_USER in
'' | -* | *[!a-z0-9_-]*) fail "$DEPLOY_USER is not a user name: use lower-case letters, digits, - and _" ;;
esac
command -v visudo >/dev/null 2>&1 || fail "sudo is not installed (no visudo)"
if ! id -u "$DEPLOY_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh --user-group "$DEPLOY_USER" || fail "useradd $DEPLOY_USER failed"
fi
home=$(getent passwd "$DEPLOY_USER" | cut -d : -f 6)
[ -n "$home" ] && [ -d "$home" ] || fail "$DEPLOY_USER has no home directory"
key=$(cat)
case $key in
ssh-* | ecdsa-* | sk-*) ;;
*) fail "the public key on stdin is not an OpenSSH public key" ;;
esac
# The user owns its home and could swap names in it while root writes
# there; that gains it nothing, as the drop-in below gives it root anyway.
# Still, .ssh is (re)made by root with fixed modes, and the key file is
# written to a new name and renamed onto authorized_keys.
[ -L "$home/.ssh" ] && fail "$home/.ssh is a symbolic link"
install -d -m 0700 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$home/.ssh" || fail "cannot make $home/.ssh"
tmp=$(mktemp "$home/.ssh/.authorized_keys.XXXXXX") || fail "cannot write in $home/.ssh"
printf '%s\n' "$key" >"$tmp" && chmod 0600 "$tmp" && chown "$DEPLOY_USER:$DEPLOY_USER" "$tmp" &&
    mv -f "$tmp" "$home/.ssh/authorized_keys" || fail "cannot write $home/.ssh/authorized_keys"

drop=/etc/sudoers.d/provision-$DEPLOY_USER
mkdir -p /etc/sudoers.d
tmp=$(mktemp /etc/sudoers.d/.provision-XXXXXX) || fail "cannot write in /etc/sudoers.d"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$DEPLOY_USER" >"$tmp"
chmod 0440 "$tmp"
if ! out=$(visudo -cf "$tmp" 2>&1); then
    rm -f "$tmp"
    fail "visudo refuses the sudoers drop-in: $out"
fi
mv -f "$tmp" "$drop" || fail "cannot move the drop-in to $drop"
echo "user $DEPLOY_USER"
