#!/usr/bin/env bash
# The runtime's tokenizer beside the reference implementation (@huggingface/tokenizers under
# node), on the real Llama-3 and Llama-2 files and the test corpus: load time and encode speed,
# and their ratios. Needs the reference fetched by the tests (ctest -R tokenizer.fetch).
# Usage: bench/tokenizer.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
ref=$build/tokenizer-ref
[ -d "$ref/node_modules/@huggingface/tokenizers" ] || { echo "run 'ctest -R tokenizer.fetch' in $build first" >&2; exit 1; }
text=$(mktemp)
trap 'rm -f "$text"' EXIT
# The corpus without its invalid bytes (the reference would read them as U+FFFD, so would we).
python3 -c 'import sys; sys.stdout.write(open(sys.argv[1], "rb").read().decode("utf-8", "replace"))' \
  "$root/tests/tokenizer/corpus.txt" >"$text"
for name in llama3 llama2; do
  models=$ref/node_modules/@lenml/tokenizer-$name/models
  ours=$("$build/bench/bench_tokenizer" "$models/tokenizer.json" "$text" 50)
  theirs=$(node "$root/bench/tokenizer_reference.mjs" "$ref" "$models/tokenizer.json" "$models/tokenizer_config.json" "$text" 50)
  field() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }
  echo "$name: rsr load $(field load "$ours") ms, encode $(field encode "$ours") MB/s;" \
       "reference load $(field load "$theirs") ms, encode $(field encode "$theirs") MB/s;" \
       "encode speed ratio rsr/reference $(awk -v a="$(field encode "$ours")" -v b="$(field encode "$theirs")" 'BEGIN { printf "%.2f", a / b }')"
done
