#!/usr/bin/env bash
# Builds the programs (ibd, ibd-parse, ibd-judge, ibd-xdp) in release with one storage engine, as the
# Debian package of that engine ships them, and prints the directory that holds them. The Debian
# packages (build-debs.sh) and the demos (scripts/demo.sh: lmdb, scripts/fleet-demo.sh: postgres)
# all build through here, into one target directory, so a variant compiled once serves them all:
# CI builds the workspace in release once, then only the store and what links it per engine.
# Usage: packaging/release-build.sh BACKEND   (lmdb, sqlite, redb or postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# = 1 ] || { echo "usage: packaging/release-build.sh BACKEND" >&2; exit 2; }
export CARGO_TARGET_DIR=$PWD/target/deb-build
# No debug info: cargo-deb strips the programs it packages, so it would only lengthen the build (the
# workspace's release profile keeps it for profiling the benchmarks).
export CARGO_PROFILE_RELEASE_DEBUG=0
cargo build --release --quiet --no-default-features --features "$1" \
    -p ipqbdb-admin -p ipqbdb-parse -p ipqbdb-judge -p ipqbdb-xdp
echo "$CARGO_TARGET_DIR/release"
