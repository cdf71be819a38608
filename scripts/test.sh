#!/usr/bin/env bash
# Runs every test: unit, property and golden-byte tests, end-to-end tests with real processes
# (private ClickHouse 18.16 servers, the collector and agent binaries), schema and query tests on
# modern ClickHouse (chdb), and short fuzz runs of every decoder.
#
#   scripts/test.sh
#
# Environment: PARTA_FUZZ_SECONDS (per fuzz target, default 20; 0 skips fuzzing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"

echo "==> building binaries"
cargo build --locked --workspace --bins
export PARTA_TEST_SKIP_BUILD=1

echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --no-fail-fast
    cargo test --locked --workspace --doc -q
else
    cargo test --locked --workspace
fi

FUZZ_SECONDS=${PARTA_FUZZ_SECONDS:-20}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
    echo "==> fuzzing each decoder for ${FUZZ_SECONDS}s"
    # cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
    mkdir -p target/fuzz-logs
    # protocol/fuzz: wire frames and envelopes; agent/fuzz: SNMP, DNS and ICMP replies, EDID,
    # wtmp; collector/fuzz: imported CSV files, norm expressions.
    for crate in protocol agent collector; do
        for target in $(cd "$crate" && RUSTC_BOOTSTRAP=1 cargo fuzz list); do
            log="target/fuzz-logs/$target.log"
            # Seed inputs (real replies), when the target has them, next to the working corpus.
            corpus=()
            if [ -d "$crate/fuzz/seeds/$target" ]; then
                mkdir -p "$crate/fuzz/corpus/$target"
                corpus=("fuzz/corpus/$target" "fuzz/seeds/$target")
            fi
            if (cd "$crate" && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "${corpus[@]}" -- -max_total_time="$FUZZ_SECONDS") >"$log" 2>&1; then
                echo "   $crate/$target: $(grep -E '^Done' "$log" | tail -n1)"
            else
                tail -n 40 "$log" >&2
                echo "fuzz target $crate/$target failed; input in $crate/fuzz/artifacts/$target/, log in $log" >&2
                exit 1
            fi
        done
    done
fi
echo "==> all tests passed"
