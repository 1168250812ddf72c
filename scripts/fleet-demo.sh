#!/usr/bin/env bash
# A fleet sharing one ban database, as root: three hosts (network namespaces mail, web and dns this
# script makes and removes), each running ibd-judge and ibd-parse with a database directory of its
# own, all on one private PostgreSQL server (the Debian package's binaries, run as the user
# postgres, reached by a Unix socket in a temporary directory). An sshd attack is logged on the mail
# host only; after each line, the attacker and a legitimate host each send 40 pings to every host.
# The mail host's parser bans, and the web and dns hosts' judges drop the attacker's packets too,
# from their local views, within the staleness bound. Nothing outside the namespaces is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "fleet-demo.sh: run as root (it makes network namespaces)"; exit 1; }
for tool in ip iptables ping runuser; do
    command -v "$tool" > /dev/null || { echo "fleet-demo.sh: $tool is missing (apt-get install iproute2 iptables iputils-ping)"; exit 1; }
done
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -1)
[ -x "$pg_bin/pg_ctl" ] || { echo "fleet-demo.sh: no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)"; exit 1; }
# The programs as the postgres package ships them, built where the packages are built (see
# packaging/release-build.sh).
bin=$(packaging/release-build.sh postgres)
tmp=$(mktemp -d)
chmod 755 "$tmp"
hosts=(mail web dns)
N=ipqbdb-fleet-net-$$
pids=()
pg() { runuser -u postgres -- "$pg_bin/$1" "${@:2}"; }
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
    wait 2> /dev/null || true
    for h in "${hosts[@]}"; do ip netns del "ipqbdb-fleet-$h-$$" 2> /dev/null || true; done
    ip netns del "$N" 2> /dev/null || true
    pg pg_ctl -D "$tmp/pg/data" -m immediate -w stop > /dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "== one PostgreSQL server (private cluster in $tmp/pg, Unix socket only)"
mkdir "$tmp/pg"; chown postgres: "$tmp/pg"
pg initdb -D "$tmp/pg/data" -A trust -U postgres -E UTF8 --locale C.UTF-8 > /dev/null
pg pg_ctl -D "$tmp/pg/data" -l "$tmp/pg/log" -o "-k $tmp/pg -c listen_addresses=" -w start > /dev/null
pg psql -h "$tmp/pg" -d postgres -qc "CREATE DATABASE ipqbdb"

echo "== a network 10.98.0.0/24 (bridge in namespace $N): the attacker 10.98.0.66, a legitimate host 10.98.0.20"
ip netns add "$N"
ip -n "$N" link add br0 type bridge
ip -n "$N" link set br0 up
ip -n "$N" link set lo up
ip -n "$N" addr add 10.98.0.66/24 dev br0
ip -n "$N" addr add 10.98.0.20/24 dev br0
n=0
for h in "${hosts[@]}"; do
    n=$((n + 1))
    ns=ipqbdb-fleet-$h-$$
    ip netns add "$ns"
    ip link add "v$h" netns "$ns" type veth peer name "p$h" netns "$N"
    ip -n "$N" link set "p$h" master br0 up
    ip -n "$ns" addr add "10.98.0.$n/24" dev "v$h"
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "v$h" up
    ip netns exec "$ns" iptables -A INPUT -p icmp -j NFQUEUE --queue-num 0
    mkdir -p "$tmp/$h"
    cat > "$tmp/$h/ipqbdb.toml" << CONF
backend = "postgres"
postgres-url = "host=$tmp/pg user=postgres dbname=ipqbdb"
host-name = "$h"
db-dir = "$tmp/$h/db"
CONF
    ip netns exec "$ns" "$bin/ibd-judge" -D --config "$tmp/$h/ipqbdb.toml" Q0 2> "$tmp/$h/judge.log" &
    pids+=($!)
    ip netns exec "$ns" "$bin/ibd-parse" -D --config "$tmp/$h/ipqbdb.toml" \
        --rule-file ipqbdb-parse/rules/ipqbdb-pcre.conf 2> "$tmp/$h/parse.log" &
    pids+=($!)
    echo "   host $h: 10.98.0.$n, ibd-judge on queue 0 and ibd-parse, database directory $tmp/$h/db"
done
wait_for() { # file, text
    for _ in $(seq 1 1000); do grep -q "$2" "$1" 2> /dev/null && return 0; sleep 0.02; done
    echo "fleet-demo.sh: no '$2' in $1:"; cat "$1"; exit 1
}
for h in "${hosts[@]}"; do
    wait_for "$tmp/$h/judge.log" "listening on"
    wait_for "$tmp/$h/parse.log" "started"
done
ibd() { "$bin/ibd" --config "$tmp/mail/ipqbdb.toml" "$@"; }
echo "== every host runs ibd-judge and ibd-parse ($(ibd config | awk '$1 == "db-backend" {print $2}') backend, one server)"

lost() { # source, host number: pings lost out of 40 (ping fails when it loses all: not an error)
    { ip netns exec "$N" ping -q -n -c 40 -i 0.01 -W 1 -I "$1" "10.98.0.$2" 2> /dev/null || true; } \
        | awk '/packets transmitted/ {print $1 - $4}'
}
caught() {
    ibd del --ls --json | tr '{' '\n' | awk -F'"caught":' '/"10.98.0.66"/ {split($2, a, ","); print a[1]}'
}
row() { # line, text, probability
    printf '%-5s %-44s %11s %10s %10s %10s %12s\n' "$1" "$2" "$3" \
        "$(lost 10.98.0.66 1)/40" "$(lost 10.98.0.66 2)/40" "$(lost 10.98.0.66 3)/40" \
        "$(($(lost 10.98.0.20 1) + $(lost 10.98.0.20 2) + $(lost 10.98.0.20 3)))/120"
}
echo
echo "The attacker's pings lost at each host, and the legitimate host's lost at all three together:"
printf '\n%-5s %-44s %11s %10s %10s %10s %12s\n' step "what happened (on which host)" probability \
    "mail" "web" "dns" "legitimate"
row 0 "(nothing yet)" "0%"
for i in 1 2 3 4 5 6; do
    line="Nov 21 10:0$i:00 mail sshd[40$i]: Failed password for root from 10.98.0.66 port 5$i$i$i ssh2"
    echo "$line" > "$tmp/mail/db/ibd-parse.sock"
    # Wait until the mail host's parser has banned it, then past the judges' staleness (100 ms).
    for _ in $(seq 1 250); do [ "$(caught)" = "$i" ] && break; sleep 0.02; done
    [ "$(caught)" = "$i" ] || { echo "fleet-demo.sh: the ban did not arrive"; cat "$tmp/mail/parse.log"; exit 1; }
    sleep 0.2
    row "$i" "sshd: Failed password from 10.98.0.66 (mail)" "$(ibd del --ls | awk '$1 == "10.98.0.66" {print $2}')"
done
# An administrator on the dns host bans it at 100 % at once: every host drops every packet of it.
# The admin replaces the record with a 30-day one (a ban keeps an existing record's half-life): at
# 100 % a packet then passes with probability 3e-7 per second elapsed. With the rule's 2 hours it
# was 1e-4 per second, and the check below, seconds later, saw one of its 120 pings pass now and
# then.
"$bin/ibd" --config "$tmp/dns/ipqbdb.toml" del --del 10.98.0.66 > /dev/null
"$bin/ibd" --config "$tmp/dns/ipqbdb.toml" ban -q -c 0 -t 30d -r "admin on dns" 10.98.0.66
sleep 0.2
row 7 "ibd del, ibd ban -c 0 -t 30d 10.98.0.66 (dns)" "$(ibd del --ls | awk '$1 == "10.98.0.66" {print $2}')"
last=$(for h in 1 2 3; do lost 10.98.0.66 "$h"; done | sort -u)
[ "$last" = 40 ] || { echo "fleet-demo.sh: a host still passes the attacker's packets at 100 % (lost: $last)"; exit 1; }
legit=$(for h in 1 2 3; do lost 10.98.0.20 "$h"; done | sort -u)
[ "$legit" = 0 ] || { echo "fleet-demo.sh: the legitimate host lost packets"; exit 1; }

echo
echo "== the shared database (ibd del --ls -v on any host)"
ibd del --ls -v
for i in 0 1 2; do
    h=${hosts[$i]}
    kill -USR1 "${pids[$((2 * i))]}" # the judges are started first on each host
    wait_for "$tmp/$h/judge.log" "queue 0:"
    echo "== $h's judge counted: $(grep -m1 'queue 0:' "$tmp/$h/judge.log" | sed 's/^ibd-judge: //')"
done
echo "fleet demo finished; namespaces, databases and server removed"
