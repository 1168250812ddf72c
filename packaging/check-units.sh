#!/usr/bin/env bash
# CI check of the packaged units under a real systemd (as root, Linux): the .deb files are installed in
# a Debian root booted by systemd-nspawn, and the units are started, reloaded, restarted, fed and
# removed there for real.
#
# 1. Builds ipqbdb-lmdb (revisions 1 and 2) and ipqbdb-postgres (packaging/build-debs.sh), or takes
#    them from the directories in $CHECK_UNITS_DEBS (colon-separated; CI passes check-debs.sh's).
# 2. A Debian bookworm root from packaging/units-root.sh (made once, cached): systemd, rsyslog,
#    iproute2 and iptables; openssh-server and what it pulls in (procps among them) only downloaded,
#    and installed after the reload check, which must run without procps' /bin/kill.
# 3. ipqbdb-lmdb, installed into the root before it boots (maintainer scripts without a running
#    systemd; old ipqbdb programs in /usr/local are named), then booted (systemd-nspawn -b) with a
#    veth to a network namespace of this check:
#    - the retention timer is active (enabled by the package, started by the boot);
#    - ibd-judge and ibd-parse start and report ready (Type=notify), survive `systemctl restart` and
#      `systemctl reload`; the local engine's units keep their address families;
#    - rsyslog, with packaging/examples/rsyslog-ipqbdb.conf, feeds an sshd line to ibd-parse, which
#      bans; a line of another program and an sshd line at a facility the example does not route do
#      not ban;
#    - ibd-judge drops the packets of a banned source (a real NFQUEUE rule on the veth);
#    - ibd-parse-journal bans the client of a real sshd from the journal, and not the address of a
#      forged line (a copy of logger named sshd, made and run by www-data);
#    - ibd-xdp@host0 attaches its program to the veth; stopping leaves it attached, removing its pins
#      (as the unit's comment says) detaches it;
#    - upgrade to revision 2 restarts the daemons and the ibd-xdp@ instance, remove stops them all
#      and detaches XDP, purge leaves no unit, link, process or database.
# 4. ipqbdb-postgres in a second boot: ibd-parse bans through a PostgreSQL server in the network
#    namespace, over TCP, and the retention service runs against it.
#
# Everything it makes (containers, network namespaces, veths, mounts, the server) is removed on exit,
# also on failure; a check that fails prints one line "check-units.sh: FAIL: ..." and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

fail() {
    echo "check-units.sh: FAIL: $*" >&2
    exit 1
}
step() { echo "== $*"; }
# A failed check after which the others can still run: reported, and the verdict at the end.
failed_later=()
fail_later() {
    echo "check-units.sh: failed (the other checks go on): $*" >&2
    failed_later+=("$*")
}

[ "$(id -u)" = 0 ] || fail "run as root: this check boots containers and makes network namespaces"
need_apt=()
command -v systemd-nspawn > /dev/null || need_apt+=(systemd-container)
command -v nsenter > /dev/null || need_apt+=(util-linux)
command -v ip > /dev/null || need_apt+=(iproute2)
command -v ping > /dev/null || need_apt+=(iputils-ping)
ls /usr/lib/postgresql/*/bin/pg_ctl > /dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq > /dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" > /dev/null || fail "apt-get install ${need_apt[*]} failed"
fi
command -v cargo-deb > /dev/null || cargo install --locked --quiet cargo-deb || fail "cargo install cargo-deb failed"
pg_bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")

work=$(mktemp -d /tmp/ipqbdb-units.XXXXXX)
chmod 711 "$work" # the PostgreSQL server, run as postgres, has its directory in it
netns=ibdci-$$
nspawn_pid=
pg_data=
bpffs=
cleanup() {
    local status=$?
    set +e
    stop_container
    if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
        runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -m immediate -w stop > /dev/null
    fi
    ip netns del "$netns" 2> /dev/null
    if [ -n "$bpffs" ] && mountpoint -q "$bpffs"; then
        umount "$bpffs"
    fi
    rm -rf "$work"
    exit $status
}
trap cleanup EXIT

# (Pipes into `grep PATTERN > /dev/null`, not `grep -q`, which would stop reading and make the writer
# fail under pipefail.)
# Polls COMMAND (0.2 s apart) until it succeeds; fails with WHAT after SECONDS.
wait_for() {
    local what=$1 seconds=$2 deadline
    shift 2
    deadline=$(($(date +%s) + seconds))
    until "$@" > /dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$what (not within ${seconds} s)"
        sleep 0.2
    done
}

step "packages"
t0=$(date +%s)
mkdir "$work/debs"
if [ -n "${CHECK_UNITS_DEBS:-}" ]; then
    # Packages built before from the same tree: by packaging/check-debs.sh in CI.
    IFS=: read -r -a dirs <<< "$CHECK_UNITS_DEBS"
    for dir in "${dirs[@]}"; do
        cp "$dir"/ipqbdb-lmdb_*.deb "$dir"/ipqbdb-postgres_*.deb "$work/debs/" 2> /dev/null || true
    done
else
    # Both lmdb revisions first, from one build (packaging/check-debs.sh, before this in CI, ends on lmdb).
    DEB_OUTPUT=$work/debs packaging/build-debs.sh lmdb > /dev/null || fail "packaging/build-debs.sh lmdb failed"
    DEB_OUTPUT=$work/debs DEB_REVISION=2 packaging/build-debs.sh lmdb > /dev/null || fail "packaging/build-debs.sh lmdb (revision 2) failed"
    DEB_OUTPUT=$work/debs packaging/build-debs.sh postgres > /dev/null || fail "packaging/build-debs.sh postgres failed"
fi
deb_lmdb=$(ls "$work"/debs/ipqbdb-lmdb_*-1_*.deb) || fail "no ipqbdb-lmdb revision 1"
deb_lmdb2=$(ls "$work"/debs/ipqbdb-lmdb_*-2_*.deb) || fail "no ipqbdb-lmdb revision 2"
deb_pg=$(ls "$work"/debs/ipqbdb-postgres_*-1_*.deb) || fail "no ipqbdb-postgres revision 1"
echo "$(basename -a "$deb_lmdb" "$deb_lmdb2" "$deb_pg" | paste -sd ' ') in $(($(date +%s) - t0)) s"

step "Debian root"
tarball=$(packaging/units-root.sh) || fail "packaging/units-root.sh could not make the Debian root"
echo "$tarball"

# A fresh root for one variant, with the packages under /root/debs.
new_root() {
    root=$work/root-$1
    mkdir "$root"
    tar -C "$root" -xf "$tarball"
    mkdir "$root/root/debs"
    cp "$work"/debs/*.deb "$root/root/debs/"
}

# Installs DEB in the root before it boots: the maintainer scripts run without systemd.
install_offline() {
    systemd-nspawn -q -D "$root" --register=no --keep-unit --private-network \
        dpkg -i "/root/debs/$(basename "$1")" > "$work/dpkg-offline.log" 2>&1 ||
        fail "dpkg -i $(basename "$1") in the root without systemd running: $(tail -3 "$work/dpkg-offline.log")"
}

# Boots the root (machine name NAME) with a veth whose outer end goes into the network namespace,
# addressed 198.18.N.1 there and 198.18.N.2 in the container (host0).
boot() {
    local name=$1 n=$2 leader_ppid st
    ip netns add "$netns"
    ip -n "$netns" link set lo up
    bpffs=$work/bpffs
    mkdir -p "$bpffs"
    mount -t bpf bpf "$bpffs"
    systemd-nspawn -q -D "$root" -M "$name" -b --register=no --keep-unit --network-veth \
        --bind="$bpffs:/sys/fs/bpf" --capability=CAP_BPF,CAP_PERFMON --system-call-filter=bpf \
        --console=pipe < /dev/null > "$work/console-$name.log" 2>&1 &
    nspawn_pid=$!
    # The container's PID 1: the child of systemd-nspawn that runs systemd.
    find_leader() {
        local status
        for status in /proc/[0-9]*/status; do
            leader_ppid=$(awk '$1 == "PPid:" {print $2}' "$status" 2> /dev/null) || continue
            if [ "$leader_ppid" = "$nspawn_pid" ] && [ "$(awk '$1 == "Name:" {print $2}' "$status")" = systemd ]; then
                leader=${status#/proc/}
                leader=${leader%/status}
                return 0
            fi
        done
        return 1
    }
    leader=
    wait_for "the container $name did not start systemd" 30 find_leader
    find_leader
    wait_for "systemd in $name does not answer" 30 in_ct test -S /run/systemd/private
    st=$(in_ct timeout 60 systemctl is-system-running --wait || true)
    case $st in
    running) ;;
    degraded) echo "boot of $name degraded; failed units: $(in_ct systemctl --failed --plain --no-legend | awk '{print $1}' | paste -sd ' ')" ;;
    *) fail "the container $name did not boot: systemctl is-system-running says '$st'" ;;
    esac
    wait_for "no veth ve-$name beside the container" 10 ip link show "ve-$name"
    ip link set "ve-$name" netns "$netns"
    ip -n "$netns" addr add "198.18.$n.1/24" dev "ve-$name"
    ip -n "$netns" link set "ve-$name" up
    in_ct ip addr add "198.18.$n.2/24" dev host0
    in_ct ip link set host0 up
    wait_for "the container $name is not reachable over the veth" 10 ip netns exec "$netns" ping -c 1 -W 1 "198.18.$n.2"
    echo "booted $name (systemd $(in_ct systemctl --version | awk 'NR == 1 {print $2}'), $st)"
}
stop_container() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2> /dev/null; then
        # SIGRTMIN+4 asks the container's systemd to power off; nspawn exits with it.
        kill -s RTMIN+4 "$leader" 2> /dev/null
        local i
        for i in $(seq 100); do
            kill -0 "$nspawn_pid" 2> /dev/null || break
            sleep 0.1
        done
        kill -0 "$nspawn_pid" 2> /dev/null && kill -KILL "$nspawn_pid"
        wait "$nspawn_pid" 2> /dev/null
    fi
    nspawn_pid=
    ip netns del "$netns" 2> /dev/null
    if [ -n "$bpffs" ] && mountpoint -q "$bpffs"; then
        umount "$bpffs"
    fi
    return 0
}
# Runs a command inside the container (all its namespaces), with a plain environment.
in_ct() {
    nsenter --target "$leader" --all -- /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 "$@"
}
main_pid() { in_ct systemctl show -p MainPID --value "$1"; }
is_active() { [ "$(in_ct systemctl is-active "$1")" = active ]; }
expect_active() {
    is_active "$1" || fail "$1 is $(in_ct systemctl is-active "$1"): $(in_ct journalctl -q -n 5 -o cat -u "$1" | paste -sd '|')"
}
# ibd of the container, on the database the daemons use, as the user ipqbdb.
banned() {
    in_ct runuser -u ipqbdb -- ibd del --ls | grep "^$1 " > /dev/null
}
# The programs of the package that run in the container (also those whose binary was deleted).
ibd_processes() {
    in_ct sh -c 'for e in /proc/[0-9]*/exe; do t=$(readlink "$e" 2> /dev/null) || continue; case $t in /usr/sbin/ibd*) echo "${e%/exe}: $t" ;; esac; done'
}
# Whether UNIT logged a line matching REGEX since TIME (journalctl --since).
logged_since() {
    in_ct journalctl -q -o cat -u "$1" --since "$2" | grep "$3" > /dev/null
}
# UNIT's PrivateNetwork= and RestrictAddressFamilies= (in any order; "" for no restriction).
expect_network() {
    local unit=$1 private=$2 families=$3 got
    got=$(in_ct systemctl show -p PrivateNetwork --value "$unit")
    [ "$got" = "$private" ] || fail "$unit: PrivateNetwork=$got, expected $private"
    got=$(in_ct systemctl show -p RestrictAddressFamilies --value "$unit" | tr ' ' '\n' | sort | paste -sd ' ')
    [ "$got" != "~" ] || got= # an empty deny list: no restriction
    [ "$got" = "$(echo "$families" | tr ' ' '\n' | sort | paste -sd ' ')" ] ||
        fail "$unit: RestrictAddressFamilies=$got, expected $families"
}
# Whether UNIT runs again, under a new MainPID, after it ran as BEFORE.
restarted() {
    local before=$1 unit=$2
    [ "$before" != 0 ] && [ "$(main_pid "$unit")" != 0 ] && [ "$(main_pid "$unit")" != "$before" ] && is_active "$unit"
}

step "ipqbdb-lmdb: installed before boot, booted under systemd"
new_root lmdb
# Programs an ipqbdb 2.x `make install` left, which come first in PATH: the installation names them.
install -D -m 755 /dev/null "$root/usr/local/sbin/ibd-judge"
install -D -m 755 /dev/null "$root/usr/local/bin/ibd-ban"
install_offline "$deb_lmdb"
for old in /usr/local/sbin/ibd-judge /usr/local/bin/ibd-ban; do
    grep -q "^ipqbdb: $old .* comes before /usr/sbin/${old##*/} in PATH" "$work/dpkg-offline.log" ||
        fail "installing did not name $old: $(grep '^ipqbdb:' "$work/dpkg-offline.log" || echo 'no warning')"
done
rm "$root/usr/local/sbin/ibd-judge" "$root/usr/local/bin/ibd-ban"
echo "the installation named the old /usr/local/sbin/ibd-judge and /usr/local/bin/ibd-ban"
boot "ibd$$l" 1
net=198.18.1
is_active ibd-retention.timer || fail "ibd-retention.timer is $(in_ct systemctl is-active ibd-retention.timer) after boot (the package enables it)"
echo "ibd-retention.timer active: next $(in_ct systemctl show -p NextElapseUSecRealtime --value ibd-retention.timer)"

step "daemons: ready, restart, reload"
in_ct test ! -e /bin/kill || fail "the root has /bin/kill: the reload check would not show a missing dependency"
for u in ibd-judge ibd-parse; do
    in_ct systemctl start "$u" || fail "systemctl start $u failed: $(in_ct journalctl -q -n 5 -o cat -u "$u" | paste -sd '|')"
    expect_active "$u"
    [ "$(in_ct systemctl show -p Type --value "$u")" = notify ] || fail "$u is not Type=notify"
    pid=$(main_pid "$u")
    in_ct systemctl restart "$u" || fail "systemctl restart $u failed"
    restarted "$pid" "$u" || fail "systemctl restart $u: MainPID $pid, then $(main_pid "$u") ($(in_ct systemctl is-active "$u"))"
    echo "$u: ready (notify), restarted (MainPID $pid -> $(main_pid "$u"))"
done
pid=$(main_pid ibd-parse)
mark=$(in_ct date '+%Y-%m-%d %H:%M:%S')
in_ct systemctl reload ibd-parse || fail "systemctl reload ibd-parse failed: $(in_ct journalctl -q -n 3 -o cat -u ibd-parse | paste -sd '|')"
wait_for "ibd-parse did not log its reload" 10 logged_since ibd-parse "$mark" 'reloaded [0-9]* rules from '
[ "$(main_pid ibd-parse)" = "$pid" ] && is_active ibd-parse || fail "ibd-parse did not survive systemctl reload"
echo "ibd-parse: systemctl reload (SIGHUP through the shell's kill): $(in_ct journalctl -q -o cat -u ibd-parse --since "$mark" | grep 'reloaded [0-9]* rules' | tail -1)"
# ibd-judge has nothing to reload: systemd refuses, and the judge keeps running.
pid=$(main_pid ibd-judge)
! in_ct systemctl reload ibd-judge 2> "$work/reload.err" || fail "systemctl reload ibd-judge succeeded, but the judge has no reload"
grep -q "not applicable" "$work/reload.err" || fail "systemctl reload ibd-judge: $(cat "$work/reload.err")"
[ "$(main_pid ibd-judge)" = "$pid" ] && is_active ibd-judge || fail "ibd-judge did not survive systemctl reload"
echo "ibd-judge: systemctl reload is refused by systemd (no ExecReload), the judge keeps running"
expect_network ibd-judge no "AF_NETLINK AF_UNIX"
expect_network ibd-parse yes AF_UNIX
expect_network ibd-parse-journal yes AF_UNIX
expect_network ibd-retention yes ""
expect_network ibd-xdp@host0 no "AF_NETLINK AF_UNIX"
echo "ipqbdb-lmdb: the units' network as tight as shipped (judge, ibd-xdp@ AF_NETLINK AF_UNIX; parsers AF_UNIX and PrivateNetwork; retention PrivateNetwork)"

step "rsyslog feeds ibd-parse (packaging/examples/rsyslog-ipqbdb.conf)"
cp packaging/examples/rsyslog-ipqbdb.conf "$root/etc/rsyslog.d/ipqbdb.conf"
in_ct systemctl restart rsyslog || fail "rsyslog does not restart with the example configuration"
# Lines that must not ban first, then the one that must: lines reach ibd-parse in order, so once the
# last is banned the others have been read.
in_ct logger -p auth.info -t cron "Invalid user admin from $net.11 port 2201"
in_ct logger -p user.notice -t sshd "Invalid user admin from $net.12 port 2202"
in_ct logger -p auth.info -t sshd "Invalid user admin from $net.10 port 2200"
wait_for "the sshd line routed by rsyslog (auth.info) did not ban $net.10" 20 banned "$net.10"
! banned "$net.11" || fail "a line of cron (logger -t cron) banned $net.11 through the sshd rules"
! banned "$net.12" || fail "an sshd line at user.notice, which the example does not route, banned $net.12"
echo "banned $net.10 (sshd, auth.info); not $net.11 (cron, auth.info), not $net.12 (sshd, user.notice)"

step "ibd-judge drops a banned source (NFQUEUE)"
in_ct iptables -I INPUT -i host0 -p icmp -j NFQUEUE --queue-num 0 || fail "iptables -j NFQUEUE in the container failed"
ip netns exec "$netns" ping -q -c 3 -i 0.2 -W 1 "$net.2" > /dev/null || fail "the judge dropped pings of $net.1, which is not banned"
in_ct runuser -u ipqbdb -- ibd ban -c 0 -r check-units "$net.1" > /dev/null || fail "ibd ban $net.1 failed"
dropped() { ! ip netns exec "$netns" ping -q -c 1 -W 1 "$net.2"; }
wait_for "the judge still passes pings of $net.1 after its ban at 100%" 20 dropped
received=$(ip netns exec "$netns" ping -q -c 5 -i 0.2 -W 1 "$net.2" | awk '/received/ {print $4}' || true)
[ "$received" = 0 ] || fail "the judge passed $received of 5 pings of $net.1, banned at 100%"
in_ct iptables -D INPUT -i host0 -p icmp -j NFQUEUE --queue-num 0
echo "pings of $net.1: 3 of 3 before its ban, 0 of 5 after"

step "ibd-parse-journal: a real sshd bans, a forged one does not"
# A unit with ProtectKernelTunables= sees /proc/sys as the kernel has it, with the host's boot id
# under nspawn (which overmounts it for the container): the journal of this boot would look empty.
boot_id=$(in_ct cat /proc/sys/kernel/random/boot_id)
in_ct sh -c "echo $boot_id > /run/ipqbdb-ci-boot_id && mkdir -p /run/systemd/system/ibd-parse-journal.service.d &&
    printf '[Service]\nBindReadOnlyPaths=/run/ipqbdb-ci-boot_id:/proc/sys/kernel/random/boot_id\n' \
    > /run/systemd/system/ibd-parse-journal.service.d/nspawn-boot-id.conf"
in_ct systemctl daemon-reload
in_ct systemctl start ibd-parse-journal || fail "systemctl start ibd-parse-journal failed: $(in_ct journalctl -q -n 5 -o cat -u ibd-parse-journal | paste -sd '|')"
expect_active ibd-parse-journal
is_active ibd-parse && fail "ibd-parse still runs beside ibd-parse-journal (Conflicts=)"
in_ct sh -c 'dpkg -i /root/offline/*.deb' > "$work/ssh.log" 2>&1 || fail "installing openssh-server failed: $(tail -3 "$work/ssh.log")"
wait_for "ssh.service is not active" 20 is_active ssh
# The forger: code running as www-data copies logger to a directory it can write, as sshd, and runs
# it, so journald records _COMM=sshd for it (what www-data cannot do is put a program where only root
# writes). It keeps running (its input stays open) until the journal shows that.
in_ct systemd-run -q --unit=ipqbdb-ci-forger -p User=www-data \
    /bin/sh -c "mkdir -p /tmp/ipqbdb-ci-forger && cp /usr/bin/logger /tmp/ipqbdb-ci-forger/sshd && \
        { echo 'Invalid user admin from 198.51.100.20 port 2220'; exec sleep 300; } | /tmp/ipqbdb-ci-forger/sshd -t sshd"
forged_logged() { in_ct journalctl -q -o cat _COMM=sshd _UID=33 | grep 198.51.100.20 > /dev/null; }
wait_for "the forged line is not in the journal as _COMM=sshd _UID=33" 10 forged_logged
in_ct systemctl stop ipqbdb-ci-forger
in_ct ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 \
    nosuchuser@"$net.2" true > /dev/null 2>&1 && fail "ssh as nosuchuser succeeded"
sshd_logged() { in_ct journalctl -q -o cat -u ssh | grep "Invalid user nosuchuser from $net.2 " > /dev/null; }
wait_for "sshd did not log the invalid user" 10 sshd_logged
wait_for "ibd-parse-journal did not ban $net.2, the client of a real sshd" 20 banned "$net.2"
if banned 198.51.100.20; then
    fail_later "ibd-parse-journal banned 198.51.100.20 from a line of /tmp/ipqbdb-ci-forger/sshd (a copy of logger) run by www-data"
else
    echo "banned $net.2 (sshd: Invalid user nosuchuser); not 198.51.100.20 (logger named sshd, as www-data)"
fi

step "ibd-xdp@host0 attaches to the veth"
xdp_attached() { in_ct ip -d link show dev host0 | grep 'prog/xdp' > /dev/null; }
# systemd in a container has no device units (its /sys is read-only), so the instance's BindsTo= and
# After= on sys-subsystem-net-devices-host0.device would fail it at once. A runtime copy of the
# installed unit without these two dependencies stands in for it (the package's drop-ins still apply,
# the package's scripts still handle the instance); it is removed before the check after purge.
xdp_unit=/usr/lib/systemd/system/ibd-xdp@.service
in_ct grep -qx 'BindsTo=sys-subsystem-net-devices-%i.device' "$xdp_unit" ||
    fail "$xdp_unit has no BindsTo= on its device: update this check"
in_ct sh -c "sed -e '/^BindsTo=sys-subsystem-net-devices-%i.device\$/d' \
    -e '/^After=/s/ sys-subsystem-net-devices-%i.device//' $xdp_unit > /run/systemd/system/ibd-xdp@.service"
in_ct systemctl daemon-reload
in_ct systemctl enable --now ibd-xdp@host0 2> /dev/null || fail "systemctl enable --now ibd-xdp@host0 failed: $(in_ct journalctl -q -n 5 -o cat -u ibd-xdp@host0 | paste -sd '|')"
expect_active ibd-xdp@host0
xdp_attached || fail "ibd-xdp@host0 is active, but host0 has no XDP program"
expect_network ibd-xdp@host0 no "AF_NETLINK AF_UNIX"
# What the unit's comment says: stopped, the program stays; its pins removed, it goes.
in_ct systemctl stop ibd-xdp@host0
xdp_attached || fail "stopping ibd-xdp@host0 detached the program (it should stay until its pins are removed)"
in_ct rm -r /sys/fs/bpf/ipqbdb/host0 || fail "no pins in /sys/fs/bpf/ipqbdb/host0"
! xdp_attached || fail "removing /sys/fs/bpf/ipqbdb/host0 did not detach the XDP program of host0"
in_ct systemctl start ibd-xdp@host0 || fail "ibd-xdp@host0 does not start again"
xdp_attached || fail "ibd-xdp@host0 started again but host0 has no XDP program"
echo "attached; stopped: still attached; pins removed: detached; started: attached"

step "upgrade to $(basename "$deb_lmdb2"), remove, purge"
declare -A before
running=(ibd-judge ibd-parse-journal ibd-xdp@host0)
for u in "${running[@]}"; do before[$u]=$(main_pid "$u"); done
in_ct dpkg -i "/root/debs/$(basename "$deb_lmdb2")" > "$work/dpkg.log" 2>&1 || fail "upgrade: $(tail -3 "$work/dpkg.log")"
for u in "${running[@]}"; do
    restarted "${before[$u]}" "$u" || fail "upgrade did not restart $u (MainPID ${before[$u]}, then $(main_pid "$u"), $(in_ct systemctl is-active "$u"))"
done
[ -z "$(ibd_processes | grep deleted)" ] || fail "after the upgrade, old binaries still run: $(ibd_processes | grep deleted)"
banned "$net.10" || fail "the upgrade lost the database"
echo "upgrade restarted ${running[*]}"
in_ct dpkg --remove ipqbdb-lmdb > "$work/dpkg.log" 2>&1 || fail "remove: $(tail -3 "$work/dpkg.log")"
[ -z "$(ibd_processes)" ] || fail "after remove, still running: $(ibd_processes | paste -sd ' ')"
for u in "${running[@]}"; do
    ! is_active "$u" || fail "remove left $u active"
done
! xdp_attached || fail "remove left the XDP program attached to host0"
echo "remove stopped ${running[*]} and detached XDP"
in_ct dpkg --purge ipqbdb-lmdb > "$work/dpkg.log" 2>&1 || fail "purge: $(tail -3 "$work/dpkg.log")"
in_ct rm -r /run/systemd/system/ibd-xdp@.service /run/systemd/system/ibd-parse-journal.service.d
in_ct systemctl daemon-reload
[ -z "$(ibd_processes)" ] || fail "after purge, still running: $(ibd_processes | paste -sd ' ')"
left=$(in_ct systemctl list-units --all --plain --no-legend 'ibd-*' | awk '{print $1}' | paste -sd ' ')
[ -z "$left" ] || fail "after purge, units left: $left"
left=$(in_ct find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
    -name '*ibd-*' 2> /dev/null | paste -sd ' ' || true)
[ -z "$left" ] || fail "after purge, unit links left: $left"
in_ct test ! -e /var/lib/ipqbdb || fail "purge left /var/lib/ipqbdb"
echo "purge: no process, unit, link or database left"
stop_container

step "ipqbdb-postgres: bans through a PostgreSQL server in another network namespace (TCP)"
new_root postgres
install_offline "$deb_pg"
net=198.18.2
pg_data=$work/pg/data
mkdir -p "$work/pg"
chown postgres:postgres "$work/pg"
chmod 700 "$work/pg"
runuser -u postgres -- "$pg_bin/initdb" -D "$pg_data" -A trust -U postgres -E UTF8 --locale C.UTF-8 --no-sync > /dev/null ||
    fail "initdb failed"
echo "host all all $net.0/24 trust" >> "$pg_data/pg_hba.conf"
cat >> "$root/etc/ipqbdb/ipqbdb.toml.new" << EOT
backend = "postgres"
postgres-url = "host=$net.1 dbname=postgres user=postgres connect_timeout=5"
EOT
# Top-level keys go before the first section.
cat "$root/etc/ipqbdb/ipqbdb.toml.new" "$root/etc/ipqbdb/ipqbdb.toml" > "$root/etc/ipqbdb/ipqbdb.toml.all"
mv "$root/etc/ipqbdb/ipqbdb.toml.all" "$root/etc/ipqbdb/ipqbdb.toml"
rm "$root/etc/ipqbdb/ipqbdb.toml.new"
boot "ibd$$p" 2
ip netns exec "$netns" runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/pg/log" \
    -o "-k $work/pg -c listen_addresses=$net.1" -w -t 60 start > /dev/null || fail "the PostgreSQL server does not start: $(tail -3 "$work/pg/log")"
cp packaging/examples/rsyslog-ipqbdb.conf "$root/etc/rsyslog.d/ipqbdb.conf"
for u in ibd-parse ibd-judge; do
    in_ct systemctl start "$u" || fail "ipqbdb-postgres: systemctl start $u failed: $(in_ct journalctl -q -n 5 -o cat -u "$u" | paste -sd '|')"
    expect_active "$u"
done
# TCP and nothing more.
expect_network ibd-parse no "AF_UNIX AF_INET AF_INET6"
expect_network ibd-parse-journal no "AF_UNIX AF_INET AF_INET6"
expect_network ibd-judge no "AF_NETLINK AF_UNIX AF_INET AF_INET6"
expect_network ibd-xdp@host0 no "AF_NETLINK AF_UNIX AF_INET AF_INET6"
expect_network ibd-retention no "AF_UNIX AF_INET AF_INET6"
in_ct systemctl restart rsyslog
in_ct logger -p auth.info -t sshd "Invalid user admin from 203.0.113.30 port 2230"
# The server as another host of the fleet sees it: a database directory with only the engine marker.
pg_view=$work/pg-view
mkdir "$pg_view"
echo postgres > "$pg_view/ipqbdb-backend"
dpkg-deb -x "$deb_pg" "$work/pg-pkg"
on_server() {
    ip netns exec "$netns" "$work/pg-pkg/usr/sbin/ibd" del --config /dev/null --db-dir "$pg_view" --backend postgres \
        --postgres-url "host=$net.1 dbname=postgres user=postgres" --ls 2> "$work/on_server.err" | grep "^$1 " > /dev/null
}
if ! (wait_for "" 20 on_server 203.0.113.30) 2> /dev/null; then
    fail "ipqbdb-postgres: the sshd line's address 203.0.113.30 is not on the server within 20 s" \
        "(ibd del --ls there: $(head -c 300 "$work/on_server.err"); ibd-parse: $(in_ct journalctl -q -n 5 -o cat -u ibd-parse | paste -sd '|'))"
fi
in_ct systemctl start ibd-retention || fail "ipqbdb-postgres: ibd-retention failed: $(in_ct journalctl -q -n 5 -o cat -u ibd-retention | paste -sd '|')"
on_server 203.0.113.30 || fail "ibd-retention deleted a record of today"
echo "ibd-parse banned 203.0.113.30 on the server at $net.1 over TCP; ibd-judge runs; ibd-retention ran"
stop_container

[ ${#failed_later[@]} -eq 0 ] || fail "$(printf '%s; ' "${failed_later[@]}" | sed 's/; $//')"
echo "check-units.sh: all checks passed in $(($(date +%s) - started)) s"
