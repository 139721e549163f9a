#!/usr/bin/env bash
# Benchmark (not a test) of the takeover (issue 15 §3, "Tests and benchmark"): the
# two-node scenario of tests/takeover.rs, RUNS times over, each on a fresh bed of network
# namespaces (tests/common/sanbed.rs: a storage host with hydra tgtd, two nodes with
# corosync at token 1000 ms and two_node, the node daemon's map over two paths, hydra
# dlm_controld fencing through hydra fence_scsi on it). Node 1 holds the ext4 mounted
# with `hydra mount` and writes; node 2 waits with `hydra mount -o lockwait`; node 1's
# cluster link is cut. Printed per phase, from the cut:
#   detection          cut -> node 2's dlm_controld sees node 1 gone (`left [1 nodedown]`)
#   fencing            -> `fence result 1 success` (fence_scsi PREEMPT AND ABORT on the map)
#   dlm recovery       -> `hydra_mount: dlm_recover generation N done` (locking resumes)
#   grant and replay   -> the kernel's `EXT4-fs (loopN): recovery complete` on node 2:
#                         the queued lock granted, hydra mount's probe and key check,
#                         mount(2) with ext4's journal replay
#   mount rest         -> the test sees it mounted (the rest of mount(2), hydra mount's
#                         record, its exit)
# The daemon's stamps are put on the test's clock by a calibration join just before
# the cut, the kernel's by a line written to /dev/kmsg at the cut. The bound the issue
# sets: cut -> node 2 mounted <= token + consensus + 1 s, corosync's consensus being
# 1.2 x token by default (corosync.conf(5)): 1000 + 1200 + 1000 = 3200 ms.
# Then `hydra fence_scsi -o off` alone (node 2 fencing node 1 through its map, as
# dlm_controld runs it, process start included), FENCE_RUNS times on one bed.
# Debian's fence_scsi runs sg_persist on an sg device (/dev/sg*, the kernel's SCSI
# generic driver for an sd disk); hydra's LUNs reach the nodes through the userspace
# initiator and a loop device, never as a kernel SCSI disk, so there is nothing for
# sg_persist to open: the script checks and says so instead of comparing.
# Usage: scripts/bench-takeover.sh [RUNS, default 5] [FENCE_RUNS, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
fence_runs=${2:-20}
[[ "$runs" =~ ^[1-9][0-9]*$ && "$fence_runs" =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 [RUNS] [FENCE_RUNS]" >&2
    exit 2
}
scripts/setup.sh
cargo test --release -q -p hydra --test takeover --no-run
out=$(mktemp -d /var/tmp/hydra-bench-takeover.XXXXXX)
trap 'rm -rf "$out"' EXIT

# Every figure tests/takeover.rs prints once per run (HYDRA_TAKEOVER_FIGURES).
keys=(takeover_ms detection_ms fencing_ms dlm_recovery_ms grant_and_replay_ms mount_rest_ms bound_ms)
for r in $(seq "$runs"); do
    echo "takeover run $r of $runs ..." >&2
    if ! HYDRA_TAKEOVER_FIGURES=1 cargo test --release -q -p hydra --test takeover \
        two_nodes_cut_node_is_fenced_before_the_survivor_mounts -- --exact --nocapture \
        >"$out/run$r" 2>"$out/err$r"; then
        echo "bench-takeover: run $r failed:" >&2
        tail -n 80 "$out/err$r" >&2
        cat "$out/run$r" >&2
        exit 1
    fi
    for k in "${keys[@]}"; do
        n=$(grep -c "^figure $k [0-9.]*$" "$out/run$r" || true)
        if [ "$n" != 1 ]; then
            echo "bench-takeover: run $r printed figure $k $n times (expected once):" >&2
            cat "$out/run$r" >&2
            exit 1
        fi
    done
done

echo "fence_scsi -o off alone, $fence_runs times ..." >&2
if ! HYDRA_BENCH_RUNS=$fence_runs cargo test --release -q -p hydra --test takeover \
    bench_fence_scsi_off -- --exact --ignored --nocapture >"$out/fence" 2>"$out/fence.err"; then
    echo "bench-takeover: the fence_scsi bench failed:" >&2
    tail -n 80 "$out/fence.err" >&2
    exit 1
fi
n=$(grep -c '^figure fence_off_ms [0-9.]*$' "$out/fence" || true)
[ "$n" = "$fence_runs" ] || {
    echo "bench-takeover: $n fence_off_ms figures, expected $fence_runs" >&2
    exit 1
}

# summary FILES... KEY -> "median min max all" of the figure KEY in FILES.
summary() {
    local k=${*: -1}
    cat "${@:1:$#-1}" | awk -v k="$k" '$1 == "figure" && $2 == k { print $3 }' | sort -g | awk '
        { v[NR] = $1 }
        END {
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            all = v[1]; for (i = 2; i <= NR; i++) all = all " " v[i]
            printf "%.1f %s %s %s\n", med, v[1], v[NR], all
        }'
}
row() { # row LABEL KEY FILES...
    local label=$1 k=$2
    shift 2
    read -r med min max all <<<"$(summary "$@" "$k")"
    printf '%-44s %10s   %s - %s (%s)\n' "$label" "$med" "$min" "$max" "$all"
}

echo "hydra takeover benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'): $runs runs of the two-node takeover, $fence_runs of fence_scsi -o off"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg) before the report"
printf '%-44s %10s   %s\n' "ms from the cut (phases: each from the last)" median "min - max (every run)"
row "corosync detection" detection_ms "$out"/run*
row "fencing (fence_scsi through dlm_controld)" fencing_ms "$out"/run*
row "DLM recovery" dlm_recovery_ms "$out"/run*
row "lock grant + mount(2) to journal replayed" grant_and_replay_ms "$out"/run*
row "rest of the mount, until the test saw it" mount_rest_ms "$out"/run*
row "cut -> node 2 mounted" takeover_ms "$out"/run*
row "bound: token + consensus + 1 s" bound_ms "$out"/run*
read -r med _ max _ <<<"$(summary "$out"/run* takeover_ms)"
read -r bound _ <<<"$(summary "$out"/run* bound_ms)"
awk -v m="$med" -v x="$max" -v b="$bound" 'BEGIN {
    printf "cut -> mounted: median %.2fx of the bound, slowest run %.2fx (%s)\n", m / b, x / b,
        (x <= b) ? "every run within it" : "NOT every run within it"
}'
echo
row "fence_scsi -o off alone (ms)" fence_off_ms "$out/fence"
if compgen -G '/dev/sg*' >/dev/null; then
    echo "Debian's fence_scsi / sg_persist: /dev/sg* exists here, but hydra's LUN is not a kernel SCSI disk on this machine (userspace initiator, loop device): no comparison"
else
    echo "Debian's fence_scsi / sg_persist: not compared: they need an sg device (/dev/sg*) and this machine has none"
fi
