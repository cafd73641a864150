#!/usr/bin/env bash
# The main job on a built-in default: make a small BitNet b1.58 model in the real Hugging Face
# checkpoint format, compile it with rsrc, run it with rsr-run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
"$root/scripts/setup.sh" "$build"
work=$build/demo
rm -rf "$work" && mkdir -p "$work"
set -x
"$build/rsr-mkmodel" --format bitnet-packed --preset small --out "$work/bitnet-small"
"$build/rsrc" "$work/bitnet-small" -o "$work/model.so" --stats
"$build/rsr-run" "$work/model.so" --tokens 1,17,42 -n 32 --ignore-eos
"$build/rsr-run" "$work/model.so" -p "The capital of France is" -n 32
