#!/usr/bin/env bash
# Decode at long contexts as a user gets it: for each context C, a prompt of C − N token ids
# (seeded, spread over the vocabulary) and N greedy tokens through rsr-run, with each KV cache
# type and attention mode below, the configurations alternated within every round so that the
# machine's drift reaches all of them alike. Prints per context the median decode tok/s of each
# configuration over the rounds, its ratio to fp32 dense (the behaviour before --kv and auto),
# the KV cache per sequence (rsr-run -v) and whether its greedy tokens equal fp32 dense's.
#
# Usage: [PAIR=1 | ONLY=i,j,...] bench/long_context.sh BUILD_DIR MODEL.so [ROUNDS (3)] [CONTEXTS (1024,4000)] [N (48)]
set -euo pipefail
build=$1 so=$2 rounds=${3:-3} contexts=${4:-1024,4000} n=${5:-48}
configs=("--kv f32 --attention dense" "--kv bf16 --attention dense" "" "--kv f16" "--kv q8")
names=("f32, dense (before)" "bf16, dense" "bf16, auto (default)" "f16, auto" "q8, auto")
# ONLY=0,2,...: those configurations only (PAIR=1: the behaviour before and the default), for
# more rounds in the same time
only=${ONLY:-$([ "${PAIR:-}" = 1 ] && echo 0,2 || echo 0,1,2,3,4)}
sel_c=() sel_n=()
for i in ${only//,/ }; do sel_c+=("${configs[$i]}") sel_n+=("${names[$i]}"); done
configs=("${sel_c[@]}") names=("${sel_n[@]}")
vocab=$("$build/rsr-run" "$so" --info | sed -n 's/.* vocab \([0-9]*\) .*/\1/p')
median() { sort -n "$1" | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; } # the lower one of an even count
work=$(mktemp -d "${TMPDIR:-/tmp}/rsrc-longctx.XXXXXX")
trap 'rm -rf "$work"' EXIT

for ctx in ${contexts//,/ }; do
  python3 -c "import random; r = random.Random($ctx); print(','.join(str(r.randrange(1000, $vocab)) for _ in range($ctx - $n)))" >"$work/prompt"
  for ((r = 0; r < rounds; r++)); do
    for i in "${!configs[@]}"; do
      # shellcheck disable=SC2086 # the configuration is a list of options
      "$build/rsr-run" "$so" -v --ctx "$ctx" --tokens "@$work/prompt" -n "$n" ${configs[$i]} \
        >"$work/tokens.$i" 2>"$work/err.$i.$r"
      sed -n 's/.*generated [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p' "$work/err.$i.$r" >>"$work/tps.$i"
    done
  done
  echo "context $ctx ($((ctx - n))-token prompt, $n greedy tokens), $rounds rounds, $(basename "$so"):"
  printf '  %-22s %12s %8s %22s %s\n' configuration "decode tok/s" ratio "KV cache / sequence" "tokens"
  base=$(median "$work/tps.0")
  for i in "${!configs[@]}"; do
    med=$(median "$work/tps.$i")
    kv=$(sed -n 's/.*KV cache [a-z0-9]*, \([0-9.]* MiB\) per sequence.*/\1/p' "$work/err.$i.0")
    same=$(cmp -s "$work/tokens.0" "$work/tokens.$i" && echo "= fp32 dense" || echo "differ")
    printf '  %-22s %12s %7.2fx %22s %s\n' "${names[$i]}" "$med" "$(echo "$med / $base" | bc -l)" "$kv" "$same"
    rm -f "$work/tps.$i"
  done
done
