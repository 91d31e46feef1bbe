#!/usr/bin/env bash
# Install what hdfa needs on Debian/Ubuntu, if it is missing. Sourced by main.sh and test.sh.
set -euo pipefail
APT_PKGS=(verilator g++ make perl zlib1g-dev iverilog yosys nextpnr-ice40 fpga-icestorm dataset-fashion-mnist)
need=()
for tool in verilator g++ make perl iverilog vvp yosys nextpnr-ice40; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
[ -e /usr/include/zlib.h ] || need+=("zlib1g-dev")
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=("dataset-fashion-mnist")
# The tests also open `hdfa run`'s HTML report in a headless browser.
if [ "${HDFA_TEST_DEPS:-0}" = 1 ]; then
  APT_PKGS+=(chromium)
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=("chromium")
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "hdfa: missing ${need[*]}; installing: ${APT_PKGS[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "hdfa: apt-get not found. Install these by hand: ${APT_PKGS[*]}" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "hdfa: need root or sudo to run: apt-get install -y ${APT_PKGS[*]}" >&2
      exit 1
    fi
  fi
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_PKGS[@]}"; }; then
    echo "hdfa: apt-get could not install: ${APT_PKGS[*]}" >&2
    exit 1
  fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "hdfa: cargo not found. Install Rust (>= 1.89) with rustup (https://rustup.rs) or 'apt-get install cargo' on a recent release." >&2
  exit 1
fi
