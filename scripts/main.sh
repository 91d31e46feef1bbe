#!/usr/bin/env bash
# The main job: emit the backward-weight unit, co-simulate it bit-exactly against the
# golden model on Verilator and Icarus, and synthesize it for iCE40, printing a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo run --release -q -p hdfa -- flow --lanes 4 --rows 64 --cols 64 --sparsity 0.9 --vectors 2000 "$@"
