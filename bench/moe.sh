#!/usr/bin/env bash
# A ternary mixture of experts of the Maple 20B-A1B shape (llama.cpp's `maple` architecture, random
# weights, TQ2_0: 24 layers, hidden 2048, 32 heads of 64 with 4 KV heads, 128 experts of 1024 rows,
# 6 used per token, SwiGLU clamped at 7 (llama.cpp requires the key), vocabulary 32000; 19.7 G
# weights, 5.3 GB), as a user compiles and runs it:
#   - rsrc's compile: wall time and the peak resident memory of rsrc and the programs it runs
#     (GNU time's maximum resident set size);
#   - the greedy tokens after a 32-token prompt beside upstream llama.cpp's (the npm package
#     node-llama-cpp) on the same file: the first must agree (the same model), how many of 8 agree
#     is printed;
#   - rounds alternating rsrc (rsr-run --bench: prefill of a 64-token prompt, then 32 greedy
#     tokens) and llama.cpp (the same prompt, 16 tokens); medians and ratios;
#   - the bytes of ternary codes a decoded token must read at least (attention and the experts
#     chosen: the active weights at 2 bits) and the rate that makes at the measured decode speed.
# --target T compiles rsrc's artifact for target T (default host); avx2 also holds the runtime's
# own kernels to AVX2 (RSR_CPU=avx2): an AVX-512 CPU showing the AVX2 instruction set.
# Usage: bench/moe.sh [--rounds N] [--threads T] [--layers L] [--target T] [--build DIR]
# --layers cuts the model (the other widths stay). Work stays in BUILD/moe/ between runs; the
# weights are written once (about 3 minutes, 5.3 GB of disk for 24 layers).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build rounds=3 threads=2 layers=24 target=host
while [ $# -gt 0 ]; do
  case $1 in
  --rounds) rounds=$2; shift 2 ;;
  --threads) threads=$2; shift 2 ;;
  --layers) layers=$2; shift 2 ;;
  --target) target=$2; shift 2 ;;
  --build) build=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "moe.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
build=$(cd "$build" && pwd)
work=$build/moe
mkdir -p "$work"
say() { echo "moe.sh: $*" >&2; }
. "$root/bench/llama_node.sh"
llama_node_install "$work"

w=$work/w-$layers
if [ ! -f "$w/model.gguf" ]; then
  say "writing the weights ($layers layers)"
  "$build/rsr-mkmodel" --format gguf-tq2 --gguf-arch maple --hidden 2048 --heads 32 --kv-heads 4 --head-dim 64 \
    --experts 128 --experts-used 6 --expert-ff 1024 --swiglu-clamp 7 --vocab 32000 --layers "$layers" --out "$w" >&2
fi
so=$work/m-$layers-$target.so
if [ ! "$so" -nt "$build/rsrc" ] || [ "$build/librsr_runtime.a" -nt "$so" ] || [ ! -f "$work/compile-$layers-$target.txt" ]; then
  say "compiling for $target"
  /usr/bin/time -f '%e %M' -o "$work/compile-$layers-$target.txt" "$build/rsrc" "$w/model.gguf" --target "$target" -o "$so"
fi
rsrc_target "$target"
read -r compile_s compile_kb <"$work/compile-$layers-$target.txt"
say "compiled in $compile_s s, peak resident $((compile_kb / 1024)) MiB"
ids=$(python3 -c "print(','.join(str((i * 2654435761) % 30000) for i in range(64)))")
short=$(echo "$ids" | cut -d, -f1-32)

agree=$(llama_agree "$build/rsr-run" "$so" "$w/model.gguf" "$short" 8 "$threads")
say "greedy tokens agree with llama.cpp's for the first $agree of 8"

runs=$work/runs.jsonl
: >"$runs"
for r in $(seq 1 "$rounds"); do
  say "round $r of $rounds"
  rsrc_round rsrc "$build/rsr-run" "$so" "$ids" 32 "$threads" >>"$runs"
  llama_round llama "$w/model.gguf" "$ids" 16 "$threads" >>"$runs"
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
flags=$( (grep -o 'avx512[a-z0-9_]*\|avx_vnni' /proc/cpuinfo || true) | sort -u | tr '\n' ' ')
python3 - "$runs" "$threads" "$cpu" "${flags:-none}" "$layers" "$compile_s" "$compile_kb" "$agree" "$target_line" <<'PY'
import json, statistics, sys
path, threads, cpu, flags, layers, compile_s, compile_kb, agree, target_line = sys.argv[1:]
runs = [json.loads(l) for l in open(path)]
med = lambda e, k: statistics.median(r[k] for r in runs if r['engine'] == e)
L, hidden, q, kv, ff, used = int(layers), 2048, 32 * 64, 4 * 64, 1024, 6
active = L * (hidden * q * 2 + hidden * kv * 2 + used * 3 * ff * hidden)
n = sum(r['engine'] == 'llama' for r in runs)
print(f"{cpu}; wide SIMD features: {flags}; {threads} threads; {L} layers; medians of {n} alternating rounds")
print(target_line)
print(f"rsrc compile: {float(compile_s):.0f} s, peak resident {int(compile_kb) / 1024:.0f} MiB")
print(f"greedy tokens agreeing with llama.cpp's: the first {agree} of 8")
print(f"{'':12} {'prefill 64 tok/s':>17} {'decode tok/s':>13}")
for e, name in (('rsrc', 'rsrc'), ('llama', 'llama.cpp')):
    print(f"{name:12} {med(e, 'prefill'):17.2f} {med(e, 'decode'):13.2f}")
print(f"rsrc / llama.cpp: prefill {med('rsrc', 'prefill') / med('llama', 'prefill'):.2f}x, "
      f"decode {med('rsrc', 'decode') / med('llama', 'decode'):.2f}x")
mb = active / 4 / 1e6
print(f"active ternary weights per token {active / 1e6:.0f} M: at least {mb:.0f} MB of 2-bit codes; "
      f"rsrc's decode reads them at {mb * med('rsrc', 'decode') / 1e3:.1f} GB/s or more")
PY
