#!/usr/bin/env bash
# hydra's lock manager benchmark (benches/dlm.rs), RUNS times over: each run builds
# three namespace hosts with corosync and hydra dlm_controld and measures the TCP round
# trip between two of them, lock+unlock pairs/s and p50 latencies with the master local
# and remote (1 and 16 clients), each lock latency also as a multiple of that run's
# round trip, and the recovery time after a node is cut, split per phase. Prints each
# figure's median over the runs and its spread (min-max), with the machine and the date.
# A run that fails, or that does not print every figure, fails the script. Every
# namespace, link and process is removed when a run ends.
# Usage: scripts/bench-dlm.sh [SECONDS per measurement, default 5] [RUNS, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
runs=${2:-5}
[[ "$secs" =~ ^[0-9]+([.][0-9]+)?$ && "$runs" =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 [SECONDS per measurement] [RUNS]" >&2
    exit 2
}
scripts/setup.sh
cargo bench -q --bench dlm --no-run
out=$(mktemp -d /var/tmp/hydra-bench-dlm.XXXXXX)
trap 'rm -rf "$out"' EXIT

# Every figure benches/dlm.rs prints once per run.
keys=(tcp_rtt_p50_us)
for m in local1 local16 local16on1 remote1 remote16 remote16on1; do
    keys+=("${m}_pairs_per_s" "${m}_pair_p50_us" "${m}_lock_p50_us" "${m}_lock_p50_rtt")
done
keys+=(socket16_round_trips_per_s socket16_ceiling_pairs_per_s)
keys+=(recovery_ms recovery_detection_ms recovery_fencing_ms recovery_dlm_ms recovery_grant_ms)

for r in $(seq "$runs"); do
    echo "run $r of $runs ..." >&2
    if ! HYDRA_BENCH_SECS=$secs cargo bench -q --bench dlm >"$out/run$r" 2>"$out/err$r"; then
        echo "bench-dlm: run $r failed:" >&2
        cat "$out/run$r" "$out/err$r" >&2
        exit 1
    fi
    for k in "${keys[@]}"; do
        n=$(grep -c "^figure $k [0-9.]*$" "$out/run$r" || true)
        if [ "$n" != 1 ]; then
            echo "bench-dlm: run $r printed figure $k $n times (expected once):" >&2
            cat "$out/run$r" >&2
            exit 1
        fi
    done
done

echo "hydra lock manager benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'): $runs runs, $secs s per measurement"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg) before the report"
printf '%-28s %12s   %s\n' figure median "min - max (every run)"
for k in "${keys[@]}"; do
    vals=$(cat "$out"/run* | awk -v k="$k" '$1 == "figure" && $2 == k { print $3 }' | sort -g)
    echo "$vals" | awk -v k="$k" '
        { v[NR] = $1 }
        END {
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            all = v[1]; for (i = 2; i <= NR; i++) all = all " " v[i]
            printf "%-28s %12.2f   %s - %s (%s)\n", k, med, v[1], v[NR], all
        }'
done
