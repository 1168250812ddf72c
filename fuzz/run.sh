#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 20) each on its corpus in fuzz/corpus/TARGET (seed 1, so
# runs repeat), with the stable toolchain (RUSTC_BOOTSTRAP=1 lets it take the flags cargo-fuzz passes).
# A crash fails the run and leaves its input in fuzz/artifacts/TARGET: add it as a regression test.
#
# Built without a sanitizer (-s none), with overflow checks and debug assertions: the code the targets
# reach has no `unsafe` and no C, so AddressSanitizer would find nothing there that Rust's own checks
# miss, while instrumenting every dependency with it more than doubled the build and slowed each input
# two to three times. The fuzz crate builds with one pure-Rust engine (fuzz/Cargo.toml) for the same
# reason.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
# Unoptimised: it only drives cargo and libFuzzer, and so compiles in a fraction of the time.
command -v cargo-fuzz > /dev/null || cargo install --locked --quiet --debug cargo-fuzz
export RUSTC_BOOTSTRAP=1
# Line tables are enough for a crash's backtrace; full debug info only lengthens the build.
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
targets=(units rule_file white_line matcher fail2ban_filter)
# All targets in one build, so their links run side by side.
cargo fuzz build --fuzz-dir . -s none
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if ! cargo fuzz run --fuzz-dir . -s none "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096 -seed=1 > "$log" 2>&1; then
        grep -vE "^\s+(at |[0-9]+: )" "$log" | tail -30
        echo "fuzz: $target failed (a crash leaves its input in fuzz/artifacts/$target: add it as a regression test)"
        exit 1
    fi
    echo "fuzz $target: $(grep -E '^Done' "$log")"
    rm -f "$log"
done
