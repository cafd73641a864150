#!/usr/bin/env bash
# The GPU benchmarks, one command on a machine with an NVIDIA GPU (after scripts/setup.sh):
#   1. bench_gpu: the GEMV kernels (i2-dp4a, RSR warp) on the 2B-4T and Llama3-8B shapes, time and
#      fraction of the streaming read bandwidth measured in the same run;
#   2. end-to-end decode and prefill tokens/s of the full 2B-4T shape (synthetic weights), on the
#      GPU and, for comparison, on the CPU path of the same artifact.
# Usage: bench/gpu.sh [BUILD_DIR]     (exits 77 without a GPU)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
if ! gpu=$("$build/tests/rsr-cuda-probe"); then echo "bench/gpu.sh: no CUDA driver or device" >&2; exit 77; fi
arch=${gpu%% *}
[ -f "$root/specs/$arch.yaml" ] || arch=sm_80
echo "== GPU: $gpu (compiling for $arch)"
"$build/bench/bench_gpu" --target "$arch"
work=$(mktemp -d "${TMPDIR:-/tmp}/rsrc-gpu-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$build/rsr-mkmodel" --format bitnet-packed --preset 2b4t --out "$work/model" 2>/dev/null
t0=$(date +%s)
"$build/rsrc" "$work/model" --target "host,$arch" -o "$work/model.so" -v 2>&1 | grep -E "NVRTC|wrote"
echo "== compile: $(( $(date +%s) - t0 )) s"
echo "== 2B-4T shape on the GPU"
"$build/rsr-run" "$work/model.so" --device gpu --bench -n 128
echo "== 2B-4T shape on the CPU ($(nproc) threads)"
"$build/rsr-run" "$work/model.so" --device cpu --bench -n 32
