#!/usr/bin/env bash
# Qwen3.5's hybrid (gated DeltaNet + gated attention; docs/qwen35.md) on a cut of the 27B shape
# (rsr-mkmodel --preset qwen35-27b: hidden 5120, FFN 17408, attention 24/4 heads of 256, DeltaNet
# 16/48 heads of 128) as Q2_0 (some +2 weights), beside upstream llama.cpp (the npm package
# node-llama-cpp) on the same file, as a user runs them (no flags but the threads and the prompt).
# The cut keeps --layers of the 64 (default 4: three DeltaNet layers and one attention layer) and a
# vocabulary of --vocab (default 16384: the head's share of the weights about what 248320 is of the
# whole 27B model's, where a full vocabulary would make the head most of a 4-layer cut's time).
# Before any timing the greedy tokens after a 32-token prompt are compared with llama.cpp's (the
# first must agree: the same model; how many of 8 agree is printed). Every round times each engine
# once, alternating: prefill of a --prompt-token prompt and greedy decode after it (rsr-run --bench,
# 16 tokens; llama.cpp 8 tokens). Prints the medians and the ratios, naming the CPU.
# --arch qwen35moe writes the shape of Qwen3.5-35B-A3B instead (--preset qwen35-35b-a3b: hidden 2048,
# attention 16/2 heads of 256, DeltaNet 16/32 heads of 128, each FFN 256 experts of 512 rows, 8 a
# token, and a shared expert of 512), cut the same way.
# --target T compiles rsrc's artifact for target T (default host); avx2 also holds the runtime's own
# kernels to AVX2 (RSR_CPU=avx2), which is how an AVX-512 CPU shows the AVX2 instruction set (not an
# older core's speed). llama.cpp has no x86 SIMD for Q2_0, so its rate is the same either way.
# Usage: bench/qwen35.sh [--rounds N] [--threads T] [--layers L] [--vocab V] [--prompt P] [--target T]
#                        [--arch qwen35|qwen35moe] [--build DIR]
# Work (the weights, the artifact, the npm package) stays in BUILD/qwen35/ between runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build rounds=3 threads=2 layers=4 vocab=16384 prompt=512 target=host arch=qwen35
while [ $# -gt 0 ]; do
  case $1 in
  --rounds) rounds=$2; shift 2 ;;
  --threads) threads=$2; shift 2 ;;
  --layers) layers=$2; shift 2 ;;
  --vocab) vocab=$2; shift 2 ;;
  --prompt) prompt=$2; shift 2 ;;
  --target) target=$2; shift 2 ;;
  --arch) arch=$2; shift 2 ;;
  --build) build=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "qwen35.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
build=$(cd "$build" && pwd)
work=$build/qwen35
mkdir -p "$work"
say() { echo "qwen35.sh: $*" >&2; }
. "$root/bench/llama_node.sh"
llama_node_install "$work"

# ---- the weights and the artifact ----
case $arch in
qwen35) shape=(--preset qwen35-27b) name="Qwen3.5-27B" ;;
qwen35moe) shape=(--preset qwen35-35b-a3b --experts 256 --experts-used 8) name="Qwen3.5-35B-A3B" ;;
*) echo "qwen35.sh: --arch '$arch' is not qwen35 or qwen35moe" >&2; exit 2 ;;
esac
w=$work/w-$arch-$layers-$vocab
[ -f "$w/model.gguf" ] || {
  say "writing the cut ($name's shape, $layers layers, vocabulary $vocab)"
  "$build/rsr-mkmodel" --format gguf-q2 --gguf-arch "$arch" "${shape[@]}" --layers "$layers" --vocab "$vocab" \
    --plus2 5 --out "$w" >&2
}
so=$work/$arch-$layers-$vocab-$target.so
if [ ! "$so" -nt "$build/rsrc" ] || [ "$build/librsr_runtime.a" -nt "$so" ]; then
  say "compiling for $target"
  "$build/rsrc" "$w/model.gguf" --target "$target" -o "$so"
fi
rsrc_target "$target"
ids=$(python3 -c "print(','.join(str((i * 2654435761) % ($vocab - 3) + 3) for i in range($prompt)))")
short=$(echo "$ids" | cut -d, -f1-32)

# ---- the same model? ----
agree=$(llama_agree "$build/rsr-run" "$so" "$w/model.gguf" "$short" 8 "$threads")
say "greedy tokens agree with llama.cpp's for the first $agree of 8"

# ---- the rounds ----
runs=$work/runs.jsonl
: >"$runs"
for r in $(seq 1 "$rounds"); do
  say "round $r of $rounds"
  rsrc_round rsrc "$build/rsr-run" "$so" "$ids" 16 "$threads" >>"$runs"
  llama_round llama "$w/model.gguf" "$ids" 8 "$threads" >>"$runs"
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
family=$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -1)
flags=$(grep -o 'avx512[a-z0-9_]*\|avx_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ' || true)
python3 - "$runs" "$threads" "$cpu (family $family)" "${flags:-none}" "$layers" "$vocab" "$prompt" "$agree" "$target_line" \
  "$name" <<'PY'
import json, statistics, sys
path, threads, cpu, flags, layers, vocab, prompt, agree, target_line, name = sys.argv[1:]
runs = [json.loads(l) for l in open(path)]
def med(engine, key):
    return statistics.median(r[key] for r in runs if r['engine'] == engine)
n = sum(r['engine'] == 'llama' for r in runs)
print(f"{cpu}; wide SIMD features: {flags}; {threads} threads; medians of {n} alternating rounds, tokens/s")
print(f"{name} shape cut to {layers} layers, vocabulary {vocab}, Q2_0; greedy tokens agree {agree} of 8")
print(target_line)
print(f"{'':26} {'prefill ' + prompt:>12} {'decode':>8}")
for key, name in (('rsrc', 'rsrc (the default)'), ('llama', 'llama.cpp')):
    print(f"{name:26} {med(key, 'prefill'):12.2f} {med(key, 'decode'):8.2f}")
print(f"{'rsrc / llama.cpp':26} {med('rsrc', 'prefill') / med('llama', 'prefill'):11.2f}x "
      f"{med('rsrc', 'decode') / med('llama', 'decode'):7.2f}x")
PY
