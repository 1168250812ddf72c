#!/usr/bin/env bash
# Judge benchmark (issue 5), inside two network namespaces made here and removed at the end.
# Per backend, with a 1,000,000-record database:
#   - packets per second through one queue, ibd-judge against an accept-all nfq loop set up the same
#     way, measured back to back in the same run, and their ratio;
#   - a paced 100,000 packets/s run of 200,000 packets: every packet must arrive (none banned) and be
#     judged (the judge's own count), with no kernel queue drop.
# Then the XDP path (ibd-xdp, issue 18) on the lmdb database, same sender, same run: packets/s
# received with no filter at all, through ibd-xdp with no source banned (every packet looked up and
# passed), against the NFQUEUE judge's figure above; packets/s dropped by ibd-xdp with every source
# banned at 100 % (counted by the program, written back as blocked counts); the attach mode, the
# cores, and the kernel memory of the maps per 1,000,000 entries.
# Usage: scripts/bench-judge.sh [RECORDS] [PACKETS]    (defaults 1000000 and 500000)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
packets=${2:-500000}
cargo build --release --quiet -p ipqbdb-judge -p ipqbdb-xdp -p ipqbdb-admin -p ipqbdb-benches --bins
bin=$PWD/target/release
tmp=$(mktemp -d)
J=ipqbdb-bj-$$
C=ipqbdb-bc-$$
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$J" 2>/dev/null || true
    ip netns del "$C" 2>/dev/null || true
    umount -l "$tmp/bpf" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$J"; ip netns add "$C"
ip link add vj netns "$J" type veth peer name vc netns "$C"
ip -n "$J" addr add 10.88.0.1/24 dev vj
sources=""
for i in $(seq 2 65); do
    ip -n "$C" addr add "10.88.0.$i/24" dev vc
    sources="${sources:+$sources,}10.88.0.$i"
done
for ns in "$J" "$C"; do ip -n "$ns" link set lo up; done
ip -n "$J" link set vj up; ip -n "$C" link set vc up
ip netns exec "$J" iptables -A INPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0

wait_for() { # file, text
    for _ in $(seq 1 500); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.02; done
    echo "timed out waiting for '$2' in $1:"; cat "$1"; exit 1
}

# run_traffic COUNT [PPS]: receiver in J, flood from C; prints "received N rate R"
run_traffic() {
    local out=$tmp/recv.out
    : > "$out"
    ip netns exec "$J" "$bin/ipqbdb-udp-count" 0.0.0.0:9000 "$1" 1000 > "$out" &
    local rp=$!
    wait_for "$out" ready
    ip netns exec "$C" "$bin/ipqbdb-udp-flood" "$sources" 10.88.0.1:9000 "$1" ${2:-} > "$tmp/flood.out"
    wait "$rp"
    grep received "$out"
}

start() { # log file, command...: runs it in the judge namespace; its pid is left in $started
    local log=$1; shift
    : > "$log"
    ip netns exec "$J" "$@" 2> "$log" > "$log.out" &
    started=$!
    pids+=("$started")
}

printf '%-8s %12s %14s %14s %7s   %s\n' backend "sent pkt/s" "judge pkt/s" "accept pkt/s" ratio "paced 100k pkt/s x 200k"
for backend in lmdb redb sqlite; do
    db=$tmp/db-$backend
    "$bin/ipqbdb-fill-db" "$db" "$backend" "$records" > /dev/null

    start "$tmp/accept.log" "$bin/ipqbdb-nfq-accept-all" 0; ap=$started
    wait_for "$tmp/accept.log" listening
    accept=$(run_traffic "$packets" | awk '{print $4}')
    sent=$(awk '{print $6}' "$tmp/flood.out")
    kill "$ap"; wait "$ap" || true

    start "$tmp/judge.log" "$bin/ibd-judge" -D --config /dev/null --db-dir "$db" Q0; jp=$started
    wait_for "$tmp/judge.log" "listening on"
    judge=$(run_traffic "$packets" | awk '{print $4}')
    kill "$jp"; wait "$jp" || true

    # Paced: nothing may be lost or pass unjudged.
    start "$tmp/judge2.log" "$bin/ibd-judge" -D --config /dev/null --db-dir "$db" Q0; jp=$started
    wait_for "$tmp/judge2.log" "listening on"
    received=$(run_traffic 200000 100000 | awk '{print $2}')
    kill -USR1 "$jp"
    wait_for "$tmp/judge2.log" "queue 0:"
    judged=$(grep -m1 "queue 0:" "$tmp/judge2.log" | awk '{print $4}')
    qdrops=$(ip netns exec "$J" awk '$1 == 0 {print $6 + $7}' /proc/net/netfilter/nfnetlink_queue)
    kill "$jp"; wait "$jp" || true
    paced="received $received, judged $judged, queue drops $qdrops"
    [ "$received" = 200000 ] && [ "$judged" = 200000 ] && [ "$qdrops" = 0 ] && paced="$paced: ok" || paced="$paced: LOSS"
    printf '%-8s %12.0f %14.0f %14.0f %7.3f   %s\n' "$backend" "$sent" "$judge" "$accept" "$(echo "$judge / $accept" | bc -l)" "$paced" | tee -a "$tmp/table.out"
done

# The XDP path. No NFQUEUE rule from here on: "no filter" is the bare stack.
ip netns exec "$J" iptables -D INPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0
db=$tmp/db-lmdb
mkdir -p "$tmp/bpf"; mount -t bpf bpf "$tmp/bpf"
blocked_sum() {
    "$bin/ibd" del --config /dev/null --db-dir "$db" --json 10.88.0.0/24 |
        grep -o '"blocked":[0-9]*' | awk -F: '{s += $2} END {print s + 0}'
}
lmdb_judge=$(awk -v b=lmdb '$1 == b {print $3}' "$tmp/table.out")
none=$(run_traffic "$packets" | awk '{print $4}')
echo
echo "XDP, $(nproc) cores, $records records in the database and the map, same sender:"
printf '  %-40s %12.0f pkt/s\n' "no filter, received" "$none" "ibd-judge (lmdb above), received" "$lmdb_judge"
for mode in native generic; do
    log=$tmp/xdp-$mode.log
    start "$log" "$bin/ibd-xdp" -D -v --config /dev/null --db-dir "$db" --pin-dir "$tmp/bpf/vj" \
        --max-entries "$records" --xdp-mode "$mode" --detach-on-exit vj; xp=$started
    wait_for "$log" "attached to"
    pass=$(run_traffic "$packets" | awk '{print $4}')
    block_mem=$(bpftool -j map show pinned "$tmp/bpf/vj/ipqbdb_block" | sed -n 's/.*"bytes_memlock":\([0-9]*\).*/\1/p')
    # Every source banned at 100 %: the kernel counts the drops and ibd-xdp writes them back.
    "$bin/ibd" ban --quiet --config /dev/null --db-dir "$db" -c 0 -t 30d ${sources//,/ }
    wait_for "$log" "written: 64," # the sync that put the 64 bans in the map
    sync_ms=$(grep -o 'written: 64,.* in [0-9]* ms' "$log" | grep -o '[0-9]* ms')
    before=$(blocked_sum)
    ip netns exec "$C" "$bin/ipqbdb-udp-flood" "$sources" 10.88.0.1:9000 "$packets" > "$tmp/flood.out"
    secs=$(awk '{print $4}' "$tmp/flood.out")
    dropped=0
    for _ in $(seq 1 100); do
        dropped=$(($(blocked_sum) - before))
        [ "$dropped" -ge "$packets" ] && break
        sleep 0.1
    done
    "$bin/ibd" del --del --config /dev/null --db-dir "$db" 10.88.0.0/24 > /dev/null
    kill "$xp"; wait "$xp" || true
    printf '  %-40s %12.0f pkt/s   xdp/judge %.2f (goal >= 3), xdp/none %.3f (goal >= 0.8)\n' \
        "ibd-xdp $mode, none banned, received" "$pass" \
        "$(echo "$pass / $lmdb_judge" | bc -l)" "$(echo "$pass / $none" | bc -l)"
    printf '  %-40s %12.0f pkt/s   (%s of %s counted as blocked)\n' \
        "ibd-xdp $mode, all banned, dropped" "$(echo "$dropped / $secs" | bc -l)" "$dropped" "$packets"
    printf '  %-40s %12.0f MB per 1,000,000 entries (per-CPU counts: only sources that send)\n' \
        "block map memory" "$(echo "$block_mem / $records" | bc -l)"
    printf '  %-40s %12s\n' "one sync of $records records" "$sync_ms"
done
