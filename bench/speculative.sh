#!/usr/bin/env bash
# Speculative decoding beside plain decoding: rsr-run on MODEL.so with the same input, without
# --spec-type and with each variant asked for (VARIANTS, default "ngram-simple"; "draft:D.so" for
# a draft model, "draft:D.so@P" with --draft-p-min P), alternating round by round; per variant the median decode tok/s, its ratio to
# plain decoding's median, the acceptance, and whether the tokens were plain decoding's (greedy:
# they must be). docs/performance.md, "Speculative decoding".
# Usage: [VARIANTS="ngram-simple draft:d.so"] bench/speculative.sh MODEL.so ROUNDS RSR-RUN-ARGS...
#   bench/speculative.sh m2b.so 5 --tokens 128000,791,6864,315 -n 400 -t 1
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run=${RSR_RUN:-$root/build/rsr-run}
model=${1:?usage: bench/speculative.sh MODEL.so ROUNDS RSR-RUN-ARGS...}
rounds=${2:?usage: bench/speculative.sh MODEL.so ROUNDS RSR-RUN-ARGS...}
shift 2
variants=(none ${VARIANTS:-ngram-simple})
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), cpu family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '); $model $*"
for r in $(seq 1 "$rounds"); do
  for i in "${!variants[@]}"; do # files by the variant's place: a draft's path has slashes
    v=${variants[$i]}
    case $v in
      draft:*@*) d=${v#draft:} && args=(-md "${d%@*}" --draft-p-min "${d##*@}") ;;
      draft:*) args=(-md "${v#draft:}") ;;
      *) args=(--spec-type "$v") ;;
    esac
    "$run" "$model" "$@" "${args[@]}" >"$dir/$r.$i.out" 2>"$dir/$r.$i.err"
    sed -n 's/.*generated [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p' "$dir/$r.$i.err" >>"$dir/$i.speeds"
  done
done
median() { sort -g "$1" | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
base=$(median "$dir/0.speeds")
printf '| variant | acceptance | decode tok/s (median of %s) | ratio | tokens |\n|---|---:|---:|---:|---|\n' "$rounds"
for i in "${!variants[@]}"; do
  v=${variants[$i]}
  m=$(median "$dir/$i.speeds")
  acc=$(sed -n 's/.*accepted (\([0-9]*%\)).*/\1/p' "$dir/1.$i.err")
  same=same
  for r in $(seq 1 "$rounds"); do cmp -s "$dir/$r.0.out" "$dir/$r.$i.out" || same=DIFFER; done
  printf '| %s | %s | %s | %.2fx | %s |\n' "$v" "${acc:--}" "$m" "$(echo "$m / $base" | bc -l)" "$same"
done
