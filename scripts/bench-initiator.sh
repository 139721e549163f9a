#!/usr/bin/env bash
# Benchmark (not a test) of the initiator: one backing file served by Debian's tgtd and
# by hydra tgtd on loopback; against each, libiscsi's iscsi-perf and `hydra iscsi-perf`
# in turn — 4 KiB random read at 32 in flight, 1 MiB sequential read at 32 in flight —
# then the figures and the hydra/libiscsi ratios.
# Usage: scripts/bench-initiator.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
scripts/setup.sh
cargo build --release -q
bin=$PWD/build/release/hydra
work=$(mktemp -d /var/tmp/hydra-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM
img=$work/disk.img
# Real data (not a sparse file) so that both targets read real page-cache pages.
dd if=/dev/urandom of="$img" bs=1M count=1024 status=none
# Flush it to disk first: writeback running during the runs skews them by 2x.
sync "$img"
cat "$img" > /dev/null
iqn=iqn.2026-11.org.hydra:bench
tport=3262; hport=3263

/usr/sbin/tgtd -f --iscsi portal=127.0.0.1:$tport -C 7 >"$work/tgtd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do tgtadm -C 7 --lld iscsi --mode sys --op show >/dev/null 2>&1 && break; sleep 0.1; done
tgtadm -C 7 --lld iscsi --mode target --op new --tid 1 -T $iqn
tgtadm -C 7 --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 -b "$img"
tgtadm -C 7 --lld iscsi --mode target --op bind --tid 1 -I ALL

printf '<target %s>\n    backing-store %s\n</target>\n' $iqn "$img" > "$work/targets.conf"
"$bin" tgtd -f --iscsi portal=127.0.0.1:$hport -C 7 --run-dir "$work/run" --conf "$work/targets.conf" 2>"$work/hydra.log" &
pids+=($!)
for _ in $(seq 50); do [ -S "$work/run/socket.7" ] && break; sleep 0.1; done

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
