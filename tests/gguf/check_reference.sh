#!/usr/bin/env bash
# rsrc's logits beside upstream llama.cpp's on the same GGUF files: the prebuilt libraries of the
# npm package node-llama-cpp read rsr-mkmodel's TQ1_0 and TQ2_0 files of llama.cpp's "bitnet"
# architecture (SiLU, sub-norms) and "llama" architecture (Q and K rows interleaved for its
# RoPE; the embeddings and head in Q6_K or Q8_0), and its "qwen3" files (q/k head norms, heads
# 96 wide where hidden/heads is 64, an untied head) with the group-scaled Q2_0 (ternary, and with
# 2% of +2) and Q1_0 (binary), embeddings scaled as trained models' so that the distribution has
# a spread, and give the next-token probabilities after each prefix of a prompt; rsrc's artifact
# of the same file gives its logits. llama.cpp quantises the activations per block of 256 values
# (Q8_K; Q8_0's 32 for Q1_0 and Q2_0), rsrc per token for bitnet and llama (so they agree closely, not
# exactly) and for qwen3 as llama.cpp does (Q8_K for TQ2_0, Q8_0 for Q1_0 and Q2_0): the check is the same most likely token at all but two positions (and there a near
# tie: llama.cpp's own choice at most 2e-3 more probable, under llama.cpp, than rsrc's), a KL
# divergence below 0.01 and no probability off by more than 0.01 (measured: KL at most 1.2e-3,
# |dp| at most 1.5e-3). Upstream llama.cpp has no I2_S (bitnet.cpp's type): rsrc's logits of the
# qwen3 file in I2_S must be, bit for bit, those of the TQ2_0 file of the same weights and
# scales. Installs the package into BUILD_DIR/gguf-ref; exits 77 (ctest: skipped) without node,
# npm or the registry.
# Usage: check_reference.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
who=check_reference.sh
. "$here/prelude.sh" reference
prompt=1,17,42,99,5,300,7,250,18,64,33,121,8,77,200,9
n=$(echo "$prompt" | tr ',' '\n' | wc -l)
# rsr-mkmodel's file NAME (then its arguments), compiled by rsrc, and its logits after each prefix
rsrc_logits() {
  local name=$1
  shift
  "$build/rsr-mkmodel" "$@" --preset small --intermediate 768 --embed-std 0.0625 --out "$work/$name" 2>/dev/null
  "$build/rsrc" "$work/$name/model.gguf" -o "$work/$name.so" -O0
  prefix_logits "$name" "$prompt" "$n"
}
# name, then rsr-mkmodel's arguments
cases=("tq1-bitnet --format gguf-tq1 --gguf-arch bitnet"
       "tq2-bitnet --format gguf-tq2 --gguf-arch bitnet"
       "tq2-llama-q6_k --format gguf-tq2 --gguf-arch llama --gguf-embed q6_k"
       "tq1-llama-q8_0 --format gguf-tq1 --gguf-arch llama --gguf-embed q8_0"
       "q2-qwen3 --format gguf-q2 --gguf-arch qwen3 --heads 4 --head-dim 96"
       "q1-qwen3 --format gguf-q1 --gguf-arch qwen3"
       "q2p-qwen3 --format gguf-q2 --gguf-arch qwen3 --plus2 2"
       "tq2-qwen3 --format gguf-tq2 --gguf-arch qwen3 --untied")
for c in "${cases[@]}"; do
  read -r name args <<<"$c"
  # shellcheck disable=SC2086
  rsrc_logits "$name" $args
  node "$dir/llama_ref.mjs" "$work/$name/model.gguf" "$prompt" >"$work/$name.ref.json"
  python3 "$here/compare_probs.py" "$work" "$name" "$n" "$work/$name.ref.json" llama.cpp
done
# name, the case above with the same weights, then rsr-mkmodel's arguments
twins=("i2s-qwen3 tq2-qwen3 --format gguf-i2s --gguf-arch qwen3 --untied")
for c in "${twins[@]}"; do
  read -r name twin args <<<"$c"
  # shellcheck disable=SC2086
  rsrc_logits "$name" $args
  for k in $(seq 1 "$n"); do
    cmp -s "$work/$name.$k.f32" "$work/$twin.$k.f32" ||
      { echo "$name: rsrc's logits after $k tokens differ from $twin's" >&2; exit 1; }
  done
  echo "$name: rsrc's logits are $twin's, bit for bit, at all $n positions"
done
