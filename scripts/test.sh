#!/usr/bin/env bash
# Builds everything and runs the whole test suite (ctest drives the unit, end-to-end and lit tests),
# then the suite again under AddressSanitizer + UndefinedBehaviorSanitizer (clang, in build-asan),
# with sessions in threads under ThreadSanitizer and a few seconds of every fuzzer. The sanitized
# pass is for memory and undefined behaviour, not numerics: it leaves out the large unrolled models
# (label "unrolled": minutes each to compile instrumented), tests whose code paths others of the pass
# already run (label "heavy"), the comparisons with independent references (label "reference"), and
# the lit tests that only generate and compile code (tests/CMakeLists.txt, lit_filter).
# RSRC_SANITIZED_TESTS=0 skips the sanitized pass. See docs/robustness.md. Before the suite it
# cross-builds the aarch64 runtime (scripts/cross.sh), which the ARM targets' tests run under QEMU.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
jobs=$(nproc 2>/dev/null || echo 2)
# The suite starts python3 about a thousand times (lit's helpers, the test models' writers): where
# python3 is a version manager's shim (pyenv's takes a second of a start), that is minutes. The
# interpreter it picks, resolved once, goes first on PATH: the same python, started directly.
py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)
if [ -n "$py" ] && [ -x "$py" ] && [ "$(command -v python3)" != "$py" ]; then
  mkdir -p "$build/python-bin"
  ln -sfn "$py" "$build/python-bin/python3"
  export PATH="$build/python-bin:$PATH"
fi
export RSRC_SETUP_TESTS=1
"$root/scripts/setup.sh" "$build"
# the aarch64 runtime and rsr-run (build-aarch64/): the ARM targets' tests run under qemu-user,
# and must not skip here (docs/arm64.md)
"$root/scripts/cross.sh" aarch64 >/dev/null
export RSRC_REQUIRE_CROSS=1
# ctest in DIR; when a test fails, the end of each failed test's output again, last (a log kept
# by its head and tail keeps that: scripts/failures.py)
run_ctest() {
  local dir=$1
  shift
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@" && return
  local status=$?
  python3 "$root/scripts/failures.py" "$dir" || true
  return $status
}
run_ctest "$build" "$@"
# the runtime's own tests, built for aarch64, under qemu-user (a minute)
run_ctest "$root/build-aarch64" "$@"

if [ "${RSRC_SANITIZED_TESTS:-1}" != 0 ]; then
  "$root/scripts/setup.sh" "$root/build-asan" -DCMAKE_C_COMPILER="clang-$("$root/scripts/setup.sh" --llvm)" -DRSRC_SANITIZE=address,undefined -DRSRC_FUZZ=ON -DRSRC_BENCH=OFF
  run_ctest "$root/build-asan" -LE 'unrolled|heavy|reference' "$@"
fi
