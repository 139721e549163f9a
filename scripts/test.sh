#!/usr/bin/env bash
# hydra's test suite: installs what a fresh Debian 12 machine lacks (scripts/setup.sh),
# then runs every unit, property, integration, interop (libiscsi, Debian's tgtd) and
# conformance (iscsi-test-cu) test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Module dependencies point one way in every crate.
for crate in proto target initiator daemon multipath dlm-core dlm cluster; do
    python3 .ci/import-cycles.py "$crate/src"
done
cargo test --workspace --all-targets 2>&1
