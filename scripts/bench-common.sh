# Shared by the bench-*.sh scripts (sourced, not run): builds hydra, makes a 1 GiB
# backing file of real data in the page cache, and serves it as LUN 1 of $iqn from
# Debian's tgtd on 127.0.0.1:$tport and from hydra tgtd on 127.0.0.1:$hport. Both are
# killed by pid (tgtd ignores SIGTERM) and the file removed when the script exits.
# Sets: secs bin work iqn tport hport.
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
"$bin" tgtd -f --iscsi portal=127.0.0.1:$hport -C 7 --run-dir "$work/run" --state-dir "$work/state" --conf "$work/targets.conf" 2>"$work/hydra.log" &
pids+=($!)
for _ in $(seq 50); do [ -S "$work/run/socket.7" ] && break; sleep 0.1; done

