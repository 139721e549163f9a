#!/usr/bin/env bash
# Benchmark (not a test): one backing file served by Debian's tgtd and by hydra tgtd on
# loopback, libiscsi's iscsi-perf against each in turn — 4 KiB random read at 32 in
# flight, 1 MiB sequential read at 32 in flight — then both figures and hydra/tgtd
# ratios. Usage: scripts/bench-target.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh

perf() { # port blocks random? -> "iops MBps"
    local extra=()
    [ "$3" = random ] && extra=(-r)
    iscsi-perf -m 32 -b "$2" -t "$secs" "${extra[@]}" "iscsi://127.0.0.1:$1/$iqn/1" 2>&1 \
        | tr '\r' '\n' | grep -o 'iops average [0-9]* ([0-9]* MB/s)' | tail -1 \
        | sed -E 's/iops average ([0-9]+) \(([0-9]+) MB\/s\)/\1 \2/'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

read -r t4 _ <<<"$(perf $tport 8 random)"
read -r h4 _ <<<"$(perf $hport 8 random)"
read -r _ t1 <<<"$(perf $tport 2048 seq)"
read -r _ h1 <<<"$(perf $hport 2048 seq)"
echo "workload                          tgtd            hydra           hydra/tgtd"
printf '4 KiB random read, 32 in flight  %-8s IOPS   %-8s IOPS   %s\n' "$t4" "$h4" "$(ratio "$h4" "$t4")"
printf '1 MiB seq read, 32 in flight     %-8s MB/s   %-8s MB/s   %s\n' "$t1" "$h1" "$(ratio "$h1" "$t1")"
