#!/usr/bin/env bash
# The main job on a built-in default: a small BitNet b1.58 model trained on the King James Bible
# (models/kjv-tiny: the real Hugging Face checkpoint format, docs/trained-model.md), compiled with
# rsrc, run with rsr-run; then the same checkpoint as a GGUF file, and a model of random weights
# beside it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
model=$root/models/kjv-tiny
"$root/scripts/setup.sh" "$build"
work=$build/demo
rm -rf "$work" && mkdir -p "$work"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "A BitNet b1.58 checkpoint trained on the King James Bible (4M parameters, ternary weights)"
ls -l "$model"

say "Compile it for this machine; per matrix, the strategy the cost model chose and why (first 3 of 28)"
"$build/rsrc" "$model" -o "$work/model.so" --explain > "$work/explain.txt"
head -3 "$work/explain.txt"
"$build/rsr-run" "$work/model.so" --info | grep -E "^(architecture|hidden|tokenizer|target) "

say "What Redundant Segment Reduction finds in the same matrices (--strategy=rsr-loop, first 3)"
"$build/rsrc" "$model" -o "$work/rsr.so" --strategy=rsr-loop --stats > "$work/stats.txt"
head -4 "$work/stats.txt"

say "Run it: greedy (repetition penalty 1.2), then sampled (temperature 0.8, min-p 0.05, seed 1)"
"$build/rsr-run" "$work/model.so" -p "In the beginning God created" -n 40 --repeat-penalty 1.2
"$build/rsr-run" "$work/model.so" -p "And Jesus said unto them," -n 40 --temp 0.8 --min-p 0.05 --seed 1

say "Chat with it (its chat template, tokenizer_config.json): say a verse, it answers with what follows"
verse="And God said, Let there be light: and there was light."
echo "> $verse"
echo "$verse" | "$build/rsr-run" "$work/model.so" --chat -n 60 --repeat-penalty 1.2 2>/dev/null

say "The same checkpoint as bitnet.cpp's I2_S GGUF (rsr-mkmodel --from), compiled: the same text"
"$build/rsr-mkmodel" --format gguf-i2s --from "$model" --out "$work/kjv-i2s"
"$build/rsrc" "$work/kjv-i2s/model.gguf" -o "$work/i2s.so"
"$build/rsr-run" "$work/i2s.so" -p "In the beginning God created" -n 40 --repeat-penalty 1.2

say "Speed: prompt and decode tokens/s, the memory's read rate beside them"
"$build/rsr-run" "$work/model.so" --bench --repeat 3 > "$work/bench.txt" 2>&1
grep -E '^(prefill|decode .*(certified|full logits)|roofline)' "$work/bench.txt"

say "Random weights of the same format (rsr-mkmodel, the test models): the pipeline is the same, the text noise"
"$build/rsr-mkmodel" --format bitnet-packed --preset small --out "$work/random"
"$build/rsrc" "$work/random" -o "$work/random.so"
"$build/rsr-run" "$work/random.so" -p "In the beginning God created" -n 16 --repeat-penalty 1.3

say "Next: run these as printed"
rel() { realpath --relative-to="$PWD" "$1"; }
echo "$(rel "$build/rsr-run") $(rel "$work/model.so") --chat          # a chat in the terminal"
echo "$(rel "$build/rsr-serve") $(rel "$work/model.so")               # the chat page on http://localhost:8080 and the OpenAI API"
echo "$(rel "$build/rsrc") path/to/bitnet-b1.58-2B-4T -o bitnet.so && $(rel "$build/rsr-run") bitnet.so --chat   # a published model (docs/user-guide.md)"
