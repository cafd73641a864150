#!/usr/bin/env bash
# PrismML's Bonsai 2 formats on a cut of the 27B shape (rsr-mkmodel --preset qwen35-27b: hidden 5120,
# FFN 17408, DeltaNet 16/48 heads of 128, attention 24/4 heads of 256; --layers of the 64, default 4,
# vocabulary --vocab, default 16384): the same random codes written by tests/gguf/prism_fold.py
# --bench as PQ2_0 with the Hadamard fold (blocks of --block, default 1024 as Bonsai 2's; explicit
# signs for widths 5120, 6144 and 17408), as PQ2_0 without it (the same bytes, no prism.hadamard
# keys) and as PTQ1_0 with it, compiled three times: as a user gets it (--ptq1-codes=auto: base-3
# codes for as few matrices as keep them within 1.15x the file), with base3 and with 2bit. Every round times each artifact once, alternating (rsr-run --bench -p
# PROMPT -n 32: llama-bench's tests, a synthetic prompt's prefill and 32 tokens of decode from an
# empty context, as the fork's llama-bench runs them), as a user runs them (no flags but the
# threads). Prints the medians, the fold's cost (folded / unfolded), PTQ1_0 against PQ2_0 and its
# base-3 codes against 2-bit ones, each file's and artifact's size, naming the CPU.
# --peer BIN: also PrismML's fork (../shared/peers/build-prism.sh DIR prints BIN), which reads PQ2_0's
# blocks under their legacy id 42 and has no fold: the unfolded PQ2_0 bytes written again with id 42
# for it, greedy text after "hello world" compared first (8 tokens), then its llama-bench (prefill
# of --prompt, 32 tokens of decode) in every round beside rsrc's unfolded artifact.
# --avx2: rsrc held to AVX2 (--target avx2, RSR_CPU=avx2), to measure the instruction set on a
# newer CPU beside a fork built the same way (build-prism.sh DIR -DGGML_NATIVE=OFF -DGGML_AVX2=ON):
# the instruction set, not an older core's speed.
# Usage: bench/prism.sh [--rounds N] [--threads T] [--layers L] [--vocab V] [--prompt P] [--block B] [--build DIR]
#                       [--peer BIN] [--avx2]
# Work stays in BUILD/prism-bench/ between runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build rounds=3 threads=1 layers=4 vocab=16384 prompt=128 block=1024 peer= isa=
while [ $# -gt 0 ]; do
  case $1 in
  --rounds) rounds=$2; shift 2 ;;
  --threads) threads=$2; shift 2 ;;
  --layers) layers=$2; shift 2 ;;
  --vocab) vocab=$2; shift 2 ;;
  --prompt) prompt=$2; shift 2 ;;
  --block) block=$2; shift 2 ;;
  --build) build=$2; shift 2 ;;
  --peer) peer=$2; shift 2 ;;
  --avx2) isa=avx2; shift ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "prism.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
build=$(cd "$build" && pwd)
work=$build/prism-bench
mkdir -p "$work"
say() { echo "prism.sh: $*" >&2; }
src=$work/src-$layers-$vocab
[ -f "$src/model.gguf" ] || {
  say "writing the cut (Qwen3.5-27B's shape, $layers layers, vocabulary $vocab)"
  "$build/rsr-mkmodel" --format gguf-q2 --gguf-arch qwen35 --preset qwen35-27b --layers "$layers" --vocab "$vocab" \
    --out "$src" >&2
}
variants="pq2 pq2-nofold ptq1 ptq1-base3 ptq1-2bit"
for v in $variants; do
  g=$v flags=() # the GGUF it reads, and rsrc's flags
  case $v in
  pq2) args=(--type pq2_0) ;;
  pq2-nofold) args=(--type pq2_0 --no-fold) ;;
  ptq1) args=(--type ptq1_0) ;;
  ptq1-base3) g=ptq1 args=(--type ptq1_0) flags=(--ptq1-codes=base3) ;;
  ptq1-2bit) g=ptq1 args=(--type ptq1_0) flags=(--ptq1-codes=2bit) ;;
  esac
  f=$work/$g-$layers-$vocab-$block.gguf
  [ -f "$f" ] || python3 "$root/tests/gguf/prism_fold.py" write "$src/model.gguf" "$f" --bench --block "$block" "${args[@]}"
  so=$work/$v-$layers-$vocab-$block${isa:+-$isa}.so
  if [ ! "$so" -nt "$build/rsrc" ] || [ "$build/librsr_runtime.a" -nt "$so" ]; then
    say "compiling $v${isa:+ for $isa}"
    "$build/rsrc" "$f" ${isa:+--target $isa} "${flags[@]}" -o "$so"
  fi
done
run() { if [ -n "$isa" ]; then RSR_CPU=$isa "$build/rsr-run" "$@"; else "$build/rsr-run" "$@"; fi; }
nofold=$work/pq2-nofold-$layers-$vocab-$block
if [ -n "$peer" ]; then
  fork=$work/fork42-$layers-$vocab-$block.gguf
  [ -f "$fork" ] || python3 "$root/tests/gguf/prism_fold.py" write "$src/model.gguf" "$fork" --bench --block "$block" \
    --type pq2_0 --no-fold --legacy42
  mine=$(run "$nofold${isa:+-$isa}.so" -p "hello world" -n 8 --temp 0 -t "$threads" 2>/dev/null | tr -d '\n')
  theirs=$("$peer/llama-simple" -m "$fork" -n 8 "hello world" 2>/dev/null | tr -d '\n' | sed 's/^<|begin_of_text|>//')
  [ "$mine" = "$theirs" ] || { say "greedy text differs: rsrc '$mine', the fork '$theirs'"; exit 1; }
  say "greedy text after 'hello world' agrees with the fork's (8 tokens)"
fi
runs=$work/runs.jsonl
: >"$runs"
for r in $(seq 1 "$rounds"); do
  say "round $r of $rounds"
  for v in $variants; do
    run "$work/$v-$layers-$vocab-$block${isa:+-$isa}.so" --bench -p "$prompt" -n 32 -r 1 -t "$threads" -o json \
      2>/dev/null | python3 -c "import json,sys; r=json.load(sys.stdin); t={('p' if x['n_prompt'] else 'd'): \
x['tok_s_mean'] for x in r}; print(json.dumps({'v': sys.argv[1], 'prefill': t['p'], 'decode': t['d']}))" "$v" >>"$runs"
  done
  [ -z "$peer" ] || "$peer/llama-bench" -m "$fork" -p "$prompt" -n 32 -t "$threads" -r 1 -o json 2>/dev/null |
    python3 -c "import json,sys; r=json.load(sys.stdin); t={('p' if x['n_prompt'] else 'd'): x['avg_ts'] for x in r}; \
print(json.dumps({'v': 'fork', 'prefill': t['p'], 'decode': t['d']}))" >>"$runs"
done
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
family=$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -1)
python3 - "$runs" "$work" "$layers-$vocab-$block" "$cpu (family $family)" "$threads" "$prompt" "$block" "$isa" <<'PY'
import json, os, statistics, sys
path, work, tag, cpu, threads, prompt, block, isa = sys.argv[1:]
runs = [json.loads(l) for l in open(path)]
def med(v, key):
    return statistics.median(r[key] for r in runs if r['v'] == v)
n = sum(r['v'] == 'pq2' for r in runs)
held = f"; rsrc held to {isa} (--target {isa}, RSR_CPU={isa})" if isa else ""
print(f"{cpu}; {threads} threads; medians of {n} alternating rounds, tokens/s; fold blocks of {block}{held}")
print(f"{'':22} {'prefill ' + prompt:>12} {'decode':>8} {'GGUF MB':>9} {'artifact MB':>12}")
for v, name in (('pq2', 'PQ2_0, folded'), ('pq2-nofold', 'PQ2_0, no fold'), ('ptq1', 'PTQ1_0, folded'),
                ('ptq1-base3', 'PTQ1_0, base-3 codes'), ('ptq1-2bit', 'PTQ1_0, 2-bit codes')):
    f = os.path.join(work, f"{'ptq1' if v.startswith('ptq1') else v}-{tag}")
    so = os.path.join(work, f"{v}-{tag}") + (f"-{isa}" if isa else "") + '.so'
    print(f"{name:22} {med(v, 'prefill'):12.2f} {med(v, 'decode'):8.2f} {os.path.getsize(f + '.gguf') / 1e6:9.1f} "
          f"{os.path.getsize(so) / 1e6:12.1f}")
print(f"{'fold: folded / not':22} {med('pq2', 'prefill') / med('pq2-nofold', 'prefill'):11.3f}x "
      f"{med('pq2', 'decode') / med('pq2-nofold', 'decode'):7.3f}x")
print(f"{'PTQ1_0 / PQ2_0':22} {med('ptq1', 'prefill') / med('pq2', 'prefill'):11.3f}x "
      f"{med('ptq1', 'decode') / med('pq2', 'decode'):7.3f}x")
for v, name in (('ptq1', 'auto / 2-bit codes'), ('ptq1-base3', 'base-3 / 2-bit codes')):
    print(f"{name:22} {med(v, 'prefill') / med('ptq1-2bit', 'prefill'):11.3f}x "
          f"{med(v, 'decode') / med('ptq1-2bit', 'decode'):7.3f}x")
if any(r['v'] == 'fork' for r in runs):
    print(f"{'PrismML fork (id 42)':22} {med('fork', 'prefill'):12.2f} {med('fork', 'decode'):8.2f}")
    print(f"{'rsrc (no fold) / fork':22} {med('pq2-nofold', 'prefill') / med('fork', 'prefill'):11.2f}x "
          f"{med('pq2-nofold', 'decode') / med('fork', 'decode'):7.2f}x")
PY
