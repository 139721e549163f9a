#!/usr/bin/env bash
# Benchmark (not a test) of the target: one backing file served on loopback by Debian's
# tgtd at its defaults (MaxRecvDataSegmentLength 8 KiB, FirstBurstLength 64 KiB,
# MaxBurstLength 256 KiB, one R2T), by the same tgtd tuned to what hydra offers (256 KiB
# segments, 1 MiB bursts, 256 KiB first burst, 8 R2Ts), and by hydra tgtd. The script
# prints what each login negotiated and the Data-In segment size tgtd really sends
# (strace): tgtd sends Data-In up to the initiator's MaxRecvDataSegmentLength (256 KiB
# from libiscsi) whatever its own MaxXmitDataSegmentLength says, so for reads the two
# tgtd rows differ little; for writes (Data-Out up to the target's MaxRecvDataSegmentLength,
# immediate data up to FirstBurstLength) they differ. Workloads,
# each at 32 commands in flight:
# - reads with libiscsi's iscsi-perf: 4 KiB random, 1 MiB sequential, from the page cache
#   (LUN 1) and with the backing file opened O_DIRECT (LUN 2, `bsoflags direct` on both
#   targets: every read is a cache miss that goes to the disk); bench-common.sh checks
#   that both targets number the LUNs so;
# - writes with `hydra iscsi-perf -w` (libiscsi's iscsi-perf only reads), the same client
#   for every target: 4 KiB random and 1 MiB sequential, each without and with FUA.
# Every figure is the median of RUNS runs (the targets take turns run by run) with its
# spread; the two ratios are hydra against tgtd at its defaults and against tgtd tuned.
# Usage: scripts/bench-target.sh [SECONDS per run, default 10] [RUNS, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh

targets=(tgtd tuned hydra)
url() { # target lun
    local port=$tport
    [ "$1" = hydra ] && port=$hport
    echo "iscsi://127.0.0.1:$port/$iqn/$2"
}

# row KEY LABEL FIELD UNIT LUN CLIENT ARGS...: measures one workload on every target and
# prints its line. CLIENT is libiscsi or hydra; FIELD 1 = IOPS, 2 = MB/s.
row() {
    local key=$1 label=$2 field=$3 unit=$4 lun=$5 client=$6 t tool
    shift 6
    tool=(iscsi-perf)
    [ "$client" = hydra ] && tool=("$bin" iscsi-perf)
    for _ in $(seq "$runs"); do
        for t in "${targets[@]}"; do
            case $t in
            tgtd) tgtd_params default ;;
            tuned) tgtd_params tuned ;;
            esac
            # Nothing dirty left by the run before is written back during this one, and
            # the whole file is in the page cache: anything that drops caches meanwhile
            # (the multipath tests write /proc/sys/vm/drop_caches) would turn the next
            # target's "page cache" run into disk reads.
            sync
            cat "$img" >/dev/null
            measure "$field" "$key.$t" "${tool[@]}" -m 32 -t "$secs" "$@" "$(url "$t" "$lun")"
        done
    done
    printf '%-38s %-8s %-5s %-22s %-22s %-22s %-10s %s\n' "$label" "$client" "$unit" \
        "$(cell "$key.tgtd")" "$(cell "$key.tuned")" "$(cell "$key.hydra")" \
        "$(ratio "$key.hydra" "$key.tgtd")" "$(ratio "$key.hydra" "$key.tuned")"
}

machine
echo "tgt $(dpkg-query -W -f '${Version}' tgt), libiscsi $(dpkg-query -W -f '${Version}' libiscsi-bin)"
echo "LUNs of both targets (checked): 1 = the file through the page cache, 2 = the same file with bsoflags direct"
tgtd_params default
echo "tgtd (defaults) negotiated: $(negotiated $tport)"
echo "tgtd (defaults) Data-In data segments: $(tgtd_datain)"
tgtd_params tuned
echo "tgtd (tuned) negotiated:    $(negotiated $tport)"
echo "tgtd (tuned) Data-In data segments:    $(tgtd_datain)"
echo "hydra tgtd negotiated:      $(negotiated $hport)"
echo
printf '%-38s %-8s %-5s %-22s %-22s %-22s %-10s %s\n' workload client unit \
    "tgtd (defaults)" "tgtd (tuned)" "hydra" "hydra/tgtd" "hydra/tgtd-tuned"
row r4 "4 KiB random read (page cache)" 1 IOPS 1 libiscsi -b 8 -r
row r1m "1 MiB seq read (page cache)" 2 MB/s 1 libiscsi -b 2048
row d4 "4 KiB random read (O_DIRECT, miss)" 1 IOPS 2 libiscsi -b 8 -r
row d1m "1 MiB seq read (O_DIRECT, miss)" 2 MB/s 2 libiscsi -b 2048
row w4 "4 KiB random write" 1 IOPS 1 hydra -b 8 -r -w
row w4f "4 KiB random write, FUA" 1 IOPS 1 hydra -b 8 -r -w --fua
row w1m "1 MiB seq write" 2 MB/s 1 hydra -b 2048 -w
row w1mf "1 MiB seq write, FUA" 2 MB/s 1 hydra -b 2048 -w --fua
