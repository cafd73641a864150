#!/usr/bin/env bash
# Builds everything and runs the whole test suite (ctest drives the unit, end-to-end and lit tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
"$root/scripts/setup.sh" "$build"
cd "$build"
ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" "$@"
