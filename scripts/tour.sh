#!/usr/bin/env bash
# A newcomer's tour: build ibd, then ban, whitelist, list and expire addresses in a throw-away database
# with each storage engine. Touches nothing outside a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p ipqbdb-admin
ibd="$PWD/target/release/ibd"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/empty.toml"

for backend in lmdb sqlite redb; do
    db="$tmp/db-$backend"
    run() { echo "\$ ibd $*"; "$ibd" --config "$tmp/empty.toml" --db-dir "$db" --backend "$backend" "$@"; }
    echo "===== backend: $backend"
    echo "10.0.0.0/8 0      # the office network is never blocked" | run white
    run white --ls
    echo "--- an attacker is caught six times: its block probability doubles each time"
    for _ in 1 2 3 4 5 6; do run ban -r "sshd: failed password" 203.0.113.9; done
    echo "--- an IPv6 attacker is banned by /64 prefix; an office address is whitelisted"
    run ban -r "sshd: invalid user" 2001:db8:1:2::7 10.1.2.3
    run del --ls -v
    run del --stats -v
    echo "--- retention: keep at most 1 record (none is old enough to go yet, then all are)"
    run del --del --min-time 1h
    run del --del --min-time 0 --max-records 1
    run config | grep -E '^(db-backend|backends-compiled) '
done
echo "demo finished: every engine banned, whitelisted, listed and expired addresses"
