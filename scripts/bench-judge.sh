#!/usr/bin/env bash
# Judge benchmark (issues 5 and 14), inside two network namespaces made here and removed at the end.
# Per backend, with a 1,000,000-record database, measured back to back in the same run:
#   - packets per second through one queue: an accept-all loop answering each packet with its own
#     verdict (what nfq alone does), an accept-all loop answering each receive burst with one batch
#     verdict, and ibd-judge; the ratios judge/per-packet (goal >= 1.4) and judge/batch (>= 0.9);
#   - ibd-judge on two queues (--queue-balance 0:1, flows spread by address hash; one thread each)
#     against its one-queue figure (goal > 1; it depends on free cores: nproc is printed);
#   - a paced 100,000 packets/s run of 200,000 packets: every packet must arrive (none banned) and be
#     judged (the judge's own count), with no kernel queue drop.
# Then the XDP path (ibd-xdp, issue 18) on the lmdb database, same sender, same run: packets/s
# received with no filter at all, through ibd-xdp with no source banned (every packet looked up and
# passed), against the NFQUEUE judge's figure above; packets/s dropped by ibd-xdp with every source
# banned at 100 % (counted by the program, written back as blocked counts); the attach mode, the
# cores, and the kernel memory of the maps per 1,000,000 entries.
# Usage: scripts/bench-judge.sh [RECORDS] [PACKETS]    (defaults 1000000 and 500000; BACKENDS="redb" for one)
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
ip netns exec "$J" iptables -A INPUT -p udp --dport 9001 -j NFQUEUE --queue-balance 0:1

wait_for() { # file, text
    for _ in $(seq 1 500); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.02; done
    echo "timed out waiting for '$2' in $1:"; cat "$1"; exit 1
}

# run_traffic COUNT [PPS]: receiver in J, flood from C to $port (9000: queue 0; 9001: queues 0
# and 1); prints "received N rate R"
port=9000
run_traffic() {
    local out=$tmp/recv.out
    : > "$out"
    ip netns exec "$J" "$bin/ipqbdb-udp-count" "0.0.0.0:$port" "$1" 1000 > "$out" &
    local rp=$!
    wait_for "$out" ready
    ip netns exec "$C" "$bin/ipqbdb-udp-flood" "$sources" "10.88.0.1:$port" "$1" ${2:-} > "$tmp/flood.out"
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

# accept_rate MODE: packets/s of the accept-all loop in MODE (per-packet or batch)
accept_rate() {
    start "$tmp/accept.log" "$bin/ipqbdb-nfq-accept-all" 0 "$1"; ap=$started
    wait_for "$tmp/accept.log" listening
    run_traffic "$packets" | awk '{print $4}'
    kill "$ap"; wait "$ap" || true
}

# judge_rate QSPEC...: packets/s through ibd-judge on the queues given
judge_rate() {
    start "$tmp/judge.log" "$bin/ibd-judge" -D --config /dev/null --db-dir "$db" "$@"; jp=$started
    wait_for "$tmp/judge.log" "listening on"
    run_traffic "$packets" | awk '{print $4}'
    kill "$jp"; wait "$jp" || true
}

echo "nproc $(nproc); load before:$(uptime | sed 's/.*load average//')"
printf '%-7s %10s %10s %10s %10s %7s %7s %10s %6s   %s\n' backend "sent/s" "1-by-1/s" "batch/s" \
    "judge/s" "j/1-by-1" "j/batch" "2 queues/s" "2q/1q" "paced 100k pkt/s x 200k"
for backend in ${BACKENDS:-lmdb redb sqlite}; do
    db=$tmp/db-$backend
    "$bin/ipqbdb-fill-db" "$db" "$backend" "$records" > /dev/null

    port=9000
    single=$(accept_rate per-packet)
    sent=$(awk '{print $6}' "$tmp/flood.out")
    batch=$(accept_rate batch)
    judge=$(judge_rate Q0)
    port=9001
    judge2=$(judge_rate Q0 Q1)
    port=9000

    # Paced: nothing may be lost or pass unjudged.
    start "$tmp/judge2.log" "$bin/ibd-judge" -D --config /dev/null --db-dir "$db" Q0; jp=$started
    wait_for "$tmp/judge2.log" "listening on"
    received=$(run_traffic 200000 100000 | awk '{print $2}')
    kill -USR1 "$jp"
    wait_for "$tmp/judge2.log" "queue 0:"
    judged=$(grep -m1 "queue 0:" "$tmp/judge2.log" | awk '{print $4}')
    wait_for "$tmp/judge2.log" "longest pause"
    pause=$(grep -m1 "longest pause" "$tmp/judge2.log" | sed 's/.*verdicts \([0-9]*\) ms.*/\1/')
    qdrops=$(ip netns exec "$J" awk '$1 == 0 {print $6 + $7}' /proc/net/netfilter/nfnetlink_queue)
    kill "$jp"; wait "$jp" || true
    paced="received $received, judged $judged, queue drops $qdrops, longest pause $pause ms"
    [ "$received" = 200000 ] && [ "$judged" = 200000 ] && [ "$qdrops" = 0 ] && paced="$paced: ok" || paced="$paced: LOSS"
    printf '%-7s %10.0f %10.0f %10.0f %10.0f %7.2f %7.2f %10.0f %6.2f   %s\n' "$backend" "$sent" \
        "$single" "$batch" "$judge" "$(echo "$judge / $single" | bc -l)" \
        "$(echo "$judge / $batch" | bc -l)" "$judge2" "$(echo "$judge2 / $judge" | bc -l)" "$paced" | tee -a "$tmp/table.out"
done

# The XDP path. No NFQUEUE rule from here on: "no filter" is the bare stack.
ip netns exec "$J" iptables -D INPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0
db=$tmp/db-lmdb
mkdir -p "$tmp/bpf"; mount -t bpf bpf "$tmp/bpf"
blocked_sum() {
    "$bin/ibd" del --config /dev/null --db-dir "$db" --json 10.88.0.0/24 |
        grep -o '"blocked":[0-9]*' | awk -F: '{s += $2} END {print s + 0}'
}
lmdb_judge=$(awk -v b=lmdb '$1 == b {print $5}' "$tmp/table.out")
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
echo "load after:$(uptime | sed 's/.*load average//')"
