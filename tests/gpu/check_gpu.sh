#!/usr/bin/env bash
# The GPU against the CPU on one checkpoint format:
#   rsr-cuda-probe (exit 77, "skipped", without a driver or a device) → make a model → compile it
#   for the GPU found → the model opens on the GPU → every matrix's integer sums computed by the
#   GPU kernels equal the independent reference's, bit for bit (rsr-matcheck) → logits of a
#   prompt within tolerance and greedy tokens identical: the GPU against the reference forward
#   pass, and against the CPU path of the same artifact.
# --full (the 2B-4T shape): the naive reference forward pass is too slow there, so the GPU is
# compared with the CPU path only (which the tiny tests tie to the reference), on fewer tokens.
# Usage: check_gpu.sh BUILD_DIR FORMAT [mkmodel args...] [--full] [-- rsrc args...]
set -euo pipefail
build=$1 format=$2
shift 2
mk_args=() rsrc_args=() full=0
while (($#)); do
  if [ "$1" = "--" ]; then shift; rsrc_args=("$@"); break; fi
  if [ "$1" = "--full" ]; then full=1; shift; continue; fi
  mk_args+=("$1"); shift
done
if ! gpu=$("$build/tests/rsr-cuda-probe"); then
  echo "skipped: no CUDA driver or device"
  exit 77
fi
arch=${gpu%% *}
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$root/specs/$arch.yaml" ] || arch=sm_80 # an unknown newer GPU JIT-compiles sm_80 PTX
echo "GPU: $gpu; compiling for $arch"
work=$(mktemp -d "${TMPDIR:-/tmp}/rsrc-gpu.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$build/rsr-mkmodel" --format "$format" --out "$work/model" "${mk_args[@]}" 2>/dev/null
"$build/rsrc" "$work/model" -o "$work/model.so" --target "host,$arch" "${rsrc_args[@]}"
"$build/rsr-run" "$work/model.so" --device gpu --info | grep '^device gpu'
"$build/tests/rsr-matcheck" "$work/model.so" "$work/model"   # opens on the GPU (device auto)

prompt=1,17,42,3,99,7,250,18,64,5,33,121,8,77,200,9,150,11,60,4 n=32
((full)) && prompt=1,17,42,3,99,7,250,18 n=16
"$build/rsr-run" "$work/model.so" --device gpu --tokens "$prompt" -n $n --logits "$work/gpu.f32" >"$work/gpu.txt"
"$build/rsr-run" "$work/model.so" --device cpu --tokens "$prompt" -n $n --logits "$work/cpu.f32" >"$work/cpu.txt"
want=cpu
if ((!full)); then
  "$build/tests/rsr-ref" "$work/model" --tokens "$prompt" -n $n --logits "$work/ref.f32" >"$work/ref.txt"
  want=ref
fi
for other in cpu $want; do
  "$build/tests/rsr-cmpf32" "$work/gpu.f32" "$work/$other.f32" --atol 1e-3 --rtol 1e-3
  if ! diff "$work/$other.txt" "$work/gpu.txt" >/dev/null; then
    echo "greedy tokens differ: $other: $(cat "$work/$other.txt")" >&2
    echo "                      gpu: $(cat "$work/gpu.txt")" >&2
    exit 1
  fi
done
echo "greedy tokens identical on the GPU: $(cat "$work/gpu.txt")"
