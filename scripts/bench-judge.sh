#!/usr/bin/env bash
# Judge benchmark (issues 5, 14 and 18), inside two network namespaces made here and removed at the end.
# The sender writes whole frames to its veth through a packet socket (no routing or UDP socket on its
# side), from 64 source addresses; on a veth pair the receiving stack runs on the sender's core.
# SENDER=udp sends through UDP sockets instead. Per backend, with a 1,000,000-record database:
#   - accepting: packets/s received through one queue, best of ROUNDS (3) interleaved rounds, one
#     sender: an accept-all loop answering each packet with its own verdict (what nfq alone does),
#     one answering each receive burst with one batch verdict, and ibd-judge (no source banned);
#     the ratios judge/per-packet (goal >= 1.4) and judge/batch (>= 0.9);
#   - saturated: every source banned at 100 %, one sender per core (nproc, pinned), so the offered
#     load exceeds what one queue takes: packets/s judged by ibd-judge on one queue and on two
#     (--queue-balance 0:1, a thread each), from the kernel's own queue counters, with the packets
#     the kernel dropped because a queue was full; goal: two queues > one (state the cores);
#   - paced: 100,000 packets/s x 200,000 accepted: every packet must arrive and be judged (the
#     judge's own count), with no kernel queue drop.
# Then the XDP path (ibd-xdp, issue 18) on the lmdb database, same sender, same run: packets/s
# received with no filter and through ibd-xdp with no source banned (every packet looked up and
# passed; goal >= 0.8 of no filter), one sender; packets/s dropped by ibd-xdp with every source
# banned, saturated as above (counted by the program and written back as blocked counts), against
# the one-queue judge's saturated figure (goal >= 3); the attach mode, the cores, the kernel memory
# of the maps per 1,000,000 entries and a sync's duration.
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
cores=$(nproc)
# One receive queue per core, as a multi-queue NIC has: native XDP runs per queue, on the core that
# sent the frame.
ip link add vj netns "$J" numtxqueues "$cores" numrxqueues "$cores" type veth \
    peer name vc netns "$C" numtxqueues "$cores" numrxqueues "$cores"
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
flood=("$bin/ipqbdb-udp-flood")
if [ "${SENDER:-raw}" = raw ]; then
    flood+=(--raw vc "$(ip -n "$J" -br link show vj | awk '{print $3}')")
fi
rounds=${ROUNDS:-3}
# One sender runs on the first core (with the receiving stack, which runs where the frame is sent);
# the receiver, the judge and the accept-all loops on the last: a scheduler that moves them onto the
# sender's core would make every figure a draw. The saturated runs pin one sender per core and leave
# the judge free.
last=$((cores - 1))

wait_for() { # file, text
    for _ in $(seq 1 500); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.02; done
    echo "timed out waiting for '$2' in $1:"; cat "$1"; exit 1
}

# send N COUNT [PPS]: N sender processes (pinned one per core) to $port, COUNT packets in
# all; leaves "sent S in T s, R packets/s" (T: the slowest sender) in $tmp/flood.out
port=9000
send() {
    local n=$1 count=$2 ps=() k
    for k in $(seq 0 $((n - 1))); do
        local pin=()
        pin=(taskset -c $((k % cores)))
        ip netns exec "$C" "${pin[@]}" "${flood[@]}" "$sources" "10.88.0.1:$port" $((count / n)) ${3:-} \
            > "$tmp/flood.$k" &
        ps+=($!)
    done
    wait "${ps[@]}"
    cat "$tmp"/flood.[0-9]* | awk '{s += $2; if ($4 > t) t = $4}
        END {printf "sent %d in %.3f s, %.0f packets/s\n", s, t, s / t}' > "$tmp/flood.out"
    rm -f "$tmp"/flood.[0-9]*
}

# run_traffic COUNT [PPS]: receiver in J, one sender from C to $port (9000: queue 0; 9001: queues
# 0 and 1); prints "received N rate R"
run_traffic() {
    local out=$tmp/recv.out
    : > "$out"
    ip netns exec "$J" taskset -c "$last" "$bin/ipqbdb-udp-count" "0.0.0.0:$port" "$1" 1000 > "$out" &
    local rp=$!
    wait_for "$out" ready
    send 1 "$@"
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
    start "$tmp/accept.log" taskset -c "$last" "$bin/ipqbdb-nfq-accept-all" 0 "$1"; ap=$started
    wait_for "$tmp/accept.log" listening
    run_traffic "$packets" | awk '{print $4}'
    kill "$ap"; wait "$ap" || true
}

# judge_rate QSPEC...: packets/s through ibd-judge on the queues given
judge_rate() {
    start "$tmp/judge.log" taskset -c "$last" "$bin/ibd-judge" -D --config /dev/null --db-dir "$db" "$@"; jp=$started
    wait_for "$tmp/judge.log" "listening on"
    run_traffic "$packets" | awk '{print $4}'
    kill "$jp"; wait "$jp" || true
}

# The kernel's counters summed over the judge namespace's queues: packets handed to the judge
# (id sequence less those the socket could not take), and packets dropped because a queue was full
# or its socket's buffer was.
queue_counts() {
    ip netns exec "$J" awk '{judged += $8 - $7; full += $6 + $7} END {print judged + 0, full + 0}' \
        /proc/net/netfilter/nfnetlink_queue
}

# saturated QSPEC...: every source banned; one sender per core; prints "judged/s kernel-drops"
saturated() {
    start "$tmp/judge.log" "$bin/ibd-judge" -D --config /dev/null --db-dir "$db" "$@"; jp=$started
    wait_for "$tmp/judge.log" "listening on"
    read -r j0 f0 < <(queue_counts)
    send "$cores" "$packets"
    read -r j1 f1 < <(queue_counts)
    kill "$jp"; wait "$jp" || true
    awk -v j=$((j1 - j0)) -v f=$((f1 - f0)) -v t="$(awk '{print $4}' "$tmp/flood.out")" \
        'BEGIN {printf "%.0f %d\n", j / t, f}'
}

# The largest of the figures, or of the lines by their first figure.
max() { printf '%s\n' "$@" | sort -g -k1,1 | tail -1; }
ban_all() { "$bin/ibd" ban --quiet --config /dev/null --db-dir "$db" -c 0 -t 30d ${sources//,/ }; }
unban_all() { "$bin/ibd" del --del --config /dev/null --db-dir "$db" 10.88.0.0/24 > /dev/null; }

echo "nproc $cores; sender ${SENDER:-raw}; best of $rounds rounds; load before:$(uptime | sed 's/.*load average//')"
printf '%-7s %9s %9s %9s %9s %7s %7s | %-26s %-26s %5s | %s\n' backend "sent/s" "1-by-1/s" "batch/s" \
    "judge/s" "j/1-by-1" "j/batch" "saturated 1 queue/s (full)" "2 queues/s (full)" "2q/1q" \
    "paced 100k pkt/s x 200k"
for backend in ${BACKENDS:-lmdb redb sqlite}; do
    db=$tmp/db-$backend
    "$bin/ipqbdb-fill-db" "$db" "$backend" "$records" > /dev/null

    port=9000
    singles=() batches=() judges=() sents=()
    for _ in $(seq 1 "$rounds"); do
        singles+=("$(accept_rate per-packet)")
        sents+=("$(awk '{print $6}' "$tmp/flood.out")")
        batches+=("$(accept_rate batch)")
        judges+=("$(judge_rate Q0)")
    done
    single=$(max "${singles[@]}"); batch=$(max "${batches[@]}"); judge=$(max "${judges[@]}")
    sent=$(max "${sents[@]}")

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

    # Saturated, everything banned: one queue, two queues, best of the rounds each.
    ban_all
    one=() two=()
    for _ in $(seq 1 "$rounds"); do
        port=9000; one+=("$(saturated Q0)")
        port=9001; two+=("$(saturated Q0 Q1)")
    done
    port=9000
    unban_all
    read -r sat1 full1 < <(max "${one[@]}")
    read -r sat2 full2 < <(max "${two[@]}")

    printf '%-7s %9.0f %9.0f %9.0f %9.0f %7.2f %7.2f | %-26s %-26s %5.2f | %s\n' "$backend" "$sent" \
        "$single" "$batch" "$judge" "$(echo "$judge / $single" | bc -l)" \
        "$(echo "$judge / $batch" | bc -l)" "$sat1 ($full1)" "$sat2 ($full2)" \
        "$(echo "$sat2 / $sat1" | bc -l)" "$paced" | tee -a "$tmp/table.out"
    echo "$backend $sat1" >> "$tmp/saturated.out"
done

# The XDP path. No NFQUEUE rule from here on: "no filter" is the bare stack.
ip netns exec "$J" iptables -D INPUT -p udp --dport 9000 -j NFQUEUE --queue-num 0
db=$tmp/db-lmdb
[ -d "$db" ] || "$bin/ipqbdb-fill-db" "$db" lmdb "$records" > /dev/null
mkdir -p "$tmp/bpf"; mount -t bpf bpf "$tmp/bpf"
blocked_sum() {
    "$bin/ibd" del --config /dev/null --db-dir "$db" --json 10.88.0.0/24 |
        grep -o '"blocked":[0-9]*' | awk -F: '{s += $2} END {print s + 0}'
}
judge_sat=$(awk '$1 == "lmdb" {print $2}' "$tmp/saturated.out")
if [ -z "$judge_sat" ]; then
    ban_all
    judge_sat=$(port=9000; saturated Q0 | awk '{print $1}')
    unban_all
fi
nones=()
for _ in $(seq 1 "$rounds"); do nones+=("$(run_traffic "$packets" | awk '{print $4}')"); done
none=$(max "${nones[@]}")
echo
echo "XDP, $cores cores, $records records in the database and the map, same sender:"
printf '  %-44s %10.0f pkt/s\n' "no filter, received (1 sender)" "$none" \
    "ibd-judge on lmdb, saturated, judged ($cores senders)" "$judge_sat"
for mode in native generic; do
    log=$tmp/xdp-$mode.log
    start "$log" "$bin/ibd-xdp" -D -v --config /dev/null --db-dir "$db" --pin-dir "$tmp/bpf/vj" \
        --max-entries "$((records + 1000))" --xdp-mode "$mode" --detach-on-exit vj; xp=$started
    wait_for "$log" "attached to"
    passes=()
    for _ in $(seq 1 "$rounds"); do passes+=("$(run_traffic "$packets" | awk '{print $4}')"); done
    pass=$(max "${passes[@]}")
    block_mem=$(bpftool -j map show pinned "$tmp/bpf/vj/ipqbdb_block" | sed -n 's/.*"bytes_memlock":\([0-9]*\).*/\1/p')
    # Every source banned at 100 %: the kernel counts the drops and ibd-xdp writes them back.
    ban_all
    wait_for "$log" "written: 64," # the sync that put the 64 bans in the map
    sync_ms=$(grep -o 'written: 64,.* in [0-9]* ms' "$log" | grep -o '[0-9]* ms')
    drops=()
    for _ in $(seq 1 "$rounds"); do
        before=$(blocked_sum)
        send "$cores" "$packets"
        secs=$(awk '{print $4}' "$tmp/flood.out")
        dropped=0
        for _ in $(seq 1 100); do
            dropped=$(($(blocked_sum) - before))
            [ "$dropped" -ge "$packets" ] && break
            sleep 0.1
        done
        drops+=("$(echo "$dropped / $secs" | bc -l) $dropped")
    done
    read -r drop dropped < <(max "${drops[@]}")
    unban_all
    kill "$xp"; wait "$xp" || true
    printf '  %-44s %10.0f pkt/s   xdp/none %.3f (goal >= 0.8)\n' \
        "ibd-xdp $mode, none banned, received" "$pass" "$(echo "$pass / $none" | bc -l)"
    printf '  %-44s %10.0f pkt/s   xdp/judge %.2f (goal >= 3); %s of %s counted as blocked\n' \
        "ibd-xdp $mode, all banned, dropped ($cores senders)" "$drop" \
        "$(echo "$drop / $judge_sat" | bc -l)" "$dropped" "$packets"
    printf '  %-44s %10.0f MB per 1,000,000 entries (per-CPU counts: only sources that send)\n' \
        "block map memory" "$(echo "$block_mem / ($records + 1000)" | bc -l)"
    printf '  %-44s %10s\n' "one sync of $records records" "$sync_ms"
done
echo "load after:$(uptime | sed 's/.*load average//')"
