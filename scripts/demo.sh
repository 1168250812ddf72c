#!/usr/bin/env bash
# The main job end to end, as root, in two network namespaces this script makes and removes:
# ibd-judge and ibd-parse run on a temporary database; an sshd attack log is replayed line by line
# into the parser's FIFO; after each line, the attacker and a legitimate host each send 40 pings
# through the judge. The attacker's probability doubles with every line and its packets are dropped
# accordingly, while the legitimate host passes. Nothing outside the namespaces is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it makes network namespaces)"; exit 1; }
for tool in ip iptables ping; do
    command -v "$tool" > /dev/null || { echo "demo.sh: $tool is missing (apt-get install iproute2 iptables iputils-ping)"; exit 1; }
done
# The programs as the lmdb package ships them (lmdb is the default engine either way), built where
# the packages are built, so neither builds them twice.
bin=$(packaging/release-build.sh lmdb)
tmp=$(mktemp -d)
V=ipqbdb-demo-victim-$$
A=ipqbdb-demo-net-$$
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
    wait 2> /dev/null || true
    ip netns del "$V" 2> /dev/null || true
    ip netns del "$A" 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
db=$tmp/db
ibd() { "$bin/ibd" --config /dev/null --db-dir "$db" "$@"; }

echo "== two namespaces: the victim 10.99.0.1, the attacker 10.99.0.66, a legitimate host 10.99.0.20"
ip netns add "$V"; ip netns add "$A"
ip link add veth0 netns "$V" type veth peer name veth1 netns "$A"
ip -n "$V" addr add 10.99.0.1/24 dev veth0
ip -n "$A" addr add 10.99.0.66/24 dev veth1
ip -n "$A" addr add 10.99.0.20/24 dev veth1
for ns in "$V" "$A"; do ip -n "$ns" link set lo up; done
ip -n "$V" link set veth0 up; ip -n "$A" link set veth1 up
echo "== the victim queues incoming pings to ibd-judge: iptables -A INPUT -p icmp -j NFQUEUE --queue-num 0"
ip netns exec "$V" iptables -A INPUT -p icmp -j NFQUEUE --queue-num 0

ip netns exec "$V" "$bin/ibd-judge" -D --config /dev/null --db-dir "$db" Q0 2> "$tmp/judge.log" &
pids+=($!)
"$bin/ibd-parse" -D -v --config /dev/null --db-dir "$db" --rule-file ipqbdb-parse/rules/ipqbdb-pcre.conf 2> "$tmp/parse.log" &
pids+=($!)
wait_for() { # file, text
    for _ in $(seq 1 500); do grep -q "$2" "$1" 2> /dev/null && return 0; sleep 0.02; done
    echo "demo.sh: no '$2' in $1:"; cat "$1"; exit 1
}
wait_for "$tmp/judge.log" "listening on"
wait_for "$tmp/parse.log" "started"
echo "== ibd-judge and ibd-parse run ($(ibd config | awk '$1 == "db-backend" {print $2}') backend)"

lost() { # source: pings lost out of 40
    ip netns exec "$A" ping -q -n -c 40 -i 0.01 -W 1 -I "$1" 10.99.0.1 2> /dev/null \
        | awk '/packets transmitted/ {print $1 - $4}'
}
caught() {
    ibd del --ls --json | tr '{' '\n' | awk -F'"caught":' '/"10.99.0.66"/ {split($2, a, ","); print a[1]}'
}
printf '\n%-6s %-44s %12s %18s %18s\n' line "log line fed to ibd-parse" probability "attacker lost" "legitimate lost"
printf '%-6s %-44s %12s %18s %18s\n' 0 "(none yet)" "0%" "$(lost 10.99.0.66)/40" "$(lost 10.99.0.20)/40"
for i in 1 2 3 4 5 6; do
    line="Nov 21 10:0$i:00 victim sshd[40$i]: Failed password for root from 10.99.0.66 port 5$i$i$i ssh2"
    echo "$line" > "$db/ibd-parse.sock"
    # Wait until the parser has banned it, then past the judge's snapshot staleness (100 ms).
    for _ in $(seq 1 250); do [ "$(caught)" = "$i" ] && break; sleep 0.02; done
    [ "$(caught)" = "$i" ] || { echo "demo.sh: the ban did not arrive"; cat "$tmp/parse.log"; exit 1; }
    sleep 0.2
    p=$(ibd del --ls | awk '$1 == "10.99.0.66" {print $2}')
    printf '%-6s %-44s %12s %18s %18s\n' "$i" "Failed password for root from 10.99.0.66" "$p" "$(lost 10.99.0.66)/40" "$(lost 10.99.0.20)/40"
done

echo
echo "== what the database says (ibd del --ls -v, ibd del --stats -v)"
ibd del --ls -v
ibd del --stats -v
kill -USR1 "${pids[0]}"
wait_for "$tmp/judge.log" "queue 0:"
echo "== what the judge counted: $(grep -m1 'queue 0:' "$tmp/judge.log" | sed 's/^ibd-judge: //')"
echo "demo finished; namespaces and database removed"
