#!/usr/bin/env bash
# Benchmark (not a test) of the multipath node side (issue 14, "Benchmark"), on a bed of
# network namespaces like tests/multipath.rs's: a storage host running hydra tgtd with
# one LUN (bench-common.sh's 1 GiB file of real data, through a hard link) behind two
# portals on two bridges (10.200.150.0/24 and 10.200.151.0/24), and a node host running
# `hydra iscsid` (sessions, the map mpatha over both paths, its devices) in a mount
# namespace of its own, with node records at noop_out_interval = noop_out_timeout = 1.
#
# 1. The cost of the kernel device: fio (libaio, direct, 32 in flight) through
#    /dev/mapper/mpatha (FUSE file + loop device) and through the map's NBD socket
#    (fio's nbd engine: the same map without the kernel), beside `hydra iscsi-perf`
#    straight on the LUN through one portal; 4 KiB random read and 1 MiB sequential
#    read, interleaved run by run. Done when (issue 14): 1 MiB sequential read through
#    the device >= 50 % of iscsi-perf.
# 2. Aggregation: each network rate-limited (tc tbf on the storage host's side, which
#    carries the read data), 1 MiB sequential read through the device with both paths,
#    then with one (the other network cut), interleaved. Done when: two >= 1.8x one.
# 3. A silent cut (`ip link set ... down` on the storage host's bridge port) during a
#    4 KiB random write load through the device: detection (cut -> `multipath -ll`
#    shows the path failed, polled every 0.1 s), and the longest completion latency
#    of any write across the cut (cut -> the stuck writes completed on the other path);
#    beside it the open-iscsi + multipathd figure for the same settings from the
#    reference's formula (§3.2). Done when: I/O resumes <= 2 s after the cut.
# Usage: scripts/bench-multipath.sh [SECONDS per run, default 10] [RUNS, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh

iqn_mp=iqn.2026-12.org.hydra:bench-mp
# Names and networks of this bed (tests/common/mpbed.rs uses hmp-, 10.200.140+).
pfx=hmpb-$$
net_a=10.200.150
net_b=10.200.151
portal_a=$net_a.1:3260
portal_b=$net_b.1:3260
node=$work/node
stor=$work/storage
mkdir -p "$node"/{iscsi,run,dev,conf.d} "$stor"
holders=()
iscsid_pid=

die() { echo "bench: FAILED: $*" >&2; exit 1; }

teardown() {
    # Links back up so that the node daemon can log out; then the daemon (SIGTERM: it
    # flushes its maps), loop devices left on its FUSE files, every process of the
    # namespaces, the links, namespaces and bridges.
    for v in ${pfx}sa ${pfx}sb; do ip link set "$v" up 2>/dev/null || true; done
    if [ -n "$iscsid_pid" ]; then
        kill -TERM "$iscsid_pid" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 "$iscsid_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$iscsid_pid" 2>/dev/null || true
    fi
    losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null | while read -r dev back; do
        case $back in "$work"/*) partx -d "$dev" 2>/dev/null || true; losetup -d "$dev" || true ;; esac
    done
    for ns in ${pfx}-s ${pfx}-n; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    done
    for p in "${holders[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for l in ${pfx}sa ${pfx}sb ${pfx}na ${pfx}nb ${pfx}a ${pfx}b; do ip link del "$l" 2>/dev/null || true; done
    for ns in ${pfx}-s ${pfx}-n; do ip netns del "$ns" 2>/dev/null || true; done
    cleanup
}
trap teardown EXIT

# ---- the bed ----
for b in a b; do
    ip link add ${pfx}$b type bridge
    echo 1 > /proc/sys/net/ipv6/conf/${pfx}$b/disable_ipv6 2>/dev/null || true
    ip link set ${pfx}$b up
done
for h in s n; do
    ns=${pfx}-$h
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    [ $h = s ] && host=1 || host=2
    i=0
    for b in a b; do
        [ $b = a ] && net=$net_a || net=$net_b
        ip link add ${pfx}$h$b type veth peer name eth$i netns "$ns"
        ip link set ${pfx}$h$b master ${pfx}$b up
        ip -n "$ns" addr add "$net.$host/24" dev eth$i
        ip -n "$ns" link set eth$i up
        i=$((i + 1))
    done
    # A private mount namespace (FUSE mounts, Debian tools' /run), held by a sleep.
    ip netns exec "$ns" unshare --mount --propagation private sh -c \
        'mount -t tmpfs -o mode=0755,size=16m hmpb-run /run && exec sleep infinity' &
    holders+=($!)
    # Killed by pid at the end; no job notice then.
    disown $!
done
in_host() { # in_host s|n COMMAND...: run in that host's network and mount namespaces
    local pid
    [ "$1" = s ] && pid=${holders[0]} || pid=${holders[1]}
    shift
    nsenter --target="$pid" --net --mount -- "$@"
}
for _ in $(seq 100); do
    [ "$(cat /proc/"${holders[1]}"/comm 2>/dev/null)" = sleep ] && [ "$(cat /proc/"${holders[0]}"/comm 2>/dev/null)" = sleep ] && break
    sleep 0.05
done

# The storage host: hydra tgtd, the LUN behind both portals.
ln "$img" "$stor/lun.img"
printf '<target %s>\n    backing-store %s\n</target>\n' $iqn_mp "$stor/lun.img" >"$stor/targets.conf"
in_host s "$bin" tgtd -f --iscsi "portal=$portal_a,portal=$portal_b" -C 11 --run-dir "$stor/run" \
    --state-dir "$stor/state" --conf "$stor/targets.conf" 2>"$stor/tgtd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$stor/run/socket.11" ] && break; sleep 0.1; done
[ -S "$stor/run/socket.11" ] || { cat "$stor/tgtd.log" >&2; die "hydra tgtd did not start"; }

# The node host: hydra iscsid with the map's settings.
printf 'node.startup = manual\nnode.conn[0].timeo.noop_out_interval = 1\nnode.conn[0].timeo.noop_out_timeout = 1\n' \
    >"$node/iscsi/iscsid.conf"
cat >"$node/multipath.conf" <<EOF
defaults {
    user_friendly_names yes
    find_multipaths no
    polling_interval 1
    bindings_file "$node/bindings"
    wwids_file "$node/wwids"
}
overrides {
    no_path_retry queue
}
EOF
in_host n "$bin" iscsid -f --root "$node/iscsi" --run-dir "$node/run" --dev-dir "$node/dev" \
    --multipath-config "$node/multipath.conf" --multipath-config-dir "$node/conf.d" 2>"$node/iscsid.log" &
iscsid_pid=$!
for _ in $(seq 100); do [ -S "$node/run/iscsid.sock" ] && break; sleep 0.1; done
[ -S "$node/run/iscsid.sock" ] || { cat "$node/iscsid.log" >&2; die "hydra iscsid did not start"; }
node_tool() { # node_tool TOOL ARGS...: a hydra CLI in the node host, aimed at its daemon
    local t=$1
    shift
    HYDRA_ISCSI_ROOT=$node/iscsi HYDRA_ISCSID_RUN_DIR=$node/run in_host n "$bin" "$t" "$@"
}
node_tool iscsiadm -m discovery -t st -p $portal_a >/dev/null
node_tool iscsiadm -m discovery -t st -p $portal_b >/dev/null
node_tool iscsiadm -m node -L all >/dev/null
# active_paths: how many paths of mpatha multipath -ll shows active and ready.
active_paths() { node_tool multipath -ll mpatha 2>/dev/null | grep -c ' active ready ' || true; }
wait_paths() { # wait_paths N: until mpatha has N paths active and ready (60 s)
    for _ in $(seq 600); do [ "$(active_paths)" = "$1" ] && return 0; sleep 0.1; done
    node_tool multipath -ll >&2 || true
    tail -30 "$node/iscsid.log" >&2
    die "mpatha did not reach $1 active paths"
}
wait_paths 2
dev=$(readlink -f "$node/dev/mapper/mpatha")
[ -b "$dev" ] || die "$node/dev/mapper/mpatha does not name a block device ($dev)"
nbd_sock=$node/run/nbd/mpatha.sock
[ -S "$nbd_sock" ] || die "no NBD socket $nbd_sock"
# path_of NET: the dev name (s<sid>l1) of the path through that network's portal.
path_of() {
    local sid
    sid=$(node_tool iscsiadm -m session | awk -v p="$1" 'index($3, p) == 1 { gsub(/[][]/, "", $2); print $2 }')
    [ -n "$sid" ] || die "no session through $1"
    echo "s${sid}l1"
}
path_a=$(path_of "$net_a.1:")
path_b=$(path_of "$net_b.1:")

# fio_figure ARGS...: one fio job (json), "IOPS MBps" of its reads or writes; fails
# loudly with fio's output on an error or no I/O.
fio_figure() {
    local out rc=0
    out=$(fio --output-format=json --name=bench --direct=1 --time_based --runtime="$secs" "$@" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "bench: FAILED (fio exit $rc): fio $*" >&2
        tail -20 <<<"$out" >&2
        return 1
    fi
    python3 -c '
import json, sys
t = sys.stdin.read()
j = json.loads(t[t.index("{"):])["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] > 0 else j["write"]
if j["error"] or d["io_bytes"] == 0:
    sys.exit("fio: error %d, %d bytes" % (j["error"], d["io_bytes"]))
print(int(d["iops"]), int(d["bw_bytes"] / 1e6))
' <<<"$out"
}
# fmeasure FIELD NAME FIGURE-COMMAND...: as bench-common's measure, for any figure command.
fmeasure() {
    local field=$1 name=$2
    shift 2
    "$@" | awk -v f="$field" '{ print $f }' >>"$work/fig.$name"
}
on_dev() { fio_figure --filename="$dev" --ioengine=libaio "$@"; }
on_nbd() { fio_figure --ioengine=nbd --uri="nbd+unix:///mpatha?socket=$nbd_sock" "$@"; }
on_lun() { figure in_host n "$bin" iscsi-perf -m 32 -t "$secs" "$@" "iscsi://$portal_a/$iqn_mp/1"; }

machine
echo "bed: hydra tgtd in a storage namespace, portals $portal_a and $portal_b (veth pairs"
echo "through two bridges); hydra iscsid in a node namespace; map mpatha over both paths,"
echo "served at $dev (FUSE + loop, direct I/O) and $nbd_sock"
echo

# ---- 1. the cost of the kernel device ----
printf '%-32s %-5s %-22s %-22s %-22s %s\n' workload unit /dev/mapper/mpatha "NBD socket (fio nbd)" \
    "hydra iscsi-perf, LUN" "mapper/iscsi-perf"
for w in r4 r1m; do
    if [ $w = r4 ]; then
        label="4 KiB random read, 32 in flight"; field=1; unit=IOPS
        fio_args=(--rw=randread --bs=4k --iodepth=32); perf_args=(-b 8 -r)
    else
        label="1 MiB seq read, 32 in flight"; field=2; unit=MB/s
        fio_args=(--rw=read --bs=1M --iodepth=32); perf_args=(-b 2048)
    fi
    for _ in $(seq "$runs"); do
        fmeasure $field $w.dev on_dev "${fio_args[@]}"
        fmeasure $field $w.nbd on_nbd "${fio_args[@]}"
        fmeasure $field $w.lun on_lun "${perf_args[@]}"
    done
    printf '%-32s %-5s %-22s %-22s %-22s %s\n' "$label" $unit "$(cell $w.dev)" "$(cell $w.nbd)" \
        "$(cell $w.lun)" "$(ratio $w.dev $w.lun)"
done
echo "(done when: 1 MiB seq read through the device >= 0.50x iscsi-perf on the LUN)"
echo

# ---- 2. two paths vs one, each network rate-limited ----
rate=400mbit
for i in 0 1; do
    in_host s tc qdisc add dev eth$i root tbf rate $rate burst 512kb latency 100ms
done
seq_read=(--rw=read --bs=1M --iodepth=32)
# One path: network B cut (`multipathd fail path` would not do: the checker reinstates
# an operator-failed path at its next check, as multipathd's does).
for _ in $(seq "$runs"); do
    fmeasure 2 agg.two on_dev "${seq_read[@]}"
    ip link set ${pfx}sb down
    wait_paths 1
    fmeasure 2 agg.one on_dev "${seq_read[@]}"
    ip link set ${pfx}sb up
    wait_paths 2
done
for i in 0 1; do in_host s tc qdisc del dev eth$i root; done
printf '%-46s %-22s %-22s %s\n' "1 MiB seq read, 32 in flight, each link $rate" "two paths MB/s" \
    "one path MB/s" two/one
printf '%-46s %-22s %-22s %s\n' "" "$(cell agg.two)" "$(cell agg.one)" "$(ratio agg.two agg.one)"
echo "(done when: two paths >= 1.8x one)"
echo

# ---- 3. a silent cut during a write load ----
# Each run: fio 4 KiB random writes, 16 in flight, for 4 + $secs s; the cut 4 s in, on
# the network of the path listed first; detection polled; the link healed after fio.
cut_run() {
    local v n t0 detect lat
    n=0
    [ -f "$work/fig.cut.detect" ] && n=$(( $(wc -l <"$work/fig.cut.detect") % 2 ))
    [ $n = 0 ] && v=${pfx}sa || v=${pfx}sb
    [ $n = 0 ] && p=$path_a || p=$path_b
    fio --output-format=json --name=cut --filename="$dev" --ioengine=libaio --direct=1 \
        --rw=randwrite --bs=4k --iodepth=16 --time_based --runtime=$((secs + 4)) \
        >"$work/cut.json" 2>&1 &
    local fio_pid=$!
    sleep 4
    t0=$(date +%s.%N)
    ip link set "$v" down
    detect=
    for _ in $(seq 300); do
        if node_tool multipath -ll mpatha 2>/dev/null | grep -q " $p .* failed "; then
            detect=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", (b - a) * 1000 }')
            break
        fi
        sleep 0.1
    done
    wait "$fio_pid" || { tail -20 "$work/cut.json" >&2; ip link set "$v" up; die "fio failed across the cut"; }
    ip link set "$v" up
    [ -n "$detect" ] || die "the path through $v was not seen failed within 30 s"
    lat=$(python3 -c '
import json, sys
t = open(sys.argv[1]).read()
j = json.loads(t[t.index("{"):])["jobs"][0]
if j["error"]:
    sys.exit("fio: error %d" % j["error"])
print(int(j["write"]["clat_ns"]["max"] / 1e6))
' "$work/cut.json")
    echo "$detect" >>"$work/fig.cut.detect"
    echo "$lat" >>"$work/fig.cut.resume"
    wait_paths 2
}
for _ in $(seq "$runs"); do cut_run; done
printf '%-50s %s\n' "silent cut, 4 KiB random writes, 16 in flight" "ms, median (min-max)"
printf '%-50s %s\n' "  detection: cut -> path failed in multipath -ll" "$(cell cut.detect)"
printf '%-50s %s\n' "  resume: longest write latency across the cut" "$(cell cut.resume)"
echo "  open-iscsi + multipathd, same settings (reference §3.2: noop_out_interval 1 +"
echo "  noop_out_timeout 1 + recovery_tmo 5, which multipathd sets from fast_io_fail_tmo):"
echo "  7000 ms"
echo "(done when: resume <= 2000 ms)"
