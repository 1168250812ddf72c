#!/usr/bin/env bash
# The postgres engine against lmdb and sqlite in one run (issue 15): the disk's fsync rate, durable
# bans per second batched and single (one writer; what bounds it: the server's round trip and
# one-row durable commits per second; then 1, 4 and 16 writers at once), the judge's
# verdict path over RECORDS records and 100,000 sources (postgres from its local view), the view's
# load time and memory, and its refresh cost at 1,000 bans/s; then the bans
# part again over TCP on loopback. Bans on postgres are also measured one key-value call per
# statement (the path before get_many/get_each/put_many), for a before and after in the same run.
# Starts a private PostgreSQL server (the Debian package's binaries, run as the user postgres,
# reached by a Unix socket in a temporary directory and on a free loopback port) and removes it at
# the end.
# Needs root (for runuser).
# Usage: scripts/bench-postgres.sh [RECORDS]    (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -1)
[ -x "$pg_bin/pg_ctl" ] || {
    echo "bench-postgres.sh: no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)" >&2
    exit 1
}
cargo build --release --quiet -p ipqbdb-benches --features postgres --bin ipqbdb-bench-fleet
tmp=$(mktemp -d)
chown postgres: "$tmp"
pg() { runuser -u postgres -- "$pg_bin/$1" "${@:2}"; }
cleanup() {
    pg pg_ctl -D "$tmp/data" -m immediate -w stop > /dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
pg initdb -D "$tmp/data" -A trust -U postgres -E UTF8 --locale C.UTF-8 > /dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pg pg_ctl -D "$tmp/data" -l "$tmp/log" -o "-k $tmp -c listen_addresses=127.0.0.1 -p $port" -w start > /dev/null
pg psql -h "$tmp" -p "$port" -d postgres -qc "CREATE DATABASE bench"
pg psql -h "$tmp" -p "$port" -d postgres -qc "CREATE DATABASE bench_tcp"
# The disk's bound on one writer: a durable commit waits for one WAL flush (fdatasync, the server's
# wal_sync_method on Linux), so one connection committing one ban at a time gets at most this rate.
echo "=== the disk under the server's data directory: WAL flushes per second (pg_test_fsync, one 8 kB write)"
runuser -u postgres -- "$pg_bin/pg_test_fsync" -s 2 -f "$tmp/data/pg_test_fsync.tmp" |
    sed -n '/one 8kB write/,/^$/p' | grep -E '^\s+(fdatasync|open_datasync) '
echo "=== over the Unix socket"
target/release/ipqbdb-bench-fleet "host=$tmp port=$port user=postgres dbname=bench" "$records"
echo "=== over TCP on loopback"
target/release/ipqbdb-bench-fleet --bans-only "host=127.0.0.1 port=$port user=postgres dbname=bench_tcp"
