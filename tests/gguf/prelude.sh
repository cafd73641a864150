# prelude.sh — what the check_*.sh scripts that compare rsrc with upstream llama.cpp share: they
# source it after setting build, here and who. It installs node-llama-cpp into BUILD_DIR/gguf-ref
# (packages.sh; exits 77, skipped, without node, npm or the registry), copies llama_ref.mjs and
# any other .mjs named there, and makes an empty work directory BUILD_DIR/tests/gguf-NAME.
# Usage: . "$here/prelude.sh" NAME [MORE.mjs ...]        (sets dir and work)
dir=$build/gguf-ref
. "$here/packages.sh"
. "$here/../npm_fetch.sh"
# shellcheck disable=SC2086
npm_fetch "$dir" --omit=optional --ignore-scripts $packages
for f in llama_ref.mjs "${@:2}"; do cp "$here/$f" "$dir/"; done
work=$build/tests/gguf-$1
rm -rf "$work" && mkdir -p "$work"

# prefix_logits NAME PROMPT N: rsr-run on $work/NAME.so, the logits after each of PROMPT's first
# 1..N tokens into $work/NAME.K.f32
prefix_logits() {
  local k
  for k in $(seq 1 "$3"); do
    "$build/rsr-run" "$work/$1.so" --tokens "$(echo "$2" | cut -d, -f1-"$k")" -n 1 \
      --logits "$work/$1.$k.f32" >/dev/null 2>&1
  done
}
