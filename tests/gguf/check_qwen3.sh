#!/usr/bin/env bash
# Qwen3 GGUF files with llama.cpp's group-scaled types beside two references: tests/gguf/qwen3_model.py
# (shares no code with rsrc) writes each file (Q2_0 ternary, Q1_0 binary, Q2_0 with codes of +2,
# and a tied head; random scales per block, q/k norms, head dimension 96 where hidden/heads is 64)
# and computes its logits in float64 with nothing quantised but the weights; upstream llama.cpp
# (npm's node-llama-cpp) gives its next-token probabilities; rsrc compiles the file and gives its
# logits after each prefix of a prompt. Both comparisons must pass compare_probs.py's check (the
# same most likely token but in near ties, KL below 0.01, no probability off by more than 0.03;
# measured: KL at most 1.1e-3, |dp| at most 0.014: the int8 activations' rounding, which llama.cpp's
# Q8_0 blocks have too). The RSR forms' artifact (--strategy=rsr-loop) and lut's give the default
# i2's logits bit for bit. Then embeddings (rsr-run --embed) of files whose qwen3.pooling_type asks
# for mean, first-token and last-token pooling beside llama.cpp's and the float reference's
# (compare_embed.py). Exits 77 (ctest: skipped) without node, npm or the registry.
# Usage: check_qwen3.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/python.sh" # py: a python3 with numpy where there is one
who=check_qwen3.sh
. "$here/prelude.sh" qwen3 llama_embed.mjs
prompt=1,17,42,99,5,300,7,250,18,64,33,121,8,77,200,9
n=$(echo "$prompt" | tr ',' '\n' | wc -l)
# name, then qwen3_model.py write's arguments
cases=("q2_0 --weights q2_0 --seed 1"
       "q1_0 --weights q1_0 --seed 2"
       "q2_0-plus2 --weights q2_0-plus2 --seed 3"
       "q2_0-tied --weights q2_0 --seed 4 --tied")
for c in "${cases[@]}"; do
  read -r name args <<<"$c"
  # shellcheck disable=SC2086
  "$py" "$here/qwen3_model.py" write "$work/$name.gguf" $args
  "$build/rsrc" "$work/$name.gguf" -o "$work/$name.so" -O0
  prefix_logits "$name" "$prompt" "$n"
  # steps of 1 and 5 tokens give the bits of one step of all 16 (docs/design.md)
  for b in 1 5; do
    "$build/rsr-run" "$work/$name.so" --tokens "$prompt" -n 1 -b $b --logits "$work/$name.b$b.f32" >/dev/null 2>&1
    cmp "$work/$name.b$b.f32" "$work/$name.$n.f32"
  done
  # the RSR forms (the matrix expanded per unit and plane) sum the same integers as i2's per unit
  "$build/rsrc" "$work/$name.gguf" -o "$work/$name.rsr.so" -O0 --strategy=rsr-loop
  "$build/rsr-run" "$work/$name.rsr.so" --tokens "$prompt" -n 1 --logits "$work/$name.rsr.f32" >/dev/null 2>&1
  cmp "$work/$name.rsr.f32" "$work/$name.$n.f32"
  # and so does lut, each block over its window of groups (the C printer: its scalar form where
  # the CPU has no VBMI)
  "$build/rsrc" "$work/$name.gguf" -o "$work/$name.lut.so" -O0 --strategy=lut --backend=c
  "$build/rsr-run" "$work/$name.lut.so" --tokens "$prompt" -n 1 --logits "$work/$name.lut.f32" >/dev/null 2>&1
  cmp "$work/$name.lut.f32" "$work/$name.$n.f32"
  "$py" "$here/qwen3_model.py" reference "$work/$name.gguf" "$prompt" --json "$work/$name.float.json"
  "$py" "$here/compare_probs.py" "$work" "$name" "$n" "$work/$name.float.json" "the float reference" 0.02 0.01 0.03
  node "$dir/llama_ref.mjs" "$work/$name.gguf" "$prompt" >"$work/$name.llama.json"
  "$py" "$here/compare_probs.py" "$work" "$name" "$n" "$work/$name.llama.json" llama.cpp 0.02 0.01 0.03
done
# embeddings: mean (1), first-token (2) and last-token (3) pooling, as qwen3.pooling_type says
for pooling in 1 2 3; do
  name=embed-$pooling
  "$py" "$here/qwen3_model.py" write "$work/$name.gguf" --weights q2_0 --seed 5 --pooling $pooling
  "$build/rsrc" "$work/$name.gguf" -o "$work/$name.so" -O0
  "$build/rsr-run" "$work/$name.so" --tokens "$prompt" --embed-raw >"$work/$name.raw.json"
  "$build/rsr-run" "$work/$name.so" --tokens "$prompt" --embed >"$work/$name.unit.json"
  node "$dir/llama_embed.mjs" "$work/$name.gguf" "$prompt" >"$work/$name.llama.json"
  "$py" "$here/qwen3_model.py" reference "$work/$name.gguf" "$prompt" --json "$work/$name.float.json"
  "$py" "$here/compare_embed.py" "$work/$name.raw.json" "$work/$name.unit.json" "$work/$name.llama.json" \
    "$work/$name.float.json" $pooling $name
done
