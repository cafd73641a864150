#!/usr/bin/env bash
# `cmake --install` into a temporary prefix, the prefix moved elsewhere (it must not matter), then
# from there, with the build tree out of PATH and of the environment: make a model, compile it
# (rsrc -v must name the specs and runtime under the moved prefix), run it, and build
# examples/generate.c against the installed headers with pkg-config and run it on the model.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rsrc-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/first" >/dev/null
mv "$work/first" "$work/moved"
p=$work/moved
for f in bin/rsrc bin/rsr-run bin/rsr-serve bin/rsr-mkmodel share/rsrc/specs/generic.yaml lib/rsrc/librsr_runtime.a \
         include/rsr/rsr.h include/rsr/rsr_dl.h lib/pkgconfig/rsr.pc share/doc/rsrc/docs/user-guide.md \
         share/man/man1/rsrc.1 share/man/man1/rsr-serve.1 share/bash-completion/completions/rsr-run; do
  [ -e "$p/$f" ] || { echo "not installed: $f" >&2; exit 1; }
done
# the installed runtime shows a program that links it its rsr_* names only
sh "$src/tests/install/check_symbols.sh" nm "$p/lib/rsrc/librsr_runtime.a" >/dev/null
cd "$work"
clean_env=(env -i "PATH=$p/bin:/usr/bin:/bin" "HOME=$work" "TMPDIR=$work" "PKG_CONFIG_PATH=$p/lib/pkgconfig")
# a sanitized build's programs need their runtime's options
[ -n "${ASAN_OPTIONS:-}" ] && clean_env+=("ASAN_OPTIONS=$ASAN_OPTIONS")
[ -n "${UBSAN_OPTIONS:-}" ] && clean_env+=("UBSAN_OPTIONS=$UBSAN_OPTIONS")
[ -n "${LSAN_OPTIONS:-}" ] && clean_env+=("LSAN_OPTIONS=$LSAN_OPTIONS")
"${clean_env[@]}" bash -euo pipefail -c '
  rsr-mkmodel --format bitnet-packed --preset tiny --out m 2>/dev/null
  rsrc m -o m.so -O0 -v 2> compile.log
  grep -F "rsrc: specs '"$p"'/share/rsrc/specs, runtime '"$p"'/lib/rsrc/librsr_runtime.a, runtime headers '"$p"'/include/rsr" compile.log >/dev/null ||
    { echo "rsrc does not use the installed specs and runtime:"; grep "specs" compile.log; exit 1; } >&2
  rsrc m -o g.so --target generic -O0
  rsr-run m.so -p "Hello" -n 6 --ignore-eos > run.txt 2>/dev/null
  rsr-run g.so -p "Hello" -n 6 --ignore-eos > run-generic.txt 2>/dev/null
  cmp run.txt run-generic.txt
  inc=$(pkg-config --cflags rsr); inc=${inc#-I}; inc=${inc%% }
  [ "$(cd "$inc" && pwd -P)" = "$(cd '"$p"'/include/rsr && pwd -P)" ] || { echo "pkg-config --cflags rsr: -I$inc" >&2; exit 1; }
  cc '"$src"'/examples/generate.c $(pkg-config --cflags --libs rsr) -o generate
  ./generate m.so "Hello" 6 > generate.txt
  [ -s generate.txt ]
'
# the aarch64 cross build (scripts/cross.sh) installed into the same prefix: that prefix's rsrc
# links aarch64 models with it, and its aarch64 rsr-run runs them (under qemu-user here)
cross=$src/build-aarch64
if [ -x "$cross/rsr-run" ]; then
  cmake --install "$cross" --prefix "$p" >/dev/null
  "${clean_env[@]}" bash -euo pipefail -c '
    rsrc m -o arm.so --target aarch64-dotprod -O0 -v 2> compile-arm.log
    grep -F "runtime '"$p"'/lib/rsrc/aarch64/librsr_runtime.a" compile-arm.log >/dev/null ||
      { echo "rsrc does not link aarch64 models with the installed aarch64 runtime:"; grep "runtime" compile-arm.log; exit 1; } >&2
    qemu-aarch64 -L / -cpu neoverse-n1 '"$p"'/lib/rsrc/aarch64/bin/rsr-run arm.so -p "Hello" -n 6 --ignore-eos > run-arm.txt 2>/dev/null
    cmp run.txt run-arm.txt
  '
  echo "the aarch64 runtime installed beside it: an aarch64 model compiled from there gives the same text"
elif [ -n "${RSRC_REQUIRE_CROSS:-}" ]; then
  echo "no aarch64 build at $cross (scripts/cross.sh aarch64)" >&2
  exit 1
fi
echo "installed into a prefix, moved it, compiled and ran a model from there: ok"
