#!/usr/bin/env bash
# The whole test suite, including the Verilator/Icarus co-simulation matrix,
# lint, insta snapshots and the yosys/nextpnr flow. Ends with one total line.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
