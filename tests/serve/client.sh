#!/usr/bin/env bash
# rsr-serve as its users meet it, under node's test runner: the official openai npm client
# (openai.test.mjs: both endpoints with and without streaming, the client's error types for 400
# and 503, structured output's replies validated with ajv and ajv-formats), and with "page", the chat page in headless Chromium driven by playwright-core
# (page.test.mjs: it loads, a message gets a streamed reply, a screenshot is written to
# BUILD_DIR/tests/serve-page.png). Installs the packages from the npm registry into
# BUILD_DIR/serve-ref (never into the source tree); exits 77 (ctest: skipped) when node, npm or
# the registry is unavailable, and for the page when /usr/bin/chromium is missing.
# Usage: client.sh BUILD_DIR [openai|page]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
dir=$build/serve-ref
packages="openai@7.57.0 playwright-core@1.65.1 ajv@8.17.1 ajv-formats@3.0.1"
what=${2:-openai}
if [ "$what" = page ] && [ ! -x /usr/bin/chromium ]; then
  echo "client.sh: /usr/bin/chromium is not installed (scripts/setup.sh installs it): skipped" >&2
  exit 77
fi
who=client.sh
. "$here/../npm_fetch.sh"
# shellcheck disable=SC2086
npm_fetch "$dir" $packages
work=$build/tests/serve-$what
rm -rf "$work" && mkdir -p "$work"
"$build/rsr-mkmodel" --format bitnet-packed --preset small --max-pos 4096 --out "$work/m" 2>/dev/null
"$build/rsrc" "$work/m" -o "$work/m.so"
stop() {
  for d in "$work/s" "$work/full" "$work/qwen3" "$work/llama31" "$work/kjv"; do
    if [ -f "$d/pid" ]; then sh "$here/../lit/Inputs/serve_stop.sh" "$d" >/dev/null; fi
  done
}
trap stop EXIT
RSR_SERVE=$build/rsr-serve sh "$here/../lit/Inputs/serve.sh" "$work/s" "$work/m.so" --parallel 2 --ctx 512 --model-id small
RSR_SERVE=$build/rsr-serve sh "$here/../lit/Inputs/serve.sh" "$work/full" "$work/m.so" --parallel 1 --queue 0 --ctx 4096 --model-id small
# the trained model in the repository, with the chat template it ships (README's first chat)
if [ "$what" = openai ]; then
  "$build/rsrc" "$here/../../models/kjv-tiny" -o "$work/kjv.so"
  RSR_SERVE=$build/rsr-serve sh "$here/../lit/Inputs/serve.sh" "$work/kjv" "$work/kjv.so" --parallel 1 --model-id kjv-tiny
  export RSR_KJV_URL=$(cat "$work/kjv/url")
fi
# tool calls: the model served with Qwen3's and Llama 3.1's published templates (tokenizer.jinja.fetch
# takes them from llama.cpp's source into tokenizer-ref/templates; without them those tests skip)
templates=$build/tokenizer-ref/templates
if [ "$what" = openai ] && [ -f "$templates/Qwen-Qwen3-0.6B.jinja" ] && [ -f "$templates/meta-llama-Llama-3.1-8B-Instruct.jinja" ]; then
  RSR_SERVE=$build/rsr-serve sh "$here/../lit/Inputs/serve.sh" "$work/qwen3" "$work/m.so" --parallel 2 --ctx 2048 \
    --model-id small --chat-template-file "$templates/Qwen-Qwen3-0.6B.jinja"
  RSR_SERVE=$build/rsr-serve sh "$here/../lit/Inputs/serve.sh" "$work/llama31" "$work/m.so" --parallel 2 --ctx 2048 \
    --model-id small --chat-template-file "$templates/meta-llama-Llama-3.1-8B-Instruct.jinja"
  export RSR_QWEN3_URL=$(cat "$work/qwen3/url") RSR_LLAMA31_URL=$(cat "$work/llama31/url")
fi
ln -sfn "$dir/node_modules" "$work/node_modules" # the test imports openai from its own directory
cp "$here/$what.test.mjs" "$work/"
RSR_URL=$(cat "$work/s/url") RSR_FULL_URL=$(cat "$work/full/url") RSR_RUN="$build/rsr-run" RSR_MODEL="$work/m.so" \
  RSR_SCREENSHOT="$build/tests/serve-page.png" node --test "$work/$what.test.mjs"
