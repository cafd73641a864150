#!/usr/bin/env bash
# Louver end to end: on a tiny model, 256 greedy tokens with Louver attention at eps = 1e-6 are
# identical to dense attention's (with the default block and with small blocks, i.e. many index
# growths), --stats reports consistent numbers, and a prompt evaluated 64 rows at a time gives the
# bits of one row at a time.
# Usage: check_louver.sh BUILD_DIR FORMAT [mkmodel args...]
set -euo pipefail
build=$1 format=$2
shift 2
work=$(mktemp -d "${TMPDIR:-/tmp}/rsrc-louver.XXXXXX")
trap 'rm -rf "$work"' EXIT

# embeddings of std 1 unless the args say otherwise: wide margins between a random model's greedy
# tokens, so that 256 of them compare Louver with dense (at 1/sqrt(hidden) a near tie can flip)
mk_args=("$@")
[[ " ${mk_args[*]} " == *" --embed-std "* ]] || mk_args+=(--embed-std 1)
"$build/rsr-mkmodel" --format "$format" --out "$work/model" --max-pos 1024 "${mk_args[@]}" 2>/dev/null
"$build/rsrc" "$work/model" -o "$work/model.so"
prompt=1,17,42,3,99,7,250,18,64,5,33,121,8,77,200,9,150,11,60,4
run() { "$build/rsr-run" "$work/model.so" --tokens "$prompt" -n 256 --ignore-eos "$@"; }
run >"$work/dense.txt" 2>/dev/null

# every step and layer: kept <= scanned <= keys; a bound of 0 exactly when nothing was dropped;
# the summary's overall line sums the steps
check_stats() {
  awk -v what="$2" '
    /^stats step / { n++; keys = $7; scanned = $11; kept = $13; bound = $17
                if (!(kept <= scanned && scanned <= keys) || ((scanned < keys) != (bound > 0))) { print "inconsistent: " $0; bad = 1 }
                if (scanned < keys) sparse++
                all_keys += keys; all_scanned += scanned; all_kept += kept }
    /^stats overall:/ { line = $0; gsub(/[,(]/, " "); o_keys = $4; o_scanned = $9; o_kept = $12; overall++ }
    END { if (n != 256 * 2) { print "expected 512 stats lines, got " n; bad = 1 }
          if (overall != 1 || o_keys != all_keys || o_scanned != all_scanned || o_kept != all_kept) {
            print "the summary is not the sum of the steps: " line " (steps: keys " all_keys ", scanned " all_scanned ", kept " all_kept ")"; bad = 1 }
          printf "%s: %d of %d steps×layers attended fewer keys than dense\n", what, sparse, n; exit bad }' "$1"
}
for block in 256 32 16; do
  run --attention louver --louver-eps 1e-6 --louver-block "$block" --stats >"$work/louver.txt" 2>"$work/stats.txt"
  if ! diff "$work/dense.txt" "$work/louver.txt" >/dev/null; then
    echo "louver (block $block) tokens differ from dense:" >&2
    echo "  dense:  $(cat "$work/dense.txt")" >&2
    echo "  louver: $(cat "$work/louver.txt")" >&2
    exit 1
  fi
  check_stats "$work/stats.txt" "block $block, eps 1e-6"
done
# a high absolute threshold drops keys: the stats must say so, with a positive bound
run --attention louver --louver-tau 2 --louver-block 16 --stats >/dev/null 2>"$work/stats.txt"
check_stats "$work/stats.txt" "tau 2, block 16"
grep -q "dropped<= [1-9]" "$work/stats.txt" || grep -q "dropped<= 0\.[0-9]*[1-9]" "$work/stats.txt" || {
  echo "no step dropped anything at tau 2" >&2; exit 1; }
# a prompt evaluated 64 rows at a time (the rows between two index growths attended together)
# gives the bits of one row at a time: logits of the last prompt position and the tokens after it
long=$(seq -s, 1 2 250)
for b in 64 1; do
  "$build/rsr-run" "$work/model.so" --tokens "$long" -n 16 --ignore-eos --attention louver --louver-tau 2 --louver-block 16 \
    --batch "$b" --logits "$work/logits.$b" >"$work/tokens.$b" 2>/dev/null
done
cmp "$work/logits.64" "$work/logits.1" && cmp "$work/tokens.64" "$work/tokens.1" || {
  echo "louver: --batch 64 and --batch 1 differ" >&2; exit 1; }
echo "greedy tokens identical to dense for 256 steps: $(cut -d' ' -f1-12 "$work/dense.txt") ..."
