#!/usr/bin/env bash
# Gemma3 GGUF files (rsr-mkmodel --gguf-arch gemma3: 7 layers, so that layer 5 is global and the
# others local, with a sliding window of 4 positions that the 16-token prompt crosses; TQ2_0 and
# Q2_0 matrices, and I2_S ones with the BitNet embedding models' norm before each projection,
# blk.N.*_norm_in, and int8 activations per token) beside two references: tests/gguf/gemma3_model.py
# (float64, nothing quantised but the weights, shares no code with rsrc) and upstream llama.cpp
# (npm's node-llama-cpp; not for the I2_S file: bitnet.cpp's type, and norms upstream has not). rsrc
# compiles each file and gives its logits after each prefix of the prompt; both comparisons must
# pass compare_probs.py's check with check_qwen3.sh's thresholds (the most likely token the same but
# in near ties, KL below 0.01, no probability off by more than 0.03). Steps of 1 and 5 tokens give
# the bits of one step of all 16. The test would fail if rsrc ignored the windows or the local
# layers' RoPE base: the float reference without them (--ablate) must disagree with rsrc beyond
# the same thresholds. Exits 77 (ctest: skipped) without node, npm or the registry.
# Usage: check_gemma3.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/python.sh" # py: a python3 with numpy where there is one
who=check_gemma3.sh
. "$here/prelude.sh" gemma3
prompt=1,17,42,99,5,30,7,250,18,64,33,121,8,77,200,9
n=$(echo "$prompt" | tr ',' '\n' | wc -l)
sizes="--hidden 256 --intermediate 512 --layers 7 --heads 4 --kv-heads 2"
# name, whether llama.cpp reads it, then rsr-mkmodel's arguments
cases=("tq2 yes --format gguf-tq2 --seed 1"
       "q2 yes --format gguf-q2 --seed 3"
       "proj-norms no --format gguf-i2s --seed 4 --proj-norms")
for c in "${cases[@]}"; do
  read -r name upstream args <<<"$c"
  # shellcheck disable=SC2086
  "$build/rsr-mkmodel" $args $sizes --gguf-arch gemma3 --out "$work/$name" 2>/dev/null
  gguf=$work/$name/model.gguf
  "$build/rsrc" "$gguf" -o "$work/$name.so" -O0
  prefix_logits "$name" "$prompt" "$n"
  for b in 1 5; do
    "$build/rsr-run" "$work/$name.so" --tokens "$prompt" -n 1 -b $b --logits "$work/$name.b$b.f32" >/dev/null 2>&1
    cmp "$work/$name.b$b.f32" "$work/$name.$n.f32"
  done
  "$py" "$here/gemma3_model.py" reference "$gguf" "$prompt" --json "$work/$name.float.json"
  "$py" "$here/compare_probs.py" "$work" "$name" "$n" "$work/$name.float.json" "the float reference" 0.02 0.01 0.03
  [ "$upstream" = yes ] || continue
  node "$dir/llama_ref.mjs" "$gguf" "$prompt" >"$work/$name.llama.json"
  "$py" "$here/compare_probs.py" "$work" "$name" "$n" "$work/$name.llama.json" llama.cpp 0.02 0.01 0.03
done
# what a runtime without the windows, or with one RoPE base, would compute is far from rsrc's
for ablate in window rope; do
  "$py" "$here/gemma3_model.py" reference "$work/tq2/model.gguf" "$prompt" --ablate $ablate \
    --json "$work/tq2.no-$ablate.json"
  if "$py" "$here/compare_probs.py" "$work" tq2 "$n" "$work/tq2.no-$ablate.json" "the float reference without \
the $ablate" 0.02 0.01 0.03; then
    echo "$who: the float reference without the $ablate agrees with rsrc: the test cannot see that feature" >&2
    exit 1
  fi
done
echo "$who: ok"
