#!/usr/bin/env bash
# scripts/train_tiny.py, a few steps of a tiny model on two books: run twice from the same seed it
# writes the same model.safetensors (and so does chat-tune after it); rsrc compiles it; rsr-run tokenizes the held-out book as the
# training tokenizer does and generates from it. Skipped (77) without a python3 that has torch,
# numpy and regex, or without bible-kjv's `bible` (scripts/setup.sh installs them with
# RSRC_SETUP_TESTS=1).
# Usage: check_train_smoke.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$build/tests/train-smoke
fail() { echo "FAIL: $*" >&2; exit 1; }
. "$(dirname "$0")/torch_python.sh"
command -v bible >/dev/null || { echo "skipped: no bible command (bible-kjv)"; exit 77; }
rm -rf "$work" && mkdir -p "$work"

for run in a b; do
  "$py" "$root/scripts/train_tiny.py" train --out "$work/$run" --books Ge,Ruth --vocab 512 --hidden 64 \
    --intermediate 256 --layers 2 --heads 2 --kv-heads 1 --ctx 64 --batch 4 --steps 4 --warmup 2 --log-every 2 \
    >"$work/$run.log"
done
cmp "$work/a/model.safetensors" "$work/b/model.safetensors" || fail "the same seed gave other weights"
grep -q '"model_safetensors_sha256": "'"$(sha256sum "$work/a/model.safetensors" | cut -d' ' -f1)"'"' \
  "$work/a/training.json" || fail "training.json does not name model.safetensors' SHA-256"

# chat-tune (how models/kjv-tiny learnt its chat turns) from that checkpoint: reproducible too
for run in c d; do
  "$py" "$root/scripts/train_tiny.py" chat-tune "$work/a" --out "$work/$run" --books Ge,Ruth --steps 2 --warmup 1 \
    --log-every 1 >"$work/$run.log"
done
cmp "$work/c/model.safetensors" "$work/d/model.safetensors" || fail "chat-tune from the same seed gave other weights"
grep -q '"chat_template"' "$work/c/tokenizer_config.json" || fail "chat-tune wrote no chat template"

"$build/rsrc" "$work/a" -o "$work/a.so"
"$build/rsr-run" "$work/a.so" -f "$work/a/heldout.txt" --tokenize >"$work/rsrc.ids" 2>/dev/null
PYTHONPATH=$root/scripts "$py" -c 'import sys, train_tiny as tt
t = tt.Tokenizer.load(sys.argv[1] + "/tokenizer.json")
print(",".join(map(str, t.encode(open(sys.argv[1] + "/heldout.txt", encoding="utf-8").read(), bos=True))))' \
  "$work/a" >"$work/train.ids"
cmp "$work/rsrc.ids" "$work/train.ids" || fail "rsrc tokenizes the held-out book otherwise than the training tokenizer"
out=$("$build/rsr-run" "$work/a.so" -p "And Naomi said" -n 8 --ignore-eos 2>/dev/null)
[[ "$out" == "And Naomi said"* ]] || fail "rsr-run did not continue the prompt: '$out'"
echo "two runs from seed 1: model.safetensors $(sha256sum "$work/a/model.safetensors" | cut -c1-16)...; rsrc's tokens are the training tokenizer's"
