#!/usr/bin/env bash
# Builds the Debian packages ipqbdb-lmdb, ipqbdb-sqlite and ipqbdb-redb, each with only its storage
# engine compiled in, into target/debian/. Needs cargo-deb (cargo install cargo-deb).
# Usage: packaging/build-debs.sh [BACKEND...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(lmdb sqlite redb)
cargo run --quiet -p ipqbdb-xtask -- docs target/docs > /dev/null
# One target directory for all variants: only the store and what links it are rebuilt per engine.
export CARGO_TARGET_DIR=$PWD/target/deb-build
for b in "${backends[@]}"; do
    cargo build --release --quiet --no-default-features --features "$b" \
        -p ipqbdb-admin -p ipqbdb-parse -p ipqbdb-judge
    cargo deb --no-build --quiet -p ipqbdb-admin --variant "$b" --output "$PWD/target/debian/"
done
ls -1 target/debian/*.deb
