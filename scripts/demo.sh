#!/usr/bin/env bash
# The main job on a built-in default: make a small BitNet b1.58 model in the real Hugging Face
# checkpoint format, compile it with rsrc, run it with rsr-run.
#
# The model's weights are random (rsr-mkmodel draws them from a seed): what it writes is noise,
# and the point is the pipeline — the checkpoint read, every matrix analysed and compiled into
# code of its own, the artifact loaded, tokenized text in and out, at full speed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
"$root/scripts/setup.sh" "$build"
work=$build/demo
rm -rf "$work" && mkdir -p "$work"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "A BitNet b1.58 checkpoint with random weights (embeddings scaled as in trained models)"
"$build/rsr-mkmodel" --format bitnet-packed --preset small --out "$work/bitnet-small"
ls -l "$work/bitnet-small"

say "Compile it for this machine; per matrix, the strategy the cost model chose and why (first 3 of 28)"
"$build/rsrc" "$work/bitnet-small" -o "$work/model.so" --explain > "$work/explain.txt"
head -3 "$work/explain.txt"
"$build/rsr-run" "$work/model.so" --info | grep -E "^(architecture|hidden|tokenizer|target) "

say "What Redundant Segment Reduction finds in the same matrices (--strategy=rsr-loop, first 3)"
"$build/rsrc" "$work/bitnet-small" -o "$work/rsr.so" --strategy=rsr-loop --stats > "$work/stats.txt"
head -4 "$work/stats.txt"

say "Run it: greedy, then sampled (temperature 0.8, min-p 0.05, seed 1) — random weights, so noise"
"$build/rsr-run" "$work/model.so" -p "The capital of France is" -n 24 --repeat-penalty 1.3
"$build/rsr-run" "$work/model.so" -p "The capital of France is" -n 24 --temp 0.8 --min-p 0.05 --seed 1

say "Speed: prompt and decode tokens/s, the memory's read rate beside them"
"$build/rsr-run" "$work/model.so" --bench --repeat 3 > "$work/bench.txt" 2>&1
tail -4 "$work/bench.txt"

say "Next: a real model"
echo "rsrc path/to/bitnet-b1.58-2B-4T -o bitnet.so && $build/rsr-run bitnet.so --chat   (docs/user-guide.md)"
