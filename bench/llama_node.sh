# llama_node.sh — sourced by the benchmarks that run upstream llama.cpp (bench/peers.sh,
# bench/grouped.sh): node-llama-cpp@3.22.1 installed once into DIR/node, and llama_peer, which runs
# bench/llama_peer.mjs from there (see its header for the modes).
# Usage: . bench/llama_node.sh; llama_node_install DIR; llama_peer time|tokens MODEL.gguf IDS N THREADS
# (and rsrc_round, llama_round below: one round of a benchmark; rsrc_target: what --target means)
llama_node_install() {
  local node=$1/node root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [ ! -f "$node/installed" ]; then
    echo "installing node-llama-cpp@3.22.1 in $node (once)" >&2
    mkdir -p "$node"
    echo '{"private": true, "type": "module"}' >"$node/package.json"
    npm install --prefix "$node" --no-audit --no-fund --no-save --omit=optional --ignore-scripts --loglevel=error \
      node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 >&2
    touch "$node/installed"
  fi
  cp "$root/bench/llama_peer.mjs" "$node/"
  llama_node_dir=$node
}
llama_peer() { node "$llama_node_dir/llama_peer.mjs" "$@"; }
# llama_agree RSR_RUN ARTIFACT MODEL.gguf IDS N THREADS: how many of the N greedy tokens after IDS
# rsrc's artifact and llama.cpp (on the GGUF file it was compiled from) agree on, from the first;
# fails, printing both, when not even the first does (another model).
llama_agree() {
  local mine theirs n
  mine=$("$1" "$2" --tokens "$4" -n "$5" -t "$6" 2>/dev/null | tail -1 | tr -s ' ' ',')
  theirs=$(llama_peer tokens "$3" "$4" "$5" "$6")
  n=$(python3 -c "import sys; a, b = sys.argv[1].split(','), sys.argv[2].split(','); print(next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))))" "$mine" "$theirs")
  if [ "$n" = 0 ]; then
    echo "llama.cpp's first greedy token differs from rsrc's on $3: another model?" >&2
    printf '  rsrc:      %s\n  llama.cpp: %s\n' "$mine" "$theirs" >&2
    return 1
  fi
  echo "$n"
}
# One engine's timing of one alternating round as a JSON line {engine, prefill, decode} (tok/s):
#   rsrc_round NAME RSR_RUN ARTIFACT IDS N THREADS    (rsr-run --bench --repeat 3: medians of its runs)
#   llama_round NAME MODEL.gguf IDS N THREADS         (llama.cpp: prefill, then decode after it)
rsrc_round() {
  "$2" "$3" --bench --json --repeat 3 -t "$6" --tokens "$4" -n "$5" 2>/dev/null |
    python3 -c "import json,sys; j=json.load(sys.stdin); print(json.dumps({'engine': sys.argv[1], 'prefill': j['prefill_tok_s']['median'], 'decode': j['decode_greedy_tok_s']['median']}))" "$1"
}
llama_round() {
  llama_peer time "$2" "$3" "$4" "$5" |
    python3 -c "import json,sys; j=json.load(sys.stdin); print(json.dumps({'engine': sys.argv[1], 'prefill': j['prefill_tok_s'], 'decode': j['decode_after_tok_s']}))" "$1"
}
# rsrc_target T: what --target T means for the rsrc runs of a benchmark: avx2 also holds the
# runtime's own kernels to AVX2 (RSR_CPU=avx2); sets target_line, the line the summaries show.
rsrc_target() {
  case $1 in avx2) export RSR_CPU=avx2 ;; esac
  target_line="rsrc compiled for --target $1${RSR_CPU:+ and run with RSR_CPU=$RSR_CPU}"
}
