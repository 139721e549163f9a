#!/usr/bin/env bash
# The long fault-injection run (issue 16): tests/faults.rs over many seeds and rounds on
# the two-node shared-storage bed, its figures printed as a table.
#
#   scripts/faults.sh [SEEDS] [ROUNDS]     # default: seeds 1-20, 25 rounds each
#
# SEEDS is a count (1..=N) or a comma list. Each seed runs on a fresh bed; a failing seed
# stops the run and prints the line that replays it. Needs root (namespaces, loop
# devices, FUSE) and corosync (scripts/setup.sh installs what is missing). Run it on an
# idle machine: the bed's corosync token is 1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-20}
rounds=${2:-25}
if [[ $seeds =~ ^[1-9][0-9]*$ ]]; then
    seeds=$(seq -s, 1 "$seeds")
fi
[[ $seeds =~ ^[0-9]+(,[0-9]+)*$ && $rounds =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 [SEEDS: a count or a comma list] [ROUNDS per seed]" >&2
    exit 2
}
scripts/setup.sh
out=$(mktemp /var/tmp/hydra-faults.XXXXXX)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
status=0
HYDRA_FAULT_SEED=$seeds HYDRA_FAULT_ROUNDS=$rounds \
    cargo test --release --test faults seeded_faults -- --nocapture --test-threads 1 \
    >"$out" 2>&1 || status=$?
took=$(( $(date +%s) - start ))
if [ "$status" != 0 ]; then
    grep -E "^(=== seed|FAILED|  HYDRA_FAULT_SEED)|panicked|settl" "$out" | tail -40
    echo "faults: FAILED after ${took}s (full output above the summary: $out kept)"
    trap - EXIT
    exit 1
fi
echo "fault-injection run: seeds $seeds, $rounds rounds each, ${took}s"
printf '%-34s %12s\n' "figure" "value"
printf '%-34s %12s\n' "----------------------------------" "------------"
grep '^fault-stat ' "$out" | while read -r _ k v; do
    printf '%-34s %12s\n' "$k" "$v"
done
