#!/usr/bin/env bash
# Static embedding end to end: two test models → rsrc --emit=obj --name / --emit=header → the
# examples built against them (C: both models in one program; C++: the default model through
# its header) → the text they generate equals what rsr-run generates from each model.so.
# Also: what the object exports, the link errors a user can meet, reproducible artifacts, the
# progress report and the -v stage timings.
# Usage: check_embed.sh BUILD_DIR SOURCE_DIR CC CXX
set -euo pipefail
export LC_ALL=C
build=$1 src=$2 cc=$3 cxx=${4:-}
[ -n "$cxx" ] && command -v "$cxx" >/dev/null || { echo "FAIL: no C++ compiler ('$cxx'): install g++ (scripts/setup.sh)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/rsrc-embed.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
rsrc() { "$build/rsrc" "$@"; }
inc=(-I "$work" -I "$src/runtime/include")
libs=(-fopenmp -lpcre2-8 -lcjson -lutf8proc -lm)
# rsr-run repairs invalid UTF-8 as Python's decoder does; the examples write the bytes as they are.
utf8() { python3 -c 'import sys; sys.stdout.buffer.write(sys.stdin.buffer.read().decode("utf-8", "replace").encode())'; }

# Two different models (architecture, seed), compiled by the two backends: C for generic, LLVM for host.
"$build/rsr-mkmodel" --format bitnet-packed --preset tiny --vocab 512 --seed 11 --out "$work/tiny" 2>/dev/null
"$build/rsr-mkmodel" --format llama-packed --preset tiny --vocab 512 --seed 12 --out "$work/small" 2>/dev/null
flags_tiny=(--target generic --strategy=rsr-loop) flags_small=(--target host)
rsrc "$work/tiny" "${flags_tiny[@]}" --emit=obj --name=tiny -o "$work/tiny.o"
rsrc "$work/tiny" "${flags_tiny[@]}" --emit=header --name=tiny -o "$work/tiny.h"
rsrc "$work/tiny" "${flags_tiny[@]}" -o "$work/tiny.so"
rsrc "$work/small" "${flags_small[@]}" --emit=obj --name=small -o "$work/small.o"
rsrc "$work/small" "${flags_small[@]}" --emit=header --name=small -o "$work/small.h"
rsrc "$work/small" "${flags_small[@]}" -o "$work/small.so"

# What an object exports: its two entry points (strong) and the runtime's API (weak); kernels,
# blob and runtime internals are local.
globals=$(nm --defined-only -g "$work/tiny.o") all=$(nm "$work/tiny.o")
exported=$(awk '$2 !~ /^[Ww]$/ {print $3}' <<<"$globals" | sort | tr '\n' ' ')
[ "$exported" = "tiny_artifact tiny_model_open " ] || fail "tiny.o exports strong symbols besides its entry points: $exported"
weak=$(awk '$2 ~ /^[Ww]$/ && $3 !~ /^rsr_/ {print $3}' <<<"$globals")
[ -z "$weak" ] || fail "tiny.o exports runtime internals: $weak"
grep -q ' W rsr_session_eval$' <<<"$globals" || fail "tiny.o lacks the runtime API"
grep -q ' t rsr_kernel_0$' <<<"$all" || fail "the kernels of tiny.o are not local"
grep -q ' r rsr_blob$' <<<"$all" || fail "the blob of tiny.o is not local"

# C: both models in one program; each one's text is what rsr-run gives for its model.so.
P="The capital of France is" N=16
"$cc" -std=c11 -Wall -Wextra -Werror "$src/examples/two_models.c" "$work/tiny.o" "$work/small.o" "${inc[@]}" "${libs[@]}" \
  -o "$work/two_models"
"$work/two_models" "$P" $N | utf8 >"$work/two.out"
"$build/rsr-run" "$work/tiny.so" -p "$P" -n $N --no-echo 2>/dev/null >"$work/tiny.txt"
"$build/rsr-run" "$work/small.so" -p "$P" -n $N --no-echo 2>/dev/null >"$work/small.txt"
! cmp -s "$work/tiny.txt" "$work/small.txt" || fail "the two models generate the same text: the test cannot tell them apart"
{ printf 'tiny: '; cat "$work/tiny.txt"; printf 'small: '; cat "$work/small.txt"; } >"$work/two.want"
cmp -s "$work/two.out" "$work/two.want" || fail "two_models and rsr-run disagree:
$(diff "$work/two.out" "$work/two.want")"

# C++: the default model (no --name) through its generated header.
rsrc "$work/small" "${flags_small[@]}" --emit=obj -o "$work/model.o"
rsrc "$work/small" "${flags_small[@]}" --emit=header -o "$work/model.h"
"$cxx" -std=c++17 -Wall -Wextra -Werror "$src/examples/embed.cpp" "$work/model.o" "${inc[@]}" "${libs[@]}" -o "$work/embed"
"$work/embed" "$P" $N | utf8 >"$work/cpp.out"
cmp -s "$work/cpp.out" "$work/small.txt" || fail "examples/embed.cpp and rsr-run disagree:
$(diff "$work/cpp.out" "$work/small.txt")"

# Named models only: rsr_model_open says how to open them; the manifest travels in the object.
cat >"$work/nodefault.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include "tiny.h"
int main(void) {
    rsr_model *m, *t;
    rsr_status st = rsr_model_open(&m, NULL);
    printf("%s: %s\n", rsr_status_to_string(st), rsr_model_errmsg(m));
    rsr_model_close(m);
    st = rsr_model_open_artifact(&t, NULL, NULL);
    printf("%s: %s\n", rsr_status_to_string(st), rsr_model_errmsg(t));
    rsr_model_close(t);
    if (rsr_model_open_artifact(&t, tiny_artifact(), NULL) != RSR_OK) return 1;
    fputs(rsr_model_manifest(t), stdout);
    rsr_model_close(t);
    return 0;
}
EOF
"$cc" -std=c11 "$work/nodefault.c" "$work/tiny.o" "${inc[@]}" "${libs[@]}" -o "$work/nodefault"
out=$("$work/nodefault")
grep -q '^not found: no default model is linked into this program: .* open one with NAME_model_open$' <<<"$out" ||
  fail "rsr_model_open without a default model: $out"
grep -q '^invalid argument: no artifact given' <<<"$out" || fail "rsr_model_open_artifact(NULL): $out"
grep -q '^flags --emit=obj --target=generic --strategy=rsr-loop --name=tiny$' <<<"$out" || fail "the object's manifest: $out"

# Two objects under one name do not link, and the linker names the symbol.
cp "$work/tiny.o" "$work/tiny2.o"
if "$cc" "$src/examples/two_models.c" "$work/tiny.o" "$work/tiny2.o" "$work/small.o" "${inc[@]}" "${libs[@]}" \
     -o "$work/clash" 2>"$work/clash.err"; then fail "two models named tiny linked together"; fi
grep -q 'multiple definition of .tiny_model_open' "$work/clash.err" || fail "the clash message: $(cat "$work/clash.err")"

# Reproducible: the same checkpoint and flags give byte-identical artifacts, whatever the
# temporary directory, the output path or the path the checkpoint is reached by.
mkdir -p "$work/t1" "$work/tmp-with-a-longer-name" "$work/elsewhere/out"
cp -r "$work/tiny" "$work/elsewhere/tiny"
for flags in "--target generic --strategy=rsr-loop" "--target host" "--target host --strategy=rsr-unrolled --emit=obj --name=tiny"; do
  # shellcheck disable=SC2086
  TMPDIR=$work/t1 rsrc "$work/tiny" $flags -o "$work/r1"
  # shellcheck disable=SC2086
  (cd "$work/elsewhere" && TMPDIR=$work/tmp-with-a-longer-name "$build/rsrc" tiny/ $flags -o out/r2)
  cmp -s "$work/r1" "$work/elsewhere/out/r2" || fail "two compiles with '$flags' differ: $(cmp "$work/r1" "$work/elsewhere/out/r2")"
done

# Progress: nothing on stderr when it is not a terminal, one line per layer with --progress;
# -v times every stage.
[ -z "$(rsrc "$work/tiny" "${flags_tiny[@]}" -o "$work/p.so" 2>&1)" ] || fail "rsrc writes to stderr that is not a terminal"
lines=$(rsrc "$work/tiny" "${flags_tiny[@]}" --progress -o "$work/p.so" 2>&1)
grep -q '^rsrc: layer 1/2 done, [0-9]*:[0-9][0-9] elapsed, ETA [0-9]*:[0-9][0-9]$' <<<"$lines" || fail "--progress: $lines"
grep -q '^rsrc: layer 2/2 done' <<<"$lines" || fail "--progress does not report the last layer: $lines"
# On a terminal (script(1) provides one): a status line redrawn in place, with layer, elapsed and ETA.
if command -v script >/dev/null; then
  tty_out=$(script -qec "'$build/rsrc' '$work/tiny' ${flags_tiny[*]} -o '$work/p.so'" /dev/null)
  grep -q $'\r\033\\[Krsrc: \\[=* *\\] layer 2/2 .* elapsed, ETA ' <<<"$tty_out" || fail "no status line on a terminal: $(od -c <<<"$tty_out" | head)"
  # erased at the end, and followed by the compile's last word only
  [[ "$tty_out" == *$'\r\033[K'"rsrc: wrote $work/p.so ("*" MB) in "*" s"$'\r' ]] ||
    fail "the status line is not erased at the end, before 'wrote': $(od -c <<<"$tty_out" | tail -3)"
fi
timing=$(rsrc "$work/tiny" --target host -v -o "$work/p.so" 2>&1 | grep '^rsrc: time:')
for stage in load analyse emit "LLVM optimise+codegen" link total; do
  grep -q " $stage [0-9.]* s" <<<"$timing" || fail "-v does not time '$stage': $timing"
done
echo "embedding: two named objects and the default one link and generate what rsr-run generates; exports, clash, reproducibility, progress and timings checked"
