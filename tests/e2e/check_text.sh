#!/usr/bin/env bash
# Text in, text out, end to end: a test model with its tokenizer.json → rsrc → rsr-run and the
# example program. Checks that the tokenizer travels inside the artifact, that generation is
# deterministic and streams the same text whichever way the prompt comes in, that stop strings
# cut the output where they begin, that a chat /reset forgets, and that examples/generate (the
# C API through dlopen) writes the text rsr-run writes.
# Usage: check_text.sh BUILD_DIR
set -euo pipefail
export LC_ALL=C
build=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/rsrc-text.XXXXXX")
trap 'rm -rf "$work"' EXIT
run() { "$build/rsr-run" "$work/model.so" "$@" 2>/dev/null; }
fail() { echo "FAIL: $*" >&2; exit 1; }

"$build/rsr-mkmodel" --format bitnet-packed --preset tiny --vocab 512 --out "$work/model" 2>/dev/null
[ -f "$work/model/tokenizer.json" ] || fail "rsr-mkmodel wrote no tokenizer.json"
"$build/rsrc" "$work/model" -o "$work/model.so"

info=$(run --info)
grep -q '^tokenizer byte-level BPE, 512 tokens (5 added), bos 1 eos 2 eot 511, chat template bitnet; compiled from tokenizer.json (byte-level BPE, 512 tokens)$' <<<"$info" ||
  fail "--info does not show the compiled-in tokenizer: $(grep tokenizer <<<"$info")"

P="The capital of France is"
full=$(run -p "$P" -n 24 --ignore-eos)
cont=$(run -p "$P" -n 24 --ignore-eos --no-echo)
[[ "$full" == "$P"* ]] || fail "the output does not start with the prompt: '$full'"
[ "$full" = "$P$cont" ] || fail "--no-echo is not the continuation: '$cont' vs '$full'"
[ "$(printf '%s' "$P" | run -n 24 --ignore-eos)" = "$full" ] || fail "a prompt on stdin gives other text than -p"
printf '%s' "$P" >"$work/prompt.txt"
[ "$(run -f "$work/prompt.txt" -n 24 --ignore-eos)" = "$full" ] || fail "a prompt file gives other text than -p"
[ "$(run -p "$P" -n 24 --ignore-eos)" = "$full" ] || fail "greedy generation is not deterministic"
[ ${#cont} -ge 6 ] || fail "the continuation is too short to test with: '$cont'"

s1=$(run -p "$P" -n 24 --temp 0.8 --top-p 0.9 --seed 7 --ignore-eos)
s2=$(run -p "$P" -n 24 --temp 0.8 --top-p 0.9 --seed 7 --ignore-eos)
[ "$s1" = "$s2" ] || fail "sampling with a seed is not reproducible"

# A stop string taken from the continuation (two ASCII bytes, so that no UTF-8 repair is
# involved): the output ends right before its first occurrence.
stop=
for ((i = 1; i + 2 <= ${#cont}; i++)); do
  s=${cont:i:2}
  if [[ "$s" =~ ^[$'\x01'-$'\x09'$'\x0b'-$'\x7f']{2}$ ]]; then stop=$s; break; fi
done
[ -n "$stop" ] || fail "no two ASCII bytes in the continuation to stop at: '$cont'"
want=${cont%%"$stop"*}
got=$(run -p "$P" -n 24 --ignore-eos --no-echo --stop "$stop")
[ "$got" = "$want" ] || fail "--stop '$stop': got '$got', want '$want'"

# Chat: the same question after /reset gets the same reply.
replies=$(printf 'Hello there\n/reset\nHello there\n' | run --chat -n 8 --stop $'\n')
[ "$(wc -l <<<"$replies")" -eq 2 ] || fail "two chat turns should give two lines: '$replies'"
[ "$(sed -n 1p <<<"$replies")" = "$(sed -n 2p <<<"$replies")" ] || fail "/reset does not forget: '$replies'"

# The example program through the C API writes what rsr-run writes (rsr-run repairs invalid
# UTF-8 the way Python's decoder does; the example writes the bytes as they are).
ex=$("$build/examples/generate" "$work/model.so" "$P" 24 | python3 -c \
  'import sys; sys.stdout.buffer.write(sys.stdin.buffer.read().decode("utf-8", "replace").encode())')
[ "$ex" = "$(run -p "$P" -n 24 --no-echo)" ] || fail "examples/generate and rsr-run disagree: '$ex'"
echo "text end to end: prompt, stdin, file, seed, --stop $(printf '%q' "$stop"), chat /reset and examples/generate agree"
