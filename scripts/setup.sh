#!/usr/bin/env bash
# Install what hydra's run, test and benchmark scripts need on a fresh Debian 12 machine
# with the Rust toolchain: Debian's tgt (the target hydra replaces, for comparisons) and
# libiscsi's tools (iscsi-ls, iscsi-inq, iscsi-perf, iscsi-test-cu). Idempotent.
set -euo pipefail

need=()
command -v tgtd >/dev/null 2>&1 || need+=(tgt)
command -v iscsi-test-cu >/dev/null 2>&1 || need+=(libiscsi-bin)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ "${#need[@]}" -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts tgt's own service on install; hydra's tests and benchmarks start their
# own daemons on their own ports, so the packaged one is left as the admin set it.
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found: install the Rust toolchain (rustup)" >&2; exit 1; }
