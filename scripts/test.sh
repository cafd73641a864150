#!/usr/bin/env bash
# Builds everything and runs the whole test suite (ctest drives the unit, end-to-end and lit tests),
# then the suite again under AddressSanitizer + UndefinedBehaviorSanitizer (clang, in build-asan),
# with sessions in threads under ThreadSanitizer and a few seconds of every fuzzer. The large
# unrolled end-to-end models are left out of the sanitized pass (label "unrolled": minutes each to
# compile instrumented), and so are the KV-type models the pass already covers (label "heavy").
# RSRC_SANITIZED_TESTS=0 skips the sanitized pass. See docs/robustness.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
jobs=$(nproc 2>/dev/null || echo 2)
export RSRC_SETUP_TESTS=1
"$root/scripts/setup.sh" "$build"
cd "$build"
ctest --output-on-failure -j "$jobs" "$@"

if [ "${RSRC_SANITIZED_TESTS:-1}" != 0 ]; then
  "$root/scripts/setup.sh" "$root/build-asan" -DCMAKE_C_COMPILER=clang-14 -DRSRC_SANITIZE=address,undefined -DRSRC_FUZZ=ON
  cd "$root/build-asan"
  ctest --output-on-failure -j "$jobs" -LE 'unrolled|heavy' "$@"
fi
