#!/usr/bin/env bash
# The main job, `hdfa run`: train the Fashion-MNIST CNN (configs/fashion-run.toml) in
# the fixed-point golden model with BP, the original DFA, the revised DFA and HDFA
# (p = 0.5), with a progress bar; train a stretch of it with every DFA error
# propagation on the Verilated dce and bsbu and every weight update on the Verilated
# update unit, checked word for word and at the end against the all-golden run;
# synthesize those units for iCE40; price the error propagation with the cost model
# (`hdfa cost`); and write target/hdfa-out/run/report.md and report.html with figures.
# Extra arguments go to `hdfa run` (e.g. --quick, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo run --release -q -p hdfa -- run "$@"
