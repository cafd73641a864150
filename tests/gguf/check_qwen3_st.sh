#!/usr/bin/env bash
# Qwen3 from Hugging Face checkpoint directories, written by tests/gguf/qwen3_model.py (which shares
# no code with rsrc) beside its float64 reference; needs nothing but python3.
# (a) Qwen3ForCausalLM with dense matrices ternary per group (Ternary-Bonsai's "unpacked" form): bf16
#     with groups of 128 and a head of its own, f16 with groups of 64 and a tied head. rsrc must find
#     the group size (its -v note) and its next-token probabilities after every prefix of a prompt
#     must pass compare_probs.py as the GGUF cases of check_qwen3.sh do (0.02 0.01 0.03).
# (b) The f16 one written as a Q2_0 GGUF too (the same numbers): the logits after every prefix are
#     the same bits.
# (c) A float Qwen3ForCausalLM (never made ternary) is refused naming the tensor, row and columns;
#     one with rope_scaling is refused naming the key.
# (d) The BitNet embedding model (Qwen3Model: BitLinear's RMSNorm with weights before every
#     projection, absmean-ternarised bf16 latent weights, int8 activations per token), as the
#     checkpoint directory and as an I2_S GGUF with blk.N.*_norm_in norms, pooled by the mean and
#     by the last token as 1_Pooling/config.json and qwen3.pooling_type say: both give the same
#     embedding bits, within compare_embed.py's bounds of the reference.
# Usage: check_qwen3_st.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/python.sh" # py: a python3 with numpy where there is one
work=$build/tests/gguf-qwen3-st
rm -rf "$work" && mkdir -p "$work"
model() { "$py" "$here/qwen3_model.py" "$@"; }
prompt=1,17,42,99,5,300,7,250,18,64,33,121,8,77,200,9
n=$(echo "$prompt" | tr ',' '\n' | wc -l)
# logits SO NAME: the logits after each prefix into $work/NAME.K.f32
logits() {
  for k in $(seq 1 "$n"); do
    "$build/rsr-run" "$1" --tokens "$(echo "$prompt" | cut -d, -f1-"$k")" -n 1 --logits "$work/$2.$k.f32" >/dev/null 2>&1
  done
}

# (a) and (b): name, group, then write-st's other arguments
cases=("g128-bf16 128 --dtype bf16 --seed 11"
       "g64-f16-tied 64 --dtype f16 --seed 12 --tied --gguf $work/g64-f16-tied.gguf")
for c in "${cases[@]}"; do
  read -r name group args <<<"$c"
  # shellcheck disable=SC2086
  model write-st "$work/$name" --group "$group" $args
  "$build/rsrc" "$work/$name" -o "$work/$name.so" -O0 -v 2>"$work/$name.log"
  grep -q "matrices ternary per group of $group columns" "$work/$name.log" ||
    { cat "$work/$name.log"; echo "$name: rsrc did not find groups of $group" >&2; exit 1; }
  logits "$work/$name.so" "$name"
  model reference "$work/$name" "$prompt" --json "$work/$name.float.json"
  "$py" "$here/compare_probs.py" "$work" "$name" "$n" "$work/$name.float.json" "the float reference" 0.02 0.01 0.03
  if [ -f "$work/$name.gguf" ]; then
    "$build/rsrc" "$work/$name.gguf" -o "$work/$name.gguf.so" -O0
    logits "$work/$name.gguf.so" "$name.gguf"
    for k in $(seq 1 "$n"); do cmp "$work/$name.$k.f32" "$work/$name.gguf.$k.f32"; done
    echo "$name: the safetensors directory and the Q2_0 GGUF give the same logits bits after all $n prefixes"
  fi
done

# (c) refusals: rsrc must fail with a message holding $2
refused() {
  if "$build/rsrc" "$1" -o "$work/refused.so" -O0 2>"$work/refused.log"; then
    echo "$1: compiled, expected a refusal" >&2; exit 1
  fi
  grep -F "$2" "$work/refused.log" || { cat "$work/refused.log"; echo "$1: the refusal does not say: $2" >&2; exit 1; }
}
model write-st "$work/float" --float --seed 13
refused "$work/float" "tensor 'model.layers.0.self_attn.q_proj.weight': row 0, columns 0-31 hold"
"$py" - "$work/float/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c['rope_scaling'] = {'rope_type': 'yarn', 'factor': 4.0, 'original_max_position_embeddings': 32768}
json.dump(c, open(sys.argv[1], 'w'))
PY
refused "$work/float" "config.json: 'rope_scaling' is not supported"

# (d) the BitNet embedding model: mean (1) and last-token (3) pooling
for pooling in 1 3; do
  name=embed-$pooling
  model write-embed "$work/$name" --seed $((20 + pooling)) --pooling $pooling --gguf "$work/$name.gguf"
  model reference "$work/$name" "$prompt" --json "$work/$name.float.json"
  for flavour in "$name" "$name.gguf"; do
    "$build/rsrc" "$work/$flavour" -o "$work/$flavour.so" -O0
    "$build/rsr-run" "$work/$flavour.so" --tokens "$prompt" --embed-raw >"$work/$flavour.raw.json"
    "$build/rsr-run" "$work/$flavour.so" --tokens "$prompt" --embed >"$work/$flavour.unit.json"
    "$py" "$here/compare_embed.py" "$work/$flavour.raw.json" "$work/$flavour.unit.json" - \
      "$work/$name.float.json" $pooling "$flavour"
  done
  cmp "$work/$name.raw.json" "$work/$name.gguf.raw.json"
  echo "$name: the safetensors directory and the I2_S GGUF give the same embedding"
done
