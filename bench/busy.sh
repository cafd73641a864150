#!/usr/bin/env bash
# A busy desktop: decode speed with the default thread count (the runtime's adaptive one) beside
# every fixed count -t 1 .. N, on an idle machine, with another program holding one core (a busy
# loop) and crowded (8 busy loops a CPU: more runnable threads than cores), the variants
# alternating round by round; the medians and the default's ratio to the best fixed count. LOADS
# picks the loads (default "idle busy crowded"). With IK_GGUF set (ik_llama.cpp's file of the same
# weights, as bench/peers.sh makes it), ik_llama.cpp's llama-bench runs beside it the same way: its
# default thread count and every fixed one. docs/performance.md, "A busy desktop".
# Usage: [IK_GGUF=iq2bn.gguf IK_BENCH=llama-bench] bench/busy.sh MODEL.so [ROUNDS (default 5)] [TOKENS (default 128)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run=${RSR_RUN:-$root/build/rsr-run}
model=${1:?usage: bench/busy.sh MODEL.so [ROUNDS] [TOKENS]}
rounds=${2:-5}
tokens=${3:-128}
ik_gguf=${IK_GGUF:-}
ik_bench=${IK_BENCH:-$root/build/peers/ik-native/build/bin/llama-bench}
cpus=$(nproc)
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), cpu family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), $cpus CPUs"
engines=(rsrc)
if [ -n "$ik_gguf" ]; then
  [ -x "$ik_bench" ] || { echo "busy.sh: no $ik_bench (set IK_BENCH, or run bench/peers.sh once)" >&2; exit 2; }
  engines+=(ik)
fi
variants=()
for e in "${engines[@]}"; do
  variants+=("$e:default")
  for t in $(seq 1 "$cpus"); do variants+=("$e:$t"); done
done
speed() { # decode tok/s of one round: $1 ENGINE:THREADS (a count or "default")
  local engine=${1%%:*} threads=${1#*:} args=()
  if [ "$engine" = rsrc ]; then
    args=(--bench -p 0 -n "$tokens" -r 1)
    [ "$threads" != default ] && args+=(-t "$threads")
    "$run" "$model" "${args[@]}" 2>/dev/null | awk -F'|' '/tg[0-9]/ {gsub(/ /, "", $7); split($7, a, "±"); print a[1]}'
  else
    args=(-m "$ik_gguf" -p 0 -n "$tokens" -r 1 -o json)
    [ "$threads" != default ] && args+=(-t "$threads")
    "$ik_bench" "${args[@]}" 2>/dev/null | python3 -c "import json, sys; print(json.load(sys.stdin)[0]['avg_ts'])"
  fi
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
busy_pids=()
stop_busy() { [ ${#busy_pids[@]} -gt 0 ] && kill "${busy_pids[@]}" 2>/dev/null || true; busy_pids=(); }
trap stop_busy EXIT
for load in ${LOADS:-idle busy crowded}; do
  declare -A got=()
  case $load in
  busy) loops=1 ;;           # another program holds one core
  crowded) loops=$((8 * cpus)) ;; # more runnable threads than cores (16 busy loops on 2)
  *) loops=0 ;;
  esac
  for _ in $(seq 1 "$loops"); do
    sh -c 'while :; do :; done' &
    busy_pids+=($!)
  done
  for r in $(seq 1 "$rounds"); do
    for v in "${variants[@]}"; do got[$v]+="$(speed "$v") "; done
  done
  stop_busy
  for e in "${engines[@]}"; do
    best=0 best_v= line="$load, $e:"
    for v in "${variants[@]}"; do
      [ "${v%%:*}" = "$e" ] || continue
      t=${v#*:}
      m=$(echo "${got[$v]}" | tr ' ' '\n' | grep . | median)
      line+=" $([ "$t" = default ] && echo default || echo "-t $t") $m tok/s;"
      if [ "$t" != default ] && awk -v a="$m" -v b="$best" 'BEGIN {exit !(a > b)}'; then best=$m best_v=$t; fi
      [ "$t" = default ] && def=$m
    done
    echo "$line"
    echo "$load, $e: default / best fixed (-t $best_v) = $(awk -v a="$def" -v b="$best" 'BEGIN {printf "%.2f", a / b}')"
  done
  unset got
done
