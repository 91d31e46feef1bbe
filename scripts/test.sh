#!/usr/bin/env bash
# The whole test suite, including the Verilator/Icarus co-simulation matrix,
# mutation testing, lint, insta snapshots and the yosys/nextpnr flow. Every test
# binary runs even when an earlier one fails (--no-fail-fast). Ends with one total
# line; a non-zero status always comes with a failure line, also when a test binary
# crashed or did not build and so printed no result line.
set -euo pipefail
cd "$(dirname "$0")/.."
export HDFA_TEST_DEPS=1
source scripts/deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
# Test binaries that failed without a result line of their own (crash, abort, build error).
crashed=$(grep -cE "process didn't exit successfully: .*\((signal|exit status)" "$log" || true)
reported=$(grep -cE 'test result: FAILED' "$log" || true)
silent=$(( crashed > reported ? crashed - reported : 0 ))
if [ "$status" -ne 0 ]; then
  if [ "$failed" -eq 0 ] || [ "$silent" -gt 0 ]; then
    echo "FAILURE: cargo test exited with status $status; $silent test binary(ies) failed without a result line (crashed or did not build); see the output above"
    [ "$failed" -eq 0 ] && failed=1
  fi
  grep -E '^error: ' "$log" | sed 's/^/FAILURE: /' || true
fi
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
