#!/usr/bin/env bash
# Run every cargo-fuzz target for N seconds each (default 60): scripts/fuzz.sh [secs]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
for t in $(cargo +nightly fuzz list); do
    echo "== fuzz $t for ${secs}s"
    mkdir -p corpus/$t
    cargo +nightly fuzz run "$t" corpus/$t -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | tail -3
done
