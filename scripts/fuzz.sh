#!/usr/bin/env bash
# The long fuzz campaign: every fuzzer (or those named) for SECONDS each, one after another, with
# AddressSanitizer + UndefinedBehaviorSanitizer, starting from the seeds made from the test models
# and the regression inputs. The corpus grows across runs in build-asan/fuzz/corpus/; crashes,
# leaks and timeouts land in build-asan/fuzz/crashes/ (see docs/robustness.md for what to do next).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 600 s; safetensors model index
#        target_spec artifact runtime_api tokenizer sentencepiece)   JOBS=N: N processes per target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(safetensors model index target_spec artifact runtime_api tokenizer sentencepiece)
build=$root/build-asan
"$root/scripts/setup.sh" "$build" -DCMAKE_C_COMPILER="clang-$("$root/scripts/setup.sh" --llvm)" -DRSRC_SANITIZE=address,undefined -DRSRC_FUZZ=ON
python3 "$root/fuzz/make_seeds.py" "$build" "$build/fuzz/seeds"
cd "$build/fuzz"
mkdir -p crashes
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  extra=()
  [ -d "$root/fuzz/regressions/$t" ] && extra+=("$root/fuzz/regressions/$t")
  [ "${JOBS:-1}" -gt 1 ] && extra=(-jobs="$JOBS" -workers="$JOBS" "${extra[@]}")
  echo "fuzz: $t for ${seconds} s" >&2
  if ! "./fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="crashes/$t-" "corpus/$t" "seeds/$t" "${extra[@]}" 2>"$t.log"; then
    echo "fuzz: $t FAILED; see $build/fuzz/$t.log and crashes/$t-*" >&2
    status=1
  fi
  grep -E 'stat::number_of_executed_units|stat::new_units_added' "$t.log" >&2 || true
done
exit $status
