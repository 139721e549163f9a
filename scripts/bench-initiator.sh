#!/usr/bin/env bash
# Benchmark (not a test) of the initiator: one backing file served by Debian's tgtd and
# by hydra tgtd on loopback; against each, libiscsi's iscsi-perf and `hydra iscsi-perf`
# in turn — 4 KiB random read at 32 in flight, 1 MiB sequential read at 32 in flight —
# then the figures and the hydra/libiscsi ratios.
# Usage: scripts/bench-initiator.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh

perf() { # tool port blocks random? -> "iops MBps"
    local extra=() tool=iscsi-perf
    [ "$4" = random ] && extra=(-r)
    [ "$1" = hydra ] && tool="$bin iscsi-perf"
    $tool -m 32 -b "$3" -t "$secs" "${extra[@]}" "iscsi://127.0.0.1:$2/$iqn/1" 2>&1 \
        | tr '\r' '\n' | grep -o 'iops average [0-9]* ([0-9]* MB/s)' | tail -1 \
        | sed -E 's/iops average ([0-9]+) \(([0-9]+) MB\/s\)/\1 \2/'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

echo "target     workload                         libiscsi        hydra           hydra/libiscsi"
for t in tgtd:$tport hydra-tgtd:$hport; do
    name=${t%%:*}; port=${t##*:}
    read -r l4 _ <<<"$(perf libiscsi "$port" 8 random)"
    read -r h4 _ <<<"$(perf hydra "$port" 8 random)"
    read -r _ l1 <<<"$(perf libiscsi "$port" 2048 seq)"
    read -r _ h1 <<<"$(perf hydra "$port" 2048 seq)"
    printf '%-10s 4 KiB random read, 32 in flight %-8s IOPS   %-8s IOPS   %s\n' "$name" "$l4" "$h4" "$(ratio "$h4" "$l4")"
    printf '%-10s 1 MiB seq read, 32 in flight    %-8s MB/s   %-8s MB/s   %s\n' "$name" "$l1" "$h1" "$(ratio "$h1" "$l1")"
done
