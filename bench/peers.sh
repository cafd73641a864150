#!/usr/bin/env bash
# rsrc beside the peers on the same weights, as a user runs each (no flags but the threads and the
# prompt): ik_llama.cpp (built from ../shared/peers/, the fastest CPU engine for BitNet models) and
# upstream llama.cpp (the prebuilt libraries of the npm package node-llama-cpp).
#
# The weights: the 2B-4T shape, random ternary (rsr-mkmodel --preset 2b4t, seed 1), written twice
# from the same seed:
#   - as bitnet.cpp's I2_S GGUF (architecture bitnet-b1.58, ReLU²): rsrc compiles it; ik_llama.cpp
#     reads it after converting it to IQ2_BN (its direct I2_S path gives other tokens);
#   - as llama.cpp's TQ2_0 GGUF (architecture bitnet, SiLU: what upstream llama.cpp runs): rsrc
#     compiles that file too, and is timed against llama.cpp on it.
# Before any timing the greedy tokens of each peer are checked against rsrc's on its file (a
# disagreement stops the script: the peer would be running another model). Neither peer quantises
# activations with one scale per token (ik_llama.cpp: four a row; llama.cpp: one per block of 256),
# so only the first token must agree; how many agree is printed.
#
# Every round times each engine once, alternating: prefill of a 512-token prompt, greedy decode of
# 64 tokens after it, and 64 tokens decoded from an empty context; rsrc's sampled decode (--temp
# 0.8) after the prompt too; and the largest resident set of rsrc (a plain run: 512-token prompt, 64
# tokens) and of ik_llama.cpp (its llama-bench run). Prints the medians, and rsrc's ratio to each
# peer, naming the CPU (for memory the ratio is rsrc's over ik's: lower is better).
#
# --isa avx2 (on any x86-64 with AVX2) compares the AVX2 builds: rsrc --target avx2 with its
# runtime capped at AVX2 (RSR_CPU=avx2), ik_llama.cpp built with -DGGML_NATIVE=OFF -DGGML_AVX2=ON;
# the npm llama.cpp picks its own CPU variant (the line says which). --isa native: each engine
# at its best on this CPU.
#
# --tiles also times rsrc's I2_S artifact compiled with --prefill=i2 (the tiles, no RSR lanes) in
# every round, beside the default: the three columns of a comparison of the prefill forms (prefill,
# decode and resident memory against ik_llama.cpp's), one row each, after the table.
#
# Usage: bench/peers.sh [--isa avx2|native] [--tiles] [--rounds N] [--threads T] [--build DIR]
# Work (the peers' builds, the weights, the artifacts) stays in BUILD/peers/ between runs: the first
# run builds ik_llama.cpp (about 10-20 minutes on 2 cores) and compiles the models.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build isa=native rounds=3 threads=2 tiles=0
while [ $# -gt 0 ]; do
  case $1 in
  --isa) isa=$2; shift 2 ;;
  --tiles) tiles=1; shift ;;
  --rounds) rounds=$2; shift 2 ;;
  --threads) threads=$2; shift 2 ;;
  --build) build=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "peers.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case $isa in
avx2) target=avx2 cap=avx2 ik_flags=(-DGGML_NATIVE=OFF -DGGML_AVX2=ON) ;;
native) target=host cap= ik_flags=() ;;
*) echo "peers.sh: --isa: '$isa' is not avx2 or native" >&2; exit 2 ;;
esac
case $rounds$threads in *[!0-9]*) echo "peers.sh: --rounds and --threads take positive integers" >&2; exit 2 ;; esac
grep -qw avx2 /proc/cpuinfo || { echo "peers.sh: this CPU has no AVX2" >&2; exit 2; }
peers=${RSRC_PEERS:-$root/../shared/peers}
[ -f "$peers/build-ik.sh" ] || { echo "peers.sh: no $peers/build-ik.sh (set RSRC_PEERS to the peers' folder)" >&2; exit 2; }
build=$(cd "$build" && pwd)
work=$build/peers
mkdir -p "$work"
say() { echo "peers.sh: $*" >&2; }

# ---- the peers ----
say "building ik_llama.cpp ($isa) in $work/ik-$isa (once)"
ik=$("$peers/build-ik.sh" "$work/ik-$isa" "${ik_flags[@]}")
. "$root/bench/llama_node.sh"
llama_node_install "$work"

# ---- the weights and the artifacts ----
# compile SO WEIGHTS [RSRC OPTIONS...]: unless SO is newer than the compiler and the runtime
compile() {
  local so=$1 f=$2
  shift 2
  if [ ! "$so" -nt "$build/rsrc" ] || [ "$build/librsr_runtime.a" -nt "$so" ]; then
    say "compiling $f for --target $target $*"
    "$build/rsrc" "$work/w-$f/model.gguf" --target "$target" "$@" -o "$so"
  fi
}
for f in i2s tq2; do
  if [ ! -f "$work/w-$f/model.gguf" ]; then
    say "writing the 2B-4T weights as $f"
    arch=(); [ $f = tq2 ] && arch=(--gguf-arch bitnet)
    "$build/rsr-mkmodel" --format gguf-$f "${arch[@]}" --preset 2b4t --embed-std 0.02 --out "$work/w-$f" >&2
  fi
  compile "$work/rsrc-$f-$target.so" $f
done
tiles_so=$work/rsrc-i2s-$target-tiles.so
if [ "$tiles" = 1 ]; then compile "$tiles_so" i2s --prefill=i2; fi
[ -f "$work/w-i2s/iq2bn.gguf" ] ||
  "$ik/llama-quantize" --allow-requantize "$work/w-i2s/model.gguf" "$work/w-i2s/iq2bn.gguf" IQ2_BN >"$work/quantize.log" 2>&1
rsr_run() { RSR_CPU=$cap "$build/rsr-run" "$@"; }
ids=$(python3 -c "print(','.join(str((i * 2654435761) % 128000) for i in range(512)))")

# ---- the same model? greedy tokens, rsrc against each peer ----
text="The capital of France is"
# (in $work: llama-cli writes its main.log into the current directory)
theirs=$(cd "$work" && "$ik/llama-cli" -m "$work/w-i2s/iq2bn.gguf" -p "$text" -n 16 --temp 0 --top-k 1 \
  --no-display-prompt -t "$threads" 2>/dev/null </dev/null)
# ik_llama.cpp's IQ2_BN quantises activations as its Q8_K64: four absmax scales a row, each over
# every fourth run of 4 columns, where the BitNet recipe (rsrc) takes one a token. The logits
# differ in their last bits, and on random weights a near tie then sends the tokens apart, as with
# llama.cpp below: the first token must agree, the rest is reported (rsrc's first n tokens as text
# against the start of ik_llama.cpp's 16).
ik_agree=0
for n in $(seq 1 16); do
  mine=$(rsr_run "$work/rsrc-i2s-$target.so" -p "$text" -n "$n" --no-echo -t "$threads" 2>/dev/null)
  case "$theirs" in "$mine"*) ik_agree=$n ;; *) break ;; esac
done
if [ "$ik_agree" = 0 ]; then
  say "ik_llama.cpp's first greedy token differs from rsrc's on the same weights: another model?"
  printf '  rsrc:         %q\n  ik_llama.cpp: %q\n' "$mine" "$theirs" >&2
  exit 1
fi
short=$(echo "$ids" | cut -d, -f1-32)
mine=$(rsr_run "$work/rsrc-tq2-$target.so" --tokens "$short" -n 16 -t "$threads" 2>/dev/null | tail -1 | tr -s ' ' ',')
theirs=$(llama_peer tokens "$work/w-tq2/model.gguf" "$short" 16 "$threads")
# upstream llama.cpp quantises the activations of TQ2_0 matrices per block of 256 (Q8_K) where the
# BitNet recipe (rsrc) takes one absmax scale per token: the same rule as for ik_llama.cpp.
agree=$(python3 -c "import sys; a, b = sys.argv[1].split(','), sys.argv[2].split(','); n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))); print(n)" "$mine" "$theirs")
if [ "$agree" = 0 ]; then
  say "llama.cpp's first greedy token differs from rsrc's on the same weights: another model?"
  printf '  rsrc:      %s\n  llama.cpp: %s\n' "$mine" "$theirs" >&2
  exit 1
fi
if [ "$tiles" = 1 ]; then # the same kernels' integers: the same tokens as the default artifact's
  a=$(rsr_run "$work/rsrc-i2s-$target.so" --tokens "$short" -n 16 -t "$threads" 2>/dev/null | tail -1)
  b=$(rsr_run "$tiles_so" --tokens "$short" -n 16 -t "$threads" 2>/dev/null | tail -1)
  [ "$a" = "$b" ] || { say "the tiles' artifact gives other tokens than the default's: $b against $a"; exit 1; }
fi
say "greedy tokens agree: rsrc and ik_llama.cpp the first $ik_agree of 16 (its activations are quantised with 4 scales a row); rsrc and llama.cpp the first $agree of 16 (per 256-block)"

# ---- the rounds ----
runs=$work/runs-$isa.jsonl
: >"$runs"
# prompt ENGINE SO: rsrc's prefill of the 512-token prompt and decode after it, as a line of $runs
prompt() {
  rsr_run "$2" --bench --json -t "$threads" --ctx 1024 --tokens "$ids" -n 64 2>/dev/null |
    python3 -c "import json,sys; j=json.load(sys.stdin); print(json.dumps({'engine': '$1', 'prefill': j['prefill_tok_s']['median'], 'after': j['decode_greedy_tok_s']['median'], 'sampled': j['decode_sampled_tok_s']['median']}))" >>"$runs"
}
# max_rss SO FILE: the largest resident set of a plain run (512-token prompt, 64 tokens) into FILE
max_rss() {
  /usr/bin/time -f %M -o "$2" env RSR_CPU=$cap "$build/rsr-run" "$1" -t "$threads" --ctx 576 --tokens "$ids" -n 64 \
    >/dev/null 2>&1
}
for r in $(seq 1 "$rounds"); do
  say "round $r of $rounds"
  for f in i2s tq2; do
    prompt rsrc-$f "$work/rsrc-$f-$target.so"
    rsr_run "$work/rsrc-$f-$target.so" --bench --json -t "$threads" --ctx 1024 --tokens 1 -n 64 2>/dev/null |
      python3 -c "import json,sys; j=json.load(sys.stdin); print(json.dumps({'engine': 'rsrc-$f', 'empty': j['decode_greedy_tok_s']['median']}))" >>"$runs"
  done
  if [ "$tiles" = 1 ]; then
    prompt rsrc-tiles "$tiles_so"
    max_rss "$tiles_so" "$work/rss-tiles"
    python3 -c "import json,sys; print(json.dumps({'engine': 'rsrc-tiles', 'rss': int(open(sys.argv[1]).read().split()[-1]) / 1024}))" \
      "$work/rss-tiles" >>"$runs"
  fi
  # resident memory: the largest resident set of a 512-token prompt and 64 tokens decoded, as a user
  # runs each (rsrc with the context that holds them; llama-bench sizes its context the same way)
  max_rss "$work/rsrc-i2s-$target.so" "$work/rss-rsrc"
  /usr/bin/time -f %M -o "$work/rss-ik" "$ik/llama-bench" -m "$work/w-i2s/iq2bn.gguf" -p 512 -n 64 -gp 512,64 \
    -t "$threads" -r 1 -o json 2>/dev/null >"$work/ik.json"
  python3 -c "
import json, sys
tests = {t['test']: t['avg_ts'] for t in json.load(open(sys.argv[1]))}
print(json.dumps({'engine': 'ik', 'prefill': tests['pp512'], 'empty': tests['tg64'], 'after': tests['tg64@pp512'],
                  'rss': int(open(sys.argv[2]).read().split()[-1]) / 1024}))
print(json.dumps({'engine': 'rsrc-i2s', 'rss': int(open(sys.argv[3]).read().split()[-1]) / 1024}))" \
    "$work/ik.json" "$work/rss-ik" "$work/rss-rsrc" >>"$runs"
  llama_peer time "$work/w-tq2/model.gguf" "$ids" 64 "$threads" |
    python3 -c "import json,sys; j=json.load(sys.stdin); print(json.dumps({'engine': 'llama.cpp', 'prefill': j['prefill_tok_s'], 'after': j['decode_after_tok_s'], 'empty': j['decode_empty_tok_s']}))" >>"$runs"
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
flags=$( (grep -o 'avx512[a-z0-9_]*\|avx_vnni' /proc/cpuinfo || true) | sort -u | tr '\n' ' ')
python3 - "$runs" "$isa" "$threads" "$cpu" "${flags:-none}" "$agree" "$ik_agree" <<'EOF'
import json, statistics, sys
path, isa, threads, cpu, flags, agree, ik_agree = sys.argv[1:]
runs = [json.loads(l) for l in open(path)]
def med(engine, key):
    v = [r[key] for r in runs if r['engine'] == engine and key in r]
    return statistics.median(v) if v else None
rows = (('prefill', 'prefill 512'), ('empty', 'decode, empty context'), ('after', 'decode after 512'),
        ('sampled', 'sampled decode (T 0.8) after 512'), ('rss', 'resident MiB (max RSS), 512 + 64'))
print(f"{cpu}; wide SIMD features: {flags}; {threads} threads; builds: {isa} (the npm llama.cpp picks its own CPU variant)")
print(f"medians of {sum(r['engine'] == 'ik' for r in runs)} alternating rounds, tokens/s; the 2B-4T shape, random ternary weights")
print(f"{'':34} {'rsrc (I2_S)':>12} {'ik_llama.cpp':>13} {'ratio':>7} {'rsrc (TQ2_0)':>13} {'llama.cpp':>10} {'ratio':>7}")
for key, name in rows:
    a, ik, b, ll = med('rsrc-i2s', key), med('ik', 'after' if key == 'sampled' else key), med('rsrc-tq2', key), med('llama.cpp', 'after' if key == 'sampled' else key)
    f = lambda x: f"{x:.1f}" if x is not None else "-"
    r = lambda x, y: f"{x / y:.2f}x" if x and y else "-"
    print(f"{name:34} {f(a):>12} {f(ik):>13} {r(a, ik):>7} {f(b):>13} {f(ll):>10} {r(b, ll):>7}")
print("(the sampled row's peers are their greedy decode after 512, as the bar compares them; greedy tokens: "
      f"ik_llama.cpp agrees with rsrc on the first {ik_agree} of 16, llama.cpp on the first {agree} of 16)")
if any(r['engine'] == 'rsrc-tiles' for r in runs):
    print(f"{'the prefill forms (I2_S), against ik_llama.cpp':48} {'default':>15} {'tiles':>15} {'ik_llama.cpp':>13}")
    for key, name in (('prefill', 'prefill 512'), ('after', 'decode after 512'), ('rss', 'resident MiB, 512 + 64')):
        a, t, ik = med('rsrc-i2s', key), med('rsrc-tiles', key), med('ik', key)
        cell = lambda x: f"{x:.1f} ({x / ik:.2f}x)" if x and ik else "-"
        print(f"  {name:46} {cell(a):>15} {cell(t):>15} {ik if ik is None else round(ik, 1)!s:>13}")
EOF
