#!/usr/bin/env bash
# Test setup for test_jinja: extracts the models' published chat templates that jinja_cases.json
# names from llama.cpp's source (the git bundle node-llama-cpp ships, which fetch-gguf installs) into
# BUILD_DIR/tokenizer-ref/templates/ (never into the source tree), then renders the references with
# @huggingface/jinja into BUILD_DIR/tokenizer-ref/jinja.json. Exits 77 (ctest: skipped) when node,
# git, the bundle or the @huggingface/jinja package (fetch.sh installs it) is missing.
# Usage: jinja_templates.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
skip() {
  echo "jinja_templates.sh: $1: the Jinja comparison is skipped" >&2
  exit 77
}
build=$(cd "${1:?usage: jinja_templates.sh BUILD_DIR}" 2>/dev/null && pwd) || skip "there is no build directory $1"
dir=$build/tokenizer-ref
bundle=$build/gguf-ref/node_modules/node-llama-cpp/llama/gitRelease.bundle

rm -f "$dir/jinja.json" # never a stale reference
command -v node >/dev/null || skip "node is not installed"
command -v git >/dev/null || skip "git is not installed"
[ -f "$bundle" ] || skip "$bundle is missing"
[ -d "$dir/node_modules/@huggingface/jinja" ] || skip "@huggingface/jinja is not installed in $dir"

# The templates the cases name, from the bundle's HEAD.
names=$(node -e 'for (const t of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).templates)
                   if (t.file) console.log(t.file)' "$here/jinja_cases.json")
repo=$(mktemp -d)
trap 'rm -rf "$repo"' EXIT
git init -q --bare "$repo"
git -C "$repo" fetch -q "$bundle" 'HEAD:refs/heads/b' 2>/dev/null || skip "the bundle $bundle cannot be read"
mkdir -p "$dir/templates"
for name in $names; do
  git -C "$repo" show "b:models/templates/$name" >"$dir/templates/$name.tmp" || skip "the bundle has no models/templates/$name"
  mv "$dir/templates/$name.tmp" "$dir/templates/$name"
done
node "$here/jinja.mjs" "$dir" "$dir/templates" "$here/chat_templates.json" "$here/jinja_cases.json" "$dir/jinja.json"
