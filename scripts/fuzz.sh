#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each): `scripts/fuzz.sh [SECONDS]`.
# cargo-fuzz needs nightly compiler flags; on a stable toolchain RUSTC_BOOTSTRAP=1 enables them.
# Crashes are written to fuzz/artifacts/<target>/ and make the script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
    echo "==> fuzzing $target for ${SECONDS_PER_TARGET}s"
    mkdir -p "fuzz/corpus/$target"
    status=0
    cargo fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$SECONDS_PER_TARGET" -max_len=70000 \
        > "fuzz/last-$target.log" 2>&1 || status=$?
    grep -E '^(#[0-9]+\s+DONE|Done [0-9]+ runs|==[0-9]+==|SUMMARY|thread .* panicked)' "fuzz/last-$target.log" || true
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $target failed (exit $status): see fuzz/last-$target.log" >&2
        exit 1
    fi
    if [ -n "$(ls -A "fuzz/artifacts/$target" 2>/dev/null)" ]; then
        echo "fuzz target $target found a crash: see fuzz/artifacts/$target" >&2
        exit 1
    fi
done
