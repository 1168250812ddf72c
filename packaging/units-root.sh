#!/usr/bin/env bash
# Makes (once) the Debian bookworm root that packaging/check-units.sh boots, and prints the tarball's
# path. The root is debootstrap --variant=minbase from the mirror apt uses here, with systemd, rsyslog,
# iproute2 and iptables; openssh-server and what it pulls in are only downloaded into /root/offline (the
# reload check must run before procps' /bin/kill exists). Kept in $IPQBDB_CI_CACHE (default
# /var/cache/ipqbdb-ci) under a name derived from the package lists, so a changed list makes a new one.
# It is its own script because making it is mostly waiting on the network: CI starts it at the beginning
# of the run, beside the build, and check-units.sh then finds it made.
set -euo pipefail
fail() {
    echo "units-root.sh: FAIL: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || fail "run as root: debootstrap and chroot need it"
cache=${IPQBDB_CI_CACHE:-/var/cache/ipqbdb-ci}
suite=bookworm
# In the root: what the checks run. Downloaded only: installed during the check.
packages=(systemd systemd-sysv dbus rsyslog iproute2 iptables adduser openssh-client)
offline=(openssh-server)

key=$(printf '%s\n' "$suite" "${packages[@]}" -- "${offline[@]}" | sha256sum | cut -c1-12)
tarball=$cache/root-$suite-$key.tar
if [ -f "$tarball" ]; then
    echo "$tarball"
    exit 0
fi
if ! command -v debootstrap > /dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq > /dev/null
    apt-get install -y -qq --no-install-recommends debootstrap > /dev/null || fail "apt-get install debootstrap failed"
fi
# The mirror apt uses here (deb822 sources or a sources.list line), else Debian's.
mirror=$(sed -n 's/^URIs: *\([^ ]*debian\/*\)$/\1/p' /etc/apt/sources.list.d/*.sources 2> /dev/null | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "'$suite'" {print $2; exit}' /etc/apt/sources.list 2> /dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

t0=$(date +%s)
mkdir -p "$cache"
work=$(mktemp -d /tmp/ipqbdb-units-root.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
debootstrap --variant=minbase --include="$(
    IFS=,
    echo "${packages[*]}"
)" "$suite" "$root" "$mirror" > "$work/debootstrap.log" 2>&1 ||
    fail "debootstrap $suite from $mirror failed: $(tail -1 "$work/debootstrap.log")"
# The offline packages: only what the root lacks.
chroot "$root" apt-get clean
chroot "$root" apt-get update -qq > /dev/null || fail "apt-get update in the new root failed"
chroot "$root" apt-get install -y -qq --download-only --no-install-recommends "${offline[@]}" > /dev/null ||
    fail "apt-get --download-only ${offline[*]} in the new root failed"
mkdir "$root/root/offline"
mv "$root"/var/cache/apt/archives/*.deb "$root/root/offline/"
rm -rf "$root"/var/lib/apt/lists/*
echo ipqbdb-ci > "$root/etc/hostname"
# Written under a temporary name and renamed: a run stopped half-way leaves no tarball that looks made.
tar -C "$root" -cf "$tarball.tmp.$$" . && mv "$tarball.tmp.$$" "$tarball"
echo "made $tarball from $mirror in $(($(date +%s) - t0)) s" >&2
echo "$tarball"
