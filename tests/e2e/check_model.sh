#!/usr/bin/env bash
# End-to-end exactness of one checkpoint format:
#   make a model (rsr-mkmodel) → compile it (rsrc) → every matrix's integer sums equal the
#   independent reference's (rsr-matcheck) → logits of a 20-token prompt within tolerance and
#   32 greedy tokens identical to the reference forward pass (rsr-ref), both from the full logits
#   and from the certified greedy head (int8 LM head copy + exact recheck of possible winners);
#   the prompt's logits bit-identical whether it is evaluated in one step or in steps of 1 or 7.
# The KV cache is fp32 unless --kv T among the mkmodel args names another type (or several, comma
# separated: each is checked on the one compiled model); the reference rounds its cache the same
# way (rsr-ref --kv). --cpus LIST runs every check once per runtime ISA cap (RSR_CPU: a name of
# runtime/cpu/cpu.h, or "native" for none), so the AVX2 attention kernels are checked where AVX-512's
# would run. fp32 is the exact comparison: the two
# implementations' K and V differ in the last bits, which a rounding to 8 or 11 bits can turn
# into a step of a different neighbour, and the activations' int8 quantisation turns such a step
# into 1/127 of a token's largest activation; over 32 greedy tokens of a random model that can
# change a token. The rounded types are tested on the models of the e2e.kv-* tests.
# Usage: check_model.sh BUILD_DIR FORMAT [--kv T[,T...]] [--cpus C[,C...]] [--qemu CPU] [mkmodel args...]
#                       [-- rsrc args...]
# Without a --target among the rsrc args the model is compiled for generic (the portable C
# printer), so that the matrix of these tests covers both printers whatever rsrc's default is.
# --qemu CPU: the target is AArch64 (compiled here, on x86): the model runs in rsr-run of the cross
# build (scripts/cross.sh aarch64) under qemu-aarch64 on that CPU model, against the same x86
# reference; the matrices' sums are left to unit.printers, which runs them there too. Without a
# cross build the test is skipped (77), or fails where RSRC_REQUIRE_CROSS is set.
set -euo pipefail
build=$1 format=$2
shift 2
mk_args=() rsrc_args=() kvs=f32 cpus=native qemu_cpu=
while (($#)); do
  if [ "$1" = "--" ]; then shift; rsrc_args=("$@"); break; fi
  if [ "$1" = "--kv" ]; then kvs=$2; shift 2; continue; fi
  if [ "$1" = "--cpus" ]; then cpus=$2; shift 2; continue; fi
  if [ "$1" = "--qemu" ]; then qemu_cpu=$2; shift 2; continue; fi
  mk_args+=("$1"); shift
done
run=("$build/rsr-run")
if [ -n "$qemu_cpu" ]; then
  cross=$(cd "$(dirname "$0")/../.." && pwd)/build-aarch64
  if [ ! -x "$cross/rsr-run" ]; then
    echo "no aarch64 build at $cross (scripts/cross.sh aarch64)" >&2
    [ -n "${RSRC_REQUIRE_CROSS:-}" ] && exit 1
    exit 77
  fi
  run=(qemu-aarch64 -L / -cpu "$qemu_cpu" "$cross/rsr-run")
fi
[[ " ${rsrc_args[*]} " == *" --target "* || " ${rsrc_args[*]}" == *" --target="* ]] || rsrc_args+=(--target generic)
work=$(mktemp -d "${TMPDIR:-/tmp}/rsrc-e2e.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Embeddings of std 1 unless the args say otherwise: a row norm of sqrt(hidden) gives the greedy
# tokens of a random model wide margins, which the rounded KV types' comparisons need (at
# rsr-mkmodel's default of 1/sqrt(hidden) a near tie can flip a token in the last bits).
[[ " ${mk_args[*]} " == *" --embed-std "* ]] || mk_args+=(--embed-std 1)
"$build/rsr-mkmodel" --format "$format" --out "$work/model" "${mk_args[@]}" 2>/dev/null
"$build/rsrc" "$work/model" -o "$work/model.so" --verify "${rsrc_args[@]}"
[ -n "$qemu_cpu" ] || "$build/tests/rsr-matcheck" "$work/model.so" "$work/model"

prompt=1,17,42,3,99,7,250,18,64,5,33,121,8,77,200,9,150,11,60,4
run+=("$work/model.so")

# One KV type under one ISA cap: the logits and tokens against the reference's.
check_kv() {
  local kv=$1 cpu=$2 r=("${run[@]}")
  [ "$kv" = bf16 ] || r+=(--kv "$kv") # bf16: what a user gets without the flag, tested as such
  local env=()
  [ "$cpu" = native ] || env=(RSR_CPU="$cpu")
  env "${env[@]}" "${r[@]}" --tokens "$prompt" -n 32 --logits "$work/got.f32" >"$work/got.txt" 2>/dev/null
  local want=$work/want.$kv
  [ -f "$want.txt" ] || "$build/tests/rsr-ref" "$work/model" --kv "$kv" --tokens "$prompt" -n 32 --logits "$want.f32" >"$want.txt"
  "$build/tests/rsr-cmpf32" "$work/got.f32" "$want.f32" --atol 1e-3 --rtol 1e-3
  # the prompt in steps of 1 and of 7 tokens (tiles of 4 and single tokens): the same logits, bit for bit
  for batch in 1 7; do
    env "${env[@]}" "${r[@]}" --tokens "$prompt" -n 1 --batch $batch --logits "$work/b$batch.f32" >/dev/null 2>&1
    if ! cmp -s "$work/got.f32" "$work/b$batch.f32"; then
      echo "KV cache $kv, CPU $cpu: logits of the prompt evaluated $batch token(s) per step differ from those of one step of 20" >&2
      exit 1
    fi
  done
  if ! diff "$want.txt" "$work/got.txt" >/dev/null; then
    echo "KV cache $kv, CPU $cpu: greedy tokens differ: reference: $(cat "$want.txt")" >&2
    echo "                      compiled:  $(cat "$work/got.txt")" >&2
    exit 1
  fi
  # the same decode through the certified greedy head (no --logits: int8 head + exact recheck)
  env "${env[@]}" "${r[@]}" --tokens "$prompt" -n 32 >"$work/greedy.txt" 2>/dev/null
  if ! diff "$want.txt" "$work/greedy.txt" >/dev/null; then
    echo "KV cache $kv, CPU $cpu: greedy-head tokens differ: reference: $(cat "$want.txt")" >&2
    echo "                           compiled:  $(cat "$work/greedy.txt")" >&2
    exit 1
  fi
  echo "KV cache $kv, CPU $cpu: greedy tokens identical (full logits and certified greedy head): $(cat "$work/got.txt")"
}
for cpu in ${cpus//,/ }; do
  for kv in ${kvs//,/ }; do check_kv "$kv" "$cpu"; done
done
