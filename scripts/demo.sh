#!/usr/bin/env bash
# The classic shared-storage cluster, end to end, on this one machine (issue 16):
#
#   storage  hydra tgtd: one target, a backing file, initiator-address ACLs for both
#            nodes on both storage networks, CHAP; a portal on each network.
#   node1    hydra iscsid (sessions + multipath maps + block devices), corosync
#   node2    (two_node), hydra dlm_controld with fence_scsi on /dev/mapper/mpatha.
#   client   fetches the web page the cluster serves.
#
# Each host is a network namespace (names hdm-*) with a private mount namespace (its
# own tmpfs on /run, /dev/shm and /srv; a node's /dev/mapper is its
# /run/hydra-dev/mapper, where its node daemon makes the maps' names), joined by four
# bridges:
#   10.200.240.0/24  storage network A (portal 10.200.240.1)
#   10.200.241.0/24  storage network B (portal 10.200.241.1)
#   10.200.242.0/24  cluster network (corosync, dlm)
#   10.200.243.0/24  public network (HTTP)
# node1 is .11 and node2 .12 on every network, the client 10.200.243.100.
#
# It then runs the classic sequence and prints it as an admin's transcript (every
# command as typed on its host, with its output): discovery on both networks, login,
# `multipath -ll`, the cluster with unfencing, a partition and ext4, `hydra mount` on
# node1, a web page served from it; node1's cluster link is cut, node2 fences it
# (fence_scsi), takes the lock and mounts, and serves the same page; node1 reboots
# (as fence_scsi_check's watchdog would make it), comes back and unfences. A table of
# the steps and their seconds ends it. Everything it made is removed on exit (also on
# failure or Ctrl-C); a failure names its step and shows the logs that matter.
#
# Usage: sudo scripts/demo.sh            (runs scripts/setup.sh, builds, runs)
#        HYDRA=path/to/hydra scripts/demo.sh   (that binary; no setup, no build)
#        HYDRA_DEMO_LOGS=DIR ...         (keep the daemons' logs and the configuration
#                                          files in DIR; everything else still goes)
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
    ;;
"") ;;
*)
    echo "demo.sh: no arguments are taken (see --help)" >&2
    exit 2
    ;;
esac

# ---- prerequisites: checked before anything is made ----

need() { # MESSAGE
    echo "demo.sh: $1" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] ||
    need "needs root: it makes network namespaces, mounts and loop devices (sudo scripts/demo.sh)"
if [ -z "${HYDRA:-}" ]; then
    scripts/setup.sh || need "scripts/setup.sh failed (see above)"
    command -v cargo >/dev/null 2>&1 || need "cargo not found: install the Rust toolchain (rustup)"
    echo "demo.sh: building hydra (cargo build --release -p hydra)"
    cargo build --release -q -p hydra || need "the build failed (see above)"
    HYDRA=$REPO/build/release/hydra
fi
[ -x "$HYDRA" ] ||
    need "no hydra binary at $HYDRA: build it (cargo build --release -p hydra) or set HYDRA"
HYDRA=$(realpath "$HYDRA")
"$HYDRA" mount --help >/dev/null 2>&1 ||
    need "$HYDRA has no 'mount' command: it is older than this script; rebuild it (cargo build --release -p hydra)"
[ -c /dev/fuse ] && grep -qw fuse /proc/filesystems ||
    need "no FUSE: /dev/fuse is missing (modprobe fuse); the node daemon serves its maps as FUSE files behind loop devices"
[ -c /dev/loop-control ] ||
    need "no loop devices: /dev/loop-control is missing (modprobe loop); the maps are served as loop devices"
for tool in ip nsenter unshare losetup mount umount sfdisk mkfs.ext4 fsck.ext4 python3 curl \
    corosync corosync-quorumtool corosync-cmapctl flock timeout; do
    command -v "$tool" >/dev/null 2>&1 || case $tool in
    corosync*) need "$tool is not installed: corosync runs the cluster membership (apt-get install corosync, or scripts/setup.sh)" ;;
    ip) need "ip is not installed (apt-get install iproute2)" ;;
    nsenter | unshare | losetup | mount | umount) need "$tool is not installed (apt-get install util-linux mount)" ;;
    sfdisk) need "sfdisk is not installed (apt-get install fdisk)" ;;
    mkfs.ext4 | fsck.ext4) need "$tool is not installed (apt-get install e2fsprogs)" ;;
    *) need "$tool is not installed (apt-get install $tool)" ;;
    esac
done
ip netns list >/dev/null 2>&1 || need "'ip netns' does not work here: network namespaces are needed"
[ -d /srv ] || need "/srv is missing: each node mounts a tmpfs there (in its own namespace) for /srv/www"

# One demo at a time (a lock on this script: nothing to leave behind). Daemons do not
# inherit it (9<&-), so a killed run's leftovers do not hold it.
exec 9<"$0"
flock -n 9 || need "another scripts/demo.sh is running"

# ---- names ----

P=hdm
NETS=(a b c p) # storage A, storage B, cluster, public
declare -A SUBNET=([a]=10.200.240 [b]=10.200.241 [c]=10.200.242 [p]=10.200.243)
declare -A IFNAME=([a]=san-a [b]=san-b [c]=cluster [p]=public)
declare -A HOSTNETS=([storage]="a b" [node1]="a b c p" [node2]="a b c p" [client]="p")
declare -A HOSTNUM=([storage]=1 [node1]=11 [node2]=12 [client]=100)
declare -A VPREFIX=([storage]=s [node1]=n1 [node2]=n2 [client]=cl)
HOSTS=(storage node1 node2 client)
IQN=iqn.2026-12.org.hydra:demo.www
CHAP_USER=www-node
CHAP_PASS=demo-secret-16ch
DISC_USER=www-discovery
DISC_PASS=disc-secret-16ch
CLUSTER=hdm
DELAY=10 # fence_scsi delay before node 1 fences node 2 (pcmk_delay_base's idea)
addr() { echo "${SUBNET[$2]}.${HOSTNUM[$1]}"; } # HOST NET

S=""                 # the state directory
declare -A HOLDER=() # host -> the pid holding its namespaces
declare -A PID=()    # host.daemon -> pid
MADE_MAPPER=0
STEP=""
STEP_LOGS=""
STEP_T0=0
T_START=$(date +%s.%N)
SUMMARY=()

# ---- output ----

if [ -t 1 ]; then B=$'\e[1m' N=$'\e[0m'; else B="" N=""; fi
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Start a step of the summary; LOGS are the files tailed if it fails.
step() { # TITLE [LOGS...]
    end_step
    STEP=$1
    shift
    STEP_LOGS="$*"
    STEP_T0=$(now)
    printf '\n%s== %s ==%s\n' "$B" "$STEP" "$N"
}
end_step() {
    [ -n "$STEP" ] && SUMMARY+=("$STEP|$(secs "$STEP_T0" "$(now)")")
    STEP=""
}
note() { printf '%s\n' "$*"; }

fail() { # MESSAGE
    local step=$STEP
    STEP=""
    {
        printf '\n%sdemo.sh: FAILED in step "%s": %s%s\n' "$B" "$step" "$1" "$N"
        for f in $STEP_LOGS; do
            [ -e "$f" ] || continue
            printf -- '--- %s (last 25 lines) ---\n' "${f#"$S"/}"
            tail -n 25 "$f" | sed 's/\x1b\[[0-9;]*m//g'
        done
    } >&2
    exit 1
}

# ---- hosts ----

# Run a program in HOST's network and mount namespaces, with the node's environment.
in_host() { # HOST PROGRAM ARGS...
    local h=$1
    shift
    nsenter --target="${HOLDER[$h]}" --net --mount -- \
        env PATH="$S/bin:$PATH" HYDRA_ISCSI_ROOT="$S/$h/iscsi" "$@"
}

# Print `HOST# LINE` and run LINE (a shell command line) there, with its output; it
# must succeed (at most SECS seconds, default 60).
run() { # HOST LINE [SECS]
    local out rc t0
    t0=$(now)
    printf '%s%s#%s %s\n' "$B" "$1" "$N" "$2"
    out=$(timeout "${3:-60}" nsenter --target="${HOLDER[$1]}" --net --mount -- \
        env PATH="$S/bin:$PATH" HYDRA_ISCSI_ROOT="$S/$1/iscsi" sh -c "$2" 2>&1)
    rc=$?
    [ -n "$out" ] && printf '%s\n' "$out"
    slow "$t0"
    LAST=$out
    [ $rc -eq 0 ] || fail "'$2' on $1 exited $rc"
}

# A command that took more than 5 s says so.
slow() { # T0
    local d
    d=$(secs "$1" "$(now)")
    awk -v d="$d" 'BEGIN { exit !(d > 5) }' && printf '(%s s)\n' "$d"
    return 0
}

# As run, and it must fail (exit 1): a refusal the transcript shows.
run_refused() { # HOST LINE
    local out rc t0
    t0=$(now)
    printf '%s%s#%s %s\n' "$B" "$1" "$N" "$2"
    out=$(timeout 60 nsenter --target="${HOLDER[$1]}" --net --mount -- \
        env PATH="$S/bin:$PATH" HYDRA_ISCSI_ROOT="$S/$1/iscsi" sh -c "$2" 2>&1)
    rc=$?
    [ -n "$out" ] && printf '%s\n' "$out"
    slow "$t0"
    printf '(exit %s)\n' "$rc"
    LAST=$out
    [ $rc -ne 0 ] || fail "'$2' on $1 succeeded; it should have been refused"
}

# A command on this machine itself, shown as such.
machine() { # LINE
    printf '%smachine#%s %s\n' "$B" "$N" "$1"
    sh -c "$1" || fail "'$1' failed"
}

# Poll LINE in HOST (quietly) every 0.2 s until it succeeds; fail after SECS.
wait_for() { # HOST SECS WHAT LINE
    local h=$1 secs=$2 what=$3 line=$4 t0
    t0=$(date +%s)
    until in_host "$h" sh -c "$line" >/dev/null 2>&1; do
        [ $(($(date +%s) - t0)) -lt "$secs" ] || fail "$h: $what: not within $secs s"
        sleep 0.2
    done
}

# Start a daemon in HOST, shown as `HOST# LINE &`: LINE runs in the background, its
# output in LOG.
daemon() { # HOST NAME LOG LINE
    printf '%s%s#%s %s &\n' "$B" "$1" "$N" "$4"
    nsenter --target="${HOLDER[$1]}" --net --mount -- \
        env PATH="$S/bin:$PATH" HYDRA_ISCSI_ROOT="$S/$1/iscsi" sh -c "exec $4" </dev/null >>"$3" 2>&1 9<&- &
    PID[$1.$2]=$!
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Wait (at most SECS) for pid to exit.
wait_gone() { # PID SECS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

# SIGTERM, then SIGKILL after SECS; reaped.
stop_pid() { # PID SECS
    alive "$1" || return 0
    kill -TERM "$1" 2>/dev/null
    wait_gone "$1" "$2" || {
        echo "cleanup: pid $1 did not exit within $2 s of SIGTERM: SIGKILL" >&2
        kill -KILL "$1" 2>/dev/null
    }
    wait "$1" 2>/dev/null
    return 0
}

make_host() { # HOST
    local h=$1 n v mounts
    ip netns add "$P-$h" || fail "ip netns add $P-$h"
    ip netns exec "$P-$h" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 >/dev/null
    ip -n "$P-$h" link set lo up
    for n in ${HOSTNETS[$h]}; do
        v=$P-${VPREFIX[$h]}-$n
        ip link add "$v" type veth peer name "${IFNAME[$n]}" netns "$P-$h" || fail "veth $v"
        echo 1 >"/proc/sys/net/ipv6/conf/$v/disable_ipv6" 2>/dev/null
        ip link set "$v" master "$P-$n" up || fail "veth $v into $P-$n"
        ip -n "$P-$h" addr add "$(addr "$h" "$n")/24" dev "${IFNAME[$n]}"
        ip -n "$P-$h" link set "${IFNAME[$n]}" up
    done
    boot_holder "$h"
}

# The process that holds HOST's mount namespace: private, with fresh tmpfs mounts (a
# node's /run is emptied as by a reboot when its holder is made again).
boot_holder() { # HOST
    local h=$1 mounts pid i
    mounts="mount -t tmpfs -o mode=0755,size=64m $P-run /run"
    case $h in
    node*)
        mounts="$mounts && mount -t tmpfs -o mode=1777,size=64m $P-shm /dev/shm \
            && mount -t tmpfs -o mode=0755,size=1m $P-srv /srv && mkdir /srv/www \
            && mkdir -p /run/hydra-dev/mapper && mount --bind /run/hydra-dev/mapper /dev/mapper"
        ;;
    esac
    ip netns exec "$P-$h" unshare --mount --propagation private \
        sh -c "$mounts && exec sleep infinity" </dev/null >"$S/$h.holder.log" 2>&1 9<&- &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ] && break
        alive "$pid" || fail "$h: the namespace holder exited: $(cat "$S/$h.holder.log")"
        sleep 0.05
    done
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ] || fail "$h: the namespace holder did not start"
    HOLDER[$h]=$pid
}

# A loop device as `NAME BACK-MAJ:MIN BACK-INO`: the device and the FUSE file behind
# it (its path is no help: seen from here, every node's map file is `/mpatha`).
loop_id() { # DEVICE
    losetup --noheadings --output NAME,BACK-MAJ:MIN,BACK-INO "$1" 2>/dev/null | awk '{print $1, $2, $3}'
}

# Detach the loop devices listed in FILE (by loop_id) that still serve the same file:
# the node daemons detach their own when they stop, so these are what a killed one left.
# One that stays (a filesystem on it still waits for the dead FUSE server) has its FUSE
# connection aborted (fusectl; BACK-MAJ:MIN's minor is the connection's number).
detach_loops() { # FILE
    local dev majmin ino i
    [ -e "$1" ] || return 0
    while read -r dev majmin ino; do
        [ -n "$dev" ] && [ "$(loop_id "$dev")" = "$dev $majmin $ino" ] || continue
        echo "cleanup: detaching $dev (a node daemon did not)" >&2
        losetup -d "$dev" 2>/dev/null
        for ((i = 0; i < 20; i++)); do
            [ "$(loop_id "$dev")" = "$dev $majmin $ino" ] || continue 2
            sleep 0.1
        done
        abort_fuse "${majmin#*:}"
        losetup -d "$dev" 2>/dev/null
    done <"$1"
}

abort_fuse() { # CONNECTION
    local c=/sys/fs/fuse/connections mounted=0
    if ! mountpoint -q $c; then
        mount -t fusectl fusectl $c 2>/dev/null && mounted=1
    fi
    if [ -e "$c/$1/abort" ]; then
        echo "cleanup: aborting FUSE connection $1 (its server is gone)" >&2
        echo 1 >"$c/$1/abort"
        sleep 0.5
    fi
    [ $mounted -eq 1 ] && umount $c
}

# Everything of HOST: its mounts, daemons (the node daemon last: it flushes its map and
# logs out), other processes by pid, and the namespace holder. `crash` (a reboot) kills
# the cluster stack before it unmounts, with plain umount; otherwise hydra umount
# releases the lock first.
stop_host() { # HOST [crash]
    local h=$1 how=${2:-clean} k p
    alive "${HOLDER[$h]:-}" || return 0
    if [[ $h == node* ]]; then
        for k in http mountwait; do
            [ -n "${PID[$h.$k]:-}" ] || continue
            kill -KILL "${PID[$h.$k]}" 2>/dev/null
            wait "${PID[$h.$k]}" 2>/dev/null
            unset "PID[$h.$k]"
        done
        if [ "$how" = clean ] && in_host "$h" mountpoint -q /srv/www; then
            timeout 30 nsenter --target="${HOLDER[$h]}" --net --mount -- \
                env PATH="$S/bin:$PATH" hydra umount --dlm-timeout 10 /srv/www >/dev/null 2>&1
        fi
        # dlm_controld keeps running while it has lockspaces (SIGTERM is ignored then),
        # and its fence agents run in process groups of their own: everything but the
        # node daemon and the holder goes at once.
        for p in $(ip netns pids "$P-$h" 2>/dev/null); do
            [ "$p" = "${PID[$h.iscsid]:-}" ] || [ "$p" = "${HOLDER[$h]}" ] || kill -KILL "$p" 2>/dev/null
        done
        for k in corosync dlm_controld; do
            [ -n "${PID[$h.$k]:-}" ] || continue
            wait "${PID[$h.$k]}" 2>/dev/null
            unset "PID[$h.$k]"
        done
        if in_host "$h" mountpoint -q /srv/www; then
            in_host "$h" umount /srv/www 2>/dev/null || in_host "$h" umount -l /srv/www
        fi
        if [ -n "${PID[$h.iscsid]:-}" ]; then
            stop_pid "${PID[$h.iscsid]}" 20
            unset "PID[$h.iscsid]"
        fi
    else
        for k in "${!PID[@]}"; do
            [[ $k == "$h".* ]] || continue
            stop_pid "${PID[$k]}" 20
            unset "PID[$k]"
        done
    fi
    for p in $(ip netns pids "$P-$h" 2>/dev/null); do
        [ "$p" = "${HOLDER[$h]}" ] || kill -KILL "$p" 2>/dev/null
    done
    kill -KILL "${HOLDER[$h]}" 2>/dev/null
    wait "${HOLDER[$h]}" 2>/dev/null
    unset "HOLDER[$h]"
}

# Remove every hdm- namespace, link and directory (this run's, or a killed run's).
remove_names() {
    local ns p l
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-"); do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$P-"); do
        ip link del "$l" 2>/dev/null
    done
}

cleanup() {
    local rc=$? h
    trap - EXIT INT TERM
    [ -n "$STEP" ] && [ $rc -ne 0 ] && printf '\ndemo.sh: interrupted in step "%s"\n' "$STEP" >&2
    [ -n "$S" ] || exit $rc
    # The links back up, so that the node daemons can log out and flush.
    ip link set "$P-n1-c" up 2>/dev/null
    for h in node1 node2 client storage; do stop_host "$h"; done
    detach_loops "$S/loops"
    remove_names
    [ $MADE_MAPPER -eq 1 ] && rmdir /dev/mapper 2>/dev/null
    if [ -n "${HYDRA_DEMO_LOGS:-}" ]; then
        mkdir -p "$HYDRA_DEMO_LOGS" &&
            (cd "$S" && find . \( -name '*.log' -o -name '*.out' -o -name '*.conf' \) \
                -exec cp --parents {} "$HYDRA_DEMO_LOGS" \;) &&
            echo "demo.sh: logs and configuration kept in $HYDRA_DEMO_LOGS"
    fi
    rm -rf "$S"
    exit $rc
}

# What a killed earlier run left: its hosts are stopped as at the end of a run (their
# holders and node daemons found by what they run), then its namespaces, links, state
# directory and the loop devices of its node daemons (listed in the state directory).
sweep_stale() {
    local found=0 d h p
    if ip netns list 2>/dev/null | grep -q "^$P-"; then found=1; fi
    for d in /tmp/hdm-demo.*; do [ -d "$d" ] && found=1; done
    [ $found -eq 1 ] || return 0
    echo "demo.sh: removing what an earlier run that was killed left behind"
    for h in node1 node2 client storage; do
        for p in $(ip netns pids "$P-$h" 2>/dev/null); do
            case "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" in
            "sleep infinity ") HOLDER[$h]=$p ;;
            *" iscsid -f "*) PID[$h.iscsid]=$p ;;
            esac
        done
        [ -n "${HOLDER[$h]:-}" ] && stop_host "$h" crash
    done
    remove_names
    for d in /tmp/hdm-demo.*; do detach_loops "$d/loops"; done
    rm -rf /tmp/hdm-demo.*
    [ -d /dev/mapper ] && [ -z "$(ls -A /dev/mapper)" ] && rmdir /dev/mapper 2>/dev/null
    PID=()
    return 0
}

# ---- the configuration files (the examples/ files, with the demo's addresses) ----

write_storage_conf() {
    local d=$S/storage
    mkdir -p "$d/state"
    truncate -s 256M "$d/www.img"
    cat >"$d/targets.conf" <<EOF
# tgt's targets.conf (examples/cluster/targets.conf is the same for real machines)
default-driver iscsi
# CHAP for discovery sessions (the SendTargets answer lists the target's portals)
incomingdiscoveryuser $DISC_USER $DISC_PASS
<target $IQN>
    backing-store $d/www.img
    # Both nodes, on both storage networks; nobody else.
    initiator-address $(addr node1 a)
    initiator-address $(addr node1 b)
    initiator-address $(addr node2 a)
    initiator-address $(addr node2 b)
    # CHAP for the nodes' sessions
    incominguser $CHAP_USER $CHAP_PASS
</target>
EOF
}

write_node_conf() { # NODE
    local h=$1 d=$S/$1
    mkdir -p "$d/iscsi" "$d/multipath.conf.d"
    cat >"$d/iscsi/iscsid.conf" <<EOF
# open-iscsi's iscsid.conf: what every node record starts with
node.startup = automatic
node.session.auth.authmethod = CHAP
node.session.auth.username = $CHAP_USER
node.session.auth.password = $CHAP_PASS
discovery.sendtargets.auth.authmethod = CHAP
discovery.sendtargets.auth.username = $DISC_USER
discovery.sendtargets.auth.password = $DISC_PASS
node.conn[0].timeo.noop_out_interval = 5
node.conn[0].timeo.noop_out_timeout = 5
node.session.timeo.replacement_timeout = 120
EOF
    echo "InitiatorName=iqn.2026-12.org.hydra:$h" >"$d/iscsi/initiatorname.iscsi"
    cat >"$d/multipath.conf" <<EOF
defaults {
    user_friendly_names yes
    find_multipaths no
    partition_delimiter p
    polling_interval 1
    bindings_file "$d/bindings"
    wwids_file "$d/wwids"
}
EOF
    cat >"$d/corosync.conf" <<EOF
totem {
    version: 2
    cluster_name: $CLUSTER
    transport: knet
    token: 1000
    crypto_cipher: none
    crypto_hash: none
}
nodelist {
    node {
        name: node1
        nodeid: 1
        ring0_addr: $(addr node1 c)
    }
    node {
        name: node2
        nodeid: 2
        ring0_addr: $(addr node2 c)
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
system {
    state_dir: $d
}
logging {
    to_logfile: yes
    logfile: $d/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}
EOF
    cat >"$d/dlm.conf" <<EOF
# Fence through the storage: fence_scsi pre-empts the victim's key on mpatha.
device  scsi fence_scsi devices=/dev/mapper/mpatha
connect scsi node=1
# When the nodes lose each other, node 1 waits $DELAY s before it fences node 2, so
# that node 2 wins the race when node 1 is the one cut off.
connect scsi node=2 delay=$DELAY
# Each node registers its key (unfences itself) when dlm_controld starts.
unfence scsi
EOF
}

# ---- the node side ----

start_iscsid() { # NODE
    daemon "$1" iscsid "$S/$1/iscsid.log" \
        "hydra iscsid -f --root $S/$1/iscsi --dev-dir /run/hydra-dev --multipath-config $S/$1/multipath.conf --multipath-config-dir $S/$1/multipath.conf.d"
    wait_for "$1" 30 "hydra iscsid's sockets" \
        "[ -S /run/hydra-iscsid/iscsid.sock ] && [ -S /run/hydra-iscsid/multipathd.sock ]"
}

# mpatha with both paths active, served by a loop device (remembered for cleanup).
wait_map() { # NODE
    wait_for "$1" 60 "mpatha with two active paths" \
        "[ \$(hydra multipath -ll mpatha | grep -c 'active ready running') -eq 2 ] && [ -b /dev/mapper/mpatha ]"
    loop_id "$(in_host "$1" readlink -f /dev/mapper/mpatha)" >>"$S/loops"
}

start_corosync() { # NODE
    daemon "$1" corosync "$S/$1/corosync.out" "corosync -f -c $S/$1/corosync.conf"
}

wait_members() { # NODE COUNT
    wait_for "$1" 60 "corosync with $2 members" \
        "corosync-quorumtool -s | grep -Eq '^Nodes: +$2\$'"
}

start_dlm() { # NODE
    daemon "$1" dlm_controld "$S/$1/dlm_controld.log" \
        "hydra dlm_controld -f --config $S/$1/dlm.conf"
}

wait_dlm() { # NODE
    wait_for "$1" 60 "dlm_controld's socket (after unfencing)" "[ -S /run/dlm_controld/hydra-dlm.sock ]"
}

http_start() { # NODE
    daemon "$1" http "$S/$1/http.log" \
        "python3 -m http.server 80 --bind $(addr "$1" p) --directory /srv/www"
    wait_for client 20 "$1's web server" "curl -sf -o /dev/null http://$(addr "$1" p)/"
}

# ---- the run ----

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

sweep_stale
S=$(mktemp -d /tmp/hdm-demo.XXXXXX)
chmod 755 "$S"
mkdir -p "$S/bin"
for t in hydra fence_scsi fence_scsi_check mount.hydra; do ln -s "$HYDRA" "$S/bin/$t"; done
if [ ! -d /dev/mapper ]; then
    # The nodes see their own /dev/mapper (a bind mount in their namespaces), which
    # needs the directory to exist here; it is removed on exit.
    mkdir /dev/mapper && MADE_MAPPER=1
fi

note "${B}hydra demo${N}: the classic two-node shared-storage cluster in network namespaces"
note "hydra: $HYDRA"
note "files: $S (each node's configuration in $S/NODE; logs there too)"
note "node shells have PATH=$S/bin:\$PATH and HYDRA_ISCSI_ROOT=$S/NODE/iscsi (the node database)"

step "networks and hosts"
for n in "${NETS[@]}"; do
    ip link add "$P-$n" type bridge || fail "bridge $P-$n"
    echo 1 >"/proc/sys/net/ipv6/conf/$P-$n/disable_ipv6" 2>/dev/null
    ip link set "$P-$n" up
done
for h in "${HOSTS[@]}"; do
    mkdir -p "$S/$h"
    make_host "$h"
done
note "storage 10.200.240.1 10.200.241.1 | node1 .11, node2 .12 on 10.200.240-243 | client 10.200.243.100"

step "storage: hydra tgtd on two portals" "$S/storage/tgtd.log"
write_storage_conf
daemon storage tgtd "$S/storage/tgtd.log" \
    "hydra tgtd -f --iscsi portal=$(addr storage a):3260,portal=$(addr storage b):3260 --conf $S/storage/targets.conf --state-dir $S/storage/state"
wait_for storage 30 "hydra tgtd's control socket" "[ -S /run/hydra-tgtd/socket.0 ]"
run storage "cat $S/storage/targets.conf"
run storage "hydra tgt-admin -s"

step "nodes: hydra iscsid" "$S/node1/iscsid.log" "$S/node2/iscsid.log"
for h in node1 node2; do
    write_node_conf "$h"
    start_iscsid "$h"
done
note "(each node's /dev/mapper is its own: /run/hydra-dev/mapper, bound there in its mount namespace)"
run node1 "cat \$HYDRA_ISCSI_ROOT/iscsid.conf"

step "discovery on both networks" "$S/storage/tgtd.log"
for h in node1 node2; do
    for n in a b; do
        run "$h" "hydra iscsiadm --mode discoverydb --type sendtargets --portal $(addr storage "$n") --discover"
    done
done

step "login" "$S/node1/iscsid.log" "$S/node2/iscsid.log" "$S/storage/tgtd.log"
for h in node1 node2; do
    run "$h" "hydra iscsiadm --mode node --targetname $IQN --login"
done

step "multipath" "$S/node1/iscsid.log" "$S/node2/iscsid.log"
for h in node1 node2; do
    wait_map "$h"
    run "$h" "hydra multipath -ll"
done

step "cluster: corosync, dlm_controld, unfencing" "$S/node1/corosync.log" "$S/node2/corosync.log" \
    "$S/node1/dlm_controld.log" "$S/node2/dlm_controld.log"
for h in node1 node2; do start_corosync "$h"; done
for h in node1 node2; do wait_members "$h" 2; done
run node1 "corosync-quorumtool -s | sed -n '/^Votequorum/,\$p'"
run node1 "cat $S/node1/dlm.conf"
for h in node1 node2; do start_dlm "$h"; done
for h in node1 node2; do wait_dlm "$h"; done
run node1 "hydra mpathpersist --in --read-keys /dev/mapper/mpatha"
run node1 "hydra mpathpersist --in --read-reservation /dev/mapper/mpatha"

step "partition and filesystem (once, on node1)" "$S/node1/iscsid.log"
# sfdisk ends with sync(2), which writes back every filesystem of the machine: on a
# busy test machine it may wait for others' (seen: 20-30 s).
run node1 "printf 'label: dos\n,,L\n' | sfdisk --quiet /dev/mapper/mpatha"
wait_for node1 30 "/dev/mapper/mpathap1" "[ -b /dev/mapper/mpathap1 ]"
run node1 "mkfs.ext4 -q -L www /dev/mapper/mpathap1"
run node2 "hydra multipathd reconfigure"
wait_for node2 30 "/dev/mapper/mpathap1" "[ -b /dev/mapper/mpathap1 ]"
run node2 "ls /dev/mapper"

step "node1 mounts and serves" "$S/node1/dlm_controld.log" "$S/node1/http.log"
run node1 "hydra mount /dev/mapper/mpathap1 /srv/www"
run node1 "echo '<h1>hello from the shared disk</h1> written by node1 at $(date -u +%H:%M:%S)' > /srv/www/index.html && sync /srv/www/index.html"
run node1 "hydra mount --status"
http_start node1
run client "curl -s http://$(addr node1 p)/"
PAGE=$LAST

step "node2 is refused, then queues" "$S/node2/dlm_controld.log"
run_refused node2 "hydra mount /dev/mapper/mpathap1 /srv/www"
daemon node2 mountwait "$S/node2/mount.log" "hydra mount -o lockwait /dev/mapper/mpathap1 /srv/www"

step "node1's cluster link is cut: node2 fences it and mounts" "$S/node2/dlm_controld.log" \
    "$S/node1/dlm_controld.log" "$S/node2/mount.log" "$S/node2/iscsid.log"
T_CUT=$(now)
machine "ip link set $P-n1-c down"
wait_gone "${PID[node2.mountwait]}" 90 || fail "node2's hydra mount -o lockwait did not finish within 90 s of the cut"
wait "${PID[node2.mountwait]}"
rc=$?
unset "PID[node2.mountwait]"
cat "$S/node2/mount.log"
[ $rc -eq 0 ] || fail "node2's hydra mount -o lockwait exited $rc"
T_TAKEOVER=$(secs "$T_CUT" "$(now)")
note "(node2 mounted $T_TAKEOVER s after the cut)"
run node2 "hydra dlm_tool dump | grep -E 'fence (request|run|agents|result)'"
run node2 "hydra mpathpersist --in --read-keys /dev/mapper/mpatha"
run node2 "hydra mount --status"

step "node2 serves the same page" "$S/node2/http.log"
http_start node2
run client "curl -s http://$(addr node2 p)/"
[ "$LAST" = "$PAGE" ] || fail "node2 serves '$LAST', node1 served '$PAGE'"
note "(the same page)"

step "node1 is fenced: its writes are refused; it reboots" "$S/node1/iscsid.log"
run_refused node1 "echo 'a late write' > /srv/www/late.html && sync /srv/www/late.html"
note "(Invalid exchange is EBADE: the target answered RESERVATION CONFLICT, as Linux reports it)"
run_refused node1 "hydra fence_scsi_check"
note "(fence_scsi_check's watchdog reboots a node whose key is gone; here its processes go, its mounts, and its /run)"
stop_host node1 crash

step "node1 comes back and unfences" "$S/node1/iscsid.log" "$S/node1/corosync.log" "$S/node1/dlm_controld.log"
machine "ip link set $P-n1-c up"
boot_holder node1
start_iscsid node1
note "(node.startup = automatic: hydra iscsid logs in again by itself)"
wait_map node1
start_corosync node1
wait_members node1 2
wait_members node2 2
run node1 "hydra fence_scsi -o on -n node1 -d /dev/mapper/mpatha"
start_dlm node1
wait_dlm node1
# The partition table is read when the map is made, but a node that is not registered
# yet gets EIO when the loop device is closed (SYNCHRONIZE CACHE meets the WERO
# reservation) and partx gives up: read it again now, as partprobe would.
run node1 "hydra multipathd reconfigure"
wait_for node1 30 "/dev/mapper/mpathap1" "[ -b /dev/mapper/mpathap1 ]"
run node1 "hydra fence_scsi -o status -n node1 -d /dev/mapper/mpatha"
run node1 "hydra mpathpersist --in --read-keys /dev/mapper/mpatha"
run_refused node1 "hydra mount /dev/mapper/mpathap1 /srv/www"

step "node2 unmounts; the filesystem is clean" "$S/node2/dlm_controld.log"
kill -KILL "${PID[node2.http]}" 2>/dev/null
wait "${PID[node2.http]}" 2>/dev/null
unset "PID[node2.http]"
run node2 "ls /srv/www"
run node2 "hydra umount /srv/www"
run node2 "fsck.ext4 -n /dev/mapper/mpathap1"

end_step
printf '\n%s%-58s %8s%s\n' "$B" "step" "seconds" "$N"
for row in "${SUMMARY[@]}"; do printf '%-58s %8s\n' "${row%|*}" "${row#*|}"; done
printf '%-58s %8s\n' "cut -> node2 mounted" "$T_TAKEOVER"
printf '%-58s %8s\n' "total" "$(secs "$T_START" "$(now)")"
note "done; removing everything (namespaces, mounts, loop devices, processes)"
