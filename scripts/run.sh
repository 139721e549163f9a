#!/usr/bin/env bash
# Run hydra's target on the embedded example: examples/targets.conf exports a sparse
# 1 GiB file as LUN 1 of iqn.2026-11.org.hydra:example on 127.0.0.1:3260. Shows the
# target the way tgt-admin -s does, discovers it with libiscsi's iscsi-ls, then keeps
# serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q
bin=$PWD/build/release/hydra
state=${HYDRA_DEMO_DIR:-/var/tmp/hydra-demo}
mkdir -p "$state"
[ -e "$state/lun1.img" ] || truncate -s 1G "$state/lun1.img"
sed "s#@STATE@#$state#g" examples/targets.conf > "$state/targets.conf"
run_dir="$state/run"
"$bin" tgtd -f --iscsi portal=127.0.0.1:3260 -C 0 --run-dir "$run_dir" --state-dir "$state/state" --conf "$state/targets.conf" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 50); do [ -S "$run_dir/socket.0" ] && break; sleep 0.1; done
"$bin" tgt-admin --run-dir "$run_dir" -s
echo "--- iscsi-ls -s iscsi://127.0.0.1:3260"
iscsi-ls -s iscsi://127.0.0.1:3260
echo "hydra tgtd (pid $pid) is serving $state/lun1.img on 127.0.0.1:3260; Ctrl-C stops it."
wait $pid
