#!/usr/bin/env bash
# The main job: emit the backward-weight unit, the dilated-conv error-propagation
# engine and the HDFA update unit, co-simulate each bit-exactly against the golden
# model on Verilator and Icarus, and synthesize each for iCE40, printing a summary per
# unit; then train digits-hdfa for 50 steps with every DFA error propagation on the
# Verilated dce and bsbu and every weight update on the Verilated update unit, and
# check it ends bit-identical to the golden run. Extra arguments go to
# the backward-weight unit's flow.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo run --release -q -p hdfa -- flow --lanes 4 --rows 64 --cols 64 --sparsity 0.9 --vectors 2000 "$@"
cargo run --release -q -p hdfa -- flow --unit dce --lanes 4 --cs 16 --ct 16 --height 8 --width 8 --dil 2 --groups 4 --vectors 20 --out target/hdfa-out/flow-dce
cargo run --release -q -p hdfa -- flow --unit upd --lanes 1 --vectors 500 --out target/hdfa-out/flow-upd
cargo run --release -q -p hdfa -- train --config configs/digits-hdfa.toml --hw verilator --steps 50 --out target/hdfa-out/train-hw
