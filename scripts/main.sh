#!/usr/bin/env bash
# The main job: emit the backward-weight unit and the dilated-conv error-propagation
# engine, co-simulate each bit-exactly against the golden model on Verilator and
# Icarus, and synthesize each for iCE40, printing a summary per unit. Extra arguments
# go to the backward-weight unit's flow.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo run --release -q -p hdfa -- flow --lanes 4 --rows 64 --cols 64 --sparsity 0.9 --vectors 2000 "$@"
cargo run --release -q -p hdfa -- flow --unit dce --lanes 4 --cs 16 --ct 16 --height 8 --width 8 --dil 2 --groups 4 --vectors 20 --out target/hdfa-out/flow-dce
