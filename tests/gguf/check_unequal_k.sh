#!/usr/bin/env bash
# Paired matrices of unequal RSR k: the FFN's gate and up (and qwen35's q/k pair) read one input and
# gate's activation reads up's rows, so a runtime that splits their blocks by one matrix's k reads
# rows the other has not written (rows_grouped once did: logits 0.4-0.5 off, changing with the thread
# count). rsr-mkmodel's TQ2_0 files (qwen3 and qwen35) are compiled with the RSR forms
# (--strategy=rsr-loop and --target generic, whose cost model gives some layer's gate a k other than
# its up's: checked, so that the test fails rather than passes blind when it no longer does) and
# their logits after a prompt, one and two threads, must be the bits of the default artifact's.
# Usage: check_unequal_k.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
who=check_unequal_k.sh
work=$build/tests/unequal-k
rm -rf "$work" && mkdir -p "$work"
prompt=5,17,300,44,9,120
for arch in qwen3 qwen35; do
  m=$work/$arch
  "$build/rsr-mkmodel" --format gguf-tq2 --gguf-arch $arch --out "$m" --hidden 256 --intermediate 512 --layers 4 \
    --vocab 512 --seed 1 >/dev/null 2>&1
  "$build/rsrc" "$m/model.gguf" --target host -O0 -o "$m/default.so"
  "$build/rsr-run" "$m/default.so" --tokens $prompt -n 1 -t 1 --logits "$m/default.f32" >/dev/null 2>&1
  for form in "rsr-loop --strategy=rsr-loop" "generic --target generic"; do
    read -r name flags <<<"$form"
    # shellcheck disable=SC2086
    "$build/rsrc" "$m/model.gguf" $flags -O0 --print=plan -o "$m/$name.so" >"$m/$name.plan" || {
      cat "$m/$name.plan" >&2
      exit 1
    }
    # the precondition: some layer's gate_proj has a k that its up_proj has not
    if ! awk '/^plan .*mlp\.(gate|up)_proj/ { split($2, n, ".mlp."); for (i = 3; i <= NF; i++) if ($i ~ /^k=/) k[n[1], n[2]] = $i }
              END { for (x in k) { split(x, p, SUBSEP); if (p[2] ~ /^gate/ && k[p[1], "up_proj.weight"] != k[x]) found = 1 }
                    exit !found }' "$m/$name.plan"; then
      echo "$who: $arch, $name: every layer's gate and up have the same k: the test no longer covers unequal k" >&2
      exit 1
    fi
    for t in 1 2; do
      "$build/rsr-run" "$m/$name.so" --tokens $prompt -n 1 -t $t --logits "$m/$name.t$t.f32" >/dev/null 2>&1
      cmp "$m/$name.t$t.f32" "$m/default.f32" || {
        echo "$who: $arch, $name, $t threads: logits differ from the default artifact's" >&2
        exit 1
      }
    done
  done
done
echo "$who: ok"
