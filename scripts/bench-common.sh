# Shared by the bench-*.sh scripts (sourced, not run). Arguments of the script that
# sources it: [SECONDS per run, default 10] [RUNS per figure, default 5].
#
# Builds hydra, makes a 1 GiB backing file of real data in the page cache, and serves it
# as LUN 1 of $iqn from Debian's tgtd on 127.0.0.1:$tport and from hydra tgtd on
# 127.0.0.1:$hport, and again (through a hard link) as LUN 2 opened with O_DIRECT (`bsoflags direct` on both:
# every read goes to the disk, a cache miss), both numbered explicitly and checked
# (check_luns). Both daemons are killed by pid (tgtd ignores SIGTERM) and the file removed
# when the script exits.
# Sets: secs runs bin work iqn tport hport. Defines: lun_map, check_luns, machine, figure,
# measure, stats, cell, ratio, tgtd_params, negotiated (below).
secs=${1:-10}
runs=${2:-5}
[[ $secs =~ ^[1-9][0-9]*$ && $runs =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 [SECONDS per run] [RUNS per figure]" >&2
    exit 2
}
scripts/setup.sh
cargo build --release -q --bin hydra
bin=$PWD/build/release/hydra
work=$(mktemp -d /var/tmp/hydra-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
img=$work/disk.img
# Real data (not a sparse file) so that both targets read real page-cache pages.
dd if=/dev/urandom of="$img" bs=1M count=1024 status=none
# Flush it to disk first: writeback running during the runs skews them by 2x.
sync "$img"
cat "$img" > /dev/null
# LUN 2 is the same file under a second name (a hard link): hydra refuses one path twice
# in a target, and the two LUNs must read the same data.
direct=$work/disk-direct.img
ln "$img" "$direct"
iqn=iqn.2026-11.org.hydra:bench
tport=3262; hport=3263

/usr/sbin/tgtd -f --iscsi portal=127.0.0.1:$tport -C 7 >"$work/tgtd.log" 2>&1 &
tgtd_pid=$!
pids+=($tgtd_pid)
for _ in $(seq 50); do tgtadm -C 7 --lld iscsi --mode sys --op show >/dev/null 2>&1 && break; sleep 0.1; done
tgtadm -C 7 --lld iscsi --mode target --op new --tid 1 -T $iqn
tgtadm -C 7 --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 -b "$img"
tgtadm -C 7 --lld iscsi --mode logicalunit --op new --tid 1 --lun 2 -b "$direct" --bsoflags direct
tgtadm -C 7 --lld iscsi --mode target --op bind --tid 1 -I ALL

# The LUN numbers are explicit: left to themselves they follow tgt-admin's rule, by path
# (disk-direct.img sorts before disk.img), which made hydra's LUN 1 the O_DIRECT one while
# tgtd's, numbered by tgtadm above, was the cached one. check_luns below verifies both.
printf '<target %s>\n    <backing-store %s>\n        lun 1\n    </backing-store>\n    <backing-store %s>\n        lun 2\n        bsoflags direct\n    </backing-store>\n</target>\n' \
    $iqn "$img" "$direct" > "$work/targets.conf"
"$bin" tgtd -f --iscsi portal=127.0.0.1:$hport -C 7 --run-dir "$work/run" --state-dir "$work/state" --conf "$work/targets.conf" 2>"$work/hydra.log" &
pids+=($!)
for _ in $(seq 50); do [ -S "$work/run/socket.7" ] && break; sleep 0.1; done
[ -S "$work/run/socket.7" ] || { echo "bench: hydra tgtd did not start:" >&2; cat "$work/hydra.log" >&2; exit 1; }

# lun_map SHOW-COMMAND... -> "N PATH FLAGS" per disk LUN, from a target's
# `tgtadm --mode target --op show` (Debian's and hydra's print the same lines).
lun_map() {
    "$@" --lld iscsi --mode target --op show | awk '
        /^ *LUN: / { lun = $2 }
        /^ *Backing store path: / { path = $4 }
        /^ *Backing store flags:/ { if (lun > 0) print lun, path, ($4 == "" ? "-" : $4) }'
}

# check_luns: both targets serve the same file the same way under the same numbers
# (LUN 1 cached, LUN 2 O_DIRECT), or the bench stops: the rows compare LUN by LUN.
check_luns() {
    local want got t
    want=$(printf '1 %s -\n2 %s direct' "$img" "$direct")
    for t in tgtd hydra; do
        if [ "$t" = tgtd ]; then got=$(lun_map tgtadm -C 7); else got=$(lun_map "$bin" tgtadm -C 7 --run-dir "$work/run"); fi
        [ "$got" = "$want" ] || {
            printf 'bench: %s serves other LUNs than the bench compares:\n%s\nwanted:\n%s\n' "$t" "$got" "$want" >&2
            return 1
        }
    done
}
check_luns

# The machine and the date, so that a figure is never read without them.
machine() {
    local cpu mem
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    echo "machine: $(nproc) CPUs ($cpu), $mem memory, kernel $(uname -r); $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "each figure: the median of $runs runs of $secs s, spread min-max in brackets"
}

# figure COMMAND... -> "IOPS MBps": runs one iscsi-perf (libiscsi's or hydra's), which
# must exit 0 and print its final `iops average N (M MB/s)`; anything else fails (and,
# through `set -e -o pipefail` in the scripts, stops the bench) with the tool's output.
figure() {
    local out rc=0 last
    out=$("$@" 2>&1) || rc=$?
    last=$(tr '\r' '\n' <<<"$out" | grep -o 'iops average [0-9]* ([0-9]* MB/s)' | tail -1 || true)
    if [ "$rc" -ne 0 ] || [ -z "$last" ]; then
        {
            echo "bench: FAILED (exit $rc, figure '${last:-none}'): $*"
            tr '\r' '\n' <<<"$out" | tail -20
        } >&2
        return 1
    fi
    sed -E 's/iops average ([0-9]+) \(([0-9]+) MB\/s\)/\1 \2/' <<<"$last"
}

# measure FIELD NAME COMMAND... : runs COMMAND $runs times through `figure` and appends
# field FIELD (1 = IOPS, 2 = MB/s) of each run to the file $work/fig.NAME. Callers
# interleave the contenders run by run, so that drift over the bench hits all alike.
measure() {
    local field=$1 name=$2
    shift 2
    figure "$@" | awk -v f="$field" '{ print $f }' >>"$work/fig.$name"
}

# stats NAME -> "median min max" of the runs recorded for NAME (the median of an even
# count is the mean of the middle two).
stats() {
    sort -n "$work/fig.$1" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%d %d %d\n", m, v[1], v[NR] }'
}

# cell NAME -> "median (min-max)".
cell() { read -r m lo hi <<<"$(stats "$1")"; printf '%s (%s-%s)' "$m" "$lo" "$hi"; }

# ratio A B -> median(A) / median(B).
ratio() {
    local a b
    a=$(stats "$1" | cut -d' ' -f1); b=$(stats "$2" | cut -d' ' -f1)
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'
}

# tgtd_params default|tuned: sets tgtd's target 1 to tgt's defaults, or to what hydra tgtd
# offers (registry.rs, default_target_params): 256 KiB segments both ways (tgt's
# MaxXmitDataSegmentLength caps its Data-In PDUs), 1 MiB bursts, 256 KiB first burst,
# 8 outstanding R2Ts. Takes effect at the next login.
tgtd_params() {
    local kv
    if [ "$1" = tuned ]; then
        kv="MaxRecvDataSegmentLength=262144 MaxXmitDataSegmentLength=262144 MaxBurstLength=1048576 FirstBurstLength=262144 MaxOutstandingR2T=8"
    else
        kv="MaxRecvDataSegmentLength=8192 MaxXmitDataSegmentLength=8192 MaxBurstLength=262144 FirstBurstLength=65536 MaxOutstandingR2T=1"
    fi
    for p in $kv; do
        tgtadm -C 7 --lld iscsi --mode target --op update --tid 1 --name "${p%%=*}" --value "${p#*=}"
    done
}

# negotiated PORT: what a login to PORT settles, as `hydra iscsi-perf` reports it (it
# offers what libiscsi's iscsi-perf offers: src/cli/iscsi_perf.rs).
negotiated() {
    local out
    out=$("$bin" iscsi-perf -t 1 -m 1 "iscsi://127.0.0.1:$1/$iqn/1" 2>&1) || {
        echo "bench: a login to port $1 failed: $out" >&2
        return 1
    }
    sed -n 's/^negotiated: //p' <<<"$out"
}

# tgtd_datain: the size of the Data-In data segments tgtd really sends to libiscsi's
# iscsi-perf in a 1 MiB sequential read, seen from outside: tgtd writes each PDU's header
# (48 bytes) and its data segment with separate write(2)s, and strace counts them.
tgtd_datain() {
    local trace=$work/strace.out
    strace -f -qq -p "$tgtd_pid" -e trace=write,writev -o "$trace" &
    local st=$!
    sleep 0.5
    figure iscsi-perf -m 4 -b 2048 -t 1 "iscsi://127.0.0.1:$tport/$iqn/1" >/dev/null
    kill -INT "$st"
    wait "$st" || true
    grep -oE '= [0-9]+$' "$trace" | awk '$2 > 48 { n[$2]++ } END { for (s in n) print n[s], s }' |
        sort -rn | head -1 | awk '{ printf "%s bytes (%s of the PDUs written)\n", $2, $1 }'
}
