#!/usr/bin/env bash
# Install what hydra's run, test and benchmark scripts need on a fresh Debian 12 machine
# with the Rust toolchain: Debian's tgt (the target hydra replaces, for comparisons),
# libiscsi's tools (iscsi-ls, iscsi-inq, iscsi-perf, iscsi-test-cu), and corosync with the
# libraries the DLM links (rust-corosync links libcpg, libcfg, libcmap, libquorum and
# libvotequorum), and the NBD clients the multipath export is tested with. Idempotent.
set -euo pipefail

need=()
command -v tgtd >/dev/null 2>&1 || need+=(tgt)
command -v iscsi-test-cu >/dev/null 2>&1 || need+=(libiscsi-bin)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# scripts/demo.sh fetches the page its cluster serves.
command -v curl >/dev/null 2>&1 || need+=(curl)
# bench-target.sh watches the Data-In sizes Debian's tgtd really sends.
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v corosync >/dev/null 2>&1 || need+=(corosync)
# The multipath NBD export's peers: qemu-img/qemu-io, nbdinfo/nbdcopy/nbdfuse, fio's nbd
# engine, and sfdisk for the partition table on the FUSE + loop route.
command -v qemu-io >/dev/null 2>&1 || need+=(qemu-utils)
command -v nbdfuse >/dev/null 2>&1 || need+=(libnbd-bin)
command -v fio >/dev/null 2>&1 || need+=(fio)
command -v sfdisk >/dev/null 2>&1 || need+=(fdisk)
# hydra mount probes devices with libblkid through the libblkid-rs binding, whose
# bindgen build needs libblkid's headers and libclang; mkfs.ext4 for its tests.
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
for dev in libcorosync-common-dev libcpg-dev libquorum-dev libvotequorum-dev libcfg-dev libcmap-dev libblkid-dev libclang-dev; do
    dpkg -s "$dev" >/dev/null 2>&1 || need+=("$dev")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian enables corosync's own service on install (and starts it where systemd runs),
    # with a sample one-node corosync.conf. The DLM tests run their own corosync per
    # namespace host, so a corosync installed here is disabled and stopped; one that was
    # already installed is the admin's and is left alone.
    if [[ " ${need[*]} " == *" corosync "* ]] && command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable corosync.service >/dev/null 2>&1 || true
        if [ -d /run/systemd/system ]; then $SUDO systemctl stop corosync.service || true; fi
    fi
fi
# target/tests/config_examples.rs reads tgt's own example configs from the package; an
# image whose dpkg excludes /usr/share/doc (Debian's slim images) installs tgt without
# them: reinstall tgt with that one directory let through.
examples=/usr/share/doc/tgt/examples/targets.conf.example
if [ ! -e "$examples" ]; then
    echo "setup: $examples is missing: reinstalling tgt with /usr/share/doc/tgt included"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --reinstall \
        -o 'Dpkg::Options::=--path-include=/usr/share/doc/tgt/*' tgt >/dev/null
    [ -e "$examples" ] || { echo "setup: $examples is still missing (see dpkg's path-exclude in /etc/dpkg/dpkg.cfg.d/)" >&2; exit 1; }
fi
# Debian starts tgt's own service on install; hydra's tests and benchmarks start their
# own daemons on their own ports, so the packaged one is left as the admin set it.
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found: install the Rust toolchain (rustup)" >&2; exit 1; }
