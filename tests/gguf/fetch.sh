#!/usr/bin/env bash
# Test setup: installs upstream llama.cpp as npm's node-llama-cpp (its prebuilt libraries and the
# git bundle of its source) into BUILD_DIR/gguf-ref, once, for gguf.reference and tokenizer.jinja
# (which reads models' published chat templates from the bundle). Exits 77 (ctest: skipped)
# without node, npm or the registry.
# Usage: fetch.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
who=gguf/fetch.sh
. "$here/../npm_fetch.sh"
. "$here/packages.sh"
# shellcheck disable=SC2086
npm_fetch "$1/gguf-ref" --omit=optional --ignore-scripts $packages
