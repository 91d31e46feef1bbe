#!/usr/bin/env bash
# The whole test suite, including the Verilator/Icarus co-simulation matrix,
# lint, insta snapshots and the yosys/nextpnr flow.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo test --release --workspace --locked "$@"
