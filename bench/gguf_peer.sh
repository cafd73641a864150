#!/usr/bin/env bash
# rsrc beside upstream llama.cpp on the same GGUF file: the 2B-4T shape's weights (rsr-mkmodel,
# random, as TQ2_0 in llama.cpp's "bitnet" architecture), compiled by rsrc, and read by the
# prebuilt llama.cpp of the npm package node-llama-cpp (the best CPU variant it picks for this
# machine). Each round times a 512-token prefill and 64 greedy decode tokens in both, alternating
# (rsrc, then llama.cpp); the medians and their ratios are printed. No flags beyond the defaults
# on either side, 2 threads.
# Usage: bench/gguf_peer.sh [BUILD_DIR] [ROUNDS]   (reuses BUILD_DIR/bench-gguf between runs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
rounds=${2:-3}
work=$build/bench-gguf
mkdir -p "$work"
if [ ! -f "$work/installed" ]; then
  echo '{"private": true, "type": "module"}' >"$work/package.json"
  npm install --prefix "$work" --no-audit --no-fund --no-save --omit=optional --ignore-scripts --loglevel=error \
    node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 >&2
  touch "$work/installed"
fi
cp "$root/bench/llama_peer.mjs" "$work/"
if [ ! -f "$work/m/model.gguf" ]; then
  "$build/rsr-mkmodel" --format gguf-tq2 --gguf-arch bitnet --preset 2b4t --embed-std 0.02 --out "$work/m"
fi
[ -f "$work/m.so" ] || "$build/rsrc" "$work/m/model.gguf" -o "$work/m.so"
ids=$(python3 -c "print(','.join(str((i * 2654435761) % 128000) for i in range(512)))")
for r in $(seq 1 "$rounds"); do
  "$build/rsr-run" "$work/m.so" --bench --json --tokens "$ids" -n 64 2>/dev/null |
    python3 -c "import json,sys; j=json.load(sys.stdin); print(json.dumps({'engine': 'rsrc', 'prefill_tok_s': j['prefill_tok_s']['median'], 'decode_tok_s': j['decode_greedy_tok_s']['median']}))"
  node "$work/llama_peer.mjs" "$work/m/model.gguf" "$ids" 64 2 |
    python3 -c "import json,sys; j=json.load(sys.stdin); j['engine']='llama.cpp'; print(json.dumps(j))"
done | tee "$work/runs.jsonl" | python3 -c "
import json, statistics, sys
runs = [json.loads(l) for l in sys.stdin]
med = {e: {k: statistics.median(r[k] for r in runs if r['engine'] == e) for k in ('prefill_tok_s', 'decode_tok_s')}
       for e in ('rsrc', 'llama.cpp')}
for k, what in (('prefill_tok_s', 'prefill 512'), ('decode_tok_s', 'decode 64')):
    print('%-12s rsrc %7.1f tok/s   llama.cpp %7.1f tok/s   rsrc/llama.cpp %.2fx' %
          (what, med['rsrc'][k], med['llama.cpp'][k], med['rsrc'][k] / med['llama.cpp'][k]))
print('(medians of %d alternating rounds, 2 threads, the same TQ2_0 GGUF file)' % (len(runs) // 2))
"
