# llama_node.sh — sourced by the benchmarks that run upstream llama.cpp (bench/peers.sh,
# bench/grouped.sh): node-llama-cpp@3.22.1 installed once into DIR/node, and llama_peer, which runs
# bench/llama_peer.mjs from there (see its header for the modes).
# Usage: . bench/llama_node.sh; llama_node_install DIR; llama_peer time|tokens MODEL.gguf IDS N THREADS
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
