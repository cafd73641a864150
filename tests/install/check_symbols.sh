#!/bin/sh
# The installed runtime archive defines no global symbol without the project's prefix (rsr_), so
# that a program linking it, or an object made by rsrc --emit=obj, meets none of its internal
# names; the unit tests' hooks (RT_TEST_HOOK, runtime/src/internal.h) are local there, out of any
# program's reach; and it holds no common symbol (clang's OpenMP lock of a critical section is one: made local without space of
# its own, every thread of a critical section spins on a bogus address; CMakeLists.txt's -d).
# Usage: check_symbols.sh NM LIBRARY      (NM: the toolchain's nm, a cross build's own)
set -eu
nm=$1 lib=$2
all=$("$nm" -g --defined-only "$lib")
defined=$(printf '%s\n' "$all" | awk 'NF == 3 { print $3 }')
[ -n "$defined" ] || { echo "$lib: no global symbol defined" >&2; exit 1; }
bad=$(printf '%s\n' "$defined" | grep -v '^rsr_' || true)
if [ -n "$bad" ]; then
  echo "$lib: global symbols without the prefix rsr_:" >&2
  printf '  %s\n' $bad >&2
  exit 1
fi
common=$("$nm" "$lib" | awk 'NF >= 2 && ($(NF - 1) == "C" || $(NF - 1) == "c") { print $NF }')
if [ -n "$common" ]; then
  echo "$lib: common symbols (no space of their own once local): $common" >&2
  exit 1
fi
hooks=$("$nm" "$lib" | awk '$NF ~ /_for_tests$/ && $(NF - 1) !~ /^[bd]$/ { print $NF }')
if [ -n "$hooks" ]; then
  echo "$lib: test hooks not local to the product: $hooks" >&2
  exit 1
fi
echo "$lib: $(printf '%s\n' "$defined" | wc -l) global symbols, all rsr_*"
