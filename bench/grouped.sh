#!/usr/bin/env bash
# Group-scaled weights (llama.cpp's Q2_0 and Q1_0: a scale per 64 or 128 weights of a row) on the
# Qwen3-0.6B shape (rsr-mkmodel --preset qwen3-0.6b: 28 layers, hidden 1024, heads of 128, random
# weights), as a user runs them (no flags but the threads and the prompt):
#   - rsrc's default (lut over each block's window of columns where the CPU has AVX-512 VBMI, else
#     i2 summed per unit of 32 columns: docs/numerics.md "Group scales"; printed under the table)
#     and its RSR form over the matrix expanded per unit (--strategy=rsr-loop), on the Q2_0 file;
#   - rsrc's default on the Q1_0 file;
#   - upstream llama.cpp (the npm package node-llama-cpp) on the same two files;
#   - rsrc on one-scale weights of the same widths (TQ2_0, --gguf-arch llama: hidden 1024,
#     intermediate 3072, 28 layers, 16 heads of 64), whose i2 sums whole rows, per weight.
# Before any timing the greedy tokens after a 32-token prompt are compared with llama.cpp's on
# each file (the first must agree: the same model; how many of 8 agree is printed). Every round
# times each engine once, alternating: prefill of a 64-token prompt and greedy decode after it
# (rsr-run --bench, 32 tokens; llama.cpp 16 tokens). Prints the medians, the ternary weights per
# token and the rate in weights per second, and the ratios, naming the CPU.
# Also rsrc's lut per unit forced (--strategy=lut) on the Q2_0 file where the CPU has AVX-512 VBMI
# (its vector form), beside the default's choice.
# --target T compiles rsrc's artifacts for target T (default host); avx2 also holds the runtime's
# own kernels to AVX2 (RSR_CPU=avx2): an AVX-512 CPU showing the AVX2 instruction set, not an older
# core's speed. llama.cpp runs as it is (Q2_0 has no x86 SIMD there; Q1_0 does).
# Usage: bench/grouped.sh [--rounds N] [--threads T] [--target T] [--build DIR]
# Work (weights, artifacts, the npm package) stays in BUILD/grouped/ between runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build rounds=3 threads=2 target=host
while [ $# -gt 0 ]; do
  case $1 in
  --rounds) rounds=$2; shift 2 ;;
  --threads) threads=$2; shift 2 ;;
  --target) target=$2; shift 2 ;;
  --build) build=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "grouped.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
build=$(cd "$build" && pwd)
work=$build/grouped
mkdir -p "$work"
say() { echo "grouped.sh: $*" >&2; }
. "$root/bench/llama_node.sh"
llama_node_install "$work"

# ---- the weights and the artifacts ----
mk() { # NAME, then rsr-mkmodel's arguments
  local name=$1; shift
  [ -f "$work/w-$name/model.gguf" ] || { say "writing $name"; "$build/rsr-mkmodel" "$@" --out "$work/w-$name" >&2; }
}
mk q2 --format gguf-q2 --gguf-arch qwen3 --preset qwen3-0.6b
mk q1 --format gguf-q1 --gguf-arch qwen3 --preset qwen3-0.6b
mk tq2 --format gguf-tq2 --gguf-arch llama --hidden 1024 --intermediate 3072 --layers 28 --heads 16 --kv-heads 8 \
  --vocab 1024 --max-pos 4096
so() { echo "$work/$1-$target.so"; }
vbmi=""
[ "$target" = host ] && grep -q avx512vbmi /proc/cpuinfo && vbmi=q2-lut
for a in "q2 q2" ${vbmi:+"q2-lut q2 --strategy=lut"} "q2-rsr q2 --strategy=rsr-loop" "q1 q1" "tq2 tq2"; do
  read -r name w args <<<"$a"
  # shellcheck disable=SC2086
  # again whenever rsrc or the runtime it links in is newer than the artifact
  if [ ! "$(so "$name")" -nt "$build/rsrc" ] || [ "$build/librsr_runtime.a" -nt "$(so "$name")" ]; then
    say "compiling $name for $target"
    "$build/rsrc" "$work/w-$w/model.gguf" --target "$target" -o "$(so "$name")" $args
  fi
done
rsrc_target "$target"
ids=$(python3 -c "print(','.join(str((i * 2654435761) % 1000) for i in range(64)))")
short=$(echo "$ids" | cut -d, -f1-32)

# ---- the same model? ----
agree=""
for w in q2 q1; do
  n=$(llama_agree "$build/rsr-run" "$(so "$w")" "$work/w-$w/model.gguf" "$short" 8 "$threads")
  agree="$agree $w:$n"
done
say "greedy tokens agree with llama.cpp's for the first (of 8):$agree"

# ---- the rounds ----
runs=$work/runs.jsonl
: >"$runs"
for r in $(seq 1 "$rounds"); do
  say "round $r of $rounds"
  for name in q2 $vbmi q2-rsr q1 tq2; do
    rsrc_round "rsrc-$name" "$build/rsr-run" "$(so "$name")" "$ids" 32 "$threads" >>"$runs"
  done
  for w in q2 q1; do
    llama_round "llama-$w" "$work/w-$w/model.gguf" "$ids" 16 "$threads" >>"$runs"
  done
done

weights() { "$build/rsr-run" "$1" --info 2>/dev/null | sed -n 's/.*; \([0-9.]*\) million ternary weights.*/\1/p'; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
flags=$( (grep -o 'avx512[a-z0-9_]*\|avx_vnni' /proc/cpuinfo || true) | sort -u | tr '\n' ' ')
python3 - "$runs" "$threads" "$cpu" "${flags:-none}" "$(weights "$(so q2)")" "$(weights "$(so tq2)")" "$target_line" <<'PY'
import json, statistics, sys
path, threads, cpu, flags, wq, wt, target_line = sys.argv[1:]
runs = [json.loads(l) for l in open(path)]
def med(engine, key):
    v = [r[key] for r in runs if r['engine'] == engine]
    return statistics.median(v) if v else None
n = sum(r['engine'] == 'llama-q2' for r in runs)
print(f"{cpu}; wide SIMD features: {flags}; {threads} threads; medians of {n} alternating rounds, tokens/s")
print(target_line)
rows = [('rsrc-q2', 'rsrc, Q2_0 (the default)', wq), ('rsrc-q2-lut', 'rsrc, Q2_0, --strategy=lut (per unit)', wq),
        ('rsrc-q2-rsr', 'rsrc, Q2_0, --strategy=rsr-loop', wq),
        ('llama-q2', 'llama.cpp, Q2_0', wq), ('rsrc-q1', 'rsrc, Q1_0 (the default)', wq), ('llama-q1', 'llama.cpp, Q1_0', wq),
        ('rsrc-tq2', 'rsrc, TQ2_0 one scale, same widths', wt)]
print(f"{'':36} {'prefill 64':>11} {'decode':>8} {'M weights/token':>16} {'G weights/s decode':>19}")
for key, name, w in rows:
    p, d = med(key, 'prefill'), med(key, 'decode')
    if p is None:
        continue
    print(f"{name:36} {p:11.1f} {d:8.1f} {float(w):16.0f} {float(w) * d / 1000:19.2f}")
for a, b, what in (('rsrc-q2', 'llama-q2', 'Q2_0: rsrc / llama.cpp'), ('rsrc-q1', 'llama-q1', 'Q1_0: rsrc / llama.cpp'),
                   ('rsrc-q2', 'rsrc-q2-rsr', 'Q2_0: the default / RSR expanded')):
    print(f"{what:36} prefill {med(a, 'prefill') / med(b, 'prefill'):.2f}x, decode {med(a, 'decode') / med(b, 'decode'):.2f}x")
gw = float(wq) * med('rsrc-q2', 'decode') / (float(wt) * med('rsrc-tq2', 'decode'))
print(f"{'Q2_0 per unit / one scale, per weight':36} decode {gw:.2f}x")
PY
for name in q2 q1; do
  echo "the default's kernels, $name: $("$build/rsr-run" "$(so "$name")" --info | awk '/^matrices/ {n[$5] += $2} END {for (s in n) printf "%s%d %s", (k++ ? ", " : ""), n[s], s}')"
done
