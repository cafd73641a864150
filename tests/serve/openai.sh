#!/usr/bin/env bash
# The official openai npm client against rsr-serve (node's test runner, openai.test.mjs): both
# endpoints with and without streaming, and the client's error types for 400 and 503. Installs
# the client from the npm registry into BUILD_DIR/serve-ref (never into the source tree); exits
# 77 (ctest: skipped) when node, npm or the registry is unavailable.
# Usage: openai.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
dir=$build/serve-ref
package=openai@7.57.0
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "openai.sh: node and npm are not installed: skipped" >&2
  exit 77
fi
mkdir -p "$dir"
if [ "$(cat "$dir/installed" 2>/dev/null)" != "$package" ]; then
  [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
  if ! npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error \
       --fetch-timeout=30000 --fetch-retries=1 "$package" >&2; then
    echo "openai.sh: the npm registry is unreachable: skipped" >&2
    exit 77
  fi
  echo "$package" >"$dir/installed"
fi
work=$build/tests/serve-openai
rm -rf "$work" && mkdir -p "$work"
"$build/rsr-mkmodel" --format bitnet-packed --preset small --max-pos 4096 --out "$work/m" 2>/dev/null
"$build/rsrc" "$work/m" -o "$work/m.so"
stop() { for d in "$work/s" "$work/full"; do [ -f "$d/pid" ] && sh "$here/../lit/Inputs/serve_stop.sh" "$d" >/dev/null; done; }
trap stop EXIT
RSR_SERVE=$build/rsr-serve sh "$here/../lit/Inputs/serve.sh" "$work/s" "$work/m.so" --parallel 2 --ctx 512 --model-id small
RSR_SERVE=$build/rsr-serve sh "$here/../lit/Inputs/serve.sh" "$work/full" "$work/m.so" --parallel 1 --queue 0 --ctx 4096 --model-id small
ln -sfn "$dir/node_modules" "$work/node_modules" # the test imports openai from its own directory
cp "$here/openai.test.mjs" "$work/"
RSR_URL=$(cat "$work/s/url") RSR_FULL_URL=$(cat "$work/full/url") RSR_RUN="$build/rsr-run" RSR_MODEL="$work/m.so" \
  node --test "$work/openai.test.mjs"
