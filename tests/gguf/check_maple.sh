#!/usr/bin/env bash
# Maple GGUF files (rsr-mkmodel --gguf-arch maple: 4 layers, 0 and 2 windowed with RoPE, 1 and 3
# global without it, a window of 4 positions that the 16-token prompt crosses; a mixture of 8
# experts of 256 rows, 2 per token, SwiGLU clamped at 2 (about one value in twenty); TQ2_0 and Q2_0 matrices) beside two
# references: tests/gguf/maple_model.py (float64, nothing quantised but the weights, shares no code
# with rsrc) and upstream llama.cpp (npm's node-llama-cpp). rsrc compiles each file and gives its
# logits after each prefix of the prompt; both comparisons must pass compare_probs.py's check with
# check_qwen3.sh's thresholds (the most likely token the same but in near ties, KL below 0.01, no
# probability off by more than 0.03). Steps of 1 and 5 tokens give the bits of one step of all 16.
# The routing: rsrc's chosen experts of every token and layer (RSR_TRACE_ROUTING) must be the
# float reference's, but where the reference's k-th and (k+1)-th router probabilities are within
# MARGIN: a near tie, which rounding tips either way (rsrc's int8 activations move the router's
# probabilities by up to about 5e-3 here), and where the reference then takes rsrc's choice
# (maple_model.py --follow; a flipped expert changes the token's output entirely). llama.cpp's
# routing cannot be read, and its own rounding (Q8_K activations for TQ2_0, an f16 KV cache) tips
# ties too: the seeds below are ones where it and rsrc choose alike (docs/moe.md). The test would fail if rsrc did not renormalise the chosen experts' weights, rotated
# the global layers or ignored the clamp: the float reference so (--ablate) must disagree with rsrc
# beyond the same thresholds. Exits 77 (ctest: skipped) without node, npm or the registry.
# Usage: check_maple.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/python.sh" # py: a python3 with numpy where there is one
who=check_maple.sh
. "$here/prelude.sh" maple
prompt=1,17,42,99,5,30,7,250,18,64,33,121,8,77,200,9
n=$(echo "$prompt" | tr ',' '\n' | wc -l)
margin=0.01
sizes="--hidden 256 --intermediate 512 --layers 4 --heads 4 --kv-heads 2 --experts 8 --experts-used 2 --expert-ff 256"
sizes="$sizes --swiglu-clamp 2 --swa-pattern 1010 --sliding-window 4"
# name, then rsr-mkmodel's arguments
cases=("tq2 --format gguf-tq2 --seed 11"
       "q2 --format gguf-q2 --seed 5")
for c in "${cases[@]}"; do
  read -r name args <<<"$c"
  # shellcheck disable=SC2086
  "$build/rsr-mkmodel" $args $sizes --gguf-arch maple --out "$work/$name" 2>/dev/null
  gguf=$work/$name/model.gguf
  "$build/rsrc" "$gguf" -o "$work/$name.so" -O0
  prefix_logits "$name" "$prompt" "$n"
  for b in 1 5; do
    RSR_TRACE_ROUTING=$work/$name.b$b.routes "$build/rsr-run" "$work/$name.so" --tokens "$prompt" -n 1 -b $b \
      --logits "$work/$name.b$b.f32" >/dev/null 2>&1
    cmp "$work/$name.b$b.f32" "$work/$name.$n.f32"
  done
  "$py" "$here/maple_model.py" reference "$gguf" "$prompt" --json "$work/$name.float.json" \
    --routes "$work/$name.float.routes" --follow "$work/$name.b5.routes" $margin
  "$py" "$here/compare_routes.py" "$work/$name.b5.routes" "$work/$name.float.routes" "$n" $margin
  cmp <(sort -n -k1,1 -k2,2 "$work/$name.b1.routes") <(sort -n -k1,1 -k2,2 "$work/$name.b5.routes")
  "$py" "$here/compare_probs.py" "$work" "$name" "$n" "$work/$name.float.json" "the float reference" 0.02 0.01 0.03
  node "$dir/llama_ref.mjs" "$gguf" "$prompt" >"$work/$name.llama.json"
  "$py" "$here/compare_probs.py" "$work" "$name" "$n" "$work/$name.llama.json" llama.cpp 0.02 0.01 0.03
done
# what a runtime without the renormalisation, with RoPE on the global layers or without the clamp
# would compute is far from rsrc's
for ablate in renorm rope clamp; do
  "$py" "$here/maple_model.py" reference "$work/tq2/model.gguf" "$prompt" --ablate $ablate \
    --json "$work/tq2.no-$ablate.json"
  if "$py" "$here/compare_probs.py" "$work" tq2 "$n" "$work/tq2.no-$ablate.json" "the float reference \
ablated ($ablate)" 0.02 0.01 0.03; then
    echo "$who: the float reference ablated ($ablate) agrees with rsrc: the test cannot see that feature" >&2
    exit 1
  fi
done
echo "$who: ok"
