#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 20) each on its corpus in fuzz/corpus/TARGET (seed 1, so
# runs repeat), with the
# stable toolchain (RUSTC_BOOTSTRAP=1 lets it take the sanitizer flags cargo-fuzz passes). A crash fails
# the run and leaves its input in fuzz/artifacts/TARGET: add it as a regression test.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
command -v cargo-fuzz > /dev/null || cargo install --locked --quiet cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in units rule_file white_line matcher fail2ban_filter; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if ! cargo fuzz run --fuzz-dir . "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096 -seed=1 > "$log" 2>&1; then
        grep -vE "^\s+(at |[0-9]+: )" "$log" | tail -30
        echo "fuzz: $target failed (a crash leaves its input in fuzz/artifacts/$target: add it as a regression test)"
        exit 1
    fi
    echo "fuzz $target: $(grep -E '^Done' "$log")"
    rm -f "$log"
done
