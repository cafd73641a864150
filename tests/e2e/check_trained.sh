#!/usr/bin/env bash
# The trained model in the repository (models/kjv-tiny, scripts/train_tiny.py; docs/trained-model.md):
# its safetensors checkpoint, and the I2_S and TQ2_0 GGUF files rsr-mkmodel --from converts it to,
# compiled by rsrc. rsr-run continues a verse the model learnt word for word, from each artifact,
# and chats on a terminal (tmux) with the template the model ships;
# check_trained.py compares the logits and the held-out perplexity with the float forward of the
# training code. Skipped (77) without a python3 that has torch, numpy and regex (scripts/setup.sh
# installs them with RSRC_SETUP_TESTS=1).
# Usage: check_trained.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
model=$root/models/kjv-tiny
work=$build/tests/trained
fail() { echo "FAIL: $*" >&2; exit 1; }
. "$(dirname "$0")/torch_python.sh"
rm -rf "$work" && mkdir -p "$work"

"$build/rsr-mkmodel" --format gguf-i2s --from "$model" --out "$work/i2s" 2>/dev/null
"$build/rsr-mkmodel" --format gguf-tq2 --from "$model" --out "$work/tq2" 2>/dev/null
"$build/rsrc" "$model" -o "$work/st.so"
"$build/rsrc" "$work/i2s/model.gguf" -o "$work/i2s.so"
"$build/rsrc" "$work/tq2/model.gguf" -o "$work/tq2.so"

# A verse the model learnt by heart: Ezekiel 22:1, "Moreover the word of the LORD came unto me,
# saying," (eight verses are these words; 30 verses of Jeremiah, Ezekiel and Zechariah are the
# formula after And, Again, Also, Then or Moreover): the greedy continuation of its first three
# words is the rest of it, word for word
prompt="Moreover the word"
want=" of the LORD came unto me, saying,"
for so in st i2s tq2; do
  got=$("$build/rsr-run" "$work/$so.so" -p "$prompt" -n 9 --no-echo 2>/dev/null)
  [ "${got:0:${#want}}" = "$want" ] || fail "$so.so continues '$prompt' with '$got', not the verse"
done
echo "the three artifacts continue '$prompt' with the rest of the verse word for word"

# rsr-run --chat on a terminal (tmux), as README shows it: the banner names the model's own
# template (tokenizer_config.json's), a verse typed gets a reply in words and the prompt again
if command -v tmux >/dev/null; then
  sock=$work/tmux.sock
  tmux -S "$sock" new-session -d -s chat -x 300 -y 40 "'$build/rsr-run' '$work/st.so' --chat -n 80; sleep 60"
  screen() { tmux -S "$sock" capture-pane -p -t chat; }
  for _ in $(seq 1 150); do screen | grep -q "chatting with" && break; sleep 0.2; done
  screen | grep -q "chatting with $work/st.so (the model's own template)" || fail "no --chat banner: $(screen)"
  tmux -S "$sock" send-keys -t chat "And God said, Let there be light: and there was light." Enter
  for _ in $(seq 1 150); do [ "$(screen | grep -c '^> ')" -ge 2 ] && break; sleep 0.2; done
  reply=$(screen | sed -n '/^> And God said/,/^> /p' | sed '1d;$d' | tr '\n' ' ')
  tmux -S "$sock" kill-server
  [[ "$reply" =~ [A-Za-z]{3} ]] || fail "rsr-run --chat in tmux gave no reply in words: '$reply'"
  echo "rsr-run --chat on a terminal answers 'And God said, Let there be light: and there was light.' with: $reply"
else
  echo "no tmux: rsr-run --chat on a terminal not checked"
fi

# the project's reference (tests/reference, ascending sums as docs/numerics.md writes them): the
# logits after a 300-token prompt of the held-out book within the e2e tolerance, or within the
# noise floor of an int8 rounding that went the other way (the two differ by ulps: an activation
# within one of a rounding boundary, at position 13 of this prompt, is rounded otherwise), the
# same argmax
ids=$(PYTHONPATH=$root/python "$py" -c 'import rsr, sys
print(",".join(map(str, rsr.Model(sys.argv[1]).tokenize(open(sys.argv[2], encoding="utf-8").read())[:300])))' \
  "$work/st.so" "$model/heldout.txt")
"$build/tests/rsr-ref" "$model" --tokens "$ids" --logits "$work/ref.f32" >/dev/null
"$build/rsr-run" "$work/st.so" --tokens "$ids" -n 1 --kv f32 --logits "$work/st.f32" >/dev/null 2>&1
"$build/tests/rsr-cmpf32" "$work/st.f32" "$work/ref.f32" --floor 2.5e-2

PYTHONPATH=$root/python:$root/scripts "$py" "$root/tests/e2e/check_trained.py" "$model" "$work/st.so" "$work/i2s.so" "$work/tq2.so"
