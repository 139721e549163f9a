#!/usr/bin/env bash
# Benchmark (not a test) of the initiator: one backing file served on loopback by Debian's
# tgtd (at its defaults) and by hydra tgtd; against each, libiscsi's iscsi-perf and
# `hydra iscsi-perf` take turns run by run — 4 KiB random read and 1 MiB sequential read,
# 32 in flight — then the medians, their spread and the hydra/libiscsi ratios.
#
# The two clients do the same work (src/cli/iscsi_perf.rs follows libiscsi's
# utils/iscsi-perf.c and lib/init.c): READ(16) at the same LBAs (sequential from 0; random
# on any block, not aligned to the transfer size), the same login offer
# (MaxRecvDataSegmentLength, MaxBurstLength, FirstBurstLength 256 KiB; InitialR2T=No;
# HeaderDigest None,CRC32C), the same average (commands completed when the time is up,
# over that time). Where they differ: libiscsi draws LBAs with rand(), hydra with
# xorshift64*; libiscsi is one C event loop, hydra one tokio thread. A last row per
# target shows `hydra iscsi-perf` offering 1 MiB segments and 16 MiB bursts
# (--mrdsl/--max-burst), which libiscsi cannot offer: labelled, not in the ratio.
# Usage: scripts/bench-initiator.sh [SECONDS per run, default 10] [RUNS, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh

big=(--mrdsl 1048576 --max-burst 16776192)
# row TARGET PORT KEY LABEL FIELD UNIT ARGS...
row() {
    local target=$1 port=$2 key=$3 label=$4 field=$5 unit=$6 url
    shift 6
    url="iscsi://127.0.0.1:$port/$iqn/1"
    for _ in $(seq "$runs"); do
        # The whole file in the page cache for every client (see bench-target.sh).
        cat "$img" >/dev/null
        measure "$field" "$key.libiscsi" iscsi-perf -m 32 -t "$secs" "$@" "$url"
        measure "$field" "$key.hydra" "$bin" iscsi-perf -m 32 -t "$secs" "$@" "$url"
        measure "$field" "$key.big" "$bin" iscsi-perf -m 32 -t "$secs" "${big[@]}" "$@" "$url"
    done
    printf '%-11s %-32s %-5s %-22s %-22s %-14s %s\n' "$target" "$label" "$unit" \
        "$(cell "$key.libiscsi")" "$(cell "$key.hydra")" "$(ratio "$key.hydra" "$key.libiscsi")" \
        "$(cell "$key.big")"
}

machine
echo "tgt $(dpkg-query -W -f '${Version}' tgt), libiscsi $(dpkg-query -W -f '${Version}' libiscsi-bin)"
echo "tgtd negotiated:       $(negotiated $tport)"
echo "hydra tgtd negotiated: $(negotiated $hport)"
echo
printf '%-11s %-32s %-5s %-22s %-22s %-14s %s\n' target workload unit libiscsi hydra \
    hydra/libiscsi "hydra, 1 MiB PDUs offered"
for t in tgtd:$tport hydra-tgtd:$hport; do
    name=${t%%:*}; port=${t##*:}
    row "$name" "$port" "$name.r4" "4 KiB random read, 32 in flight" 1 IOPS -b 8 -r
    row "$name" "$port" "$name.r1m" "1 MiB seq read, 32 in flight" 2 MB/s -b 2048
done
