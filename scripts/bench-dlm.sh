#!/usr/bin/env bash
# hydra's lock manager benchmark (benches/dlm.rs): three namespace hosts with corosync
# and hydra dlm_controld; prints the TCP round trip between two of them, lock+unlock
# pairs/s and p50/p99 latency with the master local and remote (1 and 16 clients), each
# latency as a multiple of the round trip, and the recovery time after a node is cut,
# split per phase. Every namespace, link and process is removed when it ends.
# Usage: scripts/bench-dlm.sh [SECONDS per run, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
HYDRA_BENCH_SECS=${1:-5} cargo bench -q --bench dlm
