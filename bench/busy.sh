#!/usr/bin/env bash
# A busy desktop: decode speed with the default thread count (the runtime's adaptive one) beside
# every fixed count -t 1 .. N, on an idle machine and with another program holding one core (a
# busy loop), the variants alternating round by round; the medians and the default's ratio to the
# best fixed count. docs/performance.md, "A busy desktop".
# Usage: bench/busy.sh MODEL.so [ROUNDS (default 5)] [TOKENS (default 128)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run=${RSR_RUN:-$root/build/rsr-run}
model=${1:?usage: bench/busy.sh MODEL.so [ROUNDS] [TOKENS]}
rounds=${2:-5}
tokens=${3:-128}
cpus=$(nproc)
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), cpu family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), $cpus CPUs"
variants=(default)
for t in $(seq 1 "$cpus"); do variants+=("$t"); done
speed() { # decode tok/s of one round: $1 a thread count or "default"
  local args=(--bench -p 0 -n "$tokens" -r 1)
  [ "$1" != default ] && args+=(-t "$1")
  "$run" "$model" "${args[@]}" 2>/dev/null | awk -F'|' '/tg[0-9]/ {gsub(/ /, "", $7); split($7, a, "±"); print a[1]}'
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
busy_pid=
stop_busy() { [ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null || true; busy_pid=; }
trap stop_busy EXIT
for load in idle busy; do
  declare -A got=()
  if [ "$load" = busy ]; then
    sh -c 'while :; do :; done' &
    busy_pid=$!
  fi
  for r in $(seq 1 "$rounds"); do
    for v in "${variants[@]}"; do got[$v]+="$(speed "$v") "; done
  done
  stop_busy
  best=0 best_v=
  line="$load:"
  for v in "${variants[@]}"; do
    m=$(echo "${got[$v]}" | tr ' ' '\n' | grep . | median)
    line+=" $( [ "$v" = default ] && echo default || echo "-t $v") $m tok/s;"
    if [ "$v" != default ] && awk -v a="$m" -v b="$best" 'BEGIN {exit !(a > b)}'; then best=$m best_v=$v; fi
    [ "$v" = default ] && def=$m
  done
  echo "$line"
  echo "$load: default / best fixed (-t $best_v) = $(awk -v a="$def" -v b="$best" 'BEGIN {printf "%.2f", a / b}')"
  unset got
done
